"""Finite-difference gradient checking: does an op's VJP match its forward?

For a function f and a fixed random cotangent v, backward() gives the
analytic gradient of L(x) = Σ v ⊙ f(x). Central differences estimate the
same gradient one element at a time,

    dL/dxᵢ ≈ (L(x + eps·eᵢ) - L(x - eps·eᵢ)) / (2·eps),

with an error of O(eps²) from truncation and O(ε_machine / eps) from
rounding. In float64 with eps = 1e-6 the rounding term is about 1e-10 and
the truncation term smaller still, far below the tolerances; in float32 the
rounding term alone is a few percent (ε_machine/eps ≈ 6e-2 times |f|), which
is why gradcheck insists on float64 (docs/autograd.md §6).
"""

from minilora import backend
from minilora.autograd.engine import no_grad, topological_order
from minilora.autograd.tensor import Tensor


class GradcheckError(AssertionError):
    """The analytic and numerical gradients disagree."""


def gradcheck(fn, inputs, eps=1e-6, atol=1e-5, rtol=1e-4, seed=0):
    """Compare the gradients backward() computes for ``fn(*inputs)`` with central differences.

    Every input that is a Tensor with ``requires_grad=True`` is checked (it
    must be float64); other inputs are passed through unchanged. Returns True,
    or raises GradcheckError naming the input, the element and both values.
    The inputs' data and the ``.grad`` of every leaf in the graph are left as
    they were.
    """
    inputs = (inputs,) if isinstance(inputs, Tensor) else tuple(inputs)
    checked = [(i, x) for i, x in enumerate(inputs) if isinstance(x, Tensor) and x.requires_grad]
    if not checked:
        raise ValueError("gradcheck: no input is a Tensor with requires_grad=True, so there is nothing to check")
    for i, x in checked:
        if x.dtype != backend.float64:
            raise TypeError(
                f"gradcheck: input {i} is {x.dtype}, but finite differences need float64 "
                "(in float32, at eps = 1e-6, the rounding error of a difference quotient is a few percent). "
                "Pass Tensor(x, dtype='float64', requires_grad=True)."
            )
        if not backend.all_finite(x.data):
            raise ValueError(
                f"gradcheck: input {i} contains nan or inf; a derivative is only defined at "
                "finite points. Check the inputs you built (e.g. log of a negative number)."
            )

    out = fn(*inputs)
    if not isinstance(out, Tensor) or not out.requires_grad:
        raise ValueError("gradcheck: fn must return a Tensor that depends on the checked inputs")
    if not backend.all_finite(out.data):
        raise ValueError(
            "gradcheck: fn returned nan or inf at these inputs, so there is no gradient to check; "
            "move the inputs into the function's domain"
        )
    v = backend.get_array_module(out.data).asarray(
        backend.new_generator(seed).standard_normal(out.shape)
    )  # the random cotangent

    # Every leaf in the graph, parameters captured by fn included, gets its .grad back afterwards.
    leaves = [t for t in topological_order(out.grad_fn) if t.is_leaf]
    saved_grads = [t.grad for t in leaves]
    for t in leaves:
        t.grad = None
    try:
        out.backward(v)
        analytic = [x.grad if x.grad is not None else 0.0 * x.data for _, x in checked]
    finally:
        for t, g in zip(leaves, saved_grads):
            t.grad = g

    def loss():
        with no_grad():
            return float((fn(*inputs).data * v).sum())

    for (i, x), grad in zip(checked, analytic):
        numeric = _central_differences(loss, x.data, eps)
        _compare(i, grad, numeric, atol, rtol)
    return True


def _central_differences(loss, array, eps):
    """(loss(x + eps eᵢ) - loss(x - eps eᵢ)) / 2eps for every element i, perturbing in place."""
    xp = backend.get_array_module(array)
    numeric = xp.zeros(array.shape, dtype=array.dtype)
    for flat in range(array.size):
        index = tuple(int(k) for k in xp.unravel_index(flat, array.shape))
        original = float(array[index])
        try:
            array[index] = original + eps
            up = loss()
            array[index] = original - eps
            down = loss()
        finally:
            array[index] = original  # even if fn raises, the input is left as it was
        numeric[index] = (up - down) / (2.0 * eps)
    return numeric


def _compare(i, analytic, numeric, atol, rtol):
    xp = backend.get_array_module(numeric)
    error = xp.abs(analytic - numeric)
    allowed = atol + rtol * xp.abs(numeric)
    if bool((error <= allowed).all()):
        return
    worst = tuple(int(k) for k in xp.unravel_index(int((error - allowed).argmax()), numeric.shape))
    raise GradcheckError(
        f"gradcheck: the gradient of input {i} is wrong at element {worst}: backward gave "
        f"{float(analytic[worst]):.10g}, central differences give {float(numeric[worst]):.10g} "
        f"(|difference| {float(error[worst]):.3g} > atol + rtol·|numeric| = {float(allowed[worst]):.3g}). "
        f"{int((error > allowed).sum())} of {numeric.size} elements disagree."
    )
