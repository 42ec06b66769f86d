"""The engine, the models and LoRA, once per device: "numpy", "fake" and "cupy".

"fake" (minilora.backend's fake device) runs on the CPU and refuses what CuPy
refuses: implicit conversion to numpy, a numpy function handed a device array,
host arrays mixed into device arithmetic, and, inside ``no_host_transfers()``,
any read back to the host. Every device run is compared with the numpy run of
the same computation. "cupy" is skipped only where there is no GPU.
"""

import contextlib

import numpy as np
import pytest

import minilora as ml
import minilora.nn.functional as F
from minilora import backend
from minilora.autograd import PRIMITIVES
from minilora.lora import LoraConfig, apply_lora, lora_state_dict, merge_lora, unmerge_lora
from minilora.models import GPT, CharRNN, GPTConfig, RNNConfig, TextClassifier
from minilora.models.classifier import ClassifierConfig

DEVICES = [
    "numpy",
    "fake",
    pytest.param("cupy", marks=pytest.mark.skipif(not backend.gpu_available(), reason="no GPU with CuPy here")),
]


@pytest.fixture(params=DEVICES)
def device(request):
    """Select the backend for the test, and always go back to numpy afterwards."""
    backend.use(request.param)
    try:
        yield request.param
    finally:
        backend.use("numpy")


def on(device, array):
    return backend.module_for(device).asarray(array)


def device_name(device):
    """What ``Tensor.device`` says for arrays of this backend: "cpu", "gpu" or "fake"."""
    return {"numpy": "cpu", "cupy": "gpu"}.get(device, device)


@contextlib.contextmanager
def using(device):
    """Run a block with ``device`` as the backend for new tensors, then restore the previous one."""
    previous = backend.current()
    backend.use(device)
    try:
        yield
    finally:
        backend.use(previous)


# -- every primitive, forward and backward -------------------------------------------
# name -> (fn(put, *tensors), input arrays). ``put`` uploads a constant (an index
# array, a mask) to the device under test, as user code must.

rng = np.random.default_rng(0)
X34, Y34, X4 = rng.normal(size=(3, 4)), rng.normal(size=(3, 4)), rng.normal(size=4)
X234 = rng.normal(size=(2, 3, 4))
POS34 = rng.uniform(0.5, 2.0, size=(3, 4))
MASK34 = np.arange(12).reshape(3, 4) % 3 == 0
SQUARE = rng.normal(size=(4, 4)) + 4 * np.eye(4)

OP_CASES = {
    "add": (lambda put, a, b: a + b, [X34, X4]),
    "sub": (lambda put, a, b: a - b, [X34, X4]),
    "mul": (lambda put, a, b: a * b, [X34, X4]),
    "div": (lambda put, a, b: a / b, [X34, POS34]),
    "neg": (lambda put, a: -a, [X34]),
    "pow": (lambda put, a, b: a**b, [POS34, X34]),
    "matmul": (lambda put, a, b: a @ b, [X234, rng.normal(size=(4, 5))]),
    "sum": (lambda put, a: a.sum(axis=1), [X234]),
    "mean": (lambda put, a: a.mean(axis=(0, 2), keepdims=True), [X234]),
    "max": (lambda put, a: a.max(axis=-1), [X234]),
    "var": (lambda put, a: F.var(a, axis=0), [X34]),
    "logsumexp": (lambda put, a: F.logsumexp(a, axis=-1), [X234]),
    "softmax": (lambda put, a: F.softmax(a, axis=-1), [X234]),
    "attentionsoftmax": (lambda put, a: F.attention_softmax(a, put(np.triu(np.ones((4, 4), bool), 1)), scale=0.5), [X234[:, :, None, :] * np.ones((1, 1, 4, 1))]),
    "logsoftmax": (lambda put, a: F.log_softmax(a, axis=1), [X234]),
    "crossentropy": (lambda put, a: F.cross_entropy(a, put(np.array([0, 3, -100]))), [X34]),
    "embedding": (lambda put, w: F.embedding(put(np.array([[1, 3, 1], [0, 2, 4]])), w), [rng.normal(size=(5, 3))]),
    "layernorm": (lambda put, x, w, b: F.layer_norm(x, 4, w, b), [X234, X4, rng.normal(size=4)]),
    "dropout": (lambda put, a: F.dropout(a, p=0.3, training=True), [X34]),
    "exp": (lambda put, a: a.exp(), [X34]),
    "log": (lambda put, a: a.log(), [POS34]),
    "sqrt": (lambda put, a: a.sqrt(), [POS34]),
    "tanh": (lambda put, a: a.tanh(), [X34]),
    "sigmoid": (lambda put, a: F.sigmoid(a), [X34]),
    "relu": (lambda put, a: F.relu(a), [X34]),
    "gelu": (lambda put, a: F.gelu(a), [X34]),
    "geluerf": (lambda put, a: F.gelu(a, approximate="none"), [X34]),
    "clamp": (lambda put, a: F.clamp(a, -0.5, 0.5), [X34]),
    "where": (lambda put, a, b: F.where(put(MASK34), a, b), [X34, Y34]),
    "reshape": (lambda put, a: a.reshape(4, -1), [X234]),
    "permute": (lambda put, a: a.permute(2, 0, 1), [X234]),
    "getitem": (lambda put, a: a[put(np.array([2, 0, 2])), 1:], [X34]),
    "concat": (lambda put, a, b: F.concat([a, b, a], axis=1), [X34, Y34]),
    "stack": (lambda put, a, b: F.stack([a, b], axis=0), [X34, Y34]),
    "linear": (lambda put, x, w, b: F.linear(x, w, b), [X234, rng.normal(size=(5, 4)), rng.normal(size=5)]),
    "rnntanh": (
        lambda put, x, w, u, b1, b2: F.rnn_tanh(x, w, u, b1, b2),
        [rng.normal(size=(2, 5, 3)), rng.normal(size=(4, 3)), rng.normal(size=(4, 4)), rng.normal(size=4), rng.normal(size=4)],
    ),
    "cast": (lambda put, a: a.astype("float32").astype("float64"), [X34]),
    "solve": (lambda put, a, b: F.solve(a, b), [SQUARE, rng.normal(size=(4, 2))]),
    "matrixexp": (lambda put, a: F.matrix_exp(a), [0.3 * rng.normal(size=(4, 4))]),
}


