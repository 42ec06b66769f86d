"""Putting LoRA into a model: choose layers by name, wrap them, freeze the rest, merge.

``apply_lora(model, LoraConfig(...))`` replaces each targeted Linear,
Embedding or RNN by its LoRA version, in place, and leaves only the adapter
(plus whatever ``bias`` and ``modules_to_save`` ask for) trainable. The names
follow PEFT and loralib, so the same config reads the same there.
"""

import warnings
from dataclasses import asdict, dataclass, field

from minilora import adapters
from minilora.lora.lora_layers import LoRAEmbedding, LoRALayer, LoRALinear, LoRARNN, check_lora_options
from minilora.nn.layers import RNN, Embedding, Linear

LORA_CLASSES = {Linear: LoRALinear, Embedding: LoRAEmbedding, RNN: LoRARNN}


@dataclass
class LoraConfig:
    r: int = 8  # rank of the update B·A
    lora_alpha: float = 16  # α: the update is scaled by α/r (or α/√r)
    lora_dropout: float = 0.0  # dropout on a Linear adapter's input while training (embeddings and RNNs: none)
    target_modules: object = field(default_factory=lambda: ["q_proj", "v_proj"])  # names, a regex, or "all-linear"
    bias: str = "none"  # "none" | "all" (train every bias) | "lora_only" (biases of adapted layers)
    use_rslora: bool = False  # scale by α/√r instead of α/r
    init_lora_weights: str = "default"  # "default" | "gaussian" | "pissa"
    modules_to_save: list = field(default_factory=list)  # modules kept fully trainable and saved (e.g. a classifier head)

    def __post_init__(self):
        if self.bias not in ("none", "all", "lora_only"):
            raise ValueError(f"bias must be 'none', 'all' or 'lora_only', got {self.bias!r}")
        check_lora_options(self.r, self.lora_alpha, self.lora_dropout, self.init_lora_weights)

    def to_dict(self):
        return asdict(self)


def target_names(model, target_modules):
    """The names of the modules ``target_modules`` picks out of ``model``, by the rules of
    ``minilora.adapters.target_names``; each must be a Linear, Embedding or RNN."""
    return adapters.target_names(model, target_modules, tuple(LORA_CLASSES), "LoRA")


def apply_lora(model, config=None, **fields):
    """Wrap the targeted layers of ``model`` in LoRA layers (in place) and return it.

    ``apply_lora(model, LoraConfig(r=8))``, or the same fields as keywords: ``apply_lora(model, r=8)``.
    """
    config = adapters.resolve_config(config, fields, LoraConfig, "apply_lora")
    if lora_layers(model):
        raise ValueError("this model already has LoRA layers; apply_lora once (or merge_and_unload first)")
    for name in target_names(model, config.target_modules):
        base = model.get_submodule(name)
        lora = LORA_CLASSES[type(base)](
            base, config.r, config.lora_alpha, config.lora_dropout, config.use_rslora, config.init_lora_weights
        )
        model.set_submodule(name, lora)
    adapters.check_modules_to_save(model, config.modules_to_save)
    object.__setattr__(model, "lora_config", config)
    mark_only_lora_as_trainable(model, config.bias, config.modules_to_save)
    return model


def lora_layers(model):
    """(name, layer) for every LoRA layer in ``model``."""
    return adapters.adapter_layers(model, LoRALayer)


def is_adapter_parameter(name, adapted, bias, modules_to_save):
    """Does the parameter ``name`` belong to the adapter (trained and saved with it)?"""
    leaf = name.split(".")[-1]
    owner = name.rsplit(".", 2)[0] if ".base." in name else None  # the LoRA layer a base bias sits in
    return (
        leaf.startswith("lora_")
        or (bias == "all" and leaf.startswith("bias"))
        or (bias == "lora_only" and leaf.startswith("bias") and owner in adapted)
        or any(name == k or name.startswith(k + ".") for k in modules_to_save)
    )


def mark_only_lora_as_trainable(model, bias="none", modules_to_save=()):
    """Freeze everything but the LoRA factors (and the chosen biases and modules)."""
    adapted = {n for n, _ in lora_layers(model)}
    for name, p in model.named_parameters():
        p.requires_grad_(is_adapter_parameter(name, adapted, bias, tuple(modules_to_save)))
    return model


def lora_state_dict(model):
    """The arrays an adapter consists of: LoRA factors, trainable biases, saved modules."""
    config = getattr(model, "lora_config", None) or LoraConfig()
    adapted = {n for n, _ in lora_layers(model)}
    keep = tuple(config.modules_to_save)
    return {k: v for k, v in model.state_dict().items() if is_adapter_parameter(k, adapted, config.bias, keep)}


def merge_lora(model, safe=True):
    """Add every adapter's s·BA into its base weight (Eq. 9 in docs/lora.md).

    Every merged weight is computed and checked before any is written, so a
    refusal (train mode with active dropout, or, with ``safe=True``, a
    non-finite result) leaves the whole model untouched. A layer already
    merged gets a warning and is left alone.
    """
    return adapters.merge_adapters(model, LoRALayer, safe)


def unmerge_lora(model):
    """Subtract every adapter back out of its base weight."""
    return adapters.unmerge_adapters(model, LoRALayer)


def merge_and_unload(model):
    """Merge, then put each layer's plain ``base`` back: a model with no LoRA left in it."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # already-merged layers are fine here
        merge_lora(model)
    for name, layer in lora_layers(model):
        model.set_submodule(name, layer.base)
    if "lora_config" in model.__dict__:
        object.__delattr__(model, "lora_config")
    return model


