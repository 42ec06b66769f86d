"""OFT: identity at init, W = W₀Rᵀ, merging, preserved neuron angles and hyperspherical
energy (which LoRA changes), apply_oft's targeting and freezing, and every misuse refused."""

import numpy as np
import pytest

import minilora as ml
import minilora.nn.functional as F
from minilora import nn
from minilora.lora import LoraConfig, apply_lora
from minilora.optim import Adam
from minilora.orthogonal import (
    OFTConfig,
    OFTLinear,
    apply_oft,
    hyperspherical_energy,
    merge_oft,
    neuron_cosines,
    oft_layers,
    orthogonality_error,
    unmerge_oft,
)
from tests.helpers import tiny_gpt as gpt

RNG = np.random.default_rng(0)
IDX = RNG.integers(0, 11, size=(2, 6))


def out(model):
    with ml.no_grad():
        return model(IDX)[0].data.copy()


def rotated_layer(in_f=6, out_f=5, block_size=3, scale=0.7):
    """An OFTLinear in float64 with random (non-identity) rotation blocks."""
    ml.manual_seed(1)
    layer = OFTLinear(nn.Linear(in_f, out_f).double(), block_size=block_size)
    layer.oft_S.data = RNG.normal(size=layer.oft_S.shape) * scale
    return layer


def test_oft_starts_as_the_base_model():
    model = gpt()
    before = out(model)
    apply_oft(model, target_modules="all-linear", block_size=4)
    np.testing.assert_allclose(out(model), before, rtol=0, atol=1e-12)
    for _, layer in oft_layers(model):
        np.testing.assert_array_equal(layer.rotation_matrix(), np.eye(layer.base.in_features))


def test_forward_is_the_linear_layer_with_weight_w0_r_transposed():
    layer = rotated_layer()
    R = layer.rotation_matrix()
    assert R.shape == (6, 6) and orthogonality_error(R) < 1e-12 and np.linalg.det(R) == pytest.approx(1.0)
    np.testing.assert_array_equal(R[:3, 3:], 0.0)  # block-diagonal: two 3 × 3 rotations
    x = RNG.normal(size=(2, 4, 6))
    expected = F.linear(ml.Tensor(x), ml.Tensor(layer.base.weight.data @ R.T), layer.base.bias).data
    np.testing.assert_allclose(layer(ml.Tensor(x)).data, expected, atol=1e-12)
    np.testing.assert_allclose(layer.merged_weight(), layer.base.weight.data @ R.T, atol=1e-15)


def test_gradcheck_through_the_rotation_parameters():
    layer = rotated_layer(in_f=4, out_f=3, block_size=2)
    x = ml.Tensor(RNG.normal(size=(5, 4)))
    assert ml.gradcheck(lambda S: layer(x), [layer.oft_S])


def test_merge_and_unmerge_give_the_same_outputs():
    layer = rotated_layer()
    x = ml.Tensor(RNG.normal(size=(7, 6)))
    w0 = layer.base.weight.data.copy()
    unmerged = layer(x).data
    expected = layer.merged_weight()
    assert layer.merge() and layer.merged
    np.testing.assert_array_equal(layer.base.weight.data, expected)
    np.testing.assert_array_equal(layer.merged_weight(), expected)  # not rotated a second time
    np.testing.assert_allclose(layer(x).data, unmerged, rtol=0, atol=1e-10)
    with pytest.warns(UserWarning, match="already merged"):
        assert not layer.merge()
    assert layer.unmerge() and not layer.merged
    np.testing.assert_allclose(layer.base.weight.data, w0, atol=1e-14)  # (W₀Rᵀ)R = W₀
    with pytest.warns(UserWarning, match="not merged"):
        assert not layer.unmerge()


def test_merging_a_whole_model_keeps_its_outputs():
    model = apply_oft(gpt(), target_modules=["q_proj", "v_proj", "fc_in"], r=2)
    for name, p in model.named_parameters():
        if name.endswith("oft_S"):
            p.data = RNG.normal(size=p.shape) * 0.5
    unmerged = out(model)
    merge_oft(model)
    np.testing.assert_allclose(out(model), unmerged, rtol=0, atol=1e-10)
    unmerge_oft(model)
    np.testing.assert_allclose(out(model), unmerged, rtol=0, atol=1e-10)


