"""Ops that move values around without changing them: reshape, permute, indexing,
concat, stack, split and dtype casts.

Their VJPs move the gradient back where each value came from
(docs/autograd.md, Eq. S1-S4). Indexing is the one with a twist: an index
may pick the same element twice, so its backward must *add* (scatter-add).
"""

import builtins

from minilora import backend
from minilora.autograd.function import Function
from minilora.autograd.ops.reductions import reduce_args
from minilora.autograd.tensor import Tensor


class Reshape(Function):
    """Same values, new shape; the gradient is reshaped back (Eq. S1)."""

    def forward(self, x, shape):
        self.in_shape = x.shape
        return x.reshape(shape)

    def backward(self, grad):
        return grad.reshape(self.in_shape)


class Permute(Function):
    """Axes reordered by ``axes``; the gradient goes through the inverse order (Eq. S2)."""

    def forward(self, x, axes):
        self.axes = axes
        return x.transpose(axes)

    def backward(self, grad):
        inverse = sorted(range(len(self.axes)), key=self.axes.__getitem__)
        return grad.transpose(inverse)


class GetItem(Function):
    """x[key] for slices, integers, integer arrays and boolean masks (Eq. S3).

    The gradient of x is zero except at the picked places, which receive the
    output's gradient. With integer arrays a place can be picked twice and
    must receive both gradients, so that case scatter-adds.
    """

    def forward(self, x, key):
        self.shape, self.dtype, self.key = x.shape, x.dtype, key
        return x[key]

    def backward(self, grad):
        xp = backend.get_array_module(grad)
        gx = xp.zeros(self.shape, dtype=self.dtype)
        if _has_integer_array(self.key):
            backend.scatter_add(gx, self.key, grad)
        else:
            gx[self.key] = grad  # slices and masks never pick a place twice
        return gx


class Concat(Function):
    """Tensors joined along ``axis``; the gradient is cut back into their pieces (Eq. S4)."""

    def forward(self, *arrays, axis=0):
        xp = backend.get_array_module(*arrays)
        self.axis = axis
        self.cuts = list(_cumsum([a.shape[axis] for a in arrays[:-1]]))
        return xp.concatenate(arrays, axis=axis)

    def backward(self, grad):
        xp = backend.get_array_module(grad)
        pieces = xp.split(grad, self.cuts, axis=self.axis)
        return tuple(p if needed else None for p, needed in zip(pieces, self.needs_grad))


class Stack(Function):
    """Tensors of one shape stacked along a new ``axis``; each gets its slice of the gradient."""

    def forward(self, *arrays, axis=0):
        xp = backend.get_array_module(*arrays)
        self.axis = axis
        return xp.stack(arrays, axis=axis)

    def backward(self, grad):
        xp = backend.get_array_module(grad)
        slices = xp.moveaxis(grad, self.axis, 0)  # slices[i] is input i's gradient
        return tuple(s if needed else None for s, needed in zip(slices, self.needs_grad))


class Cast(Function):
    """The same values in another floating dtype; the gradient is cast back."""

    def forward(self, x, dtype):
        self.in_dtype = x.dtype
        return x.astype(dtype)

    def backward(self, grad):
        return grad.astype(self.in_dtype)


def _cumsum(sizes):
    total = 0
    for n in sizes:
        total += n
        yield total


def _has_integer_array(key):
    parts = key if isinstance(key, tuple) else (key,)
    return builtins.any(backend.is_array(k) and backend.is_integer(k.dtype) for k in parts)


def _index_key(key):
    """Turn Tensors and lists inside an index into arrays numpy/cupy understand."""
    if isinstance(key, tuple):
        return tuple(_index_key(k) for k in key)
    if isinstance(key, Tensor):
        return key.data
    if isinstance(key, list):
        return backend.asarray(key)
    return key


# ----------------------------------------------------------------------------
# The functional API


def reshape(x, *shape):
    """``reshape(x, 2, 3)`` or ``reshape(x, (2, 3))``; one dimension may be -1."""
    if len(shape) == 1 and isinstance(shape[0], (tuple, list)):
        shape = shape[0]
    return Reshape.apply(x, shape=tuple(shape))


def permute(x, *axes):
    """Reorder all axes: ``permute(x, 0, 2, 1, 3)`` (or with a tuple)."""
    if len(axes) == 1 and isinstance(axes[0], (tuple, list)):
        axes = axes[0]
    axes = tuple(a % x.ndim for a in axes)
    if sorted(axes) != list(range(x.ndim)):
        raise ValueError(f"permute: {axes} is not an ordering of the {x.ndim} axes of shape {x.shape}")
    return Permute.apply(x, axes=axes)


def transpose(x, dim0=-2, dim1=-1):
    """Swap two axes (PyTorch's ``transpose``); by default the last two."""
    axes = list(range(x.ndim))
    axes[dim0], axes[dim1] = axes[dim1], axes[dim0]
    return Permute.apply(x, axes=tuple(axes))


def getitem(x, key):
    return GetItem.apply(x, key=_index_key(key))


def unsqueeze(x, dim):
    """A new axis of length 1 at position ``dim``."""
    axis = dim % (x.ndim + 1)
    return reshape(x, x.shape[:axis] + (1,) + x.shape[axis:])


def squeeze(x, dim=None):
    """Drop axes of length 1 (all of them, or only ``dim``)."""
    if dim is None:
        return reshape(x, tuple(n for n in x.shape if n != 1))
    axis = dim % x.ndim
    if x.shape[axis] != 1:
        raise ValueError(f"squeeze: axis {axis} of shape {x.shape} has length {x.shape[axis]}, not 1")
    return reshape(x, x.shape[:axis] + x.shape[axis + 1 :])


def concat(tensors, dim=0, **numpy_names):
    axis, _ = reduce_args(dim, False, **numpy_names)
    return Concat.apply(*tensors, axis=axis)


cat = concat  # PyTorch's name


def stack(tensors, dim=0, **numpy_names):
    axis, _ = reduce_args(dim, False, **numpy_names)
    return Stack.apply(*tensors, axis=axis)


def split(x, split_size_or_sections, dim=0, **numpy_names):
    """Cut ``x`` along ``dim`` into pieces, as ``torch.split`` does.

    An int gives pieces of that size (the last may be smaller); a list gives
    the size of each piece. The pieces are slices of x, so their gradients
    flow back through GetItem.
    """
    axis, _ = reduce_args(dim, False, **numpy_names)
    length = x.shape[axis]
    if isinstance(split_size_or_sections, int):
        size = split_size_or_sections
        sizes = [builtins.min(size, length - start) for start in range(0, length, size)]
    else:
        sizes = list(split_size_or_sections)
        if builtins.sum(sizes) != length:
            raise ValueError(f"split: sizes {sizes} add up to {builtins.sum(sizes)}, not to {length}")
    pieces, start = [], 0
    for n in sizes:
        key = (slice(None),) * (axis % x.ndim) + (slice(start, start + n),)
        pieces.append(getitem(x, key))
        start += n
    return pieces


def astype(x, dtype):
    """``x`` in another dtype; differentiable between floating dtypes."""
    dtype = backend.dtype(dtype)
    if isinstance(x, Tensor) and x.requires_grad and not backend.is_floating(dtype):
        return Tensor._wrap(x.data.astype(dtype))  # an integer copy carries no gradient
    return Cast.apply(x, dtype=dtype)
