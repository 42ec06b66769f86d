"""Reverse-mode differentiation: the grad-mode switch and the backward walk.

``backward(root, grad)`` computes dL/dx for every tensor x that requires grad
in the graph below ``root``, where L = sum(root * grad). It walks the graph
iteratively (an explicit stack, never recursion), so a chain of 10,000 ops
is as safe as a chain of 10; see docs/autograd.md §1.
"""

import contextlib


class _GradMode:
    enabled = True


def is_grad_enabled():
    """False inside ``no_grad()``: ops then record no graph."""
    return _GradMode.enabled


@contextlib.contextmanager
def set_grad_enabled(mode):
    previous = _GradMode.enabled
    _GradMode.enabled = bool(mode)
    try:
        yield
    finally:
        _GradMode.enabled = previous


def no_grad():
    """Context manager: ops inside it build no graph (evaluation, weight updates)."""
    return set_grad_enabled(False)


def topological_order(root):
    """Every tensor reachable from ``root`` that requires grad, inputs before outputs.

    A post-order depth-first search with an explicit stack. A node is marked
    visited when it is *expanded*, not when it is pushed, and it is appended
    only after everything pushed above it (its inputs) has been appended.
    """
    order, visited = [], set()
    stack = [(root, False)]
    while stack:
        tensor, inputs_done = stack.pop()
        if inputs_done:
            order.append(tensor)
            continue
        if id(tensor) in visited:
            continue
        visited.add(id(tensor))
        stack.append((tensor, True))
        fn = tensor._ctx
        if fn is None:
            continue
        if fn.inputs is None:
            raise RuntimeError(
                f"backward through a graph that was already freed (at a {fn.name} node): "
                "the first backward() released the saved arrays. Pass retain_graph=True "
                "to the first backward() if you need to go through the graph twice."
            )
        for x, needs in zip(fn.inputs, fn.needs_grad):
            if needs and id(x) not in visited:
                stack.append((x, False))
    return order


def backward(root, grad, retain_graph=False):
    """Accumulate d(sum(root * grad))/dx into ``x.grad`` for every leaf x below root.

    Gradients of intermediate tensors live in a dict only while needed. A node
    is processed after every consumer of its output has added its share
    (reverse topological order); contributions are summed, so a tensor used
    twice (``b = a + a``) gets both. Leaves accumulate into ``.grad`` with
    ``+=`` across calls, as in PyTorch; ``zero_grad`` resets them.
    """
    grads = {id(root): grad}
    for tensor in reversed(topological_order(root)):
        g = grads.pop(id(tensor), None)
        if g is None:
            continue
        if tensor._ctx is None or tensor._retains_grad:
            _accumulate_into_grad(tensor, g)
        fn = tensor._ctx
        if fn is None:
            continue
        input_grads = fn.backward(g)
        if not isinstance(input_grads, tuple):
            input_grads = (input_grads,)
        for x, needs, gx in zip(fn.inputs, fn.needs_grad, input_grads):
            if not needs:
                continue
            _check_shape(fn, x, gx)
            key = id(x)
            # A new array on the second contribution: gx may be a view that
            # another input's gradient also uses (add returns grad twice).
            grads[key] = grads[key] + gx if key in grads else gx
        if not retain_graph:
            fn.release()


def _accumulate_into_grad(tensor, g):
    if tensor.grad is None:
        tensor.grad = g.copy()  # own the memory: g may be shared with other tensors
    else:
        tensor.grad += g


def _check_shape(fn, x, gx):
    """Every gradient has its tensor's shape and dtype; anything else is a bug in an op."""
    if gx is None or gx.shape != x.shape:
        got = None if gx is None else gx.shape
        raise RuntimeError(
            f"{fn.name}.backward returned a gradient of shape {got} for an input of "
            f"shape {x.shape}: every gradient must have its tensor's shape "
            "(a binary op's backward should call unbroadcast)."
        )
    if gx.dtype != x.dtype:
        raise RuntimeError(
            f"{fn.name}.backward returned a {gx.dtype} gradient for a {x.dtype} input: a "
            "constant of another dtype crept into the VJP (e.g. a numpy float64 scalar)."
        )
