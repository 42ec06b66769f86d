"""Low rank, from the SVD: truncation, its error, compression, and fine-tuning the singular values.

* ``truncated_svd``, ``low_rank_approx``: W ≈ W_k = U_k diag(S_k) Vh_k (Eq. 1-3 in docs/lowrank.md).
* ``eckart_young_error``: ‖W - W_k‖ from the singular values; no rank-k matrix is closer (Eq. 4-5).
* ``rank_for_energy``: the smallest k that keeps a given share of Σσ² (Eq. 6).
* ``FactoredLinear``, ``compress_model``: "decompose, then deploy". A Linear becomes two
  thin factors, k(in + out) numbers and multiply–adds per token instead of in·out (Eq. 7-8).
* ``SVDLinear``, ``apply_svd_finetuning``: W = U diag(S + δ) Vh, with only δ trained (Eq. 9-10).
* ``equal_budget_lora_rank``: what the same number of trainable parameters buys LoRA (Eq. 11).

Layers are picked by name with LoRA's own rules (``minilora.lora.target_names``).
Every SVD runs in float64, and its factors are cast back to the weight's dtype,
so a float32 model stays float32.
"""

import math
import numbers
from dataclasses import dataclass

from minilora import backend
from minilora.autograd import ops
from minilora.autograd.tensor import Tensor
from minilora.lora.analysis import energy_fraction
from minilora.lora.model import count_parameters, target_names
from minilora.nn.layers import Linear
from minilora.nn.module import Module, Parameter, evaluating

# ----------------------------------------------------------------------------
# The SVD and what it says about a single matrix


def _check_int(value, name, low, high, why):
    """``value`` as an int in [low, high], or a clear error."""
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise TypeError(f"{name} must be an integer, got {value!r} ({type(value).__name__})")
    if not low <= value <= high:
        raise ValueError(f"{name} must be in [{low}, {high}] ({why}), got {name}={value}")
    return int(value)


def _check_fraction(fraction):
    if isinstance(fraction, bool) or not isinstance(fraction, numbers.Real) or not 0.0 < fraction <= 1.0:
        raise ValueError(f"the energy fraction must be a number in (0, 1], got {fraction!r}; 0.9 keeps 90% of Σσ²")
    return float(fraction)


def _as_matrix(W):
    """W (a Tensor, an array or nested lists) as a finite 2-D floating array."""
    data = W.data if isinstance(W, Tensor) else W if backend.is_array(W) else backend.asarray(W)
    if data.ndim != 2:
        raise ValueError(f"expected a 2-D matrix, got shape {tuple(data.shape)}; an SVD factors one (m, n) matrix at a time")
    if not backend.is_floating(data.dtype):
        data = data.astype(backend.float64)
    if not backend.all_finite(data):
        raise ValueError("the matrix contains nan or inf, so it has no SVD; check where it came from")
    return data


def _svd64(W):
    """The thin SVD (U, S, Vh) of a checked matrix, in float64, with the signs of Eq. (3)."""
    xp = backend.get_array_module(W)
    U, S, Vh = xp.linalg.svd(W.astype(backend.float64), full_matrices=False)
    pivot = xp.abs(U).argmax(axis=0)  # (r,): the row of each column's largest |entry|
    signs = xp.sign(U[pivot, xp.arange(U.shape[1])])  # ±1: a unit vector's largest |entry| is ≥ 1/√m > 0
    return U * signs, S, Vh * signs[:, None]  # flipping u_i and v_i together leaves σ_i u_i v_iᵀ unchanged


def truncated_svd(W, k):
    """(U_k, S_k, Vh_k): the k largest singular values of W and their vectors (Eq. 2 in docs/lowrank.md).

    For an (m, n) W (a Tensor or an array), U_k is (m, k) with orthonormal
    columns, S_k is (k,) with σ₁ ≥ … ≥ σ_k ≥ 0, and Vh_k is (k, n) with
    orthonormal rows, in W's floating dtype (float64 for other input).

    Deterministic signs (Eq. 3): each pair (u_i, v_i) is defined only up to a
    common sign, and which one LAPACK returns depends on its build (OpenBLAS,
    MKL, cuSOLVER). We flip each pair so that the largest-magnitude entry of
    u_i is positive: σ_i u_i v_iᵀ is unchanged, and saved factors, tests and a
    FactoredLinear trained further from them become reproducible. Repeated
    singular values leave the vectors non-unique beyond the sign (§2.1 there).
    """
    W = _as_matrix(W)
    m, n = W.shape
    k = _check_int(k, "k", 1, min(m, n), f"a {m}×{n} matrix has min(m, n) = {min(m, n)} singular values")
    U, S, Vh = _svd64(W)
    return U[:, :k].astype(W.dtype), S[:k].astype(W.dtype), Vh[:k].astype(W.dtype)


