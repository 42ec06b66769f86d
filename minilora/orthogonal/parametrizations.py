"""Orthogonal matrices that gradient descent can learn: Cayley, exponential, Householder.

Article 002 learns an orthogonal W (WᵀW = I) by gradient descent on Y = XW.
A plain gradient step leaves the orthogonal matrices (docs/orthogonal.md §5).
A parametrisation avoids that: it builds W from *unconstrained* numbers by
a map whose every output is orthogonal, and the optimizer moves those numbers.

* Cayley:      W = (I + A)⁻¹ (I - A),   A = S - Sᵀ    (Eq. 11)  rotations, det +1
* exponential: W = exp(A),               A = S - Sᵀ    (Eq. 14)  rotations, det +1
* Householder: W = H₁ H₂ ⋯ H_k,  Hᵢ = I - 2 vᵢvᵢᵀ/‖vᵢ‖²  (Eq. 17)  det (-1)ᵏ

Each map is a function of the raw parameter (``cayley_map(S)``, ...), which
is what the gradient checks differentiate, and a Module holding that
parameter, whose ``weight()`` is W and whose forward is article 002's Y = XW.
"""

from minilora import backend
from minilora.autograd import ops
from minilora.autograd.tensor import Tensor
from minilora.matrices import as_matrix
from minilora.nn.module import Module, Parameter
from minilora.orthogonal.checks import default_tolerance, orthogonality_error


def _eye_like(S):
    data = S.data if isinstance(S, Tensor) else S
    return backend.get_array_module(data).eye(data.shape[-1], dtype=data.dtype)


def _check_square(S, fn):
    shape = tuple(S.shape)
    if len(shape) < 2 or shape[-1] != shape[-2]:
        raise ValueError(f"{fn}: needs a square matrix or a stack of them, shape (..., n, n), got {shape}")


def skew(S):
    """A = S - Sᵀ (over the last two axes): skew-symmetric, Aᵀ = -A, for any S."""
    return ops.sub(S, ops.transpose(S, -2, -1))


def cayley_map(S):
    """W = (I + A)⁻¹ (I - A) with A = S - Sᵀ: orthogonal with det W = +1 (Eq. 11 in docs/orthogonal.md).

    I + A is invertible for every skew A (its eigenvalues are 1 + iθ ≠ 0), and
    (I - A) commutes with (I + A)⁻¹, so one ``solve`` builds W. Works on a
    stack (..., n, n) too, one rotation per matrix. The gradient reaching S
    is Eq. (13).
    """
    _check_square(S, "cayley_map")
    A = skew(S)
    eye = _eye_like(S)
    return ops.solve(ops.add(eye, A), ops.sub(eye, A))


def cayley_inverse(W):
    """The S with ``cayley_map(S) = W``: A = (I + W)⁻¹ (I - W) and S = A/2 (Eq. 13).

    The Cayley map is its own inverse on skew matrices, so this is the same
    formula run backwards. It exists only when -1 is not an eigenvalue of W
    (I + W must be invertible): the Cayley map covers the rotations that do
    not turn any plane by exactly 180°.
    """
    w = as_matrix(W, "cayley_inverse")
    _check_square(w, "cayley_inverse")
    error, tol = orthogonality_error(w), default_tolerance(w)
    if error > tol:
        raise ValueError(
            f"cayley_inverse: W is not orthogonal (‖WᵀW - I‖_F = {error:.3g}); "
            "only orthogonal matrices come out of the Cayley map. Orthogonalise it first (orthogonalize(W))."
        )
    xp = backend.get_array_module(w)
    eye = xp.eye(w.shape[0], dtype=w.dtype)
    smallest = float(xp.linalg.svd(eye + w, compute_uv=False).min())
    if smallest < tol:
        raise ValueError(
            "cayley_inverse: W has the eigenvalue -1 (it turns some plane by 180°, or reflects: "
            f"the smallest singular value of I + W is {smallest:.3g}), which no Cayley map reaches. "
            "Use ExpmOrthogonal or HouseholderOrthogonal for such a W."
        )
    return xp.linalg.solve(eye + w, eye - w) * 0.5


def exponential_map(S):
    """W = exp(S - Sᵀ): orthogonal with det W = +1 (Eq. 14 in docs/orthogonal.md).

    For A skew, exp(A)ᵀ exp(A) = exp(-A) exp(A) = I, and det exp(A) =
    e^{tr A} = e⁰ = 1. The gradient flows through ``matrix_exp`` (Eq. 16).
    """
    _check_square(S, "exponential_map")
    return ops.matrix_exp(skew(S))


