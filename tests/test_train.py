"""Training: reproducibility, exact resume, atomic checkpoints, stopping on nan, the CLI."""

import json
import re
import subprocess
import sys

import numpy as np
import pytest

from minilora import backend
from minilora.data import two_domain_corpus
from minilora.train import NonFiniteLossError, TrainConfig, load_checkpoint
from minilora.train import checkpoint as ckpt
from minilora.train.lm import load_model, train_language_model

TEXT = two_domain_corpus(seed=0, n_chars=20_000)[0]
GPT_SMALL = dict(block_size=16, n_layer=1, n_head=2, n_embd=16)


def config(**overrides):
    values = dict(max_iters=20, batch_size=4, block_size=16, eval_interval=5, eval_iters=2, warmup_iters=3, lr=3e-3)
    return TrainConfig(**{**values, **overrides})


def run(out=None, kind="gpt", model_config=GPT_SMALL, **overrides):
    model, tokenizer, trainer = train_language_model(kind, model_config, TEXT, config(**overrides), out=out, log=lambda *_: None, progress=False)
    return model, trainer


def losses(history):
    return [(h["step"], h["train_loss"], h["val_loss"]) for h in history]


@pytest.mark.parametrize("kind, model_config", [("gpt", GPT_SMALL), ("rnn", dict(embed_dim=8, hidden_size=16))])
def test_same_seed_gives_the_identical_loss_history(kind, model_config):
    _, a = run(kind=kind, model_config=model_config)
    _, b = run(kind=kind, model_config=model_config)
    assert losses(a.history) == losses(b.history)
    assert a.history[-1]["val_loss"] < a.history[0]["val_loss"]
    _, c = run(kind=kind, model_config=model_config, seed=1)
    assert losses(c.history) != losses(a.history)


def test_resumed_run_matches_an_uninterrupted_one(tmp_path, monkeypatch):
    full_model, full = run(out=tmp_path / "full")

    # Interrupt a second run right after its checkpoint at step 10.
    from minilora.train import trainer as trainer_module

    original_step = trainer_module.Trainer._evaluate_and_save

    def crash_after_step_10(self, elapsed):
        original_step(self, elapsed)
        if self.step == 10:
            raise KeyboardInterrupt

    monkeypatch.setattr(trainer_module.Trainer, "_evaluate_and_save", crash_after_step_10)
    with pytest.raises(KeyboardInterrupt):
        run(out=tmp_path / "resumed")
    monkeypatch.undo()
    assert load_checkpoint(tmp_path / "resumed")[0]["step"] == 10

    resumed_model, _, resumed = train_language_model(
        "gpt", GPT_SMALL, TEXT, config(), out=tmp_path / "resumed", resume=True, log=lambda *_: None, progress=False
    )
    assert losses(resumed.history) == losses(full.history)
    for (name, p), (_, q) in zip(full_model.named_parameters(), resumed_model.named_parameters()):
        np.testing.assert_array_equal(p.data, q.data, err_msg=name)


def test_a_crash_while_writing_leaves_the_old_checkpoint_intact(tmp_path, monkeypatch):
    model, trainer = run(out=tmp_path)
    before = (tmp_path / "config.json").read_bytes()
    meta_before, arrays_before = load_checkpoint(tmp_path)

    def dies_half_way(file, arrays):
        file.write(b"PK\x03\x04 half an npz")
        raise OSError("disk full (simulated)")

    monkeypatch.setattr(backend, "save_npz", dies_half_way)
    with pytest.raises(OSError, match="simulated"):
        trainer.step = 99
        trainer.save()
    after = json.loads((tmp_path / "config.json").read_text())
    announced = sorted({*json.loads(before)["pending"], "arrays-0000099.npz"})
    assert after.pop("pending") == announced  # announced before writing, so it could be cleaned up
    assert after == {k: v for k, v in json.loads(before).items() if k != "pending"}
    meta, arrays = load_checkpoint(tmp_path)
    assert meta["step"] == meta_before["step"] == 20
    assert all(np.array_equal(arrays[k], arrays_before[k]) for k in arrays)
    assert not [p for p in tmp_path.iterdir() if ".tmp-" in p.name]