def test_every_primitive_runs_on_every_device():
    missing = sorted(set(PRIMITIVES) - set(OP_CASES))
    assert not missing, f"primitives without a device case in OP_CASES: {missing}"


@using("numpy")  # the reference run; ``device`` picks where this one runs
def run_op(device, name):
    """Forward and backward of one case on ``device``; results as host arrays."""
    fn, arrays = OP_CASES[name]
    put = lambda a: on(device, a)  # noqa: E731
    inputs = [ml.Tensor(put(a), requires_grad=True) for a in arrays]
    ml.manual_seed(0)  # dropout draws the same mask on every device
    # Scaling and squaring picks its number of squarings from the norm, read on the host.
    syncs = name in {"matrixexp"}
    with contextlib.nullcontext() if syncs else backend.no_host_transfers():
        out = fn(put, *inputs)
        cotangent = put(np.random.default_rng(1).normal(size=out.shape))
        out.backward(cotangent)
    assert out.device == inputs[0].device == device_name(device)
    return backend.to_numpy(out.data), [backend.to_numpy(x.grad) for x in inputs]


@pytest.mark.parametrize("name", sorted(OP_CASES))
def test_primitive_matches_numpy_on_device(device, name):
    expected_out, expected_grads = run_op("numpy", name)
    out, grads = run_op(device, name)
    np.testing.assert_allclose(out, expected_out, rtol=1e-10, atol=1e-12)
    for got, want in zip(grads, expected_grads):
        assert got.dtype == want.dtype == np.float64
        np.testing.assert_allclose(got, want, rtol=1e-10, atol=1e-12)


# -- whole models: one training step, no host transfer inside it ---------------------------

V, T = 13, 8


def _gpt():
    return GPT(GPTConfig(V, T, n_layer=2, n_head=2, n_embd=16, dropout=0.1))


def _lora_gpt():
    model = GPT(GPTConfig(V, T, n_layer=2, n_head=2, n_embd=16))
    apply_lora(model, LoraConfig(r=2, target_modules=["q_proj", "v_proj", "tok_emb", "lm_head"]))
    for name, p in model.named_parameters():  # B = 0 at init; give the adapters a value
        if "lora_B" in name:
            p.data = backend.randn(p.shape, like=p.data) * 0.1
    return model


MODELS = {
    "gpt": _gpt,
    "lora-gpt": _lora_gpt,
    "char-rnn": lambda: CharRNN(RNNConfig(V, 8, 16, projection="orthogonal")),
    "classifier": lambda: TextClassifier(ClassifierConfig(V, T, n_classes=3, n_layer=1, n_embd=16)),
}


