"""The backward walk: depth, reuse, skipped VJPs, accumulation and freeing."""

import sys

import numpy as np
import pytest

import minilora as ml
import minilora.nn.functional as F
from minilora.autograd import Function, engine
from tests.helpers import graph_ops, t64
from tests.test_gradcheck import CASES


def test_chain_of_ten_thousand_ops_is_deeper_than_the_recursion_limit():
    n = 10_000
    assert n > sys.getrecursionlimit()
    x = ml.Tensor(np.array(1.0), requires_grad=True)
    y = x
    for _ in range(n):
        y = y * 1.0001
    y.backward()
    np.testing.assert_allclose(x.grad, 1.0001**n, rtol=1e-9)


def test_unrolled_rnn_over_many_steps():
    """A tanh recurrence over 1,500 steps: ~4,500 nodes on one path."""
    rng = np.random.default_rng(0)
    W = ml.Tensor(rng.normal(scale=0.1, size=(4, 4)), requires_grad=True)
    h = ml.Tensor(np.ones((1, 4)))
    for _ in range(1500):
        h = (h @ W).tanh()
    h.sum().backward()
    assert W.grad.shape == (4, 4) and np.isfinite(W.grad).all()


def test_reused_node_gets_every_contribution():
    a = ml.Tensor(np.array(3.0), requires_grad=True)
    b = a + a  # 2a
    c = b * b  # 4a², dc/da = 8a
    c.backward()
    assert a.grad == pytest.approx(24.0)


def test_diamond_graph():
    x = t64(np.array([0.5, -1.0, 2.0]))
    y = x.exp()
    z = y * x + y * y  # y is used three times
    z.sum().backward()
    expected = np.exp(x.data) * x.data + np.exp(x.data) + 2 * np.exp(2 * x.data)
    np.testing.assert_allclose(x.grad, expected, rtol=1e-12)


def test_leaf_gradients_accumulate_across_backward_calls():
    x = t64(np.array([1.0, 2.0]))
    (x * 3.0).sum().backward()
    (x * x).sum().backward()
    np.testing.assert_allclose(x.grad, 3.0 + 2 * x.data)


def test_leaf_grad_owns_its_memory():
    """Add returns one gradient array for both inputs; the leaves must not share it."""
    a, b = t64((3,), seed=1), t64((3,), seed=2)
    (a + b).sum().backward()
    a.grad += 1.0
    np.testing.assert_allclose(b.grad, np.ones(3))


def test_intermediate_grads_are_not_kept_unless_asked():
    x = t64((3,))
    y = x * 2.0
    z = (y * y).sum()
    y.retain_grad()
    w = x * 5.0
    (z + w.sum()).backward()
    np.testing.assert_allclose(y.grad, 2 * y.data)
    assert w.grad is None


def test_frozen_weight_gradient_is_never_formed():
    """The reason LoRA is cheap: no VJP is computed for a frozen weight."""
    x = ml.Tensor(np.ones((2, 3)), requires_grad=True)
    W = ml.Tensor(np.ones((3, 4)))  # frozen
    seen = []
    original = type((x @ W)._ctx).backward

    def spy(self, grad):
        result = original(self, grad)
        seen.append(result)
        return result

    MatMul = type((x @ W)._ctx)
    MatMul.backward = spy
    try:
        (x @ W).sum().backward()
    finally:
        MatMul.backward = original
    (gx, gW) = seen[0]
    assert gx is not None and gW is None
    assert W.grad is None


MULTI_INPUT_CASES = [
    (name, label, fn, inputs)
    for name, cases in CASES.items()
    for label, fn, inputs in cases
    if sum(isinstance(x, ml.Tensor) for x in inputs) >= 2
]


@pytest.mark.parametrize(
    "name, label, fn, inputs", MULTI_INPUT_CASES, ids=[c[1] for c in MULTI_INPUT_CASES]
)
def test_every_op_skips_the_vjp_of_inputs_that_need_no_grad(name, label, fn, inputs, monkeypatch):
    """Freeze each input in turn: the op's backward must return None in its slot."""
    for frozen in range(len(inputs)):
        args = [ml.Tensor(x.data.copy(), requires_grad=(i != frozen)) for i, x in enumerate(inputs)]
        returned = []
        for cls in {type(op) for op in graph_ops(fn(*args))}:
            original = cls.backward
            monkeypatch.setattr(cls, "backward", _recording(original, returned))
        out = fn(*args)
        out.backward(np.ones(out.shape))
        monkeypatch.undo()
        frozen_tensor = args[frozen]
        assert returned, "no backward ran"
        for op_name, needs_grad, grads in returned:
            grads = grads if isinstance(grads, tuple) else (grads,)
            for needs, g in zip(needs_grad, grads):
                if not needs:
                    assert g is None, f"{op_name} formed a gradient for an input that needs none"
        assert frozen_tensor.grad is None


