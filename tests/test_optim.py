"""Each optimizer against a step computed by hand, plus clipping, schedule and frozen params."""

import math

import numpy as np
import pytest

import minilora as ml
from minilora import nn, optim


def param(values, grad):
    p = nn.Parameter(np.array(values, dtype=np.float64))
    p.grad = np.array(grad, dtype=np.float64)
    return p


def test_sgd_plain_and_weight_decay():
    p = param([1.0, -2.0], [0.5, 0.25])
    optim.SGD([p], lr=0.1, weight_decay=0.01).step()
    # p - lr (g + wd p)
    np.testing.assert_allclose(p.data, [1.0 - 0.1 * (0.5 + 0.01), -2.0 - 0.1 * (0.25 - 0.02)])


def test_sgd_momentum_two_steps():
    p = param([1.0], [1.0])
    opt = optim.SGD([p], lr=0.1, momentum=0.9)
    opt.step()  # v = g = 1, p = 1 - 0.1
    p.grad = np.array([2.0])
    opt.step()  # v = 0.9 * 1 + 2 = 2.9, p = 0.9 - 0.29
    np.testing.assert_allclose(p.data, [0.9 - 0.29])


def test_adam_first_two_steps_by_hand():
    p = param([1.0, 2.0], [0.1, -0.2])
    opt = optim.Adam([p], lr=0.01, betas=(0.9, 0.999), eps=1e-8)
    opt.step()
    # Step 1: m̂ = g and v̂ = g², so the update is lr · g / (|g| + eps) = lr · sign(g).
    np.testing.assert_allclose(p.data, [1.0 - 0.01 * 0.1 / (0.1 + 1e-8), 2.0 + 0.01 * 0.2 / (0.2 + 1e-8)])
    g1, g2 = np.array([0.1, -0.2]), np.array([0.3, 0.1])
    p.grad = g2.copy()
    before = p.data.copy()
    opt.step()
    m = 0.9 * (0.1 * g1) + 0.1 * g2
    v = 0.999 * (0.001 * g1**2) + 0.001 * g2**2
    m_hat, v_hat = m / (1 - 0.9**2), v / (1 - 0.999**2)
    np.testing.assert_allclose(p.data, before - 0.01 * m_hat / (np.sqrt(v_hat) + 1e-8), rtol=1e-12)


def test_adam_weight_decay_is_l2_but_adamw_decouples_it():
    a, w = param([1.0], [0.0]), param([1.0], [0.0])
    optim.Adam([a], lr=0.1, weight_decay=0.5).step()
    optim.AdamW([w], lr=0.1, weight_decay=0.5).step()
    # Adam: g = 0 + 0.5·1, the normalised step is lr·sign(g) = 0.1.
    np.testing.assert_allclose(a.data, [1.0 - 0.1 * 0.5 / (0.5 + 1e-8)])
    # AdamW: p ← p(1 - lr·wd) = 0.95, and the Adam step of a zero gradient is zero.
    np.testing.assert_allclose(w.data, [0.95])


def test_parameter_groups_have_their_own_settings():
    a, b = param([1.0], [1.0]), param([1.0], [1.0])
    opt = optim.SGD([{"params": [a], "lr": 0.5}, {"params": [b]}], lr=0.1)
    opt.step()
    np.testing.assert_allclose([a.data[0], b.data[0]], [0.5, 0.9])


def test_frozen_parameters_are_skipped_and_get_no_state():
    live, frozen = param([1.0], [1.0]), param([1.0], [1.0])
    frozen.requires_grad_(False)
    no_grad_yet = nn.Parameter(np.array([3.0]))
    opt = optim.AdamW([live, frozen, no_grad_yet], lr=0.1, weight_decay=0.1)
    opt.step()
    assert frozen.data[0] == 1.0 and no_grad_yet.data[0] == 3.0
    assert set(opt.state) == {live}


def test_empty_parameter_list_is_an_error():
    with pytest.raises(ValueError, match="no parameters"):
        optim.SGD([], lr=0.1)


def test_optimizer_state_dict_round_trip_continues_identically():
    def run(steps, resume_at=None):
        p = param([1.0, -1.0], [0.0, 0.0])
        opt = optim.AdamW([p], lr=0.05)
        for t in range(steps):
            if t == resume_at:
                sd = opt.state_dict()
                opt = optim.AdamW([p], lr=0.05)
                opt.load_state_dict(sd)
            p.grad = np.array([math.sin(t), math.cos(t)])
            opt.step()
        return p.data

    np.testing.assert_array_equal(run(6), run(6, resume_at=3))


def test_loaded_step_count_keeps_float32():
    p = nn.Parameter(np.ones(2, np.float32))
    p.grad = np.ones(2, np.float32)
    opt = optim.Adam([p])
    opt.step()
    sd = opt.state_dict()
    sd["state"][0]["step"] = np.array(1)  # as read back from an .npz file
    opt.load_state_dict(sd)
    opt.step()
    assert p.dtype == np.float32


def test_clip_grad_norm():
    a, b = param([0.0], [3.0]), param([0.0, 0.0], [0.0, 4.0])
    total = optim.clip_grad_norm_([a, b], max_norm=1.0)
    assert total == pytest.approx(5.0)
    norm_after = math.sqrt(float((a.grad**2).sum() + (b.grad**2).sum()))
    assert norm_after == pytest.approx(1.0, rel=1e-5)
    assert optim.clip_grad_norm_([a, b], max_norm=10.0) == pytest.approx(norm_after)


def test_clip_grad_norm_reports_non_finite():
    p = param([0.0], [np.inf])
    assert math.isinf(optim.clip_grad_norm_([p], 1.0))


def test_warmup_cosine_schedule():
    lr = lambda s: optim.warmup_cosine(s, lr=1.0, warmup_steps=10, total_steps=110, min_lr=0.1)  # noqa: E731
    assert lr(0) == pytest.approx(1 / 11)
    assert lr(9) == pytest.approx(10 / 11)
    assert lr(10) == pytest.approx(1.0)
    assert lr(60) == pytest.approx(0.1 + 0.5 * 0.9)  # halfway down the cosine
    assert lr(110) == pytest.approx(0.1) and lr(500) == pytest.approx(0.1)
    assert all(lr(s) >= lr(s + 1) for s in range(10, 120))


def test_training_reduces_loss_on_a_regression():
    ml.manual_seed(0)
    layer = nn.Linear(3, 1)
    x = ml.Tensor(np.random.default_rng(0).normal(size=(64, 3)).astype(np.float32))
    y = x.data @ np.array([[1.0], [-2.0], [0.5]], np.float32) + 0.3
    opt = optim.Adam(layer.parameters(), lr=0.05)
    for _ in range(300):
        loss = ((layer(x) - y) ** 2).mean()
        opt.zero_grad()
        loss.backward()
        opt.step()
    assert loss.item() < 1e-4
    np.testing.assert_allclose(layer.weight.data, [[1.0, -2.0, 0.5]], atol=1e-2)


def test_only_empty_groups_is_an_error():
    with pytest.raises(ValueError, match="empty parameter groups"):
        optim.AdamW([{"params": []}], lr=0.1)


def test_training_a_fully_frozen_model_is_refused():
    from minilora.train import TrainConfig, make_optimizer

    layer = nn.Linear(2, 2).requires_grad_(False)
    with pytest.raises(ValueError, match="every parameter of the model is frozen"):
        make_optimizer(layer, TrainConfig())
