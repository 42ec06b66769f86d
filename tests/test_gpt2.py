"""GPT-2 checkpoints: tied embeddings, load_gpt2 / save_gpt2 against committed Transformers
fixtures (no torch needed), every refusal naming its key, and, where Transformers is
installed, both directions on fresh models."""

import json
import pathlib
import shutil

import numpy as np
import pytest

import minilora as ml
from minilora import hub
from minilora.hub import safetensors
from minilora.hub.gpt2 import CheckpointError
from minilora.models import GPT, GPTConfig

FIXTURES = pathlib.Path(__file__).parent / "fixtures"
TINY = FIXTURES / "gpt2_tiny"


def tiny_ids():
    return np.load(TINY / "input_ids.npy", allow_pickle=False)


# ----------------------------------------------------------------------------
# GPTConfig's additions


def test_defaults_are_unchanged():
    config = GPTConfig(vocab_size=11, block_size=8, n_layer=1, n_head=2, n_embd=16)
    assert (config.tie_word_embeddings, config.layer_norm_eps, config.n_inner, config.bias) == (False, 1e-5, None, True)
    ml.manual_seed(0)
    model = GPT(config)
    assert model.lm_head.weight is not model.tok_emb.weight
    assert model.num_parameters() == 1 * (12 * 16**2 + 13 * 16) + 2 * 16 + 11 * 16 + 8 * 16 + 11 * 16  # Eq. A5


def test_tied_embeddings_are_one_parameter():
    config = GPTConfig(vocab_size=11, block_size=8, n_layer=1, n_head=2, n_embd=16, tie_word_embeddings=True, layer_norm_eps=1e-6, n_inner=24)
    model = GPT(config)
    assert model.lm_head.weight is model.tok_emb.weight
    assert "lm_head.weight" not in model.state_dict()
    assert model.num_parameters() == (4 * 16 * 16 + 4 * 16 + 2 * 16 * 24 + 24 + 16 + 4 * 16) + 2 * 16 + 11 * 16 + 8 * 16  # Eq. A5 less VC
    assert model.blocks[0].mlp.fc_in.weight.shape == (24, 16) and model.ln_f.eps == 1e-6


def test_the_tied_gradient_is_the_sum_of_both_uses():
    """Eq. A6 in docs/math.md: gradchecked, and equal to an untied copy's two gradients added."""
    config = dict(vocab_size=7, block_size=5, n_layer=1, n_head=2, n_embd=4)
    tied = GPT(GPTConfig(**config, tie_word_embeddings=True)).double()
    idx = np.array([[1, 2, 3, 4], [6, 0, 5, 5]])
    targets = np.array([[2, 3, 4, 5], [0, 5, 5, 1]])
    weight = tied.tok_emb.weight
    assert ml.gradcheck(lambda w: tied(idx, targets)[1], [weight])

    untied = GPT(GPTConfig(**config)).double()
    untied.load_state_dict(tied.state_dict(), strict=False)
    untied.lm_head.weight.data = weight.data.copy()
    tied.zero_grad()
    tied(idx, targets)[1].backward()
    untied(idx, targets)[1].backward()
    both = untied.tok_emb.weight.grad + untied.lm_head.weight.grad
    assert np.abs(weight.grad - both).max() < 1e-12 and np.abs(untied.lm_head.weight.grad).max() > 1e-3


# ----------------------------------------------------------------------------
# The committed fixture: no torch needed


def test_fixture_logits_match_transformers():
    model = hub.load_gpt2(TINY)
    assert not model.training and model.config.tie_word_embeddings
    reference = np.load(TINY / "logits.npy", allow_pickle=False)
    logits = model(tiny_ids())[0].data
    assert logits.dtype == np.float32
    assert np.abs(logits - reference).max() < 1e-5


def test_save_then_load_is_exact(tmp_path):
    model = hub.load_gpt2(TINY)
    hub.save_gpt2(model, tmp_path / "copy")
    theirs, ours = safetensors.load(TINY / "model.safetensors"), safetensors.load(tmp_path / "copy" / "model.safetensors")
    assert set(ours) == set(theirs)  # the same keys Transformers writes, lm_head left out as tied
    assert all(np.array_equal(ours[k], theirs[k]) for k in theirs)
    back = hub.load_gpt2(tmp_path / "copy")
    assert np.array_equal(back(tiny_ids())[0].data, model(tiny_ids())[0].data)


@pytest.mark.parametrize("extra", [dict(bias=False), dict(tie_word_embeddings=False, n_inner=40, layer_norm_eps=1e-6)])
def test_any_gpt_survives_the_round_trip(tmp_path, extra):
    model = GPT(GPTConfig(vocab_size=13, block_size=9, n_layer=2, n_head=2, n_embd=8, **extra)).eval()
    back = hub.load_gpt2(hub.save_gpt2(model, tmp_path / "m"))
    idx = np.array([[1, 5, 12, 0, 3]])
    assert np.abs(back(idx)[0].data - model(idx)[0].data).max() < 1e-6  # bias=False comes back with zero biases


def copy_tiny(tmp_path):
    return pathlib.Path(shutil.copytree(TINY, tmp_path / "gpt2"))


def edit_config(path, **changes):
    config = json.loads((path / "config.json").read_text())
    config.update(changes)
    (path / "config.json").write_text(json.dumps(config))


def edit_weights(path, change):
    arrays = safetensors.load(path / "model.safetensors")
    change(arrays)
    safetensors.save(path / "model.safetensors", arrays, {"format": "pt"})


