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
    """Every graph node below ``root``, parents before children.

    A node is either an op (a ``Function``, with ``parents``) or a leaf Tensor
    that requires grad, where gradients end; both answer ``is_leaf``. This is
    a post-order depth-first search with an explicit stack. A node is marked
    visited when it is *expanded*, not when it is pushed, and it is appended
    only after everything pushed above it (its parents) has been appended.
    """
    order, visited = [], set()
    stack = [(root, False)]
    while stack:
        node, parents_done = stack.pop()
        if parents_done:
            order.append(node)
            continue
        if id(node) in visited:
            continue
        visited.add(id(node))
        stack.append((node, True))
        if node.is_leaf:
            continue
        if node.parents is None:
            raise RuntimeError(
                f"backward through a graph that was already freed (at a {node.name} node): "
                "the first backward() released the saved arrays. Pass retain_graph=True "
                "to the first backward() if you need to go through the graph twice."
            )
        for parent in node.parents:
            if parent is not None and id(parent) not in visited:
                stack.append((parent, False))
    return order


def backward(root, grad, retain_graph=False):
    """Accumulate d(sum(root * grad))/dx into ``x.grad`` for every leaf x below root.

    The gradient flowing into each node lives in a dict only while needed. A
    node is processed after every consumer of its output has added its share
    (reverse topological order); contributions are summed, so a tensor used
    twice (``b = a + a``) gets both. Leaves accumulate into ``.grad`` with
    ``+=`` across calls, as in PyTorch; ``zero_grad`` resets them.
    """
    top = root if root.is_leaf else root._ctx
    grads = {id(top): grad}
    for node in reversed(topological_order(top)):
        g = grads.pop(id(node), None)
        if g is None:
            continue
        if node.is_leaf:
            _accumulate_into_grad(node, g)
            continue
        if node.retained is not None:
            _accumulate_into_grad(node.retained, g)
        input_grads = node.backward(g)
        if not isinstance(input_grads, tuple):
            input_grads = (input_grads,)
        for parent, gx in zip(node.parents, input_grads):
            if parent is None:
                continue
            _check_shape(node, parent, gx)
            key = id(parent)
            # A new array on the second contribution: gx may be a view that
            # another input's gradient also uses (add returns grad twice).
            grads[key] = grads[key] + gx if key in grads else gx
        if not retain_graph:
            node.release()


def _accumulate_into_grad(tensor, g):
    if tensor.grad is None:
        tensor.grad = g.copy()  # own the memory: g may be shared with other tensors
    else:
        tensor.grad += g


def _check_shape(fn, parent, gx):
    """Every gradient has its tensor's shape and dtype; anything else is a bug in an op.

    ``parent`` is the input's node: the leaf tensor itself, or the op that made
    the input, which remembers its output's shape and dtype for this check.
    """
    shape, dtype = (parent.shape, parent.dtype) if parent.is_leaf else (parent.out_shape, parent.out_dtype)
    if gx is None or gx.shape != shape:
        got = None if gx is None else gx.shape
        raise RuntimeError(
            f"{fn.name}.backward returned a gradient of shape {got} for an input of "
            f"shape {shape}: every gradient must have its tensor's shape "
            "(a binary op's backward should call unbroadcast)."
        )
    if gx.dtype != dtype:
        raise RuntimeError(
            f"{fn.name}.backward returned a {gx.dtype} gradient for a {dtype} input: a "
            "constant of another dtype crept into the VJP (e.g. a numpy float64 scalar)."
        )