def low_rank_approx(W, k):
    """W_k = U_k diag(S_k) Vh_k, the closest rank-k matrix to W in both norms (Eq. 2, 4-5), as an array."""
    U, S, Vh = truncated_svd(W, k)
    return (U * S) @ Vh  # (m, k)(k, n): scaling U's columns is U diag(S)


def _singular_values(S):
    """S as a 1-D float64 array, checked to be singular values: finite, ≥ 0, descending."""
    S = S.data if isinstance(S, Tensor) else S
    S = (S if backend.is_array(S) else backend.asarray(S)).astype(backend.float64)
    if S.ndim != 1 or S.size == 0:
        raise ValueError(f"S must be a non-empty 1-D array of singular values, got shape {tuple(S.shape)}")
    if not backend.all_finite(S) or bool((S < 0).any()) or bool((S[1:] > S[:-1]).any()):
        raise ValueError("S must be singular values: finite, ≥ 0 and in descending order, as truncated_svd and numpy.linalg.svd return them")
    return S


def eckart_young_error(S, k, norm="fro"):
    """‖W - W_k‖ from W's singular values alone (Eq. 4-5 in docs/lowrank.md).

    ``norm="fro"``: √(Σ_{i>k} σᵢ²); ``norm="spectral"``: σ_{k+1} (0 when k = len(S)).
    No matrix of rank ≤ k is closer to W in either norm. 0 ≤ k ≤ len(S).
    """
    S = _singular_values(S)
    k = _check_int(k, "k", 0, S.size, f"S holds {S.size} singular values")
    tail = S[k:]
    if norm == "fro":
        return math.sqrt(float((tail * tail).sum()))
    if norm == "spectral":
        return float(tail[0]) if tail.size else 0.0
    raise ValueError(f"norm must be 'fro' (Frobenius) or 'spectral' (largest singular value), got {norm!r}")


def rank_for_energy(S, fraction):
    """The smallest k with Σ_{i≤k} σᵢ² / Σ_i σᵢ² ≥ fraction (Eq. 6 in docs/lowrank.md).

    Energy means squared singular values, Σ σᵢ² = ‖W‖²_F. ``fraction`` is in (0, 1].
    Dividing the running sums by their own last entry makes k = len(S) always
    qualify; with ``fraction=1.0`` directions below float64 rounding of the
    total add nothing, which gives the numerical rank.
    """
    S = _singular_values(S)
    fraction = _check_fraction(fraction)
    cumulative = (S * S).cumsum()  # Σ_{i≤k} σᵢ² for k = 1..len(S), non-decreasing
    if not cumulative[-1] > 0:
        raise ValueError("every singular value is 0: the matrix has no energy to keep")
    kept = cumulative / cumulative[-1]  # E(k), Eq. (6); the last entry is exactly 1
    return int((kept < fraction).sum()) + 1


# ----------------------------------------------------------------------------
# Decompose, then deploy: a Linear as two thin factors


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
        _check_int(k, "k", 1, min(out_f, in_f), f"a {out_f}×{in_f} weight has min(out, in) = {min(out_f, in_f)} singular values")
        return _factored(linear, _svd64(linear.weight.data), k)

    def forward(self, x):
        return ops.linear(ops.linear(x, self.SV), self.U, self.bias)  # (..., in) → (..., k) → (..., out)

    def merged_weight(self):
        """U·SV, the (out, in) weight of the equivalent plain Linear."""
        return self.U.data @ self.SV.data

    def extra_repr(self):
        return f"in_features={self.in_features}, out_features={self.out_features}, rank={self.rank}, bias={self.bias is not None}"


def _factored(linear, svd, k):
    U, S, Vh = svd
    dtype = linear.weight.dtype
    bias = None if linear.bias is None else linear.bias.data.copy()
    return FactoredLinear(U[:, :k].astype(dtype), (S[:k, None] * Vh[:k]).astype(dtype), bias)  # (out, k), (k, in)


