"""The hand-written NumPy GPT step computes exactly what minilora's engine computes."""

import numpy as np
import pytest

import minilora as ml
from minilora import backend
from minilora.experiments import bench, bench_numpy
from minilora.experiments.bench_numpy import NumpyAdamW, NumpyGPT, numpy_step
from minilora.models import GPT, GPTConfig
from minilora.optim import AdamW

QUICK = bench.SIZES["quick"]


def quick_gpt(seed=0):
    """The benchmark's quick GPT in float64, and the batch drawn right after it (as minilora_step does)."""
    model = bench.bench_gpt(QUICK, seed).double()
    x = backend.randint(0, bench.VOCAB, (QUICK["batch_size"], QUICK["block_size"]))
    return model, x


def minilora_loss_and_grads(model, x):
    _, loss = model(x, x)
    model.zero_grad()
    loss.backward()
    return loss.item(), {name: p.grad for name, p in model.named_parameters()}


def test_loss_and_every_gradient_equal_minilora_autograd_in_float64():
    model, x = quick_gpt()
    loss, grads = NumpyGPT.from_model(model).forward_backward(x, x)
    expected_loss, expected = minilora_loss_and_grads(model, x)
    assert abs(loss - expected_loss) <= 1e-12 * abs(expected_loss)
    assert sorted(grads) == sorted(expected)
    for name, g in expected.items():
        if name.endswith("k_proj.bias"):
            continue  # exactly zero in theory: test_key_bias_gets_no_gradient
        assert grads[name].dtype == np.float64 and grads[name].shape == g.shape, name
        # atol only for entries that cancel to nearly nothing, far below the largest one
        np.testing.assert_allclose(grads[name], g, rtol=1e-10, atol=1e-13 * np.abs(g).max(), err_msg=name)


def test_key_bias_gets_no_gradient():
    """A key bias b adds q·b to a whole row of scores, and softmax ignores a shift of a row
    (Eq. N1: its gradient sums to zero along the row), so dL/db = 0 in both implementations."""
    model, x = quick_gpt()
    _, grads = NumpyGPT.from_model(model).forward_backward(x, x)
    _, expected = minilora_loss_and_grads(model, x)
    for g in (grads, expected):
        scale = np.abs(g["blocks.0.attn.q_proj.bias"]).max()
        assert scale > 1e-5 and np.abs(g["blocks.0.attn.k_proj.bias"]).max() < 1e-14 * scale


def test_gradient_agrees_with_finite_differences():
    """Independently of minilora's autograd: the derivative of the loss along a random
    direction d in parameter space equals Σ grad · d. The five-point stencil's error is
    O(h⁴); plain central differences (O(h²)) are about 3e-7 off at this h."""
    model, x = quick_gpt()
    gpt = NumpyGPT.from_model(model)
    _, grads = gpt.forward_backward(x, x)
    rng = np.random.default_rng(1)
    direction = {name: rng.standard_normal(p.shape) for name, p in gpt.params.items()}

    def loss_at(h):
        moved = NumpyGPT({n: p + h * direction[n] for n, p in gpt.params.items()}, gpt.config)
        return moved.forward_backward(x, x)[0]

    h = 1e-5
    numeric = (8 * (loss_at(h) - loss_at(-h)) - (loss_at(2 * h) - loss_at(-2 * h))) / (12 * h)
    analytic = sum(float((grads[n] * direction[n]).sum()) for n in grads)
    assert abs(numeric - analytic) <= 1e-9 * abs(analytic)


def test_adamw_matches_minilora_adamw():
    """Fed the same gradients, three steps leave the same parameters as minilora's AdamW
    (lr = 1e-4, default weight decay on every parameter, as bench._train_step uses)."""
    model, x = quick_gpt()
    gpt = NumpyGPT.from_model(model)
    optimizer, expected = NumpyAdamW(gpt.params, lr=1e-4), AdamW(model.parameters(), lr=1e-4)
    for _ in range(3):
        _, grads = minilora_loss_and_grads(model, x)
        optimizer.step({name: g.copy() for name, g in grads.items()})
        expected.step()
    start = NumpyGPT.from_model(quick_gpt()[0]).params
    for name, p in model.named_parameters():
        if not name.endswith("k_proj.bias"):  # which gets no gradient (see above)
            assert np.abs(gpt.params[name] - start[name]).max() > 1e-5, name  # the step did move it
        np.testing.assert_allclose(gpt.params[name], p.data, rtol=1e-12, atol=0, err_msg=name)


