"""What minilora guarantees about the files of a training run (docs/training.md, "What
minilora guarantees about your files"): a run never destroys what is in its directory,
only one process writes into it, a checkpoint's two files belong together, and every
way a checkpoint can fail to read is one clear error. Each test replays a probe that
once lost data or gave a silent wrong answer."""

import errno
import json
import multiprocessing
import os
import random
import signal
import subprocess
import sys
import time
import tracemalloc

import numpy as np
import pytest

from minilora.data import two_domain_corpus
from minilora.fileio import DirectoryLocked, WriteError, is_temp_file
from minilora.train import TrainConfig, load_checkpoint
from minilora.train import checkpoint as ckpt
from minilora.train.lm import load_model, train_language_model
from minilora.train.rundir import LOCK

TEXT = two_domain_corpus(seed=0, n_chars=4_000)[0]
GPT_TINY = dict(block_size=8, n_layer=1, n_head=1, n_embd=8)
QUIET = dict(log=lambda *_: None, progress=False)


def tiny(**overrides):
    values = dict(max_iters=6, batch_size=2, block_size=8, eval_interval=3, eval_iters=1, warmup_iters=1, lr=3e-3, min_lr=3e-4)
    return TrainConfig(**{**values, **overrides})


def train(out, **kwargs):
    options = {key: kwargs.pop(key) for key in ("resume", "overwrite") if key in kwargs}
    return train_language_model("gpt", GPT_TINY, TEXT, tiny(**kwargs), out=out, **options, **QUIET)


def listing(directory):
    return sorted(p.name for p in directory.iterdir())


# ----------------------------------------------------------------------------
# What a run may write into


def test_a_directory_holding_a_checkpoint_needs_resume_or_overwrite(tmp_path):
    train(tmp_path, max_iters=6)
    before = {name: (tmp_path / name).read_bytes() for name in listing(tmp_path)}
    with pytest.raises(ValueError, match=r"holds a checkpoint \(step 6\); continue it with --resume, replace it with --overwrite"):
        train(tmp_path, max_iters=3)
    assert {name: (tmp_path / name).read_bytes() for name in listing(tmp_path)} == before  # nothing touched
    _, _, trainer = train(tmp_path, max_iters=9, resume=True)
    assert load_checkpoint(tmp_path)[0]["step"] == 9 and trainer.history[-1]["step"] == 9
    train(tmp_path, max_iters=3, overwrite=True)
    assert load_checkpoint(tmp_path)[0]["step"] == 3


def test_only_files_minilora_wrote_are_ever_deleted(tmp_path):
    train(tmp_path, max_iters=3)
    mine = {"arrays-experiment1.npz": b"user data", "arrays-1.npz": b"also the user's", "notes.txt": b"keep"}
    for name, data in mine.items():
        (tmp_path / name).write_bytes(data)
    train(tmp_path, max_iters=9, resume=True)
    train(tmp_path, max_iters=3, overwrite=True)
    assert all((tmp_path / name).read_bytes() == data for name, data in mine.items())
    meta = load_checkpoint(tmp_path)[0]
    assert meta["files"] == ["arrays-0000003.npz", "config.json", "loss.png"]
    assert meta["pending"] == ["arrays-0000000.npz"] and not (tmp_path / "arrays-0000000.npz").exists()  # the step before, deleted
    assert listing(tmp_path) == sorted([LOCK, *meta["files"], *mine])


def test_a_foreign_directory_is_refused_before_anything_is_written(tmp_path):
    (tmp_path / "config.json").write_text('{"model": "somebody else\'s"}')
    with pytest.raises(ValueError, match="is not a minilora checkpoint.*will not overwrite it"):
        train(tmp_path, overwrite=True)
    assert json.loads((tmp_path / "config.json").read_text()) == {"model": "somebody else's"}
    other = tmp_path / "other"
    other.mkdir()
    (other / "loss.png").write_bytes(b"my plot")
    with pytest.raises(ValueError, match=r"not empty and holds no minilora checkpoint \(it has loss.png\)"):
        train(other)
    assert listing(other) == [LOCK, "loss.png"] and (other / "loss.png").read_bytes() == b"my plot"


