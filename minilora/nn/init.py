"""Weight initialisations, drawn from minilora's one seeded generator."""

from minilora import backend


def normal_(p, std=1.0):
    """Refill a parameter in place with N(0, std²) samples (keeps its dtype)."""
    p.data = backend.randn(p.shape, dtype=p.dtype, like=p.data) * std
    return p


def zeros_(p):
    p.data = backend.xp.zeros(p.shape, dtype=p.dtype)
    return p


def orthonormal_columns(a):
    """Q from the QR factorisation of a tall array ``a`` (n × k, n ≥ k), signs fixed.

    QR is unique only up to the sign of each column; multiplying column j by
    the sign of R[j, j] makes R's diagonal positive and the result unique,
    so the same ``a`` always gives the same Q. QᵀQ = I.
    """
    xp = backend.get_array_module(a)
    q, r = xp.linalg.qr(a)
    signs = xp.sign(xp.diagonal(r))
    signs = xp.where(signs == 0, 1, signs)
    return q * signs
