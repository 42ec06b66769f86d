"""Low rank, from the SVD: truncation, its error, compression, and fine-tuning the singular values.

* ``svd``       -- ``truncated_svd``, ``low_rank_approx``: W ≈ W_k = U_k diag(S_k) Vh_k (Eq. 1-3 in
  docs/lowrank.md); ``eckart_young_error``: ‖W - W_k‖ from the singular values (Eq. 4-5);
  ``rank_for_energy``: the smallest k that keeps a given share of Σσ² (Eq. 6).
* ``compress``  -- ``FactoredLinear``, ``compress_model``: "decompose, then deploy". A Linear becomes two
  thin factors, k(in + out) numbers and multiply–adds per token instead of in·out (Eq. 7-8).
* ``finetune``  -- ``SVDLinear``, ``apply_svd_finetuning``: W = U diag(S + δ) Vh, with only δ trained
  (Eq. 9-10); ``equal_budget_lora_rank``: what the same trainable budget buys LoRA (Eq. 11).

Layers are picked by ``minilora.adapters.linear_targets`` (LoRA's rules, Linear layers
only). Every SVD runs in float64, and its factors are cast back to the weight's dtype,
so a float32 model stays float32.
"""

from minilora.adapters import linear_targets
from minilora.lowrank.compress import CompressionReport, FactoredLinear, LayerReport, compress_model
from minilora.lowrank.finetune import (
    SVDConfig,
    SVDLinear,
    apply_svd_finetuning,
    equal_budget_lora_rank,
    merge_svd,
    svd_layers,
)
from minilora.lowrank.svd import eckart_young_error, low_rank_approx, rank_for_energy, truncated_svd
from minilora.models.common import mean_loss

__all__ = [
    "truncated_svd", "low_rank_approx", "eckart_young_error", "rank_for_energy",
    "FactoredLinear", "compress_model", "CompressionReport", "LayerReport", "linear_targets", "mean_loss",
    "SVDConfig", "SVDLinear", "apply_svd_finetuning", "svd_layers", "merge_svd", "equal_budget_lora_rank",
]  # fmt: skip
