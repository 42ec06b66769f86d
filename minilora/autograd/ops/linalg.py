"""Linear-algebra primitives: solving a linear system and the matrix exponential.

Both are needed to build orthogonal matrices that gradient descent can move
(minilora.orthogonal): the Cayley map needs a solve, the exponential map
needs ``matrix_exp``. Each VJP sits next to its forward and is derived in
docs/orthogonal.md (Eq. 12 for solve, Eq. 15-16 for the exponential).
Both ops take stacks of matrices, (..., n, n), and broadcast the stack axes
like ``matmul`` does.
"""

import math

from minilora import backend
from minilora.autograd.function import Function, unbroadcast
from minilora.autograd.ops.shape import reshape

# Padé(13/13) coefficients b_0 ... b_13 of exp and the largest 1-norm for which
# the degree-13 approximant is accurate to float64 rounding (Higham, "The
# scaling and squaring method for the matrix exponential revisited", SIAM J.
# Matrix Anal. Appl. 26(4), 2005, Table 2.3 and Algorithm 2.3).
PADE13 = (
    64764752532480000.0, 32382376266240000.0, 7771770303897600.0, 1187353796428800.0,
    129060195264000.0, 10559470521600.0, 670442572800.0, 33522128640.0,
    1323241920.0, 40840800.0, 960960.0, 16380.0, 182.0, 1.0,
)  # fmt: skip
THETA13 = 5.371920351148152


class Solve(Function):
    """X = A⁻¹ B for A (..., n, n) and B (..., n, k) (Eq. 12 in docs/orthogonal.md).

    From dX = A⁻¹ (dB - dA X):  B̄ = A⁻ᵀ X̄  and  Ā = -B̄ Xᵀ.
    The backward is one more solve, with Aᵀ, never an explicit inverse.
    """

    def forward(self, a, b):
        xp = backend.get_array_module(a, b)
        self.shapes = a.shape, b.shape
        if a.shape[:-2] != b.shape[:-2]:  # numpy would broadcast the stacks itself; cupy needs them equal
            batch = _broadcast_batch(a.shape[:-2], b.shape[:-2])
            a, b = xp.broadcast_to(a, batch + a.shape[-2:]), xp.broadcast_to(b, batch + b.shape[-2:])
        try:
            x = xp.linalg.solve(a, b)
        except ValueError as err:  # numpy's LinAlgError is a ValueError; the shapes were checked already
            raise ValueError(
                f"the matrix A is singular ({err}), so A X = B has no unique solution; "
                "check how A was built (a Cayley map needs I + A invertible, which holds for every skew-symmetric A)"
            ) from err
        self.save_for_backward(a, x if self.needs_grad[0] else None)
        return x

    def backward(self, grad):
        a, x = self.saved
        xp = backend.get_array_module(grad)
        sa, sb = self.shapes
        gb = xp.linalg.solve(a.swapaxes(-1, -2), grad)  # A⁻ᵀ X̄, (..., n, k)
        ga = unbroadcast(-(gb @ x.swapaxes(-1, -2)), sa) if self.needs_grad[0] else None
        return ga, (unbroadcast(gb, sb) if self.needs_grad[1] else None)


class MatrixExp(Function):
    """E = exp(A) = Σ_k Aᵏ/k! for A (..., n, n) (Eq. 14 in docs/orthogonal.md).

    Backward uses the block identity of Eq. (16): for L = f(exp(A)),
    Ā is the upper-right n×n block of exp([[Aᵀ, Ē], [0, Aᵀ]]).
    """

    def forward(self, a):
        self.save_for_backward(a)
        return expm(a)

    def backward(self, grad):
        (a,) = self.saved
        xp = backend.get_array_module(grad)
        n = a.shape[-1]
        # The answer is linear in Ē, so scale Ē to unit size first: then the
        # block's norm, and so the number of squarings, is set by A alone.
        size = float(xp.abs(grad).max())
        if size == 0.0:
            return xp.zeros_like(grad)
        at = a.swapaxes(-1, -2)  # (..., n, n): Aᵀ
        top = xp.concatenate([at, grad / size], axis=-1)  # (..., n, 2n): [Aᵀ, Ē]
        bottom = xp.concatenate([xp.zeros_like(at), at], axis=-1)  # (..., n, 2n): [0, Aᵀ]
        block = expm(xp.concatenate([top, bottom], axis=-2))  # (..., 2n, 2n)
        return block[..., :n, n:] * size


