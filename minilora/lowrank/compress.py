"""Decompose, then deploy: a Linear as two thin factors, and a whole model compressed.

``FactoredLinear`` keeps an (out, in) weight as U_k (out, k) and diag(S_k) Vh_k
(k, in): k(in + out) numbers and multiply–adds per token instead of in·out
(Eq. 7-8 in docs/lowrank.md). ``compress_model`` replaces the targeted Linear
layers of a model and reports, layer by layer, what was kept and what it cost.
"""

from dataclasses import dataclass

from minilora.adapters import count_parameters, linear_targets
from minilora.autograd import ops
from minilora.lowrank.svd import check_fraction, check_int, eckart_young_error, rank_for_energy
from minilora.matrices import as_matrix, energy_fraction, svd
from minilora.models.common import mean_loss
from minilora.nn.module import Module, Parameter


class FactoredLinear(Module):
    """y = U (SV x) + b: a Linear whose (out, in) weight is kept as two thin factors (Eq. 7 in docs/lowrank.md).

    ``U`` is (out, k) and ``SV`` is (k, in); ``from_linear`` sets them to U_k
    and diag(S_k) Vh_k of a trained weight, so U·SV = W_k. The forward runs two
    matmuls, (..., in) → (..., k) → (..., out), and never forms U·SV: a token
    costs k(in + out) multiply–adds instead of in·out (Eq. 8).
    """

    def __init__(self, U, SV, bias=None):
        super().__init__()
        if U.ndim != 2 or SV.ndim != 2 or U.shape[1] != SV.shape[0]:
            raise ValueError(f"U must be (out, k) and SV (k, in) with the same k, got {tuple(U.shape)} and {tuple(SV.shape)}")
        self.U = Parameter(U)
        self.SV = Parameter(SV)
        self.bias = None if bias is None else Parameter(bias)
        self.out_features, self.rank = U.shape
        self.in_features = SV.shape[1]

    @classmethod
    def from_linear(cls, linear, k):
        """The rank-k factors U_k and diag(S_k) Vh_k of ``linear``'s weight (Eq. 7; the bias is copied)."""
        out_f, in_f = linear.weight.shape
        check_int(k, "k", 1, min(out_f, in_f), f"a {out_f}×{in_f} weight has min(out, in) = {min(out_f, in_f)} singular values")
        return _factored(linear, svd(linear.weight.data), k)

    def forward(self, x):
        return ops.linear(ops.linear(x, self.SV), self.U, self.bias)  # (..., in) → (..., k) → (..., out)

    def merged_weight(self):
        """U·SV, the (out, in) weight of the equivalent plain Linear."""
        return self.U.data @ self.SV.data

    def extra_repr(self):
        return f"in_features={self.in_features}, out_features={self.out_features}, rank={self.rank}, bias={self.bias is not None}"


def _factored(linear, factors, k):
    U, S, Vh = factors
    dtype = linear.weight.dtype
    bias = None if linear.bias is None else linear.bias.data.copy()
    return FactoredLinear(U[:, :k].astype(dtype), (S[:k, None] * Vh[:k]).astype(dtype), bias)  # (out, k), (k, in)


@dataclass
class LayerReport:
    name: str  # dotted module name, e.g. "blocks.0.mlp.fc_in"
    shape: tuple  # (out_features, in_features) of the weight
    rank: int  # k: singular values kept (or that would have been kept, if skipped)
    energy: float  # share of Σσ² kept, Eq. (6)
    error: float  # relative error ‖W - W_k‖_F / ‖W‖_F, Eq. (4)
    params_before: int  # in·out + bias
    params_after: int  # k(in + out) + bias if replaced, else params_before
    flops_before: int  # multiply–adds per token of the weight product: in·out (Eq. 8)
    flops_after: int  # k(in + out) if replaced, else flops_before
    replaced: bool  # False: left alone, because factoring would not have saved parameters


