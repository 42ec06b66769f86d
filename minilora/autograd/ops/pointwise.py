"""Elementwise functions: exp, log, sqrt, tanh, sigmoid, relu, gelu (two forms), clamp, where.

Each backward multiplies the incoming gradient by the function's derivative
at the same place (docs/autograd.md, Eq. P1). Where the derivative is most
cheaply written in terms of the output (exp, tanh, sigmoid, sqrt), the output
is what gets saved.
"""

import math

from minilora import backend
from minilora.autograd.function import Function, unbroadcast
from minilora.autograd.tensor import Tensor


class Exp(Function):
    """exp(x); d/dx = exp(x), the output itself."""

    def forward(self, x):
        out = backend.get_array_module(x).exp(x)
        self.save_for_backward(out)
        return out

    def backward(self, grad):
        (out,) = self.saved
        return grad * out


class Log(Function):
    """log(x); d/dx = 1/x."""

    def forward(self, x):
        self.save_for_backward(x)
        return backend.get_array_module(x).log(x)

    def backward(self, grad):
        (x,) = self.saved
        return grad / x


class Sqrt(Function):
    """√x; d/dx = 1 / (2√x)."""

    def forward(self, x):
        out = backend.get_array_module(x).sqrt(x)
        self.save_for_backward(out)
        return out

    def backward(self, grad):
        (out,) = self.saved
        return grad / (2.0 * out)


class Tanh(Function):
    """tanh(x); d/dx = 1 - tanh²(x). The library's tanh, never one built from exp (which overflows)."""

    def forward(self, x):
        out = backend.get_array_module(x).tanh(x)
        self.save_for_backward(out)
        return out

    def backward(self, grad):
        (out,) = self.saved
        return grad * (1.0 - out * out)


class Sigmoid(Function):
    """σ(x) = 1 / (1 + e^-x), computed as (1 + tanh(x/2)) / 2, which is exact and
    cannot overflow for any x; d/dx = σ(x)(1 - σ(x))."""

    def forward(self, x):
        out = 0.5 * (1.0 + backend.get_array_module(x).tanh(0.5 * x))
        self.save_for_backward(out)
        return out

    def backward(self, grad):
        (out,) = self.saved
        return grad * out * (1.0 - out)


class ReLU(Function):
    """max(x, 0); d/dx = 1 where x > 0, else 0 (0 at x = 0, as in PyTorch)."""

    def forward(self, x):
        self.save_for_backward(x > 0)
        return backend.get_array_module(x).maximum(x, 0)

    def backward(self, grad):
        (positive,) = self.saved
        return grad * positive


_GELU_C = math.sqrt(2.0 / math.pi)  # a Python float, so float32 inputs stay float32


class GELU(Function):
    """GELU, tanh form: ½x(1 + tanh(u)) with u = √(2/π)(x + 0.044715x³) (Eq. P2).

    d/dx = ½(1 + tanh u) + ½x(1 - tanh²u)·√(2/π)(1 + 3·0.044715x²).
    """

    # The MLP's (B, T, 4C) activation is the largest array of a step, so both
    # passes work in place on one or two buffers: each `*=` is a pass over memory
    # that the plain expression would spend on a new temporary as well.
    def forward(self, x):
        u = x * x
        u *= 0.044715 * _GELU_C
        u += _GELU_C
        u *= x  # u = √(2/π)(x + 0.044715x³)
        xp = backend.get_array_module(x)
        t = xp.tanh(u, out=u) if u.ndim else xp.tanh(u)  # a 0-d product is a scalar: no buffer
        self.save_for_backward(x, t)
        y = t + 1.0
        y *= x
        y *= 0.5
        return y

    def backward(self, grad):
        x, t = self.saved
        d = x * x
        d *= 3.0 * 0.044715 * _GELU_C
        d += _GELU_C
        d *= x  # x·du/dx
        d *= 1.0 - t * t
        d += t
        d += 1.0
        d *= 0.5  # ½(1 + tanh u) + ½x(1 - tanh²u)·du/dx
        d *= grad
        return d


