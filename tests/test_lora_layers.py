"""LoRA layers (minilora/lora/lora_layers.py): identity at init, merge equivalence, rank, scaling,
frozen weights untouched, gradients, and LoRA on embeddings and RNNs."""


import numpy as np
import pytest

import minilora as ml
from minilora import nn
from minilora.autograd.ops import layer_ops as F
from minilora.lora import (
    LoraConfig,
    LoRAEmbedding,
    LoRALinear,
    LoRARNN,
    apply_lora,
    lora_layers,
    merge_and_unload,
    merge_lora,
    unmerge_lora,
)
from minilora.models import CharRNN, RNNConfig
from tests.helpers import LORA_IDX, randomize_adapters, t64
from tests.helpers import lora_outputs as out
from tests.helpers import tiny_gpt as gpt

TARGETS = {
    "qv": LoraConfig(r=2, target_modules=["q_proj", "v_proj"]),
    "all-linear": LoraConfig(r=2, target_modules="all-linear"),
    "embedding": LoraConfig(r=2, target_modules=["tok_emb"]),
    "regex": LoraConfig(r=2, target_modules=r"blocks\.1\.mlp\.fc_(in|out)"),
}


@pytest.mark.parametrize("name", TARGETS)
def test_zero_B_at_init_gives_the_base_outputs_exactly(name):
    model = gpt()
    base = out(model)
    apply_lora(model, TARGETS[name])
    np.testing.assert_array_equal(out(model), base)


def test_pissa_init_keeps_outputs_within_1e_10():
    model = gpt()
    base = out(model)
    apply_lora(model, LoraConfig(r=3, target_modules="all-linear", init_lora_weights="pissa"))
    np.testing.assert_allclose(out(model), base, rtol=0, atol=1e-10)
    layer = model.blocks[0].attn.q_proj
    assert np.abs(layer.lora_B.data).max() > 0.01  # a real decomposition, not zeros
    s = np.linalg.svd(layer.base.weight.data + layer.scaling * layer.lora_B.data @ layer.lora_A.data, compute_uv=False)
    np.testing.assert_allclose(np.linalg.svd(layer.scaling * layer.lora_B.data @ layer.lora_A.data, compute_uv=False)[:3], s[:3], rtol=1e-10)


@pytest.mark.parametrize("name", TARGETS)
def test_merged_unmerged_and_unloaded_agree_in_float64(name):
    model = gpt()
    base = out(model)
    apply_lora(model, TARGETS[name])
    randomize_adapters(model)
    unmerged = out(model)
    assert np.abs(unmerged - base).max() > 1e-3  # the adapters really change the function
    merge_lora(model)
    np.testing.assert_allclose(out(model), unmerged, rtol=0, atol=1e-10)
    unmerge_lora(model)
    np.testing.assert_allclose(out(model), unmerged, rtol=0, atol=1e-10)
    plain = merge_and_unload(model)
    assert not lora_layers(plain)
    assert not any(".base." in n or "lora_" in n for n, _ in plain.named_parameters())
    np.testing.assert_allclose(out(plain), unmerged, rtol=0, atol=1e-10)


def test_merged_and_unmerged_agree_in_float32():
    model = gpt("float32")
    apply_lora(model, LoraConfig(r=4, target_modules="all-linear"))
    randomize_adapters(model)
    unmerged = out(model)
    merge_lora(model)
    np.testing.assert_allclose(out(model), unmerged, rtol=0, atol=1e-5)


def test_unmerge_restores_the_base_weight_within_1e_12():
    model = gpt()
    apply_lora(model, LoraConfig(r=2, target_modules="all-linear"))
    randomize_adapters(model)
    before = {n: p.data.copy() for n, p in model.named_parameters()}
    merge_lora(model)
    assert not np.allclose(model.blocks[0].attn.q_proj.base.weight.data, before["blocks.0.attn.q_proj.base.weight"])
    unmerge_lora(model)
    for n, p in model.named_parameters():
        np.testing.assert_allclose(p.data, before[n], rtol=0, atol=1e-12)


@pytest.mark.parametrize("r", [1, 2, 4])
def test_rank_of_the_update_is_at_most_r(r):
    model = gpt()
    apply_lora(model, LoraConfig(r=r, target_modules="all-linear"))
    randomize_adapters(model)
    for _, layer in lora_layers(model):
        for delta in layer.delta_weights().values():
            assert np.linalg.matrix_rank(delta) <= r


@pytest.mark.parametrize("r, alpha, rslora, expected", [(8, 16, False, 2.0), (4, 16, True, 8.0), (3, 5, False, 5 / 3), (9, 6, True, 2.0)])
def test_scaling_is_alpha_over_r_or_over_sqrt_r(r, alpha, rslora, expected):
    layer = LoRALinear(nn.Linear(16, 16), r=r, lora_alpha=alpha, use_rslora=rslora)
    assert layer.scaling == expected