@dataclass
class CompressionReport:
    layers: list  # one LayerReport per targeted Linear, in the model's order
    model_params_before: int  # every parameter of the model, before compression
    model_params_after: int  # and after
    loss_before: float = None  # mean loss on eval_batches, if they were given
    loss_after: float = None

    params_before = property(lambda self: sum(r.params_before for r in self.layers), doc="Over the targeted layers.")
    params_after = property(lambda self: sum(r.params_after for r in self.layers))
    flops_before = property(lambda self: sum(r.flops_before for r in self.layers), doc="Multiply–adds per token.")
    flops_after = property(lambda self: sum(r.flops_after for r in self.layers))
    skipped = property(lambda self: [r.name for r in self.layers if not r.replaced])

    def table(self):
        """The report as a markdown table, one row per layer and a total."""
        rows = ["| layer | shape | k | energy kept | rel. error | params | MACs/token |", "|---|---|---|---|---|---|---|"]
        for r in self.layers:
            note = "" if r.replaced else " (skipped)"
            rows.append(
                f"| {r.name}{note} | {r.shape[0]}×{r.shape[1]} | {r.rank} | {r.energy:.4f} | {r.error:.4f} "
                f"| {r.params_before} → {r.params_after} | {r.flops_before} → {r.flops_after} |"
            )
        rows.append(f"| total | | | | | {self.params_before} → {self.params_after} | {self.flops_before} → {self.flops_after} |")
        return "\n".join(rows)


def _layer_report(name, linear, S, k, replace):
    out_f, in_f = linear.weight.shape
    bias = 0 if linear.bias is None else out_f
    dense, factored = in_f * out_f, k * (in_f + out_f)  # Eq. (8): per token, one multiply–add per weight number
    after = factored if replace else dense
    norm = eckart_young_error(S, 0)  # ‖W‖_F = √(Σσ²)
    error = eckart_young_error(S, k) / norm if norm > 0 else 0.0
    return LayerReport(name, (out_f, in_f), k, energy_fraction(S, k), error, dense + bias, after + bias, dense, after, replace)


def compress_model(model, rank=None, energy=None, target_modules="all-linear", skip_unprofitable=True, eval_batches=None):
    """Replace the targeted Linear layers of ``model`` by FactoredLinear (in place); return a CompressionReport.

    Give exactly one of ``rank`` (the same k for every layer, at most each
    layer's min(in, out)) or ``energy`` (per layer, the smallest k that keeps
    that share of Σσ², Eq. 6). A layer where k(in + out) ≥ in·out would not
    get smaller (Eq. 8), so it is left alone and reported as skipped, unless
    ``skip_unprofitable=False``. FLOPs are multiply–adds per token of the
    weight products, bias additions not counted. With ``eval_batches``
    (batches for ``model(*batch)``), the report holds the mean loss before and
    after. Every layer is planned and checked before any is replaced.
    """
    if (rank is None) == (energy is None):
        raise ValueError("give exactly one of rank= (the same k for every layer) or energy= (per layer, the smallest k keeping that share of Σσ²)")
    if energy is not None:
        check_fraction(energy)
    eval_batches = None if eval_batches is None else list(eval_batches)  # read twice: before and after
    plans, rows = [], []
    for name in linear_targets(model, target_modules):
        linear = model.get_submodule(name)
        out_f, in_f = linear.weight.shape
        factors = svd(as_matrix(linear.weight.data, name))
        if rank is None:
            k = rank_for_energy(factors[1], energy)
        else:
            k = check_int(rank, "rank", 1, min(out_f, in_f), f"{name} is {out_f}×{in_f}, so it has {min(out_f, in_f)} singular values")
        replace = k * (in_f + out_f) < in_f * out_f or not skip_unprofitable
        rows.append(_layer_report(name, linear, factors[1], k, replace))
        if replace:
            plans.append((name, linear, factors, k))
    loss_before = None if eval_batches is None else mean_loss(model, eval_batches)
    params_before = count_parameters(model)[0]
    for name, linear, factors, k in plans:
        model.set_submodule(name, _factored(linear, factors, k))
    loss_after = None if eval_batches is None else mean_loss(model, eval_batches)
    return CompressionReport(rows, params_before, count_parameters(model)[0], loss_before, loss_after)