def test_a_crash_between_the_two_files_keeps_a_consistent_checkpoint(tmp_path, monkeypatch):
    """New arrays written, config.json not yet switched: the old pair still loads."""
    model, trainer = run(out=tmp_path)
    real_write = ckpt.atomic_write

    def fail_on_config(path, write):
        if str(path).endswith("config.json") and (tmp_path / "arrays-0000025.npz").exists():
            raise OSError("power cut (simulated)")  # the switch to the new arrays, not the announcement
        return real_write(path, write)

    monkeypatch.setattr(ckpt, "atomic_write", fail_on_config)
    trainer.step = 25
    with pytest.raises(OSError):
        trainer.save()
    meta, arrays = load_checkpoint(tmp_path)
    assert meta["step"] == 20 and meta["arrays"] == "arrays-0000020.npz" and "arrays-0000025.npz" in meta["pending"]
    restored, _, _ = load_model(tmp_path)
    for (name, p), (_, q) in zip(model.named_parameters(), restored.named_parameters()):
        np.testing.assert_array_equal(p.data, q.data, err_msg=name)


def test_non_finite_loss_stops_naming_the_step_and_keeps_the_last_good_checkpoint(tmp_path, monkeypatch):
    from minilora.models import GPT

    original_forward = GPT.forward
    calls = {"train": 0}

    def poisoned(self, idx, targets=None):
        logits, loss = original_forward(self, idx, targets)
        if self.training:
            calls["train"] += 1
            if calls["train"] == 13:  # the 13th training step is step 12
                loss = loss * float("nan")
        return logits, loss

    monkeypatch.setattr(GPT, "forward", poisoned)
    with pytest.raises(NonFiniteLossError, match=r"loss became nan at step 12.*last good checkpoint \(step 10\)"):
        run(out=tmp_path)
    assert load_checkpoint(tmp_path)[0]["step"] == 10