def _batch(kind):
    g = np.random.default_rng(3)
    idx = g.integers(0, V, size=(4, T))
    if kind == "classifier":
        mask = np.arange(T)[None, :] < np.array([[8], [5], [3], [8]])
        return idx, g.integers(0, 3, size=4), mask
    return idx, np.roll(idx, -1, axis=1)


@using("numpy")
def train_steps(device, kind, steps=2):
    """Build on the host, move to ``device``, take ``steps`` AdamW steps with
    clipping; return the losses and the final gradients as host arrays."""
    ml.manual_seed(0)
    model = MODELS[kind]().to(device)
    trainable = [p for p in model.parameters() if p.requires_grad]
    opt = ml.optim.AdamW(trainable, lr=1e-2)
    batch = [on(device, a) for a in _batch(kind)]
    losses = []
    for _ in range(steps):
        with backend.no_host_transfers():
            opt.zero_grad()
            _, loss = model(*batch)
            loss.backward()
            ml.optim.clip_grad_norm_(trainable, 0.5)
            grads = {n: p.grad.copy() for n, p in model.named_parameters() if p.grad is not None}
            opt.step()
        losses.append(loss.item())
    where = trainable[0].device
    for state in opt.state.values():
        assert all(backend.device_of(v) == where for v in state.values() if backend.is_array(v))
    return losses, {n: backend.to_numpy(g) for n, g in grads.items()}, model


@pytest.mark.parametrize("kind", sorted(MODELS))
def test_training_step_matches_numpy_in_float32(device, kind):
    """CPU/device parity: loss and every gradient within rtol 1e-4 in float32."""
    want_losses, want_grads, _ = train_steps("numpy", kind)
    losses, grads, model = train_steps(device, kind)
    assert {p.device for p in model.parameters()} == {device_name(device)}
    np.testing.assert_allclose(losses, want_losses, rtol=1e-4)
    assert grads.keys() == want_grads.keys() and grads
    for name in grads:
        assert grads[name].dtype == np.float32, name
        np.testing.assert_allclose(grads[name], want_grads[name], rtol=1e-4, atol=1e-6, err_msg=name)


