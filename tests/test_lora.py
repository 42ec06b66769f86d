"""LoRA's invariants, each a test: identity at init, merge equivalence, rank, scaling,
frozen weights untouched, adapters that round-trip, and every misuse refused clearly."""

import math
import warnings

import numpy as np
import pytest

import minilora as ml
from minilora import nn
from minilora.lora import (
    LoraConfig,
    LoRAEmbedding,
    LoRALinear,
    LoRARNN,
    apply_lora,
    count_parameters,
    load_adapter,
    lora_layers,
    lora_state_dict,
    mark_only_lora_as_trainable,
    merge_and_unload,
    merge_lora,
    save_adapter,
    weights_path,
    unmerge_lora,
)
from minilora.autograd.ops import layers as F
from minilora.models import GPT, CharRNN, GPTConfig, RNNConfig
from tests.conftest import t64

IDX = np.random.default_rng(0).integers(0, 11, size=(2, 6))


def gpt(dtype="float64", seed=0):
    ml.manual_seed(seed)
    return GPT(GPTConfig(vocab_size=11, block_size=8, n_layer=2, n_head=2, n_embd=8)).to_dtype(dtype)


def randomize_adapters(model, seed=1):
    """Non-identity adapters: random B (and A), so B·A ≠ 0."""
    rng = np.random.default_rng(seed)
    for name, p in model.named_parameters():
        if name.split(".")[-1].startswith("lora_"):
            p.data = rng.normal(scale=0.3, size=p.shape).astype(p.dtype)
    return model


def out(model, idx=IDX):
    with ml.no_grad():
        return model(idx)[0].data.copy()


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
    _, loss = model(IDX, IDX)
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


# ----------------------------------------------------------------------------
# choosing targets and trainable parameters


def test_target_matching_rules():
    model = gpt()
    apply_lora(model, LoraConfig(target_modules=["q_proj", "blocks.1.attn.v_proj"], r=2))
    assert [n for n, _ in lora_layers(model)] == ["blocks.0.attn.q_proj", "blocks.1.attn.q_proj", "blocks.1.attn.v_proj"]
    model = apply_lora(gpt(), LoraConfig(target_modules="all-linear", r=2))
    names = [n for n, _ in lora_layers(model)]
    assert "lm_head" not in names and len(names) == 2 * 6


def test_target_that_matches_nothing_lists_the_modules():
    with pytest.raises(ValueError, match=r"'query' matches no module of GPT; its modules are: tok_emb, pos_emb"):
        apply_lora(gpt(), LoraConfig(target_modules=["query"]))
    with pytest.raises(ValueError, match="matches no module"):
        apply_lora(gpt(), LoraConfig(target_modules=r"attn\.query"))


def test_unsupported_target_type_and_double_apply():
    with pytest.raises(TypeError, match=r"blocks.0.ln1 \(LayerNorm\)"):
        apply_lora(gpt(), LoraConfig(target_modules=["ln1"]))
    model = apply_lora(gpt(), LoraConfig(r=2))
    with pytest.raises(ValueError, match="already has LoRA"):
        apply_lora(model, LoraConfig(r=2))


def test_bad_config_values():
    with pytest.raises(ValueError, match="bias"):
        LoraConfig(bias="some")
    with pytest.raises(ValueError, match="init_lora_weights"):
        LoraConfig(init_lora_weights="xavier")
    with pytest.raises(ValueError, match=r"LoraConfig.r must be an integer >= 1, got 0"):
        LoraConfig(r=0)
    assert LoRALinear(nn.Linear(4, 3), r=8).lora_A.shape == (8, 4)  # r may exceed min(in, out), as in PEFT
    with pytest.raises(ValueError, match="PiSSA needs r <= min"):
        LoRALinear(nn.Linear(4, 3), r=4, init_lora_weights="pissa")
    with pytest.raises(ValueError, match=r"LoraConfig.lora_alpha must be a finite number in \(0, inf\)"):
        LoraConfig(lora_alpha=0)
    with pytest.raises(ValueError, match=r"lora_dropout must be a finite number in \[0, 1\)"):
        LoraConfig(lora_dropout=1.5)
    with pytest.raises(ValueError, match="LoRAEmbedding supports init_lora_weights='default' only"):
        apply_lora(gpt(), LoraConfig(target_modules=["tok_emb"], init_lora_weights="pissa"))