REFUSALS = {
    "missing tensor": (lambda p: edit_weights(p, lambda a: a.pop("transformer.h.1.mlp.c_fc.bias")), r"transformer\.h\.1\.mlp\.c_fc\.bias: missing"),
    "unexpected tensor": (lambda p: edit_weights(p, lambda a: a.update(extra=np.zeros(2, np.float32))), r"transformer\.extra: not a GPT-2 tensor"),
    "shape against config": (lambda p: edit_config(p, n_inner=64), r"transformer\.h\.0\.mlp\.c_fc\.weight: shape \(32, 128\), but config\.json needs \(32, 64\)"),
    "another architecture": (lambda p: edit_config(p, model_type="bert"), "model_type='bert'"),
    "exact GELU": (lambda p: edit_config(p, activation_function="gelu"), "activation_function='gelu'"),
    "layer-scaled attention": (lambda p: edit_config(p, scale_attn_by_inverse_layer_idx=True), "scale_attn_by_inverse_layer_idx"),
    "an untied lm_head in a tied model": (lambda p: edit_weights(p, lambda a: a.update({"lm_head.weight": a["transformer.wte.weight"] + 1})), "lm_head.weight differs"),
}


@pytest.mark.parametrize("case", REFUSALS)
def test_a_checkpoint_that_does_not_fit_is_refused_by_name(tmp_path, case):
    make, message = REFUSALS[case]
    path = copy_tiny(tmp_path)
    make(path)
    with pytest.raises(CheckpointError, match=message):
        hub.load_gpt2(path)


def test_pickled_checkpoints_are_refused_with_what_to_do(tmp_path):
    path = copy_tiny(tmp_path)
    (path / "model.safetensors").rename(path / "pytorch_model.bin")
    with pytest.raises(FileNotFoundError, match="safe_serialization"):
        hub.load_gpt2(path)


def test_older_layouts_load_too(tmp_path):
    # GPT2Model files have no "transformer." prefix; older files carry causal-mask buffers.
    path = copy_tiny(tmp_path)
    edit_weights(path, lambda a: a.update({k.removeprefix("transformer."): a.pop(k) for k in list(a)} | {"h.0.attn.bias": np.ones((1, 1, 4, 4), np.float32)}))
    logits = hub.load_gpt2(path)(tiny_ids())[0].data
    assert np.abs(logits - np.load(TINY / "logits.npy", allow_pickle=False)).max() < 1e-5


def test_sharded_checkpoints_load(tmp_path):
    path = copy_tiny(tmp_path)
    arrays = safetensors.load(path / "model.safetensors")
    (path / "model.safetensors").unlink()
    keys = list(arrays)
    shards = {"model-00001-of-00002.safetensors": keys[:10], "model-00002-of-00002.safetensors": keys[10:]}
    for shard, names in shards.items():
        safetensors.save(path / shard, {k: arrays[k] for k in names}, {"format": "pt"})
    weight_map = {k: shard for shard, names in shards.items() for k in names}
    (path / "model.safetensors.index.json").write_text(json.dumps({"metadata": {}, "weight_map": weight_map}))
    logits = hub.load_gpt2(path)(tiny_ids())[0].data
    assert np.abs(logits - np.load(TINY / "logits.npy", allow_pickle=False)).max() < 1e-5


def test_save_gpt2_refuses_a_model_with_an_adapter(tmp_path):
    from minilora.lora import LoraConfig, apply_lora

    model = apply_lora(hub.load_gpt2(TINY), LoraConfig(r=2))
    with pytest.raises(TypeError, match="blocks.0.attn.q_proj is a LoRALinear.*save_peft_adapter"):
        hub.save_gpt2(model, tmp_path / "x")
    assert not (tmp_path / "x").exists()


# ----------------------------------------------------------------------------
# Both directions against Transformers itself, where it is installed


@pytest.mark.parametrize("sizes", [
    dict(n_layer=2, n_head=2, n_embd=32, vocab_size=97),
    dict(n_layer=3, n_head=4, n_embd=24, vocab_size=50, n_inner=40, tie_word_embeddings=False, layer_norm_epsilon=1e-6),
])
def test_transformers_reads_what_minilora_writes_and_back(tmp_path, sizes):
    torch = pytest.importorskip("torch", reason="torch is not installed; the Transformers cross-check needs it")
    transformers = pytest.importorskip("transformers", reason="transformers is not installed; the cross-check needs it")
    torch.manual_seed(0)
    theirs = transformers.GPT2LMHeadModel(transformers.GPT2Config(n_positions=40, bos_token_id=0, eos_token_id=0, **sizes)).eval()
    theirs.generation_config.eos_token_id = None  # all 20 tokens, even if one of them is token 0
    theirs.save_pretrained(tmp_path / "theirs")
    ours = hub.load_gpt2(tmp_path / "theirs")
    prompt = np.array([[3, 1, 4, 1, 5, 9, 2, 6]])
    with torch.no_grad():
        reference = theirs(torch.tensor(prompt)).logits.numpy()
    assert np.abs(ours(prompt)[0].data - reference).max() < 1e-5

    hub.save_gpt2(ours, tmp_path / "ours")
    again, info = transformers.GPT2LMHeadModel.from_pretrained(tmp_path / "ours", output_loading_info=True)
    assert not any(info.get(k) for k in ("missing_keys", "unexpected_keys", "mismatched_keys")), info
    with torch.no_grad():
        assert np.abs(again.eval()(torch.tensor(prompt)).logits.numpy() - reference).max() < 1e-5
        greedy = theirs.generate(torch.tensor(prompt), max_new_tokens=20, do_sample=False, pad_token_id=0).numpy()
    assert greedy.shape == (1, 28)
    assert np.array_equal(ours.generate(prompt, 20, temperature=0), greedy)