def test_checkpoint_holds_no_pickles_and_a_readable_config(tmp_path):
    run(out=tmp_path)
    meta = json.loads((tmp_path / "config.json").read_text())
    assert meta["kind"] == "gpt" and meta["model_config"]["vocab_size"] == len(meta["tokenizer"]["chars"])
    with np.load(tmp_path / meta["arrays"], allow_pickle=False) as f:
        assert "model/lm_head.weight" in f.files and any(k.startswith("optim/") for k in f.files)
    assert (tmp_path / "loss.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_damaged_checkpoints_give_clear_errors(tmp_path):
    with pytest.raises(FileNotFoundError, match="config.json is missing"):
        load_checkpoint(tmp_path)
    (tmp_path / "config.json").write_text('{"arrays": "arrays-0000005.npz", "step": 5}')
    with pytest.raises(ckpt.CheckpointError, match="incomplete"):
        load_checkpoint(tmp_path)
    (tmp_path / "arrays-0000005.npz").write_bytes(b"not a zip")
    with pytest.raises(ValueError, match="not a readable .npz"):
        load_checkpoint(tmp_path)
    (tmp_path / "config.json").write_text("{broken")
    with pytest.raises(ValueError, match="not valid JSON"):
        load_checkpoint(tmp_path)


def test_rnn_with_a_frozen_random_projection_trains_and_keeps_it(tmp_path):
    cfg = dict(embed_dim=8, hidden_size=16, projection="orthogonal", proj_dim=24)
    model, trainer = run(out=tmp_path, kind="rnn", model_config=cfg)
    R = model.proj.weight.data
    np.testing.assert_allclose(R.T @ R, np.eye(8), atol=1e-5)  # still orthonormal columns: never trained
    restored, _, _ = load_model(tmp_path)
    np.testing.assert_array_equal(restored.proj.weight.data, R)


# ----------------------------------------------------------------------------
# the command line


def cli(*args, timeout=300):
    return subprocess.run([sys.executable, "-m", "minilora", *args], capture_output=True, text=True, timeout=timeout)


@pytest.mark.slow  # three commands, each a fresh interpreter
def test_cli_train_sample_eval(tmp_path):
    out = tmp_path / "run"
    common = ["--data", "builtin:domain_b", "--out", str(out), "--max-iters", "30", "--eval-interval", "10", "--eval-iters", "2"]
    small = ["--n-layer", "1", "--n-embd", "32", "--block-size", "32", "--batch-size", "8"]
    result = cli("train", *common, *small)
    assert result.returncode == 0, result.stderr
    assert "val loss" in result.stdout and "tok/s" in result.stderr and "ETA" in result.stderr
    assert (out / "config.json").exists() and (out / "loss.png").exists()

    result = cli("sample", "--ckpt", str(out), "--prompt", "CAPTAIN:", "--max-new-tokens", "40")
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("CAPTAIN:") and len(result.stdout) >= 40

    result = cli("eval", "--ckpt", str(out), "--data", "builtin:domain_b")
    assert result.returncode == 0, result.stderr
    assert "loss" in result.stdout and "perplexity" in result.stdout
    assert re.search(r"^eval \[#+\] \d+/\d+", result.stderr, re.M)  # progress on stderr, the result alone on stdout

    result = cli("train", *common, *small, "--max-iters", "40", "--resume")
    assert result.returncode == 0, result.stderr
    assert json.loads((out / "config.json").read_text())["step"] == 40


def test_cli_reports_bad_input_without_a_traceback(tmp_path):
    empty = tmp_path / "empty.txt"
    empty.write_text("")
    result = cli("train", "--data", str(empty), "--out", str(tmp_path / "x"))
    assert result.returncode == 1 and result.stderr.startswith("error:") and "Traceback" not in result.stderr
    result = cli("sample", "--ckpt", str(tmp_path / "missing"))
    assert result.returncode == 1 and "config.json is missing" in result.stderr
    result = cli("train", "--data", "builtin:nope", "--out", str(tmp_path / "y"))
    assert result.returncode == 1 and "domain_a" in result.stderr


def test_cli_eval_on_text_with_unseen_characters(tmp_path):
    out = tmp_path / "run"
    assert cli("train", "--data", "builtin:domain_a", "--out", str(out), "--max-iters", "1", "--eval-iters", "1", "--n-layer", "1", "--n-embd", "16").returncode == 0
    odd = tmp_path / "odd.txt"
    odd.write_text("Zebras say ü " * 20, encoding="utf-8")
    result = cli("eval", "--ckpt", str(out), "--data", str(odd))
    assert result.returncode == 1 and "'ü'" in result.stderr


@pytest.mark.slow  # trains a classifier to convergence
def test_classifier_beats_the_majority_baseline_by_a_wide_margin():
    from minilora.train.classify import train_classifier

    # A Transformer first sits at chance for ~250 steps while it finds the words that matter.
    cfg = TrainConfig(max_iters=500, batch_size=64, lr=2e-3, min_lr=2e-4, warmup_iters=20, eval_interval=100, eval_iters=4)
    quiet = dict(log=lambda *_: None, progress=False)
    _, order_aware, _ = train_classifier(dict(encoder="transformer", n_layer=2, n_head=4, n_embd=32), cfg, **quiet)
    _, order_blind, _ = train_classifier(dict(encoder="mean", n_embd=32), cfg, **quiet)
    assert abs(order_aware["majority_baseline"] - 0.5) < 0.05
    assert order_aware["val_accuracy"] > order_aware["majority_baseline"] + 0.3
    # Mean-pooled word embeddings cannot tell "not bad, but dull" from "dull, but not bad".
    assert order_blind["val_accuracy"] < 0.7 < order_aware["val_accuracy"]


def test_atomic_write_gives_files_the_usual_mode(tmp_path):
    import os

    from minilora.fileio import atomic_write

    atomic_write(tmp_path / "f.txt", lambda f: f.write(b"hi"))
    mask = os.umask(0)
    os.umask(mask)
    assert (tmp_path / "f.txt").stat().st_mode & 0o777 == 0o666 & ~mask