def test_the_rotation_keeps_every_angle_between_neurons_and_their_energy():
    """Eq. 20: WWᵀ = W₀RᵀRW₀ᵀ = W₀W₀ᵀ, so cosines and hyperspherical energy are unchanged."""
    layer = rotated_layer(in_f=12, out_f=10, block_size=4, scale=1.5)
    w0, w = layer.base.weight.data, layer.merged_weight()
    assert np.abs(w - w0).max() > 0.3  # a real rotation
    np.testing.assert_allclose(neuron_cosines(w), neuron_cosines(w0), atol=1e-10)
    assert hyperspherical_energy(w) == pytest.approx(hyperspherical_energy(w0), rel=1e-10)
    # The other side would not do: rotating the output dimension mixes neurons and changes their angles.
    R_out = layer.rotation_matrix()[:10, :10]
    assert np.abs(neuron_cosines(R_out @ w0) - neuron_cosines(w0)).max() > 0.05


def test_at_the_same_size_of_update_lora_changes_the_energy_and_oft_does_not():
    model = gpt()
    w0 = model.blocks[0].attn.q_proj.weight.data.copy()
    oft = OFTLinear(nn.Linear(8, 8).double(), block_size=4)
    oft.base.weight.data = w0.copy()
    oft.oft_S.data = RNG.normal(size=oft.oft_S.shape) * 0.3
    rotated = oft.merged_weight()
    size = np.linalg.norm(rotated - w0)
    assert size > 0.2 * np.linalg.norm(w0)  # a large change of the weight
    apply_lora(model, LoraConfig(r=2, target_modules=["q_proj"]))
    lora = model.blocks[0].attn.q_proj
    lora.lora_B.data = RNG.normal(size=lora.lora_B.shape)
    delta = lora.delta_weights()["weight"]
    adapted = w0 + delta * (size / np.linalg.norm(delta))  # LoRA's update, scaled to the same Frobenius size
    energy = hyperspherical_energy(w0)
    assert abs(hyperspherical_energy(rotated) / energy - 1.0) < 1e-12
    assert abs(hyperspherical_energy(adapted) / energy - 1.0) > 1e-3
    assert np.abs(neuron_cosines(adapted) - neuron_cosines(w0)).max() > 0.1


def test_hyperspherical_energy_is_the_sum_over_ordered_pairs():
    W = RNG.normal(size=(4, 3))
    unit = W / np.linalg.norm(W, axis=1, keepdims=True)
    brute = sum(1.0 / np.linalg.norm(unit[i] - unit[j]) for i in range(4) for j in range(4) if i != j)
    assert hyperspherical_energy(W) == pytest.approx(brute, rel=1e-14)
    assert hyperspherical_energy(3.0 * W) == pytest.approx(brute, rel=1e-14)  # lengths do not matter
    with pytest.raises(ValueError, match="neuron 0 points the same way"):
        hyperspherical_energy(np.array([[1.0, 0.0], [2.0, 0.0]]))
    with pytest.raises(ValueError, match="is zero and has no direction"):
        neuron_cosines(np.array([[1.0, 0.0], [0.0, 0.0]]))


def test_apply_oft_trains_only_the_rotations_and_training_keeps_them_rotations():
    model = apply_oft(gpt("float32"), OFTConfig(target_modules=["q_proj", "v_proj"], block_size=4))
    trainable = {n for n, p in model.named_parameters() if p.requires_grad}
    assert trainable == {f"blocks.{i}.attn.{m}.oft_S" for i in range(2) for m in ("q_proj", "v_proj")}
    assert model.oft_config.block_size == 4 and model.blocks[0].attn.q_proj.r == 2
    frozen = {n: p.data.copy() for n, p in model.named_parameters() if not p.requires_grad}
    energy = hyperspherical_energy(model.blocks[0].attn.q_proj.base.weight)
    optimizer = Adam([p for p in model.parameters() if p.requires_grad], lr=0.05)
    losses = []
    for _ in range(20):
        optimizer.zero_grad()
        _, loss = model(IDX, IDX)
        assert loss.dtype == np.float32
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
    assert losses[-1] < losses[0]  # a rotation of random weights can only do so much, but it learns
    for n, p in model.named_parameters():
        if not p.requires_grad:
            np.testing.assert_array_equal(p.data, frozen[n])
    layer = model.blocks[0].attn.q_proj
    assert np.abs(layer.oft_S.data).max() > 0.1  # R moved well away from I
    assert layer.oft_S.dtype == np.float32 and orthogonality_error(layer.rotation_matrix()) < 1e-5
    assert hyperspherical_energy(layer.merged_weight()) == pytest.approx(energy, rel=1e-5)