def householder_product(V):
    """W = H₁ H₂ ⋯ H_k with Hᵢ = I - 2 vᵢvᵢᵀ/‖vᵢ‖², vᵢ the rows of V (k × n) (Eq. 17).

    Each Hᵢ reflects across the hyperplane orthogonal to vᵢ, so W is
    orthogonal with det W = (-1)ᵏ whatever V is. Multiplying k reflections
    one by one would make a graph of 7k nodes; the UT form of Eq. (17b)
    gives the same product in five ops:

        W = I - Vᵀ T⁻¹ V,    T = striu(VVᵀ) + ½ diag(VVᵀ)   (k × k, upper triangular).
    """
    shape = tuple(V.shape)
    if len(shape) != 2 or not 1 <= shape[0] <= shape[1]:
        raise ValueError(f"householder_product: V must be (k, n) with 1 <= k <= n reflection vectors as rows, got shape {shape}")
    data = V.data if isinstance(V, Tensor) else V
    if not bool(((data * data).sum(axis=1) > 0).all()):
        raise ValueError("householder_product: a row of V is zero, and a zero vector defines no reflection")
    xp = backend.get_array_module(data)
    k, n = shape
    # striu(G) + ½ diag(G) as one mask: 1 above the diagonal, ½ on it, 0 below.
    mask = xp.triu(xp.ones((k, k), dtype=data.dtype), 1) + 0.5 * xp.eye(k, dtype=data.dtype)
    T = ops.matmul(V, ops.transpose(V, 0, 1)) * mask  # (k, k)
    return ops.sub(xp.eye(n, dtype=data.dtype), ops.matmul(ops.transpose(V, 0, 1), ops.solve(T, V)))  # (n, n)


class OrthogonalParametrization(Module):
    """What the three parametrisations share: ``weight()`` builds W, forward is Y = XW."""

    def __init__(self, n):
        super().__init__()
        if not isinstance(n, int) or n < 1:
            raise ValueError(f"{type(self).__name__}: n must be a positive integer (W is n × n), got {n!r}")
        self.n = n

    def weight(self):
        """The orthogonal n × n matrix W, as a Tensor in the graph of the raw parameter."""
        raise NotImplementedError

    def forward(self, x):
        """Y = X W for X of shape (..., n), article 002's orthogonal alignment."""
        return ops.matmul(x, self.weight())

    def extra_repr(self):
        return f"n={self.n}"


class CayleyOrthogonal(OrthogonalParametrization):
    """W = cayley_map(S) (Eq. 11). S starts at 0, so W starts at I."""

    def __init__(self, n, dtype="float32"):
        super().__init__(n)
        self.S = Parameter(backend.xp.zeros((n, n), dtype=backend.dtype(dtype)))

    def weight(self):
        return cayley_map(self.S)

    @classmethod
    def from_matrix(cls, W):
        """A CayleyOrthogonal whose weight() is W (through ``cayley_inverse``), in W's dtype."""
        S = cayley_inverse(W)
        module = cls(S.shape[0], dtype=S.dtype)
        module.S.data = S
        return module


class ExpmOrthogonal(OrthogonalParametrization):
    """W = exponential_map(S) (Eq. 14). S starts at 0, so W starts at I."""

    def __init__(self, n, dtype="float32"):
        super().__init__(n)
        self.S = Parameter(backend.xp.zeros((n, n), dtype=backend.dtype(dtype)))

    def weight(self):
        return exponential_map(self.S)


class HouseholderOrthogonal(OrthogonalParametrization):
    """W = householder_product(V) with k reflections, V (k × n) (Eq. 17).

    det W = (-1)ᵏ for every V, so one k reaches one of the two halves of the
    orthogonal matrices: k = n covers all of those with det (-1)ⁿ, and
    k = n - 1 all of the others (Cartan–Dieudonné: every orthogonal n × n
    matrix is a product of at most n reflections). V starts N(0, 1); it
    cannot start at W = I when k is odd.
    """

    def __init__(self, n, k=None, dtype="float32"):
        super().__init__(n)
        k = n if k is None else k
        if not isinstance(k, int) or not 1 <= k <= n:
            raise ValueError(f"HouseholderOrthogonal: k must be an integer in [1, n={n}] (the number of reflections), got {k!r}")
        self.k = k
        self.V = Parameter(backend.randn((k, n), dtype=backend.dtype(dtype)))

    def weight(self):
        return householder_product(self.V)

    def extra_repr(self):
        return f"n={self.n}, k={self.k}"
