"""``Tensor``: an array, plus what reverse-mode differentiation needs to know about it.

A tensor made by an op remembers the op (``_ctx``, a ``Function`` node); the
op remembers its inputs. That chain is the graph that ``backward()`` walks.
Tensors the user makes directly are *leaves*: their gradient is kept in
``.grad`` (an array of the tensor's shape), where optimizers read it.

Operators and methods (``a + b``, ``a @ b``, ``x.sum()``, ``x.softmax()``)
are thin calls into the primitive ops in ``minilora.autograd.ops``.
"""

from minilora import backend
from minilora.autograd import engine


class Tensor:
    """An n-dimensional array that can record the ops applied to it.

    ``Tensor(data, requires_grad=False, dtype=None)``: a floating, integer or
    boolean array keeps its dtype (and shares memory with ``data``); Python
    numbers and lists become float32 unless ``dtype`` says otherwise. Only
    floating tensors can require gradients.
    """

    __slots__ = ("data", "grad", "requires_grad", "_ctx", "__weakref__")
    # Make numpy hand ``ndarray * Tensor`` to Tensor.__rmul__ instead of
    # looping over the tensor as an object array.
    __array_ufunc__ = None

    def __init__(self, data, requires_grad=False, dtype=None):
        if isinstance(data, Tensor):
            data = data.data
        if dtype is None and not hasattr(data, "dtype"):
            dtype = backend.float32  # Python numbers and (nested) lists
        self.data = backend.asarray(data, dtype=dtype)
        self.grad = None
        self._ctx = None
        self.requires_grad = False
        self.requires_grad_(requires_grad)

    @classmethod
    def _wrap(cls, array, ctx=None):
        """A tensor around an op's output, skipping __init__'s checks (hot path)."""
        t = object.__new__(Tensor)
        t.data = array
        t.grad = None
        t.requires_grad = ctx is not None
        t._ctx = ctx
        return t

    # -- what the tensor is ----------------------------------------------------
    shape = property(lambda self: self.data.shape)
    dtype = property(lambda self: self.data.dtype)
    device = property(lambda self: backend.device_of(self.data), doc='"cpu", "gpu" or "fake".')
    ndim = property(lambda self: self.data.ndim)
    size = property(lambda self: self.data.size)
    is_leaf = property(lambda self: self._ctx is None, doc="Made by the user, not by an op.")
    grad_fn = property(lambda self: self._ctx, doc="The op that made this tensor (None for leaves).")

    def numel(self):
        return self.data.size

    def __bool__(self):
        """Truth of a one-element tensor; for more elements it is ambiguous, as in numpy."""
        if self.data.size != 1:
            raise ValueError(
                f"the truth value of a tensor with {self.data.size} elements is ambiguous; "
                "use (a == b).all().item() or .any().item()"
            )
        return bool(self.data.reshape(()))

    def all(self):
        """True where every element is non-zero (a boolean tensor; not differentiable)."""
        return Tensor._wrap(self.data.all())

    def any(self):
        return Tensor._wrap(self.data.any())

    def __len__(self):
        if self.data.ndim == 0:
            raise TypeError("len() of a 0-d tensor")
        return self.data.shape[0]

    def __repr__(self):
        body = repr(backend.to_numpy(self.data))
        body = body[body.index("(") + 1 : body.rindex(")")] if body.startswith("array") else body
        extras = ""
        if self._ctx is not None:
            extras = f", grad_fn={self._ctx.name}"
        elif self.requires_grad:
            extras = ", requires_grad=True"
        return f"Tensor({body}{extras})"

    # Tensors are hashed by identity: == is elementwise, as in numpy and PyTorch.
    __hash__ = object.__hash__

    # -- gradients -------------------------------------------------------------
    def requires_grad_(self, requires_grad=True):
        """Set whether gradients flow into this tensor (in place; returns self)."""
        if requires_grad and not backend.is_floating(self.data.dtype):
            raise TypeError(
                f"only floating-point tensors can require gradients, but this one is "
                f"{self.data.dtype}: a derivative needs a continuous input. Make it floating "
                "first, e.g. Tensor(x, dtype='float32', requires_grad=True)."
            )
        self.requires_grad = bool(requires_grad)
        return self

    def retain_grad(self):
        """Also keep ``.grad`` for this non-leaf tensor after backward()."""
        if self._ctx is not None:  # leaves keep theirs anyway
            self._ctx.retained = self
        return self

    def backward(self, grad=None, retain_graph=False):
        """Compute the gradient of this tensor with respect to every leaf below it.

        ``grad`` is dL/d(self); it may be omitted only when self has a single
        element (a loss), where it is 1. Gradients add into each leaf's
        ``.grad``. The graph's saved arrays are freed afterwards unless
        ``retain_graph=True``.
        """
        if not self.requires_grad:
            raise RuntimeError(
                "backward() on a tensor that does not require grad: no input of the ops "
                "that made it has requires_grad=True (or it was computed under no_grad())."
            )
        if grad is None:
            if self.data.size != 1:
                raise RuntimeError(
                    f"backward() without a gradient needs a single-element tensor, but this "
                    f"one has shape {self.shape}. Reduce it to a scalar first (e.g. "
                    "y.sum().backward()) or pass grad=, an array of the tensor's shape."
                )
            grad = backend.get_array_module(self.data).ones_like(self.data)
        else:
            grad = grad.data if isinstance(grad, Tensor) else backend.asarray(grad, self.dtype)
            if grad.shape != self.shape:
                raise ValueError(
                    f"backward(grad): grad has shape {grad.shape}, but the tensor has shape "
                    f"{self.shape}; they must match."
                )
        engine.backward(self, grad, retain_graph=retain_graph)

    def detach(self):
        """A new leaf sharing this tensor's data, cut off from the graph."""
        return Tensor._wrap(self.data)

    def to(self, device):
        """This tensor on ``device`` ("cpu", "gpu"/"cuda", or "fake" for tests).

        Returns self if it is there already, else a copy: a new leaf with the
        same ``requires_grad``. The copy is not recorded in the graph, so move
        leaves (data, parameters: ``Module.to``) rather than intermediate results.
        """
        data = backend.to_device(self.data, device)
        if data is self.data:
            return self
        return Tensor._wrap(data).requires_grad_(self.requires_grad)

    # -- leaving the graph -----------------------------------------------------
    def item(self):
        """The value of a single-element tensor as a Python number."""
        if self.data.size != 1:
            raise ValueError(
                f"item() needs a tensor with one element, but this one has shape {self.shape}"
            )
        return self.data.reshape(()).item()

    def numpy(self):
        """The values as a host numpy array (shared memory on the CPU backend)."""
        return backend.to_numpy(self.data)

    def tolist(self):
        return backend.to_numpy(self.data).tolist()

    # -- dtype -----------------------------------------------------------------
    def astype(self, dtype):
        return ops.astype(self, dtype)

    def float(self):
        return ops.astype(self, "float32")

    def double(self):
        return ops.astype(self, "float64")

    # -- arithmetic --------------------------------------------------------------
    def __add__(self, other):
        return ops.add(self, other)

    def __radd__(self, other):
        return ops.add(other, self)

    def __sub__(self, other):
        return ops.sub(self, other)

    def __rsub__(self, other):
        return ops.sub(other, self)

    def __mul__(self, other):
        return ops.mul(self, other)

    def __rmul__(self, other):
        return ops.mul(other, self)

    def __truediv__(self, other):
        return ops.div(self, other)

    def __rtruediv__(self, other):
        return ops.div(other, self)

    def __pow__(self, exponent):
        return ops.pow(self, exponent)

    def __rpow__(self, base):
        return ops.pow(base, self)

    def __matmul__(self, other):
        return ops.matmul(self, other)

    def __rmatmul__(self, other):
        return ops.matmul(other, self)

    def __neg__(self):
        return ops.neg(self)

    def __getitem__(self, key):
        return ops.getitem(self, key)

    # Comparisons give boolean tensors; they are not differentiable.
    def __lt__(self, other):
        return Tensor._wrap(self.data < _data(other))

    def __le__(self, other):
        return Tensor._wrap(self.data <= _data(other))

    def __gt__(self, other):
        return Tensor._wrap(self.data > _data(other))

    def __ge__(self, other):
        return Tensor._wrap(self.data >= _data(other))

    def __eq__(self, other):
        return Tensor._wrap(self.data == _data(other))

    def __ne__(self, other):
        return Tensor._wrap(self.data != _data(other))

    # -- methods named as in PyTorch ---------------------------------------------
    def sum(self, dim=None, keepdim=False, **numpy_names):
        return ops.sum(self, dim, keepdim, **numpy_names)

    def mean(self, dim=None, keepdim=False, **numpy_names):
        return ops.mean(self, dim, keepdim, **numpy_names)

    def max(self, dim=None, keepdim=False, **numpy_names):
        return ops.max(self, dim, keepdim, **numpy_names)

    def var(self, dim=None, keepdim=False, correction=1, **numpy_names):
        return ops.var(self, dim, keepdim, correction, **numpy_names)

    def logsumexp(self, dim=-1, keepdim=False, **numpy_names):
        return ops.logsumexp(self, dim, keepdim, **numpy_names)

    def argmax(self, dim=None, keepdim=False, **numpy_names):
        return ops.argmax(self, dim, keepdim, **numpy_names)

    def reshape(self, *shape):
        return ops.reshape(self, *shape)

    view = reshape

    def flatten(self):
        return ops.reshape(self, -1)

    def unsqueeze(self, dim):
        return ops.unsqueeze(self, dim)

    def squeeze(self, dim=None):
        return ops.squeeze(self, dim)

    def permute(self, *axes):
        return ops.permute(self, *axes)

    def transpose(self, dim0=-2, dim1=-1):
        return ops.transpose(self, dim0, dim1)

    @property
    def T(self):
        """All axes reversed (the matrix transpose for a 2-D tensor)."""
        return ops.permute(self, *reversed(range(self.ndim)))

    def split(self, split_size_or_sections, dim=0, **numpy_names):
        return ops.split(self, split_size_or_sections, dim, **numpy_names)

    def exp(self):
        return ops.exp(self)

    def log(self):
        return ops.log(self)

    def sqrt(self):
        return ops.sqrt(self)

    def tanh(self):
        return ops.tanh(self)

    def sigmoid(self):
        return ops.sigmoid(self)

    def relu(self):
        return ops.relu(self)

    def softmax(self, dim=-1, **numpy_names):
        return ops.softmax(self, dim, **numpy_names)

    def log_softmax(self, dim=-1, **numpy_names):
        return ops.log_softmax(self, dim, **numpy_names)

    def clamp(self, min=None, max=None):
        return ops.clamp(self, min, max)

    def masked_fill(self, mask, value):
        return ops.masked_fill(self, mask, value)


def _data(x):
    return x.data if isinstance(x, Tensor) else x


# The ops create Tensors, so they are imported after the class exists.
from minilora.autograd import ops  # noqa: E402
