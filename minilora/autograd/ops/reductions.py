"""Reductions over axes: sum, mean, max, var, logsumexp (and argmax, which has no gradient).

Every reduction takes PyTorch's ``dim``/``keepdim``, the names of the public
API, or numpy's ``axis``/``keepdims`` for the same thing. Its backward first puts the reduced axes back
as length 1 (``_keepdims_shape``) so the gradient broadcasts over them
(docs/autograd.md, Eq. R1-R4).
"""

from minilora import backend
from minilora.autograd.function import Function
from minilora.autograd.tensor import Tensor


def reduce_args(dim, keepdim, axis=None, keepdims=None):
    """(axis, keepdims) for the array code, from PyTorch's (dim, keepdim) or numpy's (axis, keepdims)."""
    if axis is not None:
        dim = axis
    if keepdims is not None:
        keepdim = keepdims
    if isinstance(dim, list):
        dim = tuple(dim)
    return dim, bool(keepdim)


def normalize_axes(axis, ndim):
    """``axis`` (None, an int or a tuple, maybe negative) as a tuple of axes in [0, ndim)."""
    if axis is None:
        return tuple(range(ndim))
    axes = axis if isinstance(axis, tuple) else (axis,)
    return tuple(a % ndim if ndim else 0 for a in axes)


def _keepdims_shape(shape, axis):
    """``shape`` with the reduced axes set to 1: where the gradient broadcasts from."""
    axes = normalize_axes(axis, len(shape))
    return tuple(1 if i in axes else n for i, n in enumerate(shape))


def _count(shape, axis):
    """How many elements each output of a reduction over ``axis`` combines."""
    n = 1
    for a in normalize_axes(axis, len(shape)):
        n *= shape[a]
    return n


class Sum(Function):
    """Σ over axes; every input element gets the output's gradient (Eq. R1)."""

    def forward(self, x, axis=None, keepdims=False):
        self.shape, self.axis = x.shape, axis
        return x.sum(axis=axis, keepdims=keepdims)

    def backward(self, grad):
        xp = backend.get_array_module(grad)
        return xp.broadcast_to(grad.reshape(_keepdims_shape(self.shape, self.axis)), self.shape)


class Mean(Function):
    """Σ / N over axes; every input element gets grad / N (Eq. R1)."""

    def forward(self, x, axis=None, keepdims=False):
        self.shape, self.axis = x.shape, axis
        return x.mean(axis=axis, keepdims=keepdims)

    def backward(self, grad):
        xp = backend.get_array_module(grad)
        g = grad.reshape(_keepdims_shape(self.shape, self.axis)) / _count(self.shape, self.axis)
        return xp.broadcast_to(g, self.shape)


class Max(Function):
    """Maximum over axes; the gradient goes to the maximal elements, split evenly among ties (Eq. R2)."""

    def forward(self, x, axis=None, keepdims=False):
        out = x.max(axis=axis, keepdims=keepdims)
        self.axis = axis
        self.save_for_backward(x, out)
        return out

    def backward(self, grad):
        x, out = self.saved
        kshape = _keepdims_shape(x.shape, self.axis)
        is_max = x == out.reshape(kshape)
        ties = is_max.sum(axis=self.axis, keepdims=True).astype(grad.dtype)  # an int count would upcast
        return is_max * (grad.reshape(kshape) / ties)


class Var(Function):
    """Σ (x - mean)² / (N - correction); d/dx = 2 (x - mean) / (N - correction) (Eq. R3)."""

    def forward(self, x, axis=None, keepdims=False, correction=1):
        self.axis = axis
        self.denominator = _count(x.shape, axis) - correction
        if self.denominator <= 0:
            raise ZeroDivisionError(
                f"var: {_count(x.shape, axis)} element(s) per reduction with correction={correction} "
                "leaves no degrees of freedom; use correction=0 or reduce over more elements"
            )
        centered = x - x.mean(axis=axis, keepdims=True)
        self.save_for_backward(centered)
        return (centered * centered).sum(axis=axis, keepdims=keepdims) / self.denominator

    def backward(self, grad):
        (centered,) = self.saved
        g = grad.reshape(_keepdims_shape(centered.shape, self.axis))
        return g * centered * (2.0 / self.denominator)


class LogSumExp(Function):
    """log Σ exp(x), shifted by the max so it never overflows; d/dx = softmax(x) (Eq. R4)."""

    def forward(self, x, axis=-1, keepdims=False):
        xp = backend.get_array_module(x)
        m = x.max(axis=axis, keepdims=True)
        m = xp.where(xp.isfinite(m), m, 0)  # a row of all -inf stays -inf, not nan
        out = xp.log(xp.exp(x - m).sum(axis=axis, keepdims=True)) + m
        self.axis = axis
        self.save_for_backward(x, out)
        return out if keepdims else out.squeeze(axis=axis)

    def backward(self, grad):
        x, out = self.saved
        xp = backend.get_array_module(x)
        return grad.reshape(out.shape) * xp.exp(x - out)


# ----------------------------------------------------------------------------
# The functional API


def sum(x, dim=None, keepdim=False, **numpy_names):
    axis, keepdims = reduce_args(dim, keepdim, **numpy_names)
    return Sum.apply(x, axis=axis, keepdims=keepdims)


def mean(x, dim=None, keepdim=False, **numpy_names):
    axis, keepdims = reduce_args(dim, keepdim, **numpy_names)
    return Mean.apply(x, axis=axis, keepdims=keepdims)


def max(x, dim=None, keepdim=False, **numpy_names):
    """The largest values along ``dim`` (values only, like ``torch.amax``)."""
    axis, keepdims = reduce_args(dim, keepdim, **numpy_names)
    return Max.apply(x, axis=axis, keepdims=keepdims)


def var(x, dim=None, keepdim=False, correction=1, **numpy_names):
    """Variance along ``dim``. Like ``torch.var`` the default divides by N - 1
    (Bessel's correction); ``correction=0`` gives numpy's population variance."""
    axis, keepdims = reduce_args(dim, keepdim, **numpy_names)
    return Var.apply(x, axis=axis, keepdims=keepdims, correction=correction)


def logsumexp(x, dim=-1, keepdim=False, **numpy_names):
    axis, keepdims = reduce_args(dim, keepdim, **numpy_names)
    return LogSumExp.apply(x, axis=axis, keepdims=keepdims)


def argmax(x, dim=None, keepdim=False, **numpy_names):
    """Indices of the maximal values (an integer tensor; not differentiable)."""
    axis, keepdims = reduce_args(dim, keepdim, **numpy_names)
    return Tensor._wrap(x.data.argmax(axis=axis, keepdims=keepdims))