def test_empty_out_and_a_file_as_out_are_refused(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    with pytest.raises(ValueError, match="output directory is an empty string"):
        train("")
    file = tmp_path / "run"
    file.write_text("a file")
    with pytest.raises(ValueError, match="is a file, not a directory"):
        train(file)
    assert listing(tmp_path) == ["run"] and file.read_text() == "a file"


def test_a_killed_first_save_does_not_block_the_next_run(tmp_path, monkeypatch):
    """Killed after config.json announced the arrays and the arrays were written: all of it is minilora's."""
    real_write = ckpt.atomic_write

    def die_before_switching(path, write):
        if path.name == "config.json" and (tmp_path / "arrays-0000000.npz").exists():
            raise KeyboardInterrupt
        return real_write(path, write)

    monkeypatch.setattr(ckpt, "atomic_write", die_before_switching)
    with pytest.raises(KeyboardInterrupt):
        train(tmp_path)
    monkeypatch.undo()
    assert listing(tmp_path) == [LOCK, "arrays-0000000.npz", "config.json"]
    with pytest.raises(ckpt.CheckpointError, match="has not finished its first checkpoint"):
        load_checkpoint(tmp_path)
    (tmp_path / ".arrays-0000003.npz.tmp-abc_1234").write_bytes(b"half")  # what a kill mid-write leaves
    train(tmp_path, max_iters=3, eval_interval=3)
    assert listing(tmp_path) == [LOCK, "arrays-0000003.npz", "config.json", "loss.png"]


def test_temp_file_names_are_matched_exactly():
    own = ckpt.OWN_FILES
    assert is_temp_file(".arrays-0000012.npz.tmp-k3j_9x2a", own) and is_temp_file(".config.json.tmp-abcdefgh", own)
    assert not is_temp_file(".arrays-experiment.npz.tmp-abcdefgh", own)  # not a name minilora writes
    assert not is_temp_file(".config.json.tmp-abc", own) and not is_temp_file("config.json.tmp-abcdefgh", own)


# ----------------------------------------------------------------------------
# One writer per directory (real processes, real SIGKILL)


def _train_forever(out, resume):
    """A training run that only ends when it is killed: a checkpoint after every step.

    Drawing loss.png with matplotlib takes most of a save here, so this process
    writes a stand-in instead, through the same atomic write: the kills land in
    minilora's file handling, not in matplotlib's layout code.
    """
    from minilora.fileio import atomic_write
    from minilora.train import trainer

    trainer.plot_history = lambda history, path, title: atomic_write(path, lambda f: f.write(b"\x89PNG stand-in"))
    cfg = tiny(max_iters=10**6, eval_interval=1, warmup_iters=1)
    try:
        train_language_model("gpt", GPT_TINY, TEXT, cfg, out=out, resume=resume, **QUIET)
    finally:
        os._exit(0)


def _start(out, resume):
    process = multiprocessing.get_context("fork").Process(target=_train_forever, args=(out, resume), daemon=True)
    process.start()
    return process


def _wait_for_step_above(out, step, process, timeout=60):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        assert process.is_alive(), "the training process died on its own"
        try:
            meta = load_checkpoint(out)[0]
            if meta["step"] > step:
                return meta["step"]
        except (FileNotFoundError, ckpt.CheckpointError):
            pass  # the very first checkpoint is still being written
        time.sleep(0.02)
    raise AssertionError(f"no checkpoint past step {step} within {timeout} s")


def _kill(process):
    os.kill(process.pid, signal.SIGKILL)
    process.join()
    assert process.exitcode == -signal.SIGKILL


def test_a_second_writer_is_refused_with_the_holders_pid_and_a_killed_holder_frees_the_directory(tmp_path):
    run, corpus = tmp_path / "run", tmp_path / "corpus.txt"
    corpus.write_text(TEXT, encoding="utf-8")
    first = _start(run, resume=False)
    try:
        _wait_for_step_above(run, 0, first)
        with pytest.raises(DirectoryLocked, match=rf"in use by another minilora process \(pid {first.pid}\)"):
            train(run, resume=True)
        cli = [sys.executable, "-m", "minilora", "train", "--data", str(corpus), "--out", str(run), "--resume"]
        result = subprocess.run(cli, capture_output=True, text=True, timeout=120)
        assert result.returncode == 1 and "Traceback" not in result.stderr
        assert f"in use by another minilora process (pid {first.pid})" in result.stderr
    finally:
        _kill(first)
    assert (run / LOCK).read_text().strip() == str(first.pid)  # the stale lock is still there...
    step = load_checkpoint(run)[0]["step"]
    _, _, trainer = train(run, resume=True, max_iters=step + 2, eval_interval=1)  # ...and does not block
    assert trainer.step == step + 2


def test_kill_loop_every_round_resumes_from_a_loadable_checkpoint(tmp_path):
    """SIGKILL a run at random points (a checkpoint after every step), resume, 24 times."""
    rng = random.Random(0)
    user_files = {"arrays-experiment1.npz": b"mine", "notes.txt": b"also mine"}
    last_step, rounds = -1, 24
    for round_ in range(rounds):
        resume = round_ > 0
        process = _start(tmp_path, resume)
        last_step = _wait_for_step_above(tmp_path, last_step, process)
        time.sleep(rng.uniform(0.0, 0.25))  # land anywhere in the next saves
        _kill(process)
        if round_ == 0:
            for name, data in user_files.items():
                (tmp_path / name).write_bytes(data)
        meta = load_checkpoint(tmp_path)[0]  # every round loads...
        assert meta["step"] >= last_step  # ...and never goes back
        last_step = meta["step"]
        model, _, _ = load_model(tmp_path)
        assert model.config.n_embd == 8
        owned = set(meta["files"]) | set(meta["pending"]) | {LOCK, *user_files}
        stray = [n for n in listing(tmp_path) if n not in owned and not is_temp_file(n, ckpt.OWN_FILES)]
        assert not stray, f"round {round_}: files no manifest accounts for: {stray}"
    _, _, trainer = train(tmp_path, resume=True, max_iters=last_step + 1, eval_interval=1)
    assert trainer.step == last_step + 1
    meta = load_checkpoint(tmp_path)[0]
    assert listing(tmp_path) == sorted([LOCK, "config.json", "loss.png", meta["arrays"], *user_files])
    assert all((tmp_path / n).read_bytes() == d for n, d in user_files.items())


# ----------------------------------------------------------------------------
# A checkpoint's files belong together


@pytest.fixture(scope="module")
def saved(tmp_path_factory):
    """A finished tiny run, and a second one with the same shapes but another seed."""
    a, b = tmp_path_factory.mktemp("a"), tmp_path_factory.mktemp("b")
    train(a)
    train(b, seed=1)
    return a, b


def copy_run(src, dst):
    dst.mkdir()
    for p in src.iterdir():
        (dst / p.name).write_bytes(p.read_bytes())
    return dst


def edit_config(directory, **changes):
    meta = json.loads((directory / "config.json").read_text())
    meta.update(changes)
    (directory / "config.json").write_text(json.dumps(meta))


def test_arrays_from_another_run_are_refused(saved, tmp_path):
    a, b = saved
    run = copy_run(a, tmp_path / "run")
    name = json.loads((a / "config.json").read_text())["arrays"]
    (run / name).write_bytes((b / name).read_bytes())  # same name, same shapes, other weights
    with pytest.raises(ckpt.CheckpointError, match="sha256 differs.*came from another run"):
        load_checkpoint(run)
    with pytest.raises(ckpt.CheckpointError):
        train(run, resume=True, max_iters=9)


@pytest.mark.parametrize("name", ["../../outside.npz", "/tmp/outside.npz", "sub/arrays-0000006.npz", "arrays-6.npz", 7, None])
def test_only_a_bare_arrays_name_inside_the_directory_is_accepted(saved, tmp_path, name):
    run = copy_run(saved[0], tmp_path / "run")
    edit_config(run, arrays=name)
    with pytest.raises(ckpt.CheckpointError, match="only a bare name like arrays-0000010.npz"):
        load_checkpoint(run)


@pytest.mark.parametrize("step", [-1, 1.5, "6", True, None])
def test_an_impossible_step_is_refused(saved, tmp_path, step):
    run = copy_run(saved[0], tmp_path / "run")
    edit_config(run, step=step)
    with pytest.raises(ckpt.CheckpointError, match=rf"config.json has step {step!r}; a step is an integer >= 0"):
        load_checkpoint(run)


def test_a_crafted_model_size_is_refused_before_anything_is_allocated(saved, tmp_path):
    run = copy_run(saved[0], tmp_path / "run")
    meta = json.loads((run / "config.json").read_text())
    edit_config(run, model_config={**meta["model_config"], "n_embd": 200_000, "n_head": 1})
    tracemalloc.start()
    try:
        with pytest.raises(ckpt.CheckpointError, match=r"describes a gpt of [\d,]+ parameters but arrays-0000006.npz holds [\d,]+"):
            load_model(run)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 50 * 2**20, f"{peak / 2**20:.0f} MiB allocated"


@pytest.mark.parametrize("content, reason", [("[]", "holds a JSON list, not the object"), ("{broken", "not valid JSON")])
def test_a_config_that_is_not_a_checkpoint_is_one_clear_error(saved, tmp_path, content, reason):
    run = copy_run(saved[0], tmp_path / "run")
    (run / "config.json").write_text(content)
    with pytest.raises(ckpt.CheckpointError, match=reason):
        load_model(run)


def test_a_checkpoint_without_a_tokenizer_says_so(saved, tmp_path):
    run = copy_run(saved[0], tmp_path / "run")
    meta = json.loads((run / "config.json").read_text())
    del meta["tokenizer"]
    (run / "config.json").write_text(json.dumps(meta))
    with pytest.raises(ckpt.CheckpointError, match="has no tokenizer"):
        load_model(run)


def test_every_one_byte_corruption_and_truncation_is_one_clear_error(saved, tmp_path):
    """With the checksum, and without it (a checkpoint from before checksums), where the
    parser itself meets the damage: only CheckpointError may come out."""
    run = copy_run(saved[0], tmp_path / "run")
    name = json.loads((run / "config.json").read_text())["arrays"]
    original = (run / name).read_bytes()
    expected = load_checkpoint(run)[1]
    rng = np.random.default_rng(0)
    n = len(original)
    headers = [*range(64), *range(n - 96, n)]  # the first zip and npy headers, the central directory
    for with_checksum, positions in ((True, rng.integers(0, n, 30)), (False, [*headers, *rng.integers(0, n, 60)])):
        if not with_checksum:
            meta = json.loads((run / "config.json").read_text())
            del meta["arrays_sha256"]
            (run / "config.json").write_text(json.dumps(meta))
        for position in map(int, positions):
            damaged = bytearray(original)
            damaged[position] ^= int(rng.integers(1, 256))
            for data, truncated in ((bytes(damaged), False), (original[:position], True)):
                (run / name).write_bytes(data)
                try:
                    arrays = load_checkpoint(run)[1]
                except ckpt.CheckpointError as err:
                    assert str(err).startswith(f"cannot read checkpoint {run}: ")
                    continue
                # Without a checksum a changed byte in a field nothing reads (a timestamp, say) is harmless,
                # but then the arrays must be exactly the saved ones: a wrong number is never returned.
                assert not with_checksum and not truncated, f"byte {position}: damage went unnoticed"
                assert arrays.keys() == expected.keys() and all(np.array_equal(arrays[k], expected[k]) for k in arrays)


@pytest.mark.parametrize("offset, value, why", [(6, 0x01, "encrypted"), (8, 0x63, "compression method")])
def test_unsupported_zip_features_are_one_clear_error(saved, tmp_path, offset, value, why):
    run = copy_run(saved[0], tmp_path / "run")
    meta = json.loads((run / "config.json").read_text())
    del meta["arrays_sha256"]  # reach the zip reader itself
    (run / "config.json").write_text(json.dumps(meta))
    path = run / meta["arrays"]
    data = bytearray(path.read_bytes())
    central = data.rfind(b"PK\x01\x02")  # the central directory entry's flags and method sit 2 bytes later
    data[offset] = value
    data[central + offset + 2] = value
    path.write_bytes(bytes(data))
    with pytest.raises(ckpt.CheckpointError, match="not a readable .npz"):
        load_checkpoint(run)


def test_an_array_header_that_claims_more_than_the_file_holds_is_refused_before_allocating(tmp_path):
    import io
    import zipfile

    from minilora import backend

    npy = io.BytesIO()
    np.lib.format.write_array_header_1_0(npy, {"descr": "<f4", "fortran_order": False, "shape": (10**12,)})
    npy.write(np.zeros(4, np.float32).tobytes())  # 16 bytes where the header promises 4 TB
    path = tmp_path / "crafted.npz"
    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr("w.npy", npy.getvalue())
    with pytest.raises(ValueError, match=r"w.npy claims shape \(1000000000000,\) \(4,000,000,000,000 bytes\) but holds 16 bytes"):
        backend.load_npz(path)


# ----------------------------------------------------------------------------
# A file system that refuses: clear messages, nothing damaged


def test_a_full_disk_is_a_clear_error_and_the_checkpoint_survives(saved, tmp_path, monkeypatch):
    from minilora import backend

    run = copy_run(saved[0], tmp_path / "run")
    before = load_checkpoint(run)

    def no_space(file, arrays):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(backend, "save_npz", no_space)
    with pytest.raises(WriteError, match=r"cannot write .*arrays-0000006.npz: No space left on device; its previous content, if any, is unchanged"):
        train(run, resume=True, max_iters=9)
    monkeypatch.undo()
    meta, arrays = load_checkpoint(run)
    assert meta["step"] == before[0]["step"] and all(np.array_equal(arrays[k], before[1][k]) for k in arrays)
    assert not [n for n in listing(run) if ".tmp-" in n]


def test_a_read_only_directory_is_a_clear_error(tmp_path, monkeypatch):
    import tempfile

    def refuse(*args, **kwargs):
        raise PermissionError(errno.EACCES, "Permission denied")

    run = tmp_path / "run"
    monkeypatch.setattr(tempfile, "mkstemp", refuse)
    with pytest.raises(WriteError, match=r"cannot write .*config.json: Permission denied"):
        train(run)


@pytest.mark.skipif(hasattr(os, "geteuid") and os.geteuid() == 0, reason="root may write into a read-only directory, so chmod proves nothing")
def test_a_read_only_directory_from_the_command_line(tmp_path):
    run = tmp_path / "run"
    run.mkdir()
    run.chmod(0o555)
    try:
        cli = [sys.executable, "-m", "minilora", "train", "--data", "builtin:domain_a", "--out", str(run), "--max-iters", "1"]
        result = subprocess.run(cli, capture_output=True, text=True, timeout=120)
    finally:
        run.chmod(0o755)
    assert result.returncode == 1 and "Traceback" not in result.stderr and "Permission denied" in result.stderr


def test_the_command_line_reports_each_refusal_in_one_line(saved, tmp_path):
    def cli(*args):
        result = subprocess.run([sys.executable, "-m", "minilora", *args], capture_output=True, text=True, timeout=120)
        assert result.returncode == 1 and "Traceback" not in result.stderr, result.stderr
        return result.stderr

    run = copy_run(saved[0], tmp_path / "run")
    train_args = ["train", "--data", "builtin:domain_a", "--max-iters", "1"]
    assert "holds a checkpoint (step 6); continue it with --resume, replace it with --overwrite" in cli(*train_args, "--out", str(run))
    assert "the output directory is an empty string" in cli(*train_args, "--out", "")
    (tmp_path / "file").write_text("x")
    assert "is a file, not a directory" in cli(*train_args, "--out", str(tmp_path / "file"))
    (run / "config.json").write_text("[]")
    assert f"cannot read checkpoint {run}: config.json holds a JSON list" in cli("sample", "--ckpt", str(run))


def test_a_trainer_may_fit_again_into_the_directory_it_wrote(tmp_path):
    _, _, trainer = train(tmp_path, max_iters=3)
    trainer.config.max_iters = 6  # continue the same run in the same process
    trainer.fit()
    assert load_checkpoint(tmp_path)[0]["step"] == 6
