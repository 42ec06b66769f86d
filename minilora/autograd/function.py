"""``Function``: one primitive op, its forward on arrays and its VJP on gradients.

A primitive is a subclass with two methods, written next to each other so the
math of one op fits on one screen::

    class Mul(Function):
        def forward(self, a, b):            # arrays in, array out
            self.save_for_backward(a, b)
            return a * b

        def backward(self, grad):           # dL/dout in, (dL/da, dL/db) out
            a, b = self.saved
            return unbroadcast(grad * b, a.shape), unbroadcast(grad * a, b.shape)

``Mul.apply(x, y)`` runs it on Tensors and records the node in the graph.
A node links to the nodes its inputs came from (``parents``), never to the
input Tensors themselves, so an intermediate array that backward does not
need is freed as soon as the forward pass lets go of it (docs/autograd.md §1).
Every subclass is entered in ``PRIMITIVES`` so the test suite can check that
each one has a finite-difference gradient check (see tests/test_gradcheck.py).

The VJPs are derived in docs/autograd.md; each op's docstring cites its equation.
"""

from minilora import backend
from minilora.autograd import engine
from minilora.autograd.tensor import Tensor

PRIMITIVES = {}  # op name -> Function subclass, filled in as subclasses are defined


class Function:
    """Base class of every primitive op. See the module docstring for the pattern."""

    def __init_subclass__(cls, register=True, **kwargs):
        # ``class Probe(Function, register=False)`` keeps a throwaway op (in a
        # test, say) out of PRIMITIVES and so out of the gradcheck table.
        super().__init_subclass__(**kwargs)
        if register:
            PRIMITIVES[cls.__name__.lower()] = cls

    is_leaf = False  # a graph node is an op (this) or a leaf Tensor (is_leaf True)
    # Set by apply() before forward runs, so forward saves only what backward needs.
    needs_grad = ()  # one bool per input: does a gradient have to flow into it?
    # Set by apply() after forward, when the output joins the graph.
    parents = ()  # per input: the op that made it, the leaf itself, or None; None once freed
    out_shape = out_dtype = None  # every gradient arriving here must match them
    retained = None  # the output Tensor, once it asked to keep its .grad (retain_grad)
    saved = ()  # arrays kept for backward; None once the graph is freed

    def forward(self, *arrays, **params):
        raise NotImplementedError

    def backward(self, grad):
        """Return one gradient per input (None for inputs that need none)."""
        raise NotImplementedError

    def save_for_backward(self, *arrays):
        self.saved = arrays

    @classmethod
    def apply(cls, *inputs, **params):
        """Run forward on the inputs' arrays and, if needed, record the graph node."""
        fn = cls()
        fn.needs_grad = needs_grad = tuple(
            isinstance(x, Tensor) and x.requires_grad for x in inputs
        )
        arrays = [x.data if isinstance(x, Tensor) else _constant(x) for x in inputs]
        try:
            out = fn.forward(*arrays, **params)
        except ValueError as err:
            raise ValueError(_shape_message(cls, arrays, err)) from err
        requires_grad = engine.is_grad_enabled() and any(needs_grad)
        if not requires_grad:
            return Tensor._wrap(out)
        fn.parents = tuple(
            (x if x._ctx is None else x._ctx) if needs else None
            for x, needs in zip(inputs, needs_grad)
        )
        fn.out_shape, fn.out_dtype = out.shape, out.dtype
        return Tensor._wrap(out, ctx=fn)

    def release(self):
        """Drop the saved arrays and the links to the parents once backward has used them."""
        self.saved = None
        self.parents = None
        self.retained = None

    @property
    def name(self):
        return type(self).__name__


def _constant(x):
    """A numpy scalar (np.float64(2.0)) as a Python number: numpy treats its dtype as
    binding and would turn float32 arrays into float64; Python numbers adapt."""
    if hasattr(x, "dtype") and getattr(x, "ndim", None) == 0 and not backend.is_array(x):
        return x.item()
    return x


def unbroadcast(grad, shape):
    """Sum ``grad`` down to ``shape``, undoing numpy broadcasting (docs/autograd.md, Eq. B1).

    Broadcasting copies an input along the axes it lacks (prepended ones) and
    along the axes where it has length 1. Every copy receives gradient, so the
    input's gradient is the sum over those axes. Every binary op calls this.
    """
    if grad.shape == shape:
        return grad
    n_new = grad.ndim - len(shape)
    stretched = tuple(i + n_new for i, n in enumerate(shape) if n == 1 and grad.shape[i + n_new] != 1)
    return grad.sum(axis=tuple(range(n_new)) + stretched, keepdims=True).reshape(shape)


def _shape_message(cls, arrays, err):
    """Name the op and its input shapes in numpy's shape errors."""
    shapes = ", ".join(str(tuple(getattr(a, "shape", ()))) for a in arrays)
    message = f"{cls.__name__.lower()}: {err} (input shapes {shapes})."
    if "broadcast" in str(err):
        message += (
            " Arrays broadcast when, aligned from the right, each pair of"
            " dimensions is equal or one of them is 1."
        )
    return message