_INV_SQRT2 = 1.0 / math.sqrt(2.0)  # Python floats, so float32 inputs stay float32
_INV_SQRT_2PI = 1.0 / math.sqrt(2.0 * math.pi)


class GELUErf(Function):
    """GELU exactly: x·Φ(x) with Φ(x) = ½(1 + erf(x/√2)), the form BERT uses (Eq. P3).

    d/dx = Φ(x) + x·φ(x), with φ(x) = exp(-x²/2)/√(2π) the normal density.
    """

    def forward(self, x):
        cdf = backend.erf(x * _INV_SQRT2)
        cdf += 1.0
        cdf *= 0.5  # Φ(x)
        self.save_for_backward(x, cdf)
        return x * cdf

    def backward(self, grad):
        x, cdf = self.saved
        density = backend.get_array_module(x).exp(-0.5 * x * x)
        density *= _INV_SQRT_2PI  # φ(x)
        density *= x
        density += cdf  # Φ(x) + x·φ(x)
        density *= grad
        return density


class Clamp(Function):
    """x limited to [min, max]; the gradient passes where x is inside the range."""

    def forward(self, x, min=None, max=None):
        inside = True
        if min is not None:
            inside = inside & (x >= min)
        if max is not None:
            inside = inside & (x <= max)
        self.save_for_backward(inside)
        return x.clip(min, max)

    def backward(self, grad):
        (inside,) = self.saved
        return grad * inside


class Where(Function):
    """``a`` where ``condition`` holds, else ``b`` (all three broadcast).

    Each branch gets the gradient at the places it was chosen, zero elsewhere.
    """

    def forward(self, condition, a, b):
        xp = backend.get_array_module(condition, a, b)
        self.save_for_backward(condition)
        self.shapes = getattr(a, "shape", ()), getattr(b, "shape", ())
        return xp.where(condition, a, b)

    def backward(self, grad):
        (condition,) = self.saved
        sa, sb = self.shapes
        ga = unbroadcast(grad * condition, sa) if self.needs_grad[1] else None
        gb = unbroadcast(grad * ~condition, sb) if self.needs_grad[2] else None
        return None, ga, gb


# ----------------------------------------------------------------------------
# The functional API


def exp(x):
    return Exp.apply(x)


def log(x):
    return Log.apply(x)


def sqrt(x):
    return Sqrt.apply(x)


def tanh(x):
    return Tanh.apply(x)


def sigmoid(x):
    return Sigmoid.apply(x)


def relu(x):
    return ReLU.apply(x)


def gelu(x, approximate="tanh"):
    """GELU: ``approximate="tanh"`` is GPT-2's tanh form (Eq. P2), ``"none"`` the exact
    x·Φ(x) with erf that BERT uses (Eq. P3). PyTorch's names; its default is "none"."""
    if approximate == "tanh":
        return GELU.apply(x)
    if approximate == "none":
        return GELUErf.apply(x)
    raise ValueError(f"gelu: approximate must be 'tanh' or 'none', got {approximate!r}")


def clamp(x, min=None, max=None):
    if min is None and max is None:
        raise ValueError("clamp: give min, max or both")
    return Clamp.apply(x, min=min, max=max)


def _condition(mask):
    mask = mask.data if isinstance(mask, Tensor) else backend.asarray(mask)
    if mask.dtype != bool:
        raise TypeError(f"the condition/mask must be boolean, got {mask.dtype}; compare first, e.g. x > 0")
    return mask


def where(condition, a, b):
    """Elementwise ``a if condition else b``; ``condition`` is a boolean array or tensor."""
    return Where.apply(_condition(condition), a, b)


def masked_fill(x, mask, value):
    """``x`` with ``value`` wherever ``mask`` is True (e.g. -inf above a causal diagonal)."""
    return Where.apply(_condition(mask), value, x)