def _recording(original, returned):
    def backward(self, grad):
        result = original(self, grad)
        returned.append((type(self).__name__, self.needs_grad, result))
        return result

    return backward


def test_no_grad_builds_no_graph():
    x = t64((3,))
    with ml.no_grad():
        y = (x * 2.0).exp()
    assert y._ctx is None and not y.requires_grad
    assert engine.is_grad_enabled()


def test_backward_twice_through_a_freed_graph_says_what_to_do():
    x = t64((3,))
    loss = (x * x).sum()
    loss.backward()
    with pytest.raises(RuntimeError, match="retain_graph=True"):
        loss.backward()


def test_retain_graph_allows_a_second_backward():
    x = t64((3,))
    loss = (x * x).sum()
    loss.backward(retain_graph=True)
    loss.backward()
    np.testing.assert_allclose(x.grad, 4 * x.data)


def test_backward_frees_saved_arrays():
    x = t64((3,))
    y = x.exp()
    y.sum().backward()
    assert y._ctx.saved is None and y._ctx.parents is None


class BadShape(Function, register=False):
    """An op whose backward forgets to unbroadcast."""

    def forward(self, a, b):
        return a + b

    def backward(self, grad):
        return grad, grad


def test_engine_checks_gradient_shapes():
    a, b = t64((3, 4)), t64((4,))
    with pytest.raises(RuntimeError, match=r"shape \(3, 4\) for an input of shape \(4,\)"):
        BadShape.apply(a, b).sum().backward()


def test_backward_of_non_scalar_needs_a_gradient():
    y = t64((3,)) * 2.0
    with pytest.raises(RuntimeError, match="single-element"):
        y.backward()
    y.backward(np.ones(3))


def test_backward_gradient_must_match_shape():
    y = t64((3,)) * 2.0
    with pytest.raises(ValueError, match=r"grad has shape \(4,\)"):
        y.backward(np.ones(4))


def test_backward_on_a_tensor_without_grad():
    with pytest.raises(RuntimeError, match="does not require grad"):
        ml.Tensor([1.0]).backward()


def test_detach_cuts_the_graph():
    x = t64((3,))
    y = (x * 2.0).detach()
    assert y._ctx is None and not y.requires_grad
    z = (x * y).sum()
    z.backward()
    np.testing.assert_allclose(x.grad, y.data)


def test_split_pieces_flow_back():
    x = t64((2, 5))
    a, b, c = F.split(x, 2, axis=1)
    assert [p.shape for p in (a, b, c)] == [(2, 2), (2, 2), (2, 1)]
    (a.sum() + 2.0 * b.sum() + 3.0 * c.sum()).backward()
    np.testing.assert_allclose(x.grad, np.array([[1, 1, 2, 2, 3]] * 2, dtype=float))


def test_frozen_weight_keeps_no_activation_alive():
    """With W frozen, linear/matmul/mul save nothing that only W's gradient would need."""
    x = ml.Tensor(np.ones((4, 3)), requires_grad=True)
    W = ml.Tensor(np.ones((2, 3)))
    for out in (F.linear(x, W), x @ W.T.detach(), x * W[0].detach()):
        saved = out._ctx.saved
        assert not any(s is not None and np.shares_memory(s, x.data) for s in saved)
    activation = ml.Tensor(np.ones((4, 3)))  # input that needs no grad, weight that does
    W.requires_grad_()
    saved = F.linear(activation, W)._ctx.saved
    assert any(s is not None and np.shares_memory(s, activation.data) for s in saved)


def test_an_intermediate_backward_does_not_need_is_freed_at_once():
    """Nodes link to nodes, not to tensors: an add keeps neither operand alive,
    so the (B, T, d) activations a LoRA layer sums are freed during the forward."""
    import weakref

    x, W = t64((3, 4), seed=1), t64((4, 5), seed=2)
    h = x @ W
    out = (h + 1.0).sum()
    h_alive = weakref.ref(h)
    del h
    assert h_alive() is None
    out.backward()
    np.testing.assert_allclose(W.grad, x.data.T @ np.ones((3, 5)))