def test_the_update_is_scaling_times_B_A_x():
    layer = LoRALinear(nn.Linear(5, 4).double(), r=2, lora_alpha=3)
    randomize_adapters(layer)
    x = np.random.default_rng(0).normal(size=(3, 5))
    base = x @ layer.base.weight.data.T + layer.base.bias.data
    expected = base + 1.5 * x @ layer.lora_A.data.T @ layer.lora_B.data.T
    np.testing.assert_allclose(layer(ml.Tensor(x)).data, expected, rtol=1e-12)


def test_a_training_step_changes_only_lora_parameters():
    model = gpt("float32")
    apply_lora(model, LoraConfig(r=2, target_modules=["q_proj", "v_proj"]))
    randomize_adapters(model)
    frozen = {n: p.data.copy() for n, p in model.named_parameters() if not p.requires_grad}
    trainable = {n: p.data.copy() for n, p in model.named_parameters() if p.requires_grad}
    assert all("lora_" in n for n in trainable) and len(trainable) == 8
    opt = ml.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=1e-2)
    _, loss = model(LORA_IDX, LORA_IDX)
    formed = []  # which weight gradients Linear.backward actually computed
    original = F.Linear.backward

    def spy(self, grad):
        gx, gw, gb = original(self, grad)
        formed.append((self.needs_grad[1], gw))
        return gx, gw, gb

    F.Linear.backward = spy
    try:
        loss.backward()
    finally:
        F.Linear.backward = original
    params = dict(model.named_parameters())
    for weight_needs_grad, gw in formed:
        if not weight_needs_grad:
            assert gw is None, "a gradient was formed for a frozen weight"
    assert any(gw is not None for _, gw in formed)  # the adapters' own gradients were formed
    assert all(params[n].grad is None for n in frozen)
    opt.step()
    for n, before in frozen.items():
        assert np.array_equal(params[n].data, before), f"frozen {n} changed"
    assert all(not np.array_equal(params[n].data, before) for n, before in trainable.items())


def test_lora_layers_pass_gradcheck():
    layer = LoRALinear(nn.Linear(4, 3).double(), r=2)
    randomize_adapters(layer)
    assert ml.gradcheck(lambda x, a, b: layer(x), [t64((2, 4)), layer.lora_A, layer.lora_B])
    emb = LoRAEmbedding(nn.Embedding(6, 3).double(), r=2)
    randomize_adapters(emb)
    assert ml.gradcheck(lambda a, b: emb(np.array([[0, 5, 5], [2, 1, 0]])), [emb.lora_A, emb.lora_B])
    rnn = LoRARNN(nn.RNN(3, 4).double(), r=2)
    randomize_adapters(rnn)
    params = [rnn.lora_A_ih, rnn.lora_B_ih, rnn.lora_A_hh, rnn.lora_B_hh]
    assert ml.gradcheck(lambda x, *ps: rnn(x)[0], [t64((2, 5, 3))] + params)


def test_lora_on_the_rnn_weights_of_a_char_rnn():
    ml.manual_seed(0)
    model = CharRNN(RNNConfig(vocab_size=11, embed_dim=6, hidden_size=8)).double()
    base = out(model)
    apply_lora(model, LoraConfig(r=2, target_modules=["rnn"]))
    assert isinstance(model.rnn, LoRARNN)
    np.testing.assert_array_equal(out(model), base)
    assert [n for n, p in model.named_parameters() if p.requires_grad] == ["rnn.lora_A_ih", "rnn.lora_B_ih", "rnn.lora_A_hh", "rnn.lora_B_hh"]
    randomize_adapters(model)
    unmerged = out(model)
    assert np.abs(unmerged - base).max() > 1e-3
    merge_lora(model)
    np.testing.assert_allclose(out(model), unmerged, rtol=0, atol=1e-10)
    np.testing.assert_allclose(out(merge_and_unload(model)), unmerged, rtol=0, atol=1e-10)


def test_lora_rnn_learns():
    ml.manual_seed(0)
    model = CharRNN(RNNConfig(vocab_size=11, embed_dim=6, hidden_size=16))
    apply_lora(model, LoraConfig(r=4, lora_alpha=8, target_modules=["rnn", "head"]))
    opt = ml.optim.Adam([p for p in model.parameters() if p.requires_grad], lr=3e-2)
    data = np.tile(np.arange(11), (4, 2))[:, :16]  # a repeating pattern to learn
    losses = []
    for _ in range(60):
        _, loss = model(data[:, :-1], data[:, 1:])
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(loss.item())
    assert losses[-1] < 0.5 * losses[0]
