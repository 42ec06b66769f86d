"""Fine-tuning only the singular values: W = U diag(S + δ) Vh, with only δ trained (Eq. 9-10 in docs/lowrank.md).

* ``SVDLinear``, ``apply_svd_finetuning(model, SVDConfig(...))``, ``svd_layers``, ``merge_svd``.
* ``equal_budget_lora_rank``: what the same number of trainable parameters buys LoRA (Eq. 11).
"""

import numbers
from dataclasses import asdict, dataclass

from minilora import adapters, backend
from minilora.autograd import ops
from minilora.lowrank.svd import check_int
from minilora.matrices import as_matrix, svd
from minilora.nn.layers import Linear
from minilora.nn.module import Module, Parameter


class SVDLinear(Module):
    """W(δ) = U diag(S + δ) Vh, with U, S, Vh frozen and only δ trainable (Eq. 9 in docs/lowrank.md).

    U (out, k), S (k,) and Vh (k, in) come from the SVD of a trained Linear's
    weight and are Parameters with ``requires_grad=False``: saved, never trained.
    δ (k,) starts at 0, so at full rank (``rank=None``) the layer starts as the
    Linear itself, and at rank k as its truncation W_k (Eq. 2). The bias is
    copied, frozen unless ``train_bias=True``. δ's gradient is Eq. (10).
    """

    def __init__(self, base, rank=None, train_bias=False):
        super().__init__()
        if type(base) is not Linear:
            raise TypeError(f"SVDLinear wraps an nn.Linear, got {type(base).__name__}")
        out_f, in_f = base.weight.shape
        k = min(out_f, in_f) if rank is None else check_int(rank, "rank", 1, min(out_f, in_f), f"a {out_f}×{in_f} weight has {min(out_f, in_f)} singular values")
        U, S, Vh = svd(as_matrix(base.weight.data, "SVDLinear"))
        dtype = base.weight.dtype
        self.U = Parameter(U[:, :k].astype(dtype), requires_grad=False)  # (out, k)
        self.S = Parameter(S[:k].astype(dtype), requires_grad=False)  # (k,)
        self.Vh = Parameter(Vh[:k].astype(dtype), requires_grad=False)  # (k, in)
        self.delta = Parameter(backend.xp.zeros((k,), dtype=dtype))
        self.bias = None if base.bias is None else Parameter(base.bias.data.copy(), requires_grad=train_bias)
        self.in_features, self.out_features, self.rank = in_f, out_f, k

    def forward(self, x):
        coords = ops.linear(x, self.Vh)  # (..., k): x's coordinates along v_1..v_k
        return ops.linear(coords * (self.S + self.delta), self.U, self.bias)  # (..., out)

    def merged_weight(self):
        """U diag(S + δ) Vh as an (out, in) array: the weight of the equivalent plain Linear (Eq. 9)."""
        return (self.U.data * (self.S.data + self.delta.data)) @ self.Vh.data  # (out, k)(k, in)

    def to_linear(self):
        """A plain nn.Linear with the merged weight and this layer's bias (for deployment)."""
        bias = None if self.bias is None else self.bias.data.copy()
        return Linear.from_weights(self.merged_weight(), bias)

    def extra_repr(self):
        return f"in_features={self.in_features}, out_features={self.out_features}, rank={self.rank}"


@dataclass
class SVDConfig:
    target_modules: object = "all-linear"  # names, a regex, or "all-linear" (every Linear but the output layer), as in LoraConfig
    rank: int = None  # singular values kept per layer, k ≤ min(in, out); None keeps them all
    train_bias: bool = False  # train each wrapped layer's bias too

    def to_dict(self):
        return asdict(self)


def svd_layers(model):
    """(name, layer) for every SVDLinear in ``model``."""
    return adapters.adapter_layers(model, SVDLinear)


def apply_svd_finetuning(model, config=None, **fields):
    """Wrap the targeted Linear layers in SVDLinear (in place) and freeze all but δ; return the model.

    ``apply_svd_finetuning(model, SVDConfig(rank=4))``, or the same fields as
    keywords: ``apply_svd_finetuning(model, target_modules=["fc_in"], rank=4)``.
    Like ``apply_lora``, ``target_modules`` follows LoraConfig's rules, and only
    each layer's δ (and bias, with ``train_bias=True``) trains, Σ k numbers by
    ``count_parameters``. By default every Linear but the output layer: each costs k ≤ min(in, out).
    """
    config = adapters.resolve_config(config, fields, SVDConfig, "apply_svd_finetuning")
    if svd_layers(model):
        raise ValueError("this model already has SVDLinear layers; apply_svd_finetuning once (or merge_svd first)")
    layers = {}
    for name in adapters.linear_targets(model, config.target_modules):
        try:
            layers[name] = SVDLinear(model.get_submodule(name), config.rank, config.train_bias)
        except ValueError as err:
            raise ValueError(f"{name}: {err}") from None
    for name, layer in layers.items():
        model.set_submodule(name, layer)
    model.requires_grad_(False)
    for layer in layers.values():
        layer.delta.requires_grad_(True)
        if layer.bias is not None:
            layer.bias.requires_grad_(config.train_bias)
    return model


def merge_svd(model):
    """Replace every SVDLinear by a plain Linear holding U diag(S + δ) Vh (in place); return the model.

    An SVDLinear keeps no dense weight to fold δ into, so this is what
    ``merge_and_unload`` is for LoRA: the result has no adapter left in it.
    """
    for name, layer in svd_layers(model):
        model.set_submodule(name, layer.to_linear())
    return model


def equal_budget_lora_rank(layer_shapes, budget):
    """The largest LoRA rank r whose adapters on these layers train at most ``budget`` numbers (Eq. 11).

    ``layer_shapes`` is one (out, in) pair or a list. LoRA trains r(in + out) numbers
    per layer, δ only k ≤ min(in, out): the whole δ of a d×d layer buys r = ⌊d/2d⌋ = 0.
    Returns 0 when not even r = 1 fits.
    """
    one = len(layer_shapes) == 2 and all(isinstance(n, numbers.Integral) for n in layer_shapes)
    shapes = [tuple(layer_shapes)] if one else [tuple(s) for s in layer_shapes]
    if not shapes or any(len(s) != 2 or min(s) < 1 for s in shapes):
        raise ValueError(f"layer_shapes must be (out, in) pairs of positive sizes, got {layer_shapes!r}")
    budget = check_int(budget, "budget", 0, float("inf"), "a number of trainable parameters")
    return budget // sum(out_f + in_f for out_f, in_f in shapes)
