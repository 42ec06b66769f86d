"""One matrix, checked and factored: what LoRA, the SVD methods and the orthogonal tools share.

* ``as_matrix``: a Tensor, an array or nested lists as a finite 2-D floating array.
* ``svd``: the thin SVD in float64, with deterministic signs (Eq. 3 in docs/lowrank.md).
* ``singular_values``, ``energy_fraction``: σ₁ ≥ σ₂ ≥ ... and the share of
  Σσ² in the top k of them (Eq. 6 there; Eckart–Young).

Every SVD in minilora goes through ``svd``, so each one runs in float64 and
signs its vectors the same way whatever LAPACK the machine has.
"""

from minilora import backend
from minilora.autograd.tensor import Tensor


def as_matrix(W, fn, dtype=None):
    """The array inside ``W``, checked to be a finite 2-D matrix (``fn`` names the caller in errors).

    Integer matrices (a permutation, a list of ints) become float64; with
    ``dtype`` the result is cast to it.
    """
    data = W.data if isinstance(W, Tensor) else backend.asarray(W)
    if data.ndim != 2:
        raise ValueError(f"{fn}: needs a matrix (2-D), got shape {tuple(data.shape)}; it works on one (m, n) matrix at a time")
    if not backend.is_floating(data.dtype):
        data = data.astype(backend.float64)
    if dtype is not None:
        data = data.astype(dtype)
    if not backend.all_finite(data):
        raise ValueError(f"{fn}: the matrix contains nan or inf, so it has no SVD or orthogonal factor; check where it came from")
    return data


def svd(W):
    """The thin SVD (U, S, Vh) of a 2-D array, in float64, with the signs of Eq. (3) in docs/lowrank.md.

    Each pair (u_i, v_i) is defined only up to a common sign, and which one
    LAPACK returns depends on its build. Each pair is flipped so that the
    largest-magnitude entry of u_i is positive: σ_i u_i v_iᵀ is unchanged.
    """
    xp = backend.get_array_module(W)
    U, S, Vh = xp.linalg.svd(W.astype(backend.float64), full_matrices=False)
    pivot = xp.abs(U).argmax(axis=0)  # (r,): the row of each column's largest |entry|
    signs = xp.sign(U[pivot, xp.arange(U.shape[1])])  # ±1: a unit vector's largest |entry| is ≥ 1/√m > 0
    return U * signs, S, Vh * signs[:, None]  # flipping u_i and v_i together leaves σ_i u_i v_iᵀ unchanged


def singular_values(matrix):
    """σ₁ ≥ σ₂ ≥ ... of a 2-D array, in float64."""
    xp = backend.get_array_module(matrix)
    return xp.linalg.svd(matrix.astype(backend.float64), compute_uv=False)


def energy_fraction(sigma, k):
    """Σ_{i≤k} σᵢ² / Σ_i σᵢ²: the share of ‖W‖²_F in the top k directions (Eckart–Young)."""
    energy = sigma * sigma
    total = float(energy.sum())
    return float(energy[:k].sum()) / total if total > 0 else 0.0