@pytest.mark.parametrize("bias, expected", [("none", 0), ("lora_only", 4), ("all", None)])
def test_bias_options(bias, expected):
    model = apply_lora(gpt(), LoraConfig(r=2, bias=bias))
    trainable_biases = [n for n, p in model.named_parameters() if p.requires_grad and n.endswith("bias")]
    if expected is None:
        assert len(trainable_biases) == sum(n.endswith("bias") for n, _ in model.named_parameters())
    else:
        assert len(trainable_biases) == expected
        assert all(".base.bias" in n for n in trainable_biases)


def test_modules_to_save_stay_trainable_and_are_saved():
    model = apply_lora(gpt(), LoraConfig(r=2, modules_to_save=["lm_head"]))
    assert model.lm_head.weight.requires_grad
    assert "lm_head.weight" in lora_state_dict(model)
    with pytest.raises(AttributeError, match="no submodule"):
        apply_lora(gpt(), LoraConfig(r=2, modules_to_save=["classifier"]))


def test_parameter_count():
    model = gpt()
    total_before = model.num_parameters()
    apply_lora(model, LoraConfig(r=2, target_modules=["q_proj", "v_proj"]))
    total, trainable, pct = count_parameters(model)
    assert trainable == 2 * 2 * 2 * (8 + 8) and total == total_before + trainable
    assert pct == pytest.approx(100 * trainable / total)


def test_mark_only_lora_as_trainable_can_be_reapplied():
    model = apply_lora(gpt(), LoraConfig(r=2))
    model.requires_grad_(True)
    mark_only_lora_as_trainable(model)
    assert all(("lora_" in n) == p.requires_grad for n, p in model.named_parameters())


# ----------------------------------------------------------------------------
# merging safely


def test_merge_refused_in_train_mode_with_active_dropout():
    model = apply_lora(gpt(), LoraConfig(r=2, lora_dropout=0.1))
    with pytest.raises(RuntimeError, match=r"model.eval\(\)"):
        merge_lora(model)
    assert not any(layer.merged for _, layer in lora_layers(model))
    merge_lora(model.eval())
    assert all(layer.merged for _, layer in lora_layers(model))


def test_merging_twice_warns_and_does_nothing():
    model = randomize_adapters(apply_lora(gpt(), LoraConfig(r=2)))
    merge_lora(model)
    weights = model.blocks[0].attn.q_proj.base.weight.data.copy()
    with pytest.warns(UserWarning, match="already merged"):
        merge_lora(model)
    np.testing.assert_array_equal(model.blocks[0].attn.q_proj.base.weight.data, weights)


def test_safe_merge_refuses_non_finite_and_leaves_everything_untouched():
    model = randomize_adapters(apply_lora(gpt(), LoraConfig(r=2)))
    model.blocks[1].attn.v_proj.lora_B.data[0, 0] = np.inf
    before = {n: p.data.copy() for n, p in model.named_parameters()}
    with pytest.raises(ValueError, match="non-finite"):
        merge_lora(model, safe=True)
    for n, p in model.named_parameters():
        np.testing.assert_array_equal(p.data, before[n])
    assert not any(layer.merged for _, layer in lora_layers(model))


# ----------------------------------------------------------------------------
# saving and loading adapters


def test_adapter_round_trip_reproduces_outputs(tmp_path):
    model = randomize_adapters(apply_lora(gpt(), LoraConfig(r=2, target_modules="all-linear", use_rslora=True)))
    expected = out(model)
    save_adapter(model, tmp_path / "adapter")
    files = sorted(p.name for p in (tmp_path / "adapter").iterdir())
    assert files == sorted([weights_path(tmp_path / "adapter").name, "adapter_config.json"])
    fresh = gpt()  # same base weights (same seed), no LoRA yet
    load_adapter(fresh, tmp_path / "adapter")
    np.testing.assert_array_equal(out(fresh), expected)
    assert fresh.blocks[0].attn.q_proj.scaling == pytest.approx(16 / math.sqrt(2))


def test_adapter_holds_only_the_adapter(tmp_path):
    model = apply_lora(gpt(), LoraConfig(r=2))
    save_adapter(model, tmp_path)
    keys = set(np.load(weights_path(tmp_path), allow_pickle=False).files)
    assert keys == {n for n, _ in model.named_parameters() if "lora_" in n}


