"""Orthogonal fine-tuning, OFT (Qiu et al., 2023): rotate every neuron of a frozen layer alike.

A pretrained Linear has weight W₀ (out × in); row i is neuron i's weight
vector wᵢ ∈ ℝ^in. OFT learns one orthogonal R (in × in) and uses
wᵢ ↦ R wᵢ for every neuron, so

    W = W₀ Rᵀ,    y = W x + b = W₀ (Rᵀ x) + b        (Eq. 19 in docs/orthogonal.md).

The paper writes R W₀ because it stores neurons as columns (W₀ ∈ ℝ^{d×n},
z = Wᵀx); with PyTorch's rows it is W₀ Rᵀ, and R acts on the *input*
dimension. Rotating all neurons by one R keeps every angle between them,
hence their hyperspherical energy (Eq. 20), which the paper argues carries
the pretrained model's knowledge; LoRA's W₀ + BA does not keep it.

R is block-diagonal, r blocks of size b = in/r, each a Cayley rotation of a
free S (Eq. 11): S = 0 gives R = I, so the model starts exactly as it was.
Layers are picked by ``minilora.adapters.target_names``, so the same
``target_modules`` pick the same layers for LoRA and OFT.
"""

from dataclasses import asdict, dataclass, field

from minilora import adapters, backend
from minilora.adapters import AdapterLayer
from minilora.autograd import ops
from minilora.autograd.engine import no_grad
from minilora.matrices import as_matrix
from minilora.nn.layers import Linear
from minilora.nn.module import Parameter, freeze, unfreeze
from minilora.orthogonal.parametrizations import cayley_map


def _one_of(r, block_size):
    """(value, name) of whichever of r and block_size was given; exactly one must be, a positive int."""
    if (r is None) == (block_size is None):
        raise ValueError(
            f"OFT needs exactly one of r (the number of blocks) and block_size (their size), got r={r!r}, "
            f"block_size={block_size!r}; their product must be in_features"
        )
    given, name = (r, "r") if r is not None else (block_size, "block_size")
    if not isinstance(given, int) or given < 1:
        raise ValueError(f"OFT {name} must be a positive integer, got {given!r}")
    return given, name


def oft_blocks(in_features, r=None, block_size=None):
    """(r, b): the number of diagonal blocks of R and their size, from exactly one of the two."""
    given, name = _one_of(r, block_size)
    if in_features % given:
        divisors = ", ".join(str(d) for d in range(1, in_features + 1) if in_features % d == 0)
        raise ValueError(
            f"OFT {name}={given} does not divide in_features={in_features}: R is block-diagonal on the input "
            f"dimension, so r·block_size must equal it. Divisors of {in_features}: {divisors}"
        )
    other = in_features // given
    return (given, other) if name == "r" else (other, given)


def block_diagonal(blocks):
    """The (r·b × r·b) block-diagonal matrix with the r blocks (r, b, b) on its diagonal (an array)."""
    xp = backend.get_array_module(blocks)
    r, b, _ = blocks.shape
    full = xp.zeros((r * b, r * b), dtype=blocks.dtype)
    for k in range(r):
        full[k * b : (k + 1) * b, k * b : (k + 1) * b] = blocks[k]
    return full


class OFTLinear(AdapterLayer):
    """y = base(x R) for row inputs x, i.e. weight W₀Rᵀ, with ``base`` a frozen ``nn.Linear`` (Eq. 19).

    ``oft_S`` (r, b, b) is the only trainable parameter: r·b² numbers, of
    which r·b(b-1)/2 matter (the skew part of each block). The bias is not rotated.
    ``merge()`` writes W₀ ← W₀Rᵀ, after which forward is the plain base layer;
    ``unmerge()`` writes W₀ ← (W₀Rᵀ)R, which is W₀ because RᵀR = I: undoing a
    rotation needs no inverse.
    """

    change = "the rotation"

    def __init__(self, base, r=None, block_size=None):
        if not isinstance(base, Linear):
            raise TypeError(f"OFTLinear wraps an nn.Linear, got {type(base).__name__}")
        super().__init__(base)
        self.r, self.block_size = oft_blocks(base.in_features, r, block_size)
        self.oft_S = Parameter(backend.xp.zeros((self.r, self.block_size, self.block_size), dtype=base.weight.dtype))
        freeze(base)

    def rotation(self):
        """The r rotation blocks (r, b, b) as a Tensor in the graph of ``oft_S``."""
        return cayley_map(self.oft_S)

    def rotation_matrix(self):
        """The whole block-diagonal R (in × in), as an array (no graph)."""
        with no_grad():
            return block_diagonal(self.rotation().data)

    def merged_weight(self):
        """W₀Rᵀ as an array (Eq. 19): what ``merge`` writes, or (once merged) what it wrote."""
        if self.merged:
            return self.base.weight.data.copy()
        return self.base.weight.data @ self.rotation_matrix().T

    def forward(self, x):
        if self.merged:
            return self.base(x)
        r, b = self.r, self.block_size
        blocks = ops.transpose(ops.reshape(x, (-1, r, b)), 0, 1)  # (r, N, b): block k of every row
        rotated = ops.matmul(blocks, self.rotation())  # (r, N, b): x_k R_k for each block k
        rotated = ops.reshape(ops.transpose(rotated, 0, 1), x.shape)  # (N, r, b) -> (..., in)
        return self.base(rotated)

    def merged_weights(self, safe=True):
        """{"weight": W₀Rᵀ} (Eq. 19), checked to be finite; nothing changes yet."""
        merged = self.merged_weight()
        if safe and not backend.all_finite(merged):
            raise ValueError("merging would make the weight non-finite; oft_S is broken, nothing was merged")
        return {"weight": merged}

    def unmerged_weights(self):
        """{"weight": (W₀Rᵀ)R = W₀}."""
        return {"weight": self.base.weight.data @ self.rotation_matrix()}

    def extra_repr(self):
        return f"r={self.r}, block_size={self.block_size}, merged={self.merged}"


