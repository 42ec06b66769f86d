"""Is a matrix orthogonal, and which orthogonal matrix is nearest: checks, QR and polar.

A matrix W (m × n, m ≥ n) has orthonormal columns when WᵀW = I (Eq. 1 in
docs/orthogonal.md); for a square W that makes it orthogonal, and it keeps
every length and angle: ‖Wx‖ = ‖x‖. A wide W (m < n) cannot have
orthonormal columns, so for it every function here works on the rows
(WWᵀ = I), which is what a projection to fewer dimensions can have.

Every function takes a Tensor, an array or a nested list, and hands back the
same kind it was given (a Tensor comes back as a new leaf without a graph).
"""

from minilora import backend
from minilora.autograd.tensor import Tensor
from minilora.matrices import as_matrix
from minilora.nn.init import orthonormal_columns

NORMS = ("fro", "max")
METHODS = ("qr", "polar")


def like(array, original):
    """``array`` as the kind of thing ``original`` was: a Tensor (new leaf) or an array."""
    return Tensor(array) if isinstance(original, Tensor) else array


def orthogonality_error(W, norm="fro"):
    """‖WᵀW - I‖_F, or with ``norm="max"`` the largest |(WᵀW - I)ᵢⱼ| (Eq. 1-2 in docs/orthogonal.md).

    For a wide W (m < n) the rows are checked instead: ‖WWᵀ - I‖. The product is
    formed in float64 even for a float32 W, so the number measures W itself and
    not the rounding of the check. Returns a Python float.
    """
    if norm not in NORMS:
        raise ValueError(f"orthogonality_error: norm must be one of {NORMS}, got {norm!r}")
    a = as_matrix(W, "orthogonality_error", backend.float64)
    xp = backend.get_array_module(a)
    m, n = a.shape
    gram = a.T @ a if m >= n else a @ a.T  # (min(m, n), min(m, n))
    deviation = gram - xp.eye(min(m, n), dtype=backend.float64)
    if norm == "fro":
        return float(xp.sqrt((deviation * deviation).sum()))
    return float(xp.abs(deviation).max())


def default_tolerance(W):
    """100·max(m, n)·ε of W's dtype: about 30 times what a backward-stable QR or SVD
    leaves behind (‖QᵀQ - I‖_F ≤ 3·n·ε measured for n up to 1000)."""
    data = W.data if isinstance(W, Tensor) else backend.asarray(W)
    dtype = data.dtype if backend.is_floating(data.dtype) else backend.float64
    return 100.0 * max(data.shape) * float(backend.xp.finfo(dtype).eps) if data.ndim else 0.0


def is_orthogonal(W, tol=None):
    """True when ``orthogonality_error(W) <= tol`` (Eq. 1); ``tol`` defaults to ``default_tolerance(W)``."""
    if tol is None:
        tol = default_tolerance(W)
    if not tol >= 0:
        raise ValueError(f"is_orthogonal: tol must be a non-negative number, got {tol!r}")
    return orthogonality_error(W) <= tol


def orthogonalize(W, method="qr"):
    """The orthogonal matrix made from W: ``"qr"`` (Eq. 3) or ``"polar"`` (Eq. 4 in docs/orthogonal.md).

    * ``"qr"``: Q from W = QR with the signs chosen so that diag(R) > 0, which
      makes Q unique for a W of full rank (Gram–Schmidt on the columns, done stably).
    * ``"polar"``: U Vᵀ from the SVD W = U Σ Vᵀ, the orthogonal matrix nearest
      to W in the Frobenius norm, at distance ‖W - UVᵀ‖²_F = Σᵢ (σᵢ - 1)² (Eq. 5).

    Tall or square W get orthonormal columns, wide W orthonormal rows. The
    dtype is kept (an integer matrix becomes float64).
    """
    if method not in METHODS:
        raise ValueError(f"orthogonalize: method must be one of {METHODS}, got {method!r}")
    a = as_matrix(W, "orthogonalize")
    wide = a.shape[0] < a.shape[1]
    if wide:
        a = a.T  # (n, m): the rows of W are the columns of Wᵀ
    if method == "qr":
        q = orthonormal_columns(a)
    else:
        u, _, vt = backend.get_array_module(a).linalg.svd(a, full_matrices=False)
        q = u @ vt
    return like(q.T if wide else q, W)


def retract_qr(params):
    """Replace each parameter's values by their QR orthogonalisation, in place (Eq. 18).

    Called after every optimizer step, this pulls an unconstrained matrix back
    onto the orthogonal matrices: W ← qf(W - lr·G). Takes one Tensor or an
    iterable of them and returns what it was given.
    """
    for p in [params] if isinstance(params, Tensor) else list(params):
        p.data = orthogonalize(p.data, "qr")
    return params


def project_tangent(W, G):
    """G - W sym(WᵀG): the part of a gradient G that moves W along the orthogonal matrices (Eq. 18).

    With sym(M) = (M + Mᵀ)/2. This is the Riemannian gradient for the metric
    the matrices inherit from the Frobenius inner product (Absil, Mahony &
    Sepulchre, 2008, ch. 3). A step along it followed by ``retract_qr`` is
    Riemannian gradient descent; its fixed points are exactly the constrained
    optima, which a raw gradient step followed by QR does not guarantee.
    """
    w = as_matrix(W, "project_tangent")
    g = G.data if isinstance(G, Tensor) else backend.asarray(G)
    if g.shape != w.shape:
        raise ValueError(f"project_tangent: G has shape {tuple(g.shape)}, but W has shape {tuple(w.shape)}")
    if w.shape[0] < w.shape[1]:
        raise ValueError(f"project_tangent: W must be square or tall (orthonormal columns), got shape {tuple(w.shape)}")
    wtg = w.T @ g  # (n, n)
    return like(g - w @ ((wtg + wtg.T) * 0.5), G)
