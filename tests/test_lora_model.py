"""Putting LoRA into a model (minilora/lora/model.py): choosing targets, trainable
parameters, and merging safely, with every misuse refused clearly."""

import warnings

import numpy as np
import pytest

from minilora import nn
from minilora.lora import (
    LoraConfig,
    LoRALinear,
    apply_lora,
    count_parameters,
    lora_layers,
    lora_state_dict,
    mark_only_lora_as_trainable,
    merge_lora,
)
from tests.helpers import randomize_adapters
from tests.helpers import tiny_gpt as gpt

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
    with pytest.raises(ValueError, match="positive integer"):
        LoraConfig(r=0)
    assert LoRALinear(nn.Linear(4, 3), r=8).lora_A.shape == (8, 4)  # r may exceed min(in, out), as in PEFT
    with pytest.raises(ValueError, match="PiSSA needs r <= min"):
        LoRALinear(nn.Linear(4, 3), r=4, init_lora_weights="pissa")
    with pytest.raises(ValueError, match="lora_alpha must be positive"):
        LoraConfig(lora_alpha=0)
    with pytest.raises(ValueError, match=r"lora_dropout must be in \[0, 1\)"):
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


def test_unmerge_without_merge_warns():
    layer = LoRALinear(nn.Linear(4, 4), r=2)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        assert layer.unmerge() is False
    assert "not merged" in str(caught[0].message)