@dataclass
class OFTConfig:
    target_modules: object = field(default_factory=lambda: ["q_proj", "v_proj"])  # names, a regex, or "all-linear", as in LoraConfig
    r: int = None  # number of diagonal blocks of R (give this or block_size)
    block_size: int = None  # size of each block (PEFT's oft_block_size); r·block_size = in_features
    modules_to_save: list = field(default_factory=list)  # modules kept fully trainable (e.g. a classifier head)

    def __post_init__(self):
        _one_of(self.r, self.block_size)  # whether it divides in_features is checked per layer

    def to_dict(self):
        return asdict(self)


def oft_layers(model):
    """(name, layer) for every OFT layer in ``model``."""
    return adapters.adapter_layers(model, OFTLinear)


def apply_oft(model, config=None, **fields):
    """Wrap the targeted Linear layers of ``model`` in OFTLinear (in place) and return it.

    ``apply_oft(model, OFTConfig(target_modules=["q_proj"], block_size=4))``, or
    the same fields as keywords: ``apply_oft(model, target_modules=["q_proj"], block_size=4)``.
    Afterwards only the rotations (and ``modules_to_save``) train.
    """
    config = adapters.resolve_config(config, fields, OFTConfig, "apply_oft")
    if adapters.adapter_layers(model):
        raise ValueError("this model already has adapter layers (OFT or LoRA); apply one adapter once, to a plain model")
    names = adapters.target_names(model, config.target_modules, (Linear,), "OFT")
    for name in names:  # every check before any change, so a refusal leaves the model as it was
        oft_blocks(model.get_submodule(name).in_features, config.r, config.block_size)
    adapters.check_modules_to_save(model, config.modules_to_save)
    for name in names:
        model.set_submodule(name, OFTLinear(model.get_submodule(name), config.r, config.block_size))
    object.__setattr__(model, "oft_config", config)
    return mark_only_oft_as_trainable(model, config.modules_to_save)


def mark_only_oft_as_trainable(model, modules_to_save=()):
    """Freeze everything but the OFT rotations (and the modules named in ``modules_to_save``)."""
    freeze(model)
    for _, layer in oft_layers(model):
        layer.oft_S.requires_grad_(True)
    if modules_to_save:
        unfreeze(model, [f"{name}.*" for name in modules_to_save])
    return model


def merge_oft(model):
    """Rotate every adapted base weight, W₀ ← W₀Rᵀ (layers already merged are left alone, with a warning).

    Every merged weight is computed and checked before any is written, as in ``merge_lora``.
    """
    return adapters.merge_adapters(model, OFTLinear)


def unmerge_oft(model):
    """Undo ``merge_oft``, W₀ ← (W₀Rᵀ)R = W₀ (layers not merged are left alone, with a warning)."""
    return adapters.unmerge_adapters(model, OFTLinear)


# ----------------------------------------------------------------------------
# What OFT keeps: the angles between neurons (Eq. 20)


def neuron_cosines(W):
    """cos∠(wᵢ, wⱼ) for every pair of neurons (rows of W, out × in): the (out × out) float64 array ŴŴᵀ."""
    unit = _unit_rows(W, "neuron_cosines")
    return unit @ unit.T


def hyperspherical_energy(W):
    """HE(W) = Σ_{i≠j} 1/‖ŵᵢ - ŵⱼ‖ over ordered pairs of unit neuron vectors ŵ = w/‖w‖ (Eq. 20).

    (Liu et al., 2018; Qiu et al., 2023, Eq. 1.) Low when the neurons spread
    evenly over the sphere. The differences are formed directly, one row at
    a time, not from 2 - 2cos, which would lose digits for close neurons.
    """
    unit = _unit_rows(W, "hyperspherical_energy")
    xp = backend.get_array_module(unit)
    total = 0.0
    for i in range(unit.shape[0] - 1):
        distances = xp.sqrt(((unit[i + 1 :] - unit[i]) ** 2).sum(axis=1))  # (out - i - 1,)
        if not bool((distances > 0).all()):
            raise ValueError(f"hyperspherical_energy: neuron {i} points the same way as a later one; the energy is infinite")
        total += 2.0 * float((1.0 / distances).sum())  # each unordered pair counts as (i, j) and (j, i)
    return total


def _unit_rows(W, fn):
    w = as_matrix(W, fn, backend.float64)
    norms = backend.get_array_module(w).sqrt((w * w).sum(axis=1, keepdims=True))  # (out, 1)
    if not bool((norms > 0).all()):
        raise ValueError(f"{fn}: a neuron (row of W) is zero and has no direction")
    return w / norms
