"""Random projections and the Johnson–Lindenstrauss lemma (article 000's y = Rx).

A random matrix R (d_out × d_in) maps points to d_out dimensions. Scaled
right, it keeps every squared length in expectation, E‖Rx‖² = ‖x‖²
(Eq. 6-7 in docs/orthogonal.md), and it keeps all pairwise distances of n
points within a factor 1 ± ε at once when d_out ≥ 4 ln n / (ε²/2 - ε³/3)
(Dasgupta & Gupta, 2003; Eq. 8). ``distortion`` and ``jl_check`` measure
what a given R actually does to a given set of points.
"""

import math
from collections import namedtuple

from minilora import backend
from minilora.matrices import as_matrix
from minilora.orthogonal.checks import orthogonalize


def _check_dims(d_in, d_out):
    for name, d in (("d_in", d_in), ("d_out", d_out)):
        if not isinstance(d, int) or d < 1:
            raise ValueError(f"{name} must be a positive integer, got {d!r}")


def gaussian_projection(d_in, d_out, generator=None, dtype="float32"):
    """R (d_out × d_in) with independent N(0, 1/d_out) entries, so E‖Rx‖² = ‖x‖² (Eq. 6).

    Each coordinate of Rx is N(0, ‖x‖²/d_out), so ‖Rx‖²/‖x‖² is χ²_{d_out}/d_out:
    mean 1, variance 2/d_out. ``generator`` (from ``backend.new_generator``)
    draws from its own stream; by default the seeded main one.
    """
    _check_dims(d_in, d_out)
    generator = generator or backend.generator()
    draws = generator.standard_normal((d_out, d_in)).astype(dtype)  # on the host, as backend.randn does
    return backend.asarray(draws) * (1.0 / math.sqrt(d_out))


def orthogonal_scale(d_in, d_out):
    """√(d_in/d_out) when projecting down, 1 when not (Eq. 7 in docs/orthogonal.md).

    Orthonormal rows (d_out < d_in) keep only the part of x in a random
    d_out-dimensional subspace: E‖Qx‖² = (d_out/d_in)‖x‖², so the scale that
    makes E‖Rx‖² = ‖x‖² is √(d_in/d_out). Orthonormal columns (d_out ≥ d_in)
    keep every length exactly, so they need no scale at all.
    """
    return math.sqrt(d_in / d_out) if d_out < d_in else 1.0


def orthogonal_projection(d_in, d_out, generator=None, dtype="float32"):
    """R = c·Q (d_out × d_in), Q with orthonormal rows (down) or columns (up), c from Eq. 7.

    Q is the QR orthogonalisation (diag(R) > 0) of a Gaussian matrix, which
    makes it uniformly (Haar) distributed (Mezzadri, 2007). Going up, R keeps
    every distance exactly; going down, it keeps squared lengths in
    expectation, with a smaller spread than a Gaussian R (Eq. 10).
    """
    q = orthogonalize(gaussian_projection(d_in, d_out, generator, dtype), "qr")
    scale = orthogonal_scale(d_in, d_out)
    return q * scale if scale != 1.0 else q


def distortion(X, P):
    """‖P(xᵢ - xⱼ)‖ / ‖xᵢ - xⱼ‖ for every pair i < j of the rows of X (float64 array).

    X is (n, d_in), P is (d_out, d_in). P is applied once to every point and the
    differences are taken afterwards (P is linear), one row i at a time, so
    memory stays O(n·d) rather than O(n²·d). The pairs come in the order
    (0, 1), (0, 2), ..., (1, 2), ..., as in ``triu_indices(n, 1)``.
    """
    x = as_matrix(X, "distortion", backend.float64)
    p = as_matrix(P, "distortion", backend.float64)
    if p.shape[1] != x.shape[1]:
        raise ValueError(
            f"distortion: P of shape {tuple(p.shape)} cannot act on points of dimension {x.shape[1]}; "
            "P must be (d_out, d_in) and X must hold one point per row, (n, d_in)"
        )
    if x.shape[0] < 2:
        raise ValueError(f"distortion: needs at least 2 points (rows of X) to form a pair, got {x.shape[0]}")
    xp = backend.get_array_module(x)
    y = x @ p.T  # (n, d_out): every point projected
    ratios = []
    for i in range(x.shape[0] - 1):
        before = xp.sqrt(((x[i + 1 :] - x[i]) ** 2).sum(axis=1))  # (n - i - 1,)
        after = xp.sqrt(((y[i + 1 :] - y[i]) ** 2).sum(axis=1))
        if not bool((before > 0).all()):
            j = i + 1 + int(before.argmin())
            raise ValueError(f"distortion: points {i} and {j} of X coincide, so their distance is 0 and has no ratio")
        ratios.append(after / before)
    return xp.concatenate(ratios)


def jl_min_dim(n_points, eps):
    """The smallest k with k ≥ 4 ln n / (ε²/2 - ε³/3) (Dasgupta & Gupta, 2003, Thm 2.1; Eq. 8).

    With that many dimensions a random projection keeps every squared
    pairwise distance of n points within [1 - ε, 1 + ε] times its original.
    """
    _check_eps(eps)
    if not isinstance(n_points, int) or n_points < 2:
        raise ValueError(f"jl_min_dim: n_points must be an integer >= 2 (a distance needs a pair), got {n_points!r}")
    return math.ceil(4.0 * math.log(n_points) / (eps**2 / 2.0 - eps**3 / 3.0))


def jl_pair_failure_bound(k, eps):
    """An upper bound on the chance that one pair's squared distance leaves [1 - ε, 1 + ε] (Eq. 9).

    exp(k/2 · (ε + ln(1 - ε))) + exp(k/2 · (ln(1 + ε) - ε)): the two Chernoff
    tails of Dasgupta & Gupta's Lemma 2.2, which hold for both kinds of
    projection here. At k = jl_min_dim(n, ε) each tail is at most 1/n².
    """
    _check_eps(eps)
    if not isinstance(k, int) or k < 1:
        raise ValueError(f"jl_pair_failure_bound: k must be a positive integer, got {k!r}")
    return math.exp(0.5 * k * (eps + math.log1p(-eps))) + math.exp(0.5 * k * (math.log1p(eps) - eps))


JLCheck = namedtuple("JLCheck", "n_points k k_min eps within worst failure_bound")
JLCheck.__doc__ = """What a projection did to the pairwise distances of a set of points.

n_points, k (= d_out), k_min = jl_min_dim(n_points, eps), eps;
within: the fraction of pairs whose squared distance ratio lies in [1 - eps, 1 + eps];
worst: the largest |ratio² - 1| over all pairs;
failure_bound: jl_pair_failure_bound(k, eps), which bounds the expected fraction outside."""


def jl_check(X, P, eps):
    """Measure P against the Johnson–Lindenstrauss guarantee for the points X (Eq. 8-9)."""
    _check_eps(eps)
    squared = distortion(X, P) ** 2
    xp = backend.get_array_module(squared)
    n, k = int(as_matrix(X, "jl_check").shape[0]), int(as_matrix(P, "jl_check").shape[0])
    inside = (squared >= 1.0 - eps) & (squared <= 1.0 + eps)
    return JLCheck(
        n_points=n,
        k=k,
        k_min=jl_min_dim(n, eps),
        eps=eps,
        within=float(inside.mean()),
        worst=float(xp.abs(squared - 1.0).max()),
        failure_bound=jl_pair_failure_bound(k, eps),
    )


def _check_eps(eps):
    if not 0.0 < eps < 1.0:
        raise ValueError(f"eps must lie strictly between 0 and 1 (the allowed relative distortion), got {eps!r}")
