"""Magnitude pruning: the count, the choice of weights, and masks that hold through training (Eq. 2-3 in docs/compare.md)."""

import numpy as np
import pytest

import minilora as ml
from minilora.nn import Linear
from minilora.optim import AdamW
from minilora.prune import PrunedLinear, count_nonzero, magnitude_prune, pruned_layers, remove_pruning
from tests.helpers import tiny_gpt

TARGETS = ["q_proj", "k_proj", "v_proj", "o_proj", "fc_in", "fc_out"]


def nonzero_gpt(dtype="float32"):
    model = tiny_gpt("float32")
    for p in model.parameters():  # biases start at 0; make every number non-zero so counts are exact
        p.data = (p.data + np.float32(0.01) * np.sign(p.data + 1e-3) + 0.003).astype(dtype)
    return model


def targeted(model):
    return {n: m for n, m in model.named_modules() if n.split(".")[-1] in TARGETS}


def kept_and_pruned(model):
    kept, pruned = [], []
    for _, layer in pruned_layers(model):
        w = np.abs(layer.weight.data.astype(np.float64))
        kept.append(w[layer.mask == 1])
        pruned.append(w[layer.mask == 0])
    return np.concatenate(kept), np.concatenate(pruned)


@pytest.mark.parametrize("scope", ["global", "layer"])
@pytest.mark.parametrize("n_keep", [1, 37, 500, 1024])
def test_exactly_n_keep_weights_survive(scope, n_keep):
    model = nonzero_gpt()
    total = model.num_parameters()
    weights = sum(m.weight.size for m in targeted(model).values())
    assert weights == 2 * (4 * 64 + 2 * 256)
    magnitude_prune(model, n_keep=n_keep, target_modules=TARGETS, scope=scope)
    assert sum(int(layer.mask.sum()) for _, layer in pruned_layers(model)) == n_keep
    assert count_nonzero(model) == total - (weights - n_keep)
    assert model.num_parameters() == total  # nothing is removed from the model, only zeroed


def test_fraction_rounds_to_a_count():
    model = nonzero_gpt()
    magnitude_prune(model, fraction=0.3, target_modules=TARGETS)
    assert sum(int(layer.mask.sum()) for _, layer in pruned_layers(model)) == round(0.3 * 1536)


def test_global_pruning_keeps_the_largest_weights_of_all_layers():
    model = nonzero_gpt()
    magnitude_prune(model, n_keep=400, target_modules=TARGETS, scope="global")
    kept, pruned = kept_and_pruned(model)
    assert kept.size == 400 and kept.min() >= pruned.max()


def test_layer_pruning_keeps_the_largest_of_each_layer_in_proportion_to_its_size():
    model = nonzero_gpt()
    magnitude_prune(model, n_keep=400, target_modules=TARGETS, scope="layer")
    for _, layer in pruned_layers(model):
        w = np.abs(layer.weight.data)
        share = 400 * layer.mask.size / 1536
        assert abs(layer.mask.sum() - share) < 1  # largest remainders: each share is its exact one rounded up or down
        assert w[layer.mask == 1].min() >= w[layer.mask == 0].max()


def test_ties_still_keep_exactly_n_keep_and_the_same_ones_each_time():
    linear = Linear(4, 3)
    linear.weight.data[:] = 0.5
    model = ml.nn.Sequential(linear)
    magnitude_prune(model, n_keep=5, target_modules=["0"])
    mask = model[0].mask
    assert int(mask.sum()) == 5 and mask.reshape(-1)[:5].all()  # ties go to the first positions, row-major


def test_pruned_weights_contribute_exactly_nothing():
    model = nonzero_gpt(dtype="float64")
    idx = np.arange(16).reshape(2, 8) % 11
    magnitude_prune(model, fraction=0.25, target_modules=TARGETS)
    before = model(idx)[0].data.copy()
    for _, layer in pruned_layers(model):
        layer.weight.data[layer.mask == 0] = 1e3  # whatever sits there is multiplied by 0
    np.testing.assert_array_equal(model(idx)[0].data, before)


def test_a_pruned_layer_is_a_linear_with_weight_m_times_w_and_its_pruned_gradients_are_zero():
    layer = Linear(5, 3)
    layer.double()
    W, b = layer.weight.data.copy(), layer.bias.data.copy()
    mask = np.array([[1, 0, 1, 1, 0], [0, 0, 1, 0, 1], [1, 1, 1, 0, 0]])
    pruned = PrunedLinear(layer, mask)
    x = ml.Tensor(np.random.default_rng(1).standard_normal((4, 5)), requires_grad=True)
    y = pruned(x)
    np.testing.assert_allclose(y.data, x.data @ (mask * W).T + b, rtol=1e-14, atol=1e-14)
    (y * y).sum().backward()
    G = 2 * y.data  # dL/dy
    np.testing.assert_allclose(pruned.weight.grad, mask * (G.T @ x.data), rtol=1e-12, atol=1e-12)  # Eq. (3)
    assert (pruned.weight.grad[mask == 0] == 0).all()
    ml.gradcheck(lambda x: (pruned(x) ** 2).sum(), [ml.Tensor(x.data, requires_grad=True)])


