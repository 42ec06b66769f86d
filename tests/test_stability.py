"""Numerical stability at extreme logits, and float32 kept float32 end to end."""

import numpy as np
import pytest

import minilora as ml
import minilora.nn.functional as F
from tests.helpers import graph_ops

EXTREME = np.array([[1e4, -1e4, 0.0], [-1e4, -1e4, -1e4], [1e4, 1e4, 1e4 - 1.0]], dtype=np.float32)


@pytest.mark.parametrize("op", ["softmax", "log_softmax", "logsumexp"])
def test_softmax_family_is_finite_at_plus_minus_1e4(op):
    x = ml.Tensor(EXTREME, requires_grad=True)
    y = getattr(F, op)(x, axis=-1)
    assert y.dtype == np.float32 and np.isfinite(y.data).all()
    y.backward(np.ones(y.shape, np.float32))
    assert np.isfinite(x.grad).all()


def test_softmax_values_at_extremes():
    y = F.softmax(ml.Tensor(EXTREME), axis=-1).data
    np.testing.assert_allclose(y[0], [1.0, 0.0, 0.0])
    np.testing.assert_allclose(y[1], [1 / 3] * 3, rtol=1e-6)
    np.testing.assert_allclose(F.log_softmax(ml.Tensor(EXTREME), axis=-1).data[0], [0.0, -2e4, -1e4])


def test_cross_entropy_is_finite_and_exact_at_extremes():
    logits = ml.Tensor(EXTREME, requires_grad=True)
    target = np.array([1, 0, 2])
    loss = F.cross_entropy(logits, target, reduction="none")
    # Row 0 puts the target 2e4 below the max: the loss is exactly 2e4, not inf.
    # Row 2: logsumexp = 1e4 + log(2 + e^-1), the target logit is 1e4 - 1.
    np.testing.assert_allclose(loss.data, [2e4, np.log(3.0), 1.0 + np.log(2.0 + np.exp(-1.0))], rtol=1e-6)
    loss.sum().backward()
    assert np.isfinite(logits.grad).all()
    np.testing.assert_allclose(logits.grad[0], [1.0, -1.0, 0.0])


def test_sigmoid_and_tanh_do_not_overflow():
    x = ml.Tensor(np.array([-1e4, -50.0, 0.0, 50.0, 1e4], np.float32), requires_grad=True)
    s = F.sigmoid(x)
    np.testing.assert_allclose(s.data, [0.0, 0.0, 0.5, 1.0, 1.0], atol=1e-7)
    (s.sum() + F.tanh(x).sum()).backward()
    assert np.isfinite(x.grad).all()


def test_logsumexp_of_all_minus_infinity_is_minus_infinity():
    x = ml.Tensor(np.full((1, 3), -np.inf, np.float32))
    with np.errstate(divide="ignore"):  # log(0) = -inf is the right answer here
        assert np.isneginf(F.logsumexp(x, axis=-1).data).all()


def test_a_training_step_stays_float32_end_to_end():
    """Embedding -> layer_norm -> linear -> gelu -> dropout -> linear -> cross_entropy -> update."""
    rng = np.random.default_rng(0)

    def param(*shape):
        return ml.Tensor(rng.normal(scale=0.1, size=shape).astype(np.float32), requires_grad=True)

    emb, w1, b1, w2 = param(11, 8), param(8, 16), param(16), param(16, 11)
    ln_w, ln_b = param(8), param(8)
    params = [emb, w1, b1, w2, ln_w, ln_b]
    idx = rng.integers(0, 11, size=(2, 5))
    targets = rng.integers(0, 11, size=(2, 5))

    h = F.embedding(idx, emb)
    h = F.layer_norm(h, 8, ln_w, ln_b)
    h = F.gelu(h @ w1 + b1)
    h = F.dropout(h, 0.1)
    scores = (h @ w2) / float(np.sqrt(16))  # a Python float keeps float32
    probs = F.softmax(scores.masked_fill(np.zeros((2, 5, 11), bool), -1e9), dim=-1)
    loss = F.cross_entropy(scores, targets) + 0.0 * probs.var()

    for op in graph_ops(loss):
        assert op.out_dtype == np.float32, f"{op.name} produced {op.out_dtype}"
    loss.backward()
    for p in params:
        assert p.grad.dtype == np.float32
    with ml.no_grad():
        for p in params:
            p.data -= 0.1 * p.grad
    assert all(p.dtype == np.float32 for p in params)



def test_ignored_row_with_minus_infinity_logits_does_not_poison_the_loss():
    z = np.array([[0.0, 1.0, 2.0], [-np.inf, 0.0, 0.0]], dtype=np.float32)
    logits = ml.Tensor(z, requires_grad=True)
    loss = F.cross_entropy(logits, np.array([2, -100]))
    expected = -(2.0 - np.log(np.exp(z[0]).sum()))
    assert loss.item() == pytest.approx(expected, rel=1e-6)
    loss.backward()
    assert np.isfinite(logits.grad).all() and np.all(logits.grad[1] == 0)