def test_mismatched_adapter_is_refused_and_nothing_changes(tmp_path):
    save_adapter(apply_lora(gpt(), LoraConfig(r=2)), tmp_path / "r2")
    other = apply_lora(gpt(), LoraConfig(r=4))
    with pytest.raises(ValueError, match="r=2, but the model's LoRA has r=4"):
        load_adapter(other, tmp_path / "r2")
    wider = GPT(GPTConfig(vocab_size=11, block_size=8, n_layer=2, n_head=2, n_embd=16)).double()
    before = {n: p.data.copy() for n, p in wider.named_parameters()}
    with pytest.raises(ValueError, match=r"blocks.0.attn.q_proj.lora_A: adapter \(2, 8\) vs model \(2, 16\)"):
        load_adapter(wider, tmp_path / "r2")
    assert not lora_layers(wider)
    assert all(np.array_equal(p.data, before[n]) for n, p in wider.named_parameters())


def test_adapter_errors(tmp_path):
    with pytest.raises(ValueError, match="apply_lora"):
        save_adapter(gpt(), tmp_path)
    merged = merge_lora(apply_lora(gpt(), LoraConfig(r=2)))
    with pytest.raises(ValueError, match="unmerge_lora"):
        save_adapter(merged, tmp_path)
    with pytest.raises(FileNotFoundError, match="adapter_config.json is missing"):
        load_adapter(gpt(), tmp_path / "nowhere")
    (tmp_path / "bad").mkdir()
    (tmp_path / "bad" / "adapter_config.json").write_text("{not json")
    with pytest.raises(ValueError, match="not valid JSON"):
        load_adapter(gpt(), tmp_path / "bad")


def test_unmerge_without_merge_warns():
    layer = LoRALinear(nn.Linear(4, 4), r=2)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        assert layer.unmerge() is False
    assert "not merged" in str(caught[0].message)


def test_loading_into_a_merged_model_is_refused(tmp_path):
    model = randomize_adapters(apply_lora(gpt(), LoraConfig(r=2)))
    save_adapter(model, tmp_path)
    merge_lora(model)
    with pytest.raises(ValueError, match="unmerge_lora"):
        load_adapter(model, tmp_path)


def test_partial_adapter_is_refused(tmp_path):
    save_adapter(apply_lora(gpt(), LoraConfig(r=2)), tmp_path)
    ml.manual_seed(0)
    deeper = GPT(GPTConfig(vocab_size=11, block_size=8, n_layer=3, n_head=2, n_embd=8)).double()
    with pytest.raises(ValueError, match="blocks.2.attn.q_proj.lora_A: missing from the adapter"):
        load_adapter(deeper, tmp_path)
    with pytest.raises(ValueError, match="missing from the adapter"):
        load_adapter(apply_lora(deeper, LoraConfig(r=2)), tmp_path)


@pytest.mark.parametrize("field, value", [("init_lora_weights", "pissa"), ("bias", "all"), ("modules_to_save", ["lm_head"])])
def test_every_field_that_changes_the_function_must_match(tmp_path, field, value):
    save_adapter(apply_lora(gpt(), LoraConfig(r=2, **{field: value})), tmp_path)
    with pytest.raises(ValueError, match=f"has {field}="):
        load_adapter(apply_lora(gpt(), LoraConfig(r=2)), tmp_path)


def test_pissa_adapter_round_trips_into_a_plain_model(tmp_path):
    model = randomize_adapters(apply_lora(gpt(), LoraConfig(r=2, init_lora_weights="pissa", target_modules="all-linear")))
    expected = out(model)
    save_adapter(model, tmp_path)
    fresh = load_adapter(gpt(), tmp_path)
    # The base rewritten by PiSSA (W0 - s·B0A0) is rebuilt from the same pretrained weights.
    np.testing.assert_allclose(out(fresh), expected, rtol=0, atol=1e-10)


def test_an_interrupted_save_is_detected(tmp_path):
    save_adapter(randomize_adapters(apply_lora(gpt(), LoraConfig(r=2, lora_alpha=4))), tmp_path)
    other = tmp_path / "other"
    save_adapter(randomize_adapters(apply_lora(gpt(), LoraConfig(r=2, lora_alpha=64)), seed=5), other)
    weights_path(tmp_path).write_bytes(weights_path(other).read_bytes())  # new weights, old config
    with pytest.raises(ValueError, match="interrupted save"):
        load_adapter(gpt(), tmp_path)
