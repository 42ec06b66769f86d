"""Adapter files: the pair switches atomically, the stored scaling is checked against the
fields that define it, and an adapter is refused on a base it was not trained on, or on a
model it is already merged into (docs/lora.md §5.3). Each test replays a probe that once
lost an adapter or loaded one silently wrong."""

import json
import multiprocessing
import os
import signal

import numpy as np
import pytest

import minilora as ml
from minilora.lora import (
    LoraConfig,
    apply_lora,
    load_adapter,
    merge_and_unload,
    save_adapter,
    weights_path,
)
from minilora.lora import io as adapter_io
from minilora.models import GPT, GPTConfig


def gpt(seed=0):
    ml.manual_seed(seed)
    return GPT(GPTConfig(vocab_size=11, block_size=8, n_layer=1, n_head=2, n_embd=8)).double()


def adapted(seed=1, **config):
    """A LoRA model on gpt(0) whose factors are random (nonzero), so the adapter changes outputs."""
    model = apply_lora(gpt(), LoraConfig(r=2, **config))
    rng = np.random.default_rng(seed)
    for name, p in model.named_parameters():
        if "lora_" in name:
            p.data[...] = rng.normal(0, 0.3, p.shape)
    return model


IDS = np.array([[1, 2, 3, 4, 5]])


def out(model):
    return model(IDS)[0].data


def edit(directory, **changes):
    path = directory / "adapter_config.json"
    path.write_text(json.dumps({**json.loads(path.read_text()), **changes}))


def _save_and_die_between_the_writes(model, directory):
    real = adapter_io.atomic_write

    def write(path, fill):
        if path.name == "adapter_config.json":
            os.kill(os.getpid(), signal.SIGKILL)  # the weights are on disk, the config not yet switched
        return real(path, fill)

    adapter_io.atomic_write = write
    save_adapter(model, directory)
    os._exit(0)  # not reached


def test_a_kill_between_the_two_writes_leaves_the_old_adapter_loadable(tmp_path):
    old = adapted(seed=1)
    save_adapter(old, tmp_path)
    expected = out(old)
    new = adapted(seed=2)
    process = multiprocessing.get_context("fork").Process(target=_save_and_die_between_the_writes, args=(new, tmp_path))
    process.start()
    process.join()
    assert process.exitcode == -signal.SIGKILL
    assert len(list(tmp_path.glob("adapter-*.npz"))) == 2  # the new weights were written...
    np.testing.assert_array_equal(out(load_adapter(gpt(), tmp_path)), expected)  # ...and the old pair still loads
    save_adapter(new, tmp_path)  # the next save cleans up after the killed one
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(["adapter_config.json", weights_path(tmp_path).name])
    np.testing.assert_array_equal(out(load_adapter(gpt(), tmp_path)), out(new))


def test_re_saving_replaces_only_minilora_files(tmp_path):
    (tmp_path / "notes.txt").write_text("mine")
    (tmp_path / "adapter-draft.npz").write_bytes(b"also mine")
    save_adapter(adapted(seed=1), tmp_path)
    first = weights_path(tmp_path).name
    (tmp_path / f".{first}.tmp-abcd1234").write_bytes(b"left by a kill")
    save_adapter(adapted(seed=2), tmp_path)
    names = sorted(p.name for p in tmp_path.iterdir())
    assert names == sorted(["notes.txt", "adapter-draft.npz", "adapter_config.json", weights_path(tmp_path).name])
    assert weights_path(tmp_path).name != first


def test_a_foreign_adapter_config_is_not_overwritten(tmp_path):
    (tmp_path / "adapter_config.json").write_text('{"peft_type": "LORA", "r": 8}')
    with pytest.raises(ValueError, match="was not written by save_adapter; refusing to overwrite it"):
        save_adapter(adapted(), tmp_path)
    assert json.loads((tmp_path / "adapter_config.json").read_text()) == {"peft_type": "LORA", "r": 8}


@pytest.mark.parametrize("changes", [dict(lora_alpha=64), dict(use_rslora=True), dict(r=4), dict(scaling_value=3.0), dict(scaling="alpha/sqrt(r)")])
def test_an_edited_scaling_field_is_refused(tmp_path, changes):
    save_adapter(adapted(), tmp_path)
    edit(tmp_path, **changes)
    model = gpt()
    with pytest.raises(ValueError, match=r"was saved with scaling .* = [0-9.]+, but its r=[0-9]+, lora_alpha=.* give .*: adapter_config.json was edited"):
        load_adapter(model, tmp_path)
    np.testing.assert_array_equal(out(model), out(gpt()))  # nothing changed


def test_a_different_base_is_refused_unless_allowed(tmp_path):
    model = adapted()
    save_adapter(model, tmp_path)
    other = gpt(seed=5)  # same shapes, other weights
    before = out(other)
    with pytest.raises(ValueError, match=r"was trained on other base weights .*computes a function nobody trained.*allow_different_base=True"):
        load_adapter(other, tmp_path)
    np.testing.assert_array_equal(out(other), before)
    load_adapter(other, tmp_path, allow_different_base=True)
    assert not np.array_equal(out(other), before)
    np.testing.assert_array_equal(out(load_adapter(gpt(), tmp_path)), out(model))  # the right base loads silently


def test_the_fingerprint_covers_only_frozen_target_weights(tmp_path):
    model = adapted(bias="all")  # biases train with the adapter, so they are not part of the base's identity
    for name, p in model.named_parameters():
        if name.endswith("bias"):
            p.data += 1.0
    save_adapter(model, tmp_path)
    load_adapter(gpt(), tmp_path)


def test_an_adapter_already_merged_into_the_model_is_refused(tmp_path):
    model = adapted()
    save_adapter(model, tmp_path)
    merged = merge_and_unload(model.eval())
    before = out(merged)
    for allow in (False, True):
        with pytest.raises(ValueError, match=r"already merged into this model's weights \(merge_and_unload\).*add its update twice"):
            load_adapter(merged, tmp_path, allow_different_base=allow)
    np.testing.assert_array_equal(out(merged), before)


@pytest.mark.parametrize(
    "content, message",
    [
        ("[]", "adapter_config.json holds a JSON list, not the object save_adapter writes"),
        (None, r"holds a bad setting \(LoraConfig.target_modules must be a list of module names"),
    ],
)
def test_a_malformed_adapter_config_is_a_clear_error(tmp_path, content, message):
    save_adapter(adapted(), tmp_path)
    if content is None:
        edit(tmp_path, target_modules=5)
    else:
        (tmp_path / "adapter_config.json").write_text(content)
    with pytest.raises(ValueError, match=message):
        load_adapter(gpt(), tmp_path)


@pytest.mark.parametrize("name", ["../adapter.npz", "/tmp/adapter.npz", "weights.npz", 5])
def test_only_a_bare_weights_name_is_accepted(tmp_path, name):
    save_adapter(adapted(), tmp_path)
    edit(tmp_path, weights=name)
    with pytest.raises(ValueError, match="only a bare name like adapter-0123456789abcdef.npz"):
        load_adapter(gpt(), tmp_path)
