"""Orthogonal Procrustes: the rotation that best maps one set of points onto another.

Given matched rows X, Y (N × d), find the orthogonal W minimising ‖XW - Y‖_F.
Since ‖XW‖_F = ‖X‖_F for every orthogonal W, that is the same as maximising
tr(Wᵀ XᵀY), and with the SVD XᵀY = U Σ Vᵀ the answer is W = U Vᵀ
(Schönemann, 1966; Eq. 21 in docs/orthogonal.md). This is article 002's
"learnable orthogonal alignment" Y = XW solved in closed form, the yardstick
for the parametrisations that learn W by gradient descent.
"""

from minilora import backend
from minilora.autograd.tensor import Tensor
from minilora.matrices import as_matrix
from minilora.orthogonal.checks import like


def procrustes(X, Y, special=False):
    """The orthogonal W (d × d) minimising ‖XW - Y‖_F, W = U Vᵀ from XᵀY = U Σ Vᵀ (Eq. 21).

    With ``special=True`` W is restricted to rotations (det W = +1, the
    Kabsch–Umeyama solution, Eq. 22): if det(UVᵀ) = -1, the singular direction
    with the smallest σ is flipped, W = U diag(1, ..., 1, -1) Vᵀ, which costs
    the least. That is the best a Cayley or exponential parametrisation can reach.
    """
    x, y = as_matrix(X, "procrustes"), as_matrix(Y, "procrustes")
    if x.shape != y.shape:
        raise ValueError(
            f"procrustes: X and Y must have the same shape (N points × d coordinates, row i of X "
            f"matched with row i of Y), got {tuple(x.shape)} and {tuple(y.shape)}"
        )
    xp = backend.get_array_module(x)
    u, _, vt = xp.linalg.svd(x.T @ y)  # (d, d) each; singular values in decreasing order
    if special:
        flip = xp.sign(xp.linalg.det(u @ vt))  # +1 or -1, as an array so nothing is read back
        u = xp.concatenate([u[:, :-1], u[:, -1:] * flip], axis=1)  # (d, d): last column times det
    return like(u @ vt, X if isinstance(X, Tensor) else Y)


def procrustes_loss(X, Y, W):
    """‖XW - Y‖²_F as a Python float, for comparing a learned W with the closed form."""
    x, y, w = (as_matrix(a, "procrustes_loss", backend.float64) for a in (X, Y, W))
    residual = x @ w - y
    return float((residual * residual).sum())