def expm(a):
    """exp(A) on arrays by scaling and squaring with a Padé(13/13) approximant (Eq. 15).

    exp(A) = (exp(A / 2ˢ))^(2ˢ): scale A until its 1-norm is at most θ₁₃,
    where r₁₃(A) = (V - U)⁻¹ (V + U) matches exp to float64 rounding, then
    square the result s times. U holds the odd powers of A, V the even ones.
    One s serves the whole stack, chosen from its largest 1-norm.
    """
    xp = backend.get_array_module(a)
    norm = float(xp.abs(a).sum(axis=-2).max()) if a.size else 0.0  # 1-norm: largest column sum
    s = max(0, math.ceil(math.log2(norm / THETA13))) if norm > THETA13 else 0
    a = a * (2.0**-s)
    b = PADE13
    ident = xp.broadcast_to(xp.eye(a.shape[-1], dtype=a.dtype), a.shape)
    a2 = a @ a
    a4 = a2 @ a2
    a6 = a4 @ a2
    u = a @ (a6 @ (b[13] * a6 + b[11] * a4 + b[9] * a2) + b[7] * a6 + b[5] * a4 + b[3] * a2 + b[1] * ident)
    v = a6 @ (b[12] * a6 + b[10] * a4 + b[8] * a2) + b[6] * a6 + b[4] * a4 + b[2] * a2 + b[0] * ident
    e = xp.linalg.solve(v - u, v + u)
    for _ in range(s):
        e = e @ e
    return e


def _broadcast_batch(s1, s2):
    """The broadcast shape of two stacks' batch axes, as numpy would form it."""
    n = max(len(s1), len(s2))
    s1, s2 = (1,) * (n - len(s1)) + tuple(s1), (1,) * (n - len(s2)) + tuple(s2)
    if any(x != y and 1 not in (x, y) for x, y in zip(s1, s2)):
        raise ValueError(f"the stack axes {s1} and {s2} do not broadcast")
    return tuple(max(x, y) for x, y in zip(s1, s2))


# ----------------------------------------------------------------------------
# The functional API (re-exported as minilora.nn.functional)


def _square_matrices(name, shape):
    if len(shape) < 2 or shape[-1] != shape[-2]:
        raise ValueError(
            f"{name}: needs a square matrix or a stack of them, shape (..., n, n), got {tuple(shape)}"
        )


def solve(a, b):
    """X with A X = B (``torch.linalg.solve``): A is (..., n, n), B is (..., n, k) or (n,)."""
    sa, sb = getattr(a, "shape", ()), getattr(b, "shape", ())
    _square_matrices("solve", sa)
    vector = len(sb) == 1
    if len(sb) == 0 or sb[-2 if not vector else 0] != sa[-1]:
        raise ValueError(
            f"solve: B of shape {tuple(sb)} does not fit A of shape {tuple(sa)}: B needs {sa[-1]} rows, "
            "as (n,) or (..., n, k)"
        )
    if vector:
        if len(sa) != 2:
            raise ValueError("solve: a vector right-hand side needs a single matrix A; for a stack pass B as (..., n, 1)")
        return Solve.apply(a, reshape(b, sb + (1,))).reshape(sb)  # b as an (n, 1) column
    return Solve.apply(a, b)


def matrix_exp(a):
    """exp(A) of a square matrix or a stack of them (``torch.linalg.matrix_exp``)."""
    _square_matrices("matrix_exp", getattr(a, "shape", ()))
    return MatrixExp.apply(a)
