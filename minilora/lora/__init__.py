"""LoRA, properly: low-rank adapters for Linear, Embedding and RNN layers (Hu et al., 2021).

    from minilora.lora import LoraConfig, apply_lora, merge_lora, save_adapter
    apply_lora(model, LoraConfig(r=8, lora_alpha=16, target_modules=["q_proj", "v_proj"]))
"""

from minilora.adapters import count_parameters
from minilora.lora.io import load_adapter, save_adapter
from minilora.lora.lora_layers import LoRAEmbedding, LoRALayer, LoRALinear, LoRARNN, lora_scaling
from minilora.lora.model import (
    LoraConfig,
    apply_lora,
    lora_layers,
    lora_state_dict,
    mark_only_lora_as_trainable,
    merge_and_unload,
    merge_lora,
    target_names,
    unmerge_lora,
)

__all__ = [
    "LoraConfig", "apply_lora", "LoRALinear", "LoRAEmbedding", "LoRARNN", "LoRALayer",
    "mark_only_lora_as_trainable", "lora_state_dict", "merge_lora", "unmerge_lora",
    "merge_and_unload", "save_adapter", "load_adapter", "count_parameters", "lora_layers",
    "target_names", "lora_scaling",
]  # fmt: skip