@pytest.mark.parametrize("optimizer_first", [False, True])
def test_masks_survive_optimizer_steps_with_weight_decay(optimizer_first):
    model = nonzero_gpt()
    idx = np.arange(32).reshape(4, 8) % 11
    optimizer = AdamW(model.parameters(), lr=1e-2, weight_decay=0.1) if optimizer_first else None
    if optimizer_first:  # moments of the soon-pruned weights are non-zero before pruning
        _, loss = model(idx, idx)
        loss.backward()
        optimizer.step()
    magnitude_prune(model, n_keep=300, target_modules=TARGETS)
    optimizer = optimizer or AdamW(model.parameters(), lr=1e-2, weight_decay=0.1)
    masks = {n: layer.mask.copy() for n, layer in pruned_layers(model)}
    nonzero = count_nonzero(model)
    outputs = []
    for _ in range(3):
        optimizer.zero_grad()
        logits, loss = model(idx, idx)
        loss.backward()
        optimizer.step()
        outputs.append(logits.data.copy())
    assert not np.array_equal(outputs[0], outputs[-1])  # it did train
    for name, layer in pruned_layers(model):
        np.testing.assert_array_equal(layer.mask, masks[name])
        assert (layer.effective_weight()[masks[name] == 0] == 0).all()
        if not optimizer_first:  # fresh moments: zero gradients and decoupled decay keep the stored zeros at zero
            assert (layer.weight.data[masks[name] == 0] == 0).all()
        assert layer.weight.dtype == np.float32
    assert count_nonzero(model) == nonzero


def test_remove_pruning_keeps_the_outputs_and_the_random_stream():
    model = nonzero_gpt()
    idx = np.arange(16).reshape(2, 8) % 11
    magnitude_prune(model, fraction=0.5, target_modules=TARGETS)
    before, nonzero = model(idx)[0].data.copy(), count_nonzero(model)
    state = ml.backend.get_rng_state()
    remove_pruning(model)
    assert ml.backend.get_rng_state() == state
    assert not pruned_layers(model) and all(type(m) is Linear for m in targeted(model).values())
    np.testing.assert_array_equal(model(idx)[0].data, before)
    assert count_nonzero(model) == nonzero


def test_all_linear_leaves_the_output_layer_alone():
    model = nonzero_gpt()
    magnitude_prune(model, fraction=0.5)
    names = [n for n, _ in pruned_layers(model)]
    assert len(names) == 12 and "lm_head" not in names


def test_bad_arguments_say_what_to_do():
    model = nonzero_gpt()
    with pytest.raises(ValueError, match="exactly one of n_keep"):
        magnitude_prune(model, target_modules=TARGETS)
    with pytest.raises(ValueError, match="exactly one of n_keep"):
        magnitude_prune(model, n_keep=3, fraction=0.5, target_modules=TARGETS)
    with pytest.raises(ValueError, match=r"fraction must be a number in \(0, 1\]"):
        magnitude_prune(model, fraction=0.0, target_modules=TARGETS)
    with pytest.raises(ValueError, match=r"n_keep must be in \[1, 1536\]"):
        magnitude_prune(model, n_keep=1537, target_modules=TARGETS)
    with pytest.raises(TypeError, match="n_keep must be an integer"):
        magnitude_prune(model, n_keep=2.5, target_modules=TARGETS)
    with pytest.raises(ValueError, match="scope must be 'global'"):
        magnitude_prune(model, n_keep=3, target_modules=TARGETS, scope="row")
    with pytest.raises(TypeError, match="not nn.Linear"):
        magnitude_prune(model, n_keep=3, target_modules=["tok_emb"])
    assert not pruned_layers(model)  # every refusal left the model alone
    magnitude_prune(model, n_keep=3, target_modules=TARGETS)
    with pytest.raises(ValueError, match="already pruned"):
        magnitude_prune(model, n_keep=3, target_modules=TARGETS)
    with pytest.raises(ValueError, match="the weight's shape"):
        PrunedLinear(Linear(3, 2), np.ones((3, 2)))
    with pytest.raises(ValueError, match="only 0"):
        PrunedLinear(Linear(3, 2), np.full((2, 3), 0.5))
    with pytest.raises(TypeError, match="wraps an nn.Linear"):
        PrunedLinear(ml.nn.Embedding(3, 2), np.ones((3, 2)))
