"""Elementwise arithmetic and matrix multiplication, with their VJPs.

Binary ops broadcast like numpy; their backward sums each gradient back to
its input's shape with ``unbroadcast`` (docs/autograd.md, Eq. B1). Either
operand may be a Python number or an array: a constant, which gets no gradient.
"""

import math

from minilora import backend
from minilora.autograd.function import Function, unbroadcast


def _shape(x):
    return getattr(x, "shape", ())


class Add(Function):
    """a + b; d/da = d/db = 1."""

    def forward(self, a, b):
        self.shapes = _shape(a), _shape(b)
        return a + b

    def backward(self, grad):
        sa, sb = self.shapes
        ga = unbroadcast(grad, sa) if self.needs_grad[0] else None
        gb = unbroadcast(grad, sb) if self.needs_grad[1] else None
        return ga, gb


class Sub(Function):
    """a - b; d/da = 1, d/db = -1."""

    def forward(self, a, b):
        self.shapes = _shape(a), _shape(b)
        return a - b

    def backward(self, grad):
        sa, sb = self.shapes
        ga = unbroadcast(grad, sa) if self.needs_grad[0] else None
        gb = unbroadcast(-grad, sb) if self.needs_grad[1] else None
        return ga, gb


class Mul(Function):
    """a * b; d/da = b, d/db = a."""

    def forward(self, a, b):
        # Each gradient needs the *other* operand; keep only what will be used.
        self.save_for_backward(a if self.needs_grad[1] else None, b if self.needs_grad[0] else None)
        self.shapes = _shape(a), _shape(b)
        return a * b

    def backward(self, grad):
        a, b = self.saved
        sa, sb = self.shapes
        ga = unbroadcast(grad * b, sa) if self.needs_grad[0] else None
        gb = unbroadcast(grad * a, sb) if self.needs_grad[1] else None
        return ga, gb


class Div(Function):
    """a / b; d/da = 1/b, d/db = -a/b²."""

    def forward(self, a, b):
        self.save_for_backward(a, b)
        return a / b

    def backward(self, grad):
        a, b = self.saved
        ga = unbroadcast(grad / b, _shape(a)) if self.needs_grad[0] else None
        gb = unbroadcast(-grad * a / (b * b), _shape(b)) if self.needs_grad[1] else None
        return ga, gb


class Neg(Function):
    """-a."""

    def forward(self, a):
        return -a

    def backward(self, grad):
        return -grad


class Pow(Function):
    """a ** b; d/da = b·a^(b-1), d/db = a^b·log(a) (needs a > 0)."""

    def forward(self, a, b):
        out = a**b
        self.save_for_backward(a, b, out)
        return out

    def backward(self, grad):
        a, b, out = self.saved
        ga = gb = None
        if self.needs_grad[0]:
            ga = unbroadcast(grad * b * a ** (b - 1), _shape(a))
        if self.needs_grad[1]:
            # A Python-number base keeps a Python log, so float32 stays float32.
            log_a = math.log(a) if isinstance(a, (int, float)) else backend.get_array_module(a).log(a)
            gb = unbroadcast(grad * out * log_a, _shape(b))
        return ga, gb


class MatMul(Function):
    """a @ b, batched and broadcasting like numpy.matmul (docs/autograd.md, Eq. M1-M3).

    For matrices, dL/da = G bᵀ and dL/db = aᵀ G. A 1-D operand is a row
    vector on the left or a column vector on the right; the product drops
    that axis, so backward first puts it back. Batch axes that broadcasting
    added are summed away by unbroadcast.
    """

    def forward(self, a, b):
        self.save_for_backward(a if self.needs_grad[1] else None, b if self.needs_grad[0] else None)
        self.a_shape, self.b_shape = a.shape, b.shape
        return a @ b

    def backward(self, grad):
        a, b = self.saved
        a_vec, b_vec = len(self.a_shape) == 1, len(self.b_shape) == 1
        g2 = grad[..., None] if b_vec else grad  # (..., k, 1)
        g2 = g2[..., None, :] if a_vec else g2  # (..., 1, m)
        ga = gb = None
        if self.needs_grad[0]:
            b2 = b[:, None] if b_vec else b  # (n, 1)
            a2_shape = (1,) + self.a_shape if a_vec else self.a_shape
            ga = unbroadcast(g2 @ b2.swapaxes(-1, -2), a2_shape).reshape(self.a_shape)
        if self.needs_grad[1]:
            a2 = a[None, :] if a_vec else a  # (1, n)
            b2_shape = self.b_shape + (1,) if b_vec else self.b_shape
            gb = unbroadcast(a2.swapaxes(-1, -2) @ g2, b2_shape).reshape(self.b_shape)
        return ga, gb


# ----------------------------------------------------------------------------
# The functional API (re-exported as minilora.nn.functional)


def add(a, b):
    return Add.apply(a, b)


def sub(a, b):
    return Sub.apply(a, b)


def mul(a, b):
    return Mul.apply(a, b)


def div(a, b):
    return Div.apply(a, b)


def neg(a):
    return Neg.apply(a)


def pow(a, b):
    return Pow.apply(a, b)


def matmul(a, b):
    """Matrix product of the last two axes, broadcasting the others."""
    sa, sb = _shape(a), _shape(b)
    if len(sa) == 0 or len(sb) == 0:
        raise ValueError(
            f"matmul: both operands need at least one dimension, got shapes {sa} and {sb}; "
            "use * to multiply by a scalar"
        )
    inner_b = sb[0] if len(sb) == 1 else sb[-2]
    if sa[-1] != inner_b:
        raise ValueError(
            f"matmul: shapes {sa} and {sb} do not fit: the last dimension of the first "
            f"({sa[-1]}) must equal the {'only' if len(sb) == 1 else 'second-to-last'} "
            f"dimension of the second ({inner_b})"
        )
    return MatMul.apply(a, b)