def test_lora_merge_and_adapter_state_on_device(device):
    ml.manual_seed(0)
    model = _lora_gpt().to(device)
    idx = on(device, _batch("gpt")[0])
    def logits():  # an inference pass never reads back to the host
        with ml.no_grad(), backend.no_host_transfers():
            return model(idx)[0].data

    unmerged = logits()
    merge_lora(model)  # checks the merged weights are finite: one read, outside any step
    merged = logits()
    unmerge_lora(model)
    again = logits()
    assert backend.device_of(merged) == backend.device_of(idx)
    np.testing.assert_allclose(backend.to_numpy(merged), backend.to_numpy(unmerged), rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(backend.to_numpy(again), backend.to_numpy(unmerged), rtol=1e-5, atol=1e-6)
    saved = lora_state_dict(model)
    assert saved and all(isinstance(v, np.ndarray) for v in saved.values())  # host copies


def test_generate_on_device_matches_numpy(device):
    def sample(dev):
        ml.manual_seed(0)
        model = _gpt().to(dev)
        model.eval()
        ml.manual_seed(5)
        return backend.to_numpy(model.generate(on(dev, np.zeros((2, 1), dtype=np.int64)), 6, top_k=5))

    got = sample(device)
    with using("numpy"):
        np.testing.assert_array_equal(got, sample("numpy"))


# -- moving things between devices ------------------------------------------------------


def test_tensor_to_moves_data_and_keeps_requires_grad(device):
    with using("numpy"):
        x = ml.Tensor(np.arange(6.0).reshape(2, 3), requires_grad=True)
    y = x.to(device)
    assert y.requires_grad and y.is_leaf and y.shape == (2, 3)
    assert y.to(device) is y  # already there: no copy
    np.testing.assert_array_equal(backend.to_numpy(y.data), x.data)
    assert y.to("cpu").device == "cpu"


def test_module_to_keeps_parameters_and_optimizer_state_follows(device):
    """An optimizer made before ``Module.to`` keeps working: its moments move at the next step."""
    ml.manual_seed(0)
    model = _gpt()
    params = list(model.parameters())
    opt = ml.optim.Adam(params, lr=1e-3)
    idx, targets = _batch("gpt")
    model(idx, targets)[1].backward()
    opt.step()  # state created on the host
    model.to(device)
    assert list(model.parameters()) == params  # the same Parameter objects, moved in place
    opt.zero_grad()
    model(on(device, idx), on(device, targets))[1].backward()
    opt.step()
    for state in opt.state.values():
        assert backend.device_of(state["exp_avg"]) == device_name(device)
    model.to("cpu")
    assert all(p.device == "cpu" for p in model.parameters())


def test_state_dict_round_trip_between_devices(device):
    ml.manual_seed(0)
    with using("numpy"):
        host = _gpt()
    moved = _gpt().to(device)
    moved.load_state_dict(host.state_dict())
    for (name, a), b in zip(host.named_parameters(), moved.parameters()):
        assert b.device == device_name(device), name
        np.testing.assert_array_equal(backend.to_numpy(b.data), a.data)


# -- the whole pipeline with the device selected up front ------------------------------


def test_train_language_model_on_device_matches_numpy(device, tmp_path):
    """``backend.use(device)`` first, then the usual recipe: data, model, Trainer,
    checkpoint. Same seed, same history as on numpy."""
    from minilora.data.text import load_corpus
    from minilora.train.lm import load_model, train_language_model
    from minilora.train.trainer import TrainConfig

    text = load_corpus("builtin:domain_a")[:4000]
    config = TrainConfig(max_iters=4, eval_interval=2, eval_iters=2, batch_size=4, block_size=16, lr=1e-2)
    model_config = {"block_size": 16, "n_layer": 1, "n_head": 2, "n_embd": 16}

    def run(dev, out):
        with using(dev):
            model, _, trainer = train_language_model("gpt", model_config, text, config, out=out, log=lambda *a: None, progress=False)
            return model, [h["val_loss"] for h in trainer.history]

    model, history = run(device, tmp_path / device)
    _, expected = run("numpy", tmp_path / "reference")  # its own directory: a run never writes over another
    assert {p.device for p in model.parameters()} == {device_name(device)}
    np.testing.assert_allclose(history, expected, rtol=1e-4)
    with using("numpy"):
        reloaded = load_model(tmp_path / device)[0]  # a device checkpoint loads on the host
    for (name, a), b in zip(model.named_parameters(), reloaded.parameters()):
        np.testing.assert_array_equal(backend.to_numpy(a.data), b.data, err_msg=name)


# -- the fake device refuses what CuPy refuses -------------------------------------------


def test_fake_device_refuses_implicit_conversion_and_numpy_functions():
    a = backend.fake.asarray(np.arange(6.0).reshape(2, 3))
    for bad in (lambda: np.asarray(a), lambda: np.exp(a), lambda: np.sum(a), lambda: np.concatenate([a, a])):
        with pytest.raises(backend.DeviceError, match="device array"):
            bad()
    with pytest.raises(backend.DeviceError, match="host numpy array"):
        a + np.ones(3)
    with pytest.raises(backend.DeviceError, match="numpy.multiply was called on a device array"):
        np.ones(3) * a
    # what the device module offers works and stays on the device
    b = backend.get_array_module(a).exp(a) + 1.0
    assert backend.device_of(b) == "fake" and backend.device_of(a @ a.T) == "fake"
    np.testing.assert_allclose(backend.to_numpy(b), np.exp(np.arange(6.0)).reshape(2, 3) + 1.0)


def test_fake_device_reductions_stay_zero_dimensional_arrays():
    """As on CuPy: a.sum() is a 0-d device array, not a host scalar."""
    a = backend.fake.asarray(np.ones((2, 3), dtype=np.float32))
    total = a.sum()
    assert backend.device_of(total) == "fake" and total.shape == () and total.dtype == np.float32
    assert float(total) == 6.0  # an explicit read is fine outside a step


def test_no_host_transfers_refuses_every_kind_of_read_back():
    a = backend.fake.asarray(np.array([1.5, 2.0]))
    reads = [lambda: float(a[0]), lambda: int(a[1]), lambda: bool(a[0] > 1), lambda: a[0].item(), lambda: a.get(), lambda: a.tolist()]
    with backend.no_host_transfers():
        for read in reads:
            with pytest.raises(backend.DeviceError, match="no_host_transfers"):
                read()
        with backend.no_host_transfers():  # nested blocks keep refusing after the inner one ends
            pass
        with pytest.raises(backend.DeviceError):
            a[0].item()
    assert a[0].item() == 1.5 and a.get().tolist() == [1.5, 2.0]


def test_a_training_step_that_reads_the_loss_is_caught():
    """The guard is what makes the "fake" runs above meaningful: a sync inside a step fails."""
    with using("fake"):
        ml.manual_seed(0)
        model = _gpt()
        idx, targets = (on("fake", a) for a in _batch("gpt"))
        with backend.no_host_transfers(), pytest.raises(backend.DeviceError, match="item"):
            _, loss = model(idx, targets)
            loss.backward()
            loss.item()
