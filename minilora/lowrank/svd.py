"""The SVD and what it says about a single matrix: truncation, its error, and energy.

* ``truncated_svd``, ``low_rank_approx``: W ≈ W_k = U_k diag(S_k) Vh_k (Eq. 1-3 in docs/lowrank.md).
* ``eckart_young_error``: ‖W - W_k‖ from the singular values; no rank-k matrix is closer (Eq. 4-5).
* ``rank_for_energy``: the smallest k that keeps a given share of Σσ² (Eq. 6).

Every SVD runs in float64 (``minilora.matrices.svd``), and its factors are
cast back to the weight's dtype, so a float32 model stays float32.
"""

import math
import numbers

from minilora import backend
from minilora.autograd.tensor import Tensor
from minilora.matrices import as_matrix
from minilora.matrices import svd as matrix_svd


def check_int(value, name, low, high, why):
    """``value`` as an int in [low, high], or a clear error."""
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise TypeError(f"{name} must be an integer, got {value!r} ({type(value).__name__})")
    if not low <= value <= high:
        raise ValueError(f"{name} must be in [{low}, {high}] ({why}), got {name}={value}")
    return int(value)


def check_fraction(fraction):
    """``fraction`` as a float in (0, 1], or a clear error (an energy share, Eq. 6)."""
    if isinstance(fraction, bool) or not isinstance(fraction, numbers.Real) or not 0.0 < fraction <= 1.0:
        raise ValueError(f"the energy fraction must be a number in (0, 1], got {fraction!r}; 0.9 keeps 90% of Σσ²")
    return float(fraction)


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
    W = as_matrix(W, "truncated_svd")
    m, n = W.shape
    k = check_int(k, "k", 1, min(m, n), f"a {m}×{n} matrix has min(m, n) = {min(m, n)} singular values")
    U, S, Vh = matrix_svd(W)
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
    k = check_int(k, "k", 0, S.size, f"S holds {S.size} singular values")
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
    fraction = check_fraction(fraction)
    cumulative = (S * S).cumsum()  # Σ_{i≤k} σᵢ² for k = 1..len(S), non-decreasing
    if not cumulative[-1] > 0:
        raise ValueError("every singular value is 0: the matrix has no energy to keep")
    kept = cumulative / cumulative[-1]  # E(k), Eq. (6); the last entry is exactly 1
    return int((kept < fraction).sum()) + 1