def linear_targets(model, target_modules):
    """The names of the ``nn.Linear`` modules that ``target_modules`` picks, by LoRA's rules.

    Names, a regular expression or ``"all-linear"``, exactly as in
    ``LoraConfig.target_modules`` (see ``minilora.lora.target_names``). A name
    that matches nothing, or a module that is not a Linear, is an error that
    lists the Linear modules there are.
    """
    linears = [n for n, m in model.named_modules() if type(m) is Linear]
    hint = f"Only nn.Linear layers can be factored; {type(model).__name__}'s are: {', '.join(linears) or '(none)'}"
    try:
        chosen = target_names(model, target_modules)
    except (ValueError, TypeError) as err:
        reason = str(err).split("; its modules are")[0]  # this module's own list below is the useful one
        raise type(err)(f"{reason}. {hint}") from None
    others = [f"{n} ({type(model.get_submodule(n)).__name__})" for n in chosen if n not in linears]
    if others:
        raise TypeError(f"target_modules={target_modules!r} picks modules that are not nn.Linear: {', '.join(others)}. {hint}")
    return chosen


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


def mean_loss(model, batches):
    """The mean of ``model(*batch)[1]`` over ``batches``, in eval mode and without a graph."""
    batches = list(batches)
    if not batches:
        raise ValueError("batches is empty, so there is no loss to average")
    with evaluating(model):
        return sum(model(*batch)[1].item() for batch in batches) / len(batches)


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
        _check_fraction(energy)
    eval_batches = None if eval_batches is None else list(eval_batches)  # read twice: before and after
    plans, rows = [], []
    for name in linear_targets(model, target_modules):
        linear = model.get_submodule(name)
        out_f, in_f = linear.weight.shape
        svd = _svd64(_as_matrix(linear.weight.data))
        if rank is None:
            k = rank_for_energy(svd[1], energy)
        else:
            k = _check_int(rank, "rank", 1, min(out_f, in_f), f"{name} is {out_f}×{in_f}, so it has {min(out_f, in_f)} singular values")
        replace = k * (in_f + out_f) < in_f * out_f or not skip_unprofitable
        rows.append(_layer_report(name, linear, svd[1], k, replace))
        if replace:
            plans.append((name, linear, svd, k))
    loss_before = None if eval_batches is None else mean_loss(model, eval_batches)
    params_before = count_parameters(model)[0]
    for name, linear, svd, k in plans:
        model.set_submodule(name, _factored(linear, svd, k))
    loss_after = None if eval_batches is None else mean_loss(model, eval_batches)
    return CompressionReport(rows, params_before, count_parameters(model)[0], loss_before, loss_after)


# ----------------------------------------------------------------------------
# Fine-tuning only the singular values


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
        k = min(out_f, in_f) if rank is None else _check_int(rank, "rank", 1, min(out_f, in_f), f"a {out_f}×{in_f} weight has {min(out_f, in_f)} singular values")
        U, S, Vh = _svd64(_as_matrix(base.weight.data))
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


def svd_layers(model):
    """(name, layer) for every SVDLinear in ``model``."""
    return [(n, m) for n, m in model.named_modules() if isinstance(m, SVDLinear)]


def apply_svd_finetuning(model, target_modules="all-linear", rank=None, train_bias=False):
    """Wrap the targeted Linear layers in SVDLinear (in place) and freeze all but δ; return the model.

    Like ``apply_lora``: ``target_modules`` follows LoraConfig's rules, and only
    each layer's δ (and bias, with ``train_bias=True``) trains, Σ k numbers by
    ``count_parameters``. By default every Linear but the output layer: each costs k ≤ min(in, out).
    """
    if svd_layers(model):
        raise ValueError("this model already has SVDLinear layers; apply_svd_finetuning once (or merge_svd first)")
    layers = {}
    for name in linear_targets(model, target_modules):
        try:
            layers[name] = SVDLinear(model.get_submodule(name), rank, train_bias)
        except ValueError as err:
            raise ValueError(f"{name}: {err}") from None
    for name, layer in layers.items():
        model.set_submodule(name, layer)
    model.requires_grad_(False)
    for layer in layers.values():
        layer.delta.requires_grad_(True)
        if layer.bias is not None:
            layer.bias.requires_grad_(train_bias)
    return model


def merge_svd(model):
    """Replace every SVDLinear by a plain Linear holding U diag(S + δ) Vh (in place); return the model."""
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
    budget = _check_int(budget, "budget", 0, float("inf"), "a number of trainable parameters")
    return budget // sum(out_f + in_f for out_f, in_f in shapes)