def test_modules_to_save_stay_trainable():
    model = apply_oft(gpt(), target_modules=["q_proj"], r=1, modules_to_save=["lm_head"])
    trainable = {n for n, p in model.named_parameters() if p.requires_grad}
    assert trainable == {"blocks.0.attn.q_proj.oft_S", "blocks.1.attn.q_proj.oft_S", "lm_head.weight"}
    assert model.blocks[0].attn.q_proj.block_size == 8


def test_apply_oft_refuses_misuse():
    with pytest.raises(ValueError, match="exactly one of r"):
        OFTConfig(target_modules=["q_proj"])
    with pytest.raises(ValueError, match="exactly one of r"):
        OFTConfig(r=2, block_size=4)
    with pytest.raises(ValueError, match="r must be a positive integer"):
        OFTConfig(r=0)
    with pytest.raises(ValueError, match=r"block_size=3 does not divide in_features=8.*Divisors of 8: 1, 2, 4, 8"):
        apply_oft(gpt(), target_modules=["q_proj"], block_size=3)
    with pytest.raises(TypeError, match=r"OFT supports Linear layers only.*tok_emb \(Embedding\)"):
        apply_oft(gpt(), target_modules=["tok_emb"], r=1)
    with pytest.raises(ValueError, match="matches no module"):
        apply_oft(gpt(), target_modules=["query"], r=1)
    with pytest.raises(TypeError, match="either an OFTConfig or keyword fields"):
        apply_oft(gpt(), OFTConfig(r=1), block_size=2)
    model = apply_oft(gpt(), target_modules=["q_proj"], r=1)
    with pytest.raises(ValueError, match="already has adapter layers"):
        apply_oft(model, target_modules=["v_proj"], r=1)
    with pytest.raises(ValueError, match="already has adapter layers"):
        apply_oft(apply_lora(gpt(), LoraConfig(r=1)), target_modules=["fc_in"], r=1)
    with pytest.raises(TypeError, match="wraps an nn.Linear"):
        OFTLinear(nn.Embedding(3, 4), r=1)


def test_a_failed_apply_leaves_the_model_untouched():
    model = gpt()
    before = out(model)
    with pytest.raises(ValueError, match="block_size=16 does not divide in_features=8"):
        apply_oft(model, target_modules=["fc_out", "q_proj"], block_size=16)  # fc_out (in 32) fits, q_proj (in 8) not
    with pytest.raises(AttributeError, match="no submodule"):
        apply_oft(model, target_modules=["q_proj"], r=1, modules_to_save=["head"])
    assert not oft_layers(model) and all(p.requires_grad for p in model.parameters())
    np.testing.assert_array_equal(out(model), before)


@pytest.mark.parametrize("device", ["numpy", "fake"])
def test_the_orthogonal_maps_and_oft_run_on_a_device_and_match_numpy(device):
    """The fake device refuses what CuPy refuses (host arrays mixed in, numpy functions on device arrays)."""
    S = RNG.normal(size=(2, 4, 4))
    x = RNG.normal(size=(3, 8))
    results = {}
    for where in ("numpy", device):
        ml.backend.use(where)
        try:
            ml.manual_seed(0)
            layer = OFTLinear(nn.Linear(8, 2).double(), r=2)
            layer.oft_S.data = ml.backend.asarray(S)
            out_ = layer(ml.Tensor(ml.backend.asarray(x)))
            out_.sum().backward()
            results[where] = [ml.backend.to_numpy(a) for a in (out_.data, layer.oft_S.grad, layer.merged_weight())]
            assert orthogonality_error(layer.rotation_matrix()) < 1e-12
        finally:
            ml.backend.use("numpy")
    for ours, reference in zip(results[device], results["numpy"]):
        np.testing.assert_allclose(ours, reference, rtol=1e-12, atol=1e-14)