def test_a_whole_training_step_matches_minilora():
    """Forward, backward and AdamW by hand against minilora's step, from the same weights."""
    model, x = quick_gpt()
    gpt = NumpyGPT.from_model(model)
    optimizer = NumpyAdamW(gpt.params, lr=1e-4)
    loss, grads = gpt.forward_backward(x, x)
    optimizer.step(grads)
    expected_loss, _ = minilora_loss_and_grads(model, x)
    AdamW(model.parameters(), lr=1e-4).step()
    assert abs(loss - expected_loss) <= 1e-12 * abs(expected_loss)
    for name, p in model.named_parameters():
        np.testing.assert_allclose(gpt.params[name], p.data, rtol=1e-12, atol=1e-15, err_msg=name)


def test_numpy_step_trains_on_what_minilora_step_trains_on():
    """Same weights and batch as minilora_step(size, "full", seed): the first losses agree in float32."""
    step = numpy_step(QUICK, seed=3)
    model = bench.bench_gpt(QUICK, 3)
    x = backend.randint(0, bench.VOCAB, (QUICK["batch_size"], QUICK["block_size"]))
    np.testing.assert_array_equal(step.batch, x)
    for name, p in model.state_dict().items():
        np.testing.assert_array_equal(step.gpt.params[name], p)
    _, loss = model(x, x)
    assert abs(step() - loss.item()) <= 1e-5 * loss.item()
    assert step() < loss.item()  # the second step's loss: AdamW made progress on this batch


def test_float32_stays_float32_through_every_layer(monkeypatch):
    """Every array each layer function returns is float32, and so are the parameters,
    gradients and Adam moments after two steps (an in-place update would hide a
    float64 leak in the parameters, so the layers are checked one by one)."""
    seen = []

    def checked(fn):
        def wrapper(*args, **kwargs):
            out = fn(*args, **kwargs)
            stack = [out]
            while stack:
                item = stack.pop()
                if isinstance(item, (tuple, list)):
                    stack.extend(item)
                elif backend.is_array(item) and item.dtype != bool:
                    assert item.dtype == np.float32, f"{fn.__name__} returned {item.dtype}"
                    seen.append(fn.__name__)
            return out

        return wrapper

    layers = [n for n in dir(bench_numpy) if n.endswith(("_forward", "_backward")) or n in ("row_sum", "row_dot", "split_heads", "merge_heads")]
    for name in layers:
        monkeypatch.setattr(bench_numpy, name, checked(getattr(bench_numpy, name)))
    step = numpy_step(QUICK)
    step()
    loss = step()
    assert set(seen) == set(layers) and isinstance(loss, float) and np.isfinite(loss)
    optimizer = step.optimizer
    for group in (step.gpt.params, optimizer.exp_avg, optimizer.exp_avg_sq):
        assert all(a.dtype == np.float32 for a in group.values())
    _, grads = step.gpt.forward_backward(step.batch, step.batch)
    assert all(g.dtype == np.float32 for g in grads.values())


def test_refuses_dropout_and_missing_biases():
    """The reference has no dropout and always has biases: other configs get a clear error."""
    ml.manual_seed(0)
    with pytest.raises(ValueError, match=r"no dropout.*dropout=0.1.*dropout=0\.0"):
        NumpyGPT.from_model(GPT(GPTConfig(bench.VOCAB, 16, 1, 2, 32, dropout=0.1)))
    with pytest.raises(ValueError, match=r"bias=True"):
        NumpyGPT.from_model(GPT(GPTConfig(bench.VOCAB, 16, 1, 2, 32, bias=False)))
    NumpyGPT.from_model(GPT(GPTConfig(bench.VOCAB, 16, 1, 2, 32, dropout=0.0)))  # the benchmark's config is fine


def test_refuses_sequences_longer_than_the_context():
    model, x = quick_gpt()
    too_long = np.concatenate([x, x], axis=1)  # 2 · block_size positions
    with pytest.raises(ValueError, match=r"sequence length 32 exceeds block_size 16"):
        NumpyGPT.from_model(model).forward_backward(too_long, too_long)
