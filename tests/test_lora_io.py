"""Saving and loading adapters (minilora/lora/io.py): round trips, and every mismatch refused with nothing changed."""

import math

import numpy as np
import pytest

import minilora as ml
from minilora.lora import (
    LoraConfig,
    apply_lora,
    load_adapter,
    lora_layers,
    merge_lora,
    save_adapter,
)
from minilora.models import GPT, GPTConfig
from tests.helpers import lora_outputs as out
from tests.helpers import randomize_adapters
from tests.helpers import tiny_gpt as gpt

# ----------------------------------------------------------------------------
# saving and loading adapters


def test_adapter_round_trip_reproduces_outputs(tmp_path):
    model = randomize_adapters(apply_lora(gpt(), LoraConfig(r=2, target_modules="all-linear", use_rslora=True)))
    expected = out(model)
    save_adapter(model, tmp_path / "adapter")
    files = sorted(p.name for p in (tmp_path / "adapter").iterdir())
    assert files == ["adapter.npz", "adapter_config.json"]
    fresh = gpt()  # same base weights (same seed), no LoRA yet
    load_adapter(fresh, tmp_path / "adapter")
    np.testing.assert_array_equal(out(fresh), expected)
    assert fresh.blocks[0].attn.q_proj.scaling == pytest.approx(16 / math.sqrt(2))


def test_adapter_holds_only_the_adapter(tmp_path):
    model = apply_lora(gpt(), LoraConfig(r=2))
    save_adapter(model, tmp_path)
    keys = set(np.load(tmp_path / "adapter.npz", allow_pickle=False).files)
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
    (tmp_path / "adapter.npz").write_bytes((other / "adapter.npz").read_bytes())  # new weights, old config
    with pytest.raises(ValueError, match="interrupted save"):
        load_adapter(gpt(), tmp_path)
