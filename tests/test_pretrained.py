"""The shipped base: its hash, its recorded losses, and the recipe that made it."""

import shutil

import pytest

from minilora import pretrained
from minilora.experiments import pretrain as recipe
from minilora.fileio import sha256_file


@pytest.fixture(scope="module")
def base():
    return pretrained.load("shakespeare")


def test_the_base_loads_in_float32_and_eval_mode(base):
    model, tokenizer = base
    assert not model.training
    assert all(str(p.dtype) == "float32" for p in model.parameters())
    assert tokenizer.vocab_size == model.config.vocab_size == 71
    assert tokenizer.decode(tokenizer.encode("KING LEAR:\nBlow, winds!\n")) == "KING LEAR:\nBlow, winds!\n"


def test_the_shipped_files_are_small_and_match_their_hashes():
    size = sum((pretrained.DIRECTORY / f"shakespeare.{s}").stat().st_size for s in ("npz", "json"))
    assert size < 8 * 1024 * 1024
    for suffix in ("npz", "json"):
        assert sha256_file(pretrained.DIRECTORY / f"shakespeare.{suffix}") == pretrained.BASES["shakespeare"][suffix]


@pytest.mark.parametrize("suffix", ["npz", "json"])
def test_a_changed_file_is_refused(tmp_path, suffix):
    for s in ("npz", "json"):
        shutil.copy(pretrained.DIRECTORY / f"shakespeare.{s}", tmp_path)
    path = tmp_path / f"shakespeare.{suffix}"
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0x01  # one flipped bit
    path.write_bytes(bytes(data))
    with pytest.raises(ValueError, match="damaged or was replaced"):
        pretrained.load("shakespeare", directory=tmp_path)


def test_a_missing_file_or_an_unknown_name_is_refused(tmp_path):
    shutil.copy(pretrained.DIRECTORY / "shakespeare.json", tmp_path)
    with pytest.raises(FileNotFoundError, match="missing its file"):
        pretrained.load("shakespeare", directory=tmp_path)
    with pytest.raises(ValueError, match="unknown base 'gpt5'"):
        pretrained.load("gpt5")


def test_float16_weights_keep_the_validation_loss():
    info = pretrained.info()
    assert abs(info["val_loss"] - info["val_loss_float32"]) <= 1e-3
    assert info["history"][-1]["step"] == info["train_config"]["max_iters"]


def test_the_loss_on_a_fixed_validation_sample_is_the_recorded_one(base):
    model, tokenizer = base
    check = pretrained.info()["check_loss"]
    assert recipe.evaluate_base(model, tokenizer, limit=check["batches"]) == pytest.approx(check["loss"], abs=1e-4)


@pytest.mark.slow
def test_the_recipe_reproduces_its_first_20_steps():
    recorded = pretrained.info()["first_losses"]
    assert len(recorded) == 20
    assert recipe.first_losses(20) == pytest.approx(recorded, abs=1e-4)
