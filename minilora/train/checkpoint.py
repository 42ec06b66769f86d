"""Checkpoints: arrays in an .npz (never pickled), everything else in a JSON file.

A checkpoint directory holds

* ``config.json``: the model's kind and config, the tokenizer, the step, the
  optimizer's hyperparameters and step counts, the random generator's state,
  the loss history, the name and sha256 of the arrays file that belongs to
  it, and a manifest: ``files``, the names of this checkpoint, and
  ``pending``, arrays files minilora is about to write or to delete;
* ``arrays-<step>.npz``: the parameters (``model/<name>``) and the optimizer's
  moment arrays (``optim/<i>/<key>``).

A save goes in three atomic moves. ``config.json`` first announces the new
arrays file in ``pending``; the arrays are written under that name; then
``config.json`` switches to them, by ``os.replace`` (atomic on POSIX and
Windows). A crash at any point leaves ``config.json`` naming a complete arrays
file, the new one or the old one, and every file minilora may have left is
listed in it. Only then are older arrays files deleted (they stay listed in
``pending`` until they are gone), and only names the manifest lists: a file
minilora did not write is never touched. The sha256
ties the two files together, so arrays from another run, or a damaged file,
are refused on load.
"""

import contextlib
import json
import pathlib
import re

from minilora import backend, validate
from minilora.fileio import atomic_write, is_temp_file, sha256_file

CONFIG = "config.json"
ARRAYS = r"arrays-\d{7}\.npz"  # the only arrays-file names a checkpoint may name: bare, inside its directory
OWN_FILES = rf"{re.escape(CONFIG)}|loss\.png|{ARRAYS}"  # what minilora writes into a run directory


class CheckpointError(ValueError):
    """A checkpoint that cannot be read: damaged, truncated, mixed from two runs, or not minilora's."""

    def __init__(self, directory, reason):
        super().__init__(f"cannot read checkpoint {directory}: {reason}")


def save_checkpoint(directory, model, kind, model_config, tokenizer=None, optimizer=None, step=0, extra=None, files=()):
    """Write a checkpoint of ``model`` (and ``optimizer``) to ``directory``.

    ``kind`` names the model class ("gpt", "rnn", "classifier"), ``model_config``
    is its config as a dict, ``extra`` any JSON-able facts (train config, history),
    ``files`` the names of other files the caller writes beside it (a plot), listed
    in the manifest. The caller should hold the directory's lock (``Trainer`` does).
    """
    directory = pathlib.Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    step = validate.integer("save_checkpoint", "step", step, 0)
    arrays = {f"model/{name}": array for name, array in model.state_dict().items()}
    meta = {"kind": kind, "model_config": model_config, "step": step, "rng_state": backend.get_rng_state()}
    if tokenizer is not None:
        meta["tokenizer"] = tokenizer.to_dict()
    if optimizer is not None:
        state = optimizer.state_dict()
        scalars = {}
        for i, s in state["state"].items():
            for key, value in s.items():
                if getattr(value, "ndim", 0) > 0:
                    arrays[f"optim/{i}/{key}"] = backend.to_numpy(value)
                else:
                    scalars.setdefault(str(i), {})[key] = value
        meta["optimizer"] = {"param_groups": state["param_groups"], "scalars": scalars}
    meta.update(extra or {})
    name = f"arrays-{step:07d}.npz"
    previous = read_manifest(directory)
    if previous is None:
        raise ValueError(f"{directory / CONFIG} was not written by minilora; refusing to overwrite it (choose another directory)")
    old_meta, owned = previous
    # 1. Announce the new name, so a kill before step 3 leaves no file the manifest does not list.
    # (With no checkpoint yet, config.json is a marker: this run's kind, no arrays, the pending names.)
    _write_json(directory / CONFIG, {**(old_meta or {"kind": kind}), "pending": sorted(set(old_meta.get("pending", [])) | {name})})
    # 2. The arrays, complete and fsynced, under their own name.
    atomic_write(directory / name, lambda f: backend.save_npz(f, arrays))
    # 3. Switch to them. The older arrays stay listed (in pending) until they are gone, so
    #    a kill between this switch and their deletion leaves nothing unaccounted for.
    current = sorted({CONFIG, name, *files})
    stale = sorted(n for n in owned - set(current) if re.fullmatch(ARRAYS, n) and (directory / n).exists())
    meta.update(arrays=name, arrays_sha256=sha256_file(directory / name), files=current, pending=stale)
    _write_json(directory / CONFIG, meta)
    for old in stale:  # only arrays: config.json and plots are replaced, never deleted
        (directory / old).unlink(missing_ok=True)
    for litter in directory.iterdir():
        if is_temp_file(litter.name, OWN_FILES):  # half-written files a kill left behind
            litter.unlink(missing_ok=True)
    return directory


def read_manifest(directory):
    """(config dict, set of file names minilora wrote here) for the config in ``directory``;
    ({}, empty set) where there is none, and None where its config.json is not minilora's."""
    path = pathlib.Path(directory) / CONFIG
    if not path.exists():
        return {}, set()
    try:
        meta = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    if not isinstance(meta, dict) or "kind" not in meta or not (isinstance(meta.get("arrays"), str) or ("arrays" not in meta and "pending" in meta)):
        return None
    files = meta.get("files", [CONFIG, meta["arrays"], "loss.png"] if "arrays" in meta else [CONFIG])  # before manifests
    return meta, {f for f in [*files, *meta.get("pending", [])] if isinstance(f, str) and re.fullmatch(OWN_FILES, f)}


def load_checkpoint(directory):
    """Read a checkpoint: (meta dict from config.json, dict of arrays).

    Every way a checkpoint can fail to read (damaged JSON, a missing, truncated,
    corrupted or foreign arrays file, a name that points outside the directory,
    an impossible step) raises one CheckpointError that says which and why.
    """
    directory = pathlib.Path(directory)
    config_path = directory / CONFIG
    if not config_path.is_file():
        raise FileNotFoundError(f"no checkpoint in {directory}: {CONFIG} is missing (train one with `python -m minilora train --out {directory}`)")
    meta = read_config(directory)
    name = meta.get("arrays")
    if "arrays" not in meta and "pending" in meta:
        raise CheckpointError(directory, "the run there has not finished its first checkpoint yet (it was stopped before its first evaluation)")
    if not isinstance(name, str) or not re.fullmatch(ARRAYS, name):
        raise CheckpointError(directory, f"{CONFIG} names the arrays file {name!r}; only a bare name like arrays-0000010.npz, inside the directory, is accepted")
    _check_step(meta.get("step"), directory)
    path = directory / name
    if not path.is_file():
        raise CheckpointError(directory, f"{CONFIG} names {name}, which is missing; the checkpoint is incomplete")
    expected = meta.get("arrays_sha256")  # absent only in checkpoints written before checksums
    if expected is not None and expected != sha256_file(path):
        raise CheckpointError(directory, f"{name} is not the file {CONFIG} was written with (its sha256 differs): it is damaged, or it came from another run")
    try:
        return meta, backend.load_npz(path)
    except ValueError as err:
        raise CheckpointError(directory, str(err)) from err


def read_config(directory):
    """The JSON object in ``directory/config.json``, or a CheckpointError saying why not."""
    path = pathlib.Path(directory) / CONFIG
    try:
        meta = json.loads(path.read_text(encoding="utf-8"))
    except (ValueError, OSError) as err:  # JSONDecodeError and UnicodeDecodeError are ValueErrors
        raise CheckpointError(directory, f"{CONFIG} is not valid JSON ({err}); the checkpoint is damaged") from err
    if not isinstance(meta, dict):
        raise CheckpointError(directory, f"{CONFIG} holds a JSON {type(meta).__name__}, not the object minilora writes")
    return meta


@contextlib.contextmanager
def reading(directory):
    """Turn a malformed field met while restoring (a missing key, a wrong type or shape) into a CheckpointError."""
    try:
        yield
    except CheckpointError:
        raise
    except (KeyError, TypeError, ValueError, IndexError, AttributeError) as err:
        raise CheckpointError(directory, f"{type(err).__name__}: {err}") from err


def model_from_checkpoint(directory, meta, arrays):
    """The model a checkpoint describes, holding its weights (sizes checked first, by checked_config)."""
    model_cls, config = checked_config(directory, meta, arrays)
    with reading(directory):
        model = model_cls(config)
        restore_model(model, arrays)
    return model


def checked_config(directory, meta, arrays):
    """(model class, config) of a checkpoint, its parameter count compared with the arrays file
    first: a config edited to claim a huge model (n_embd: 200000) is refused, not allocated."""
    from minilora.models import MODEL_KINDS

    with reading(directory):
        if meta.get("kind") not in MODEL_KINDS:
            raise CheckpointError(directory, f"unknown model kind {meta.get('kind')!r}; known kinds: {', '.join(MODEL_KINDS)}")
        model_cls, config_cls = MODEL_KINDS[meta["kind"]]
        config = config_cls(**meta["model_config"])
        claimed, stored = config.num_parameters(), stored_parameter_count(arrays)
    if claimed != stored:
        raise CheckpointError(
            directory, f"{CONFIG} describes a {meta['kind']} of {claimed:,} parameters but {meta['arrays']} holds {stored:,}; the two files do not belong together"
        )
    return model_cls, config


def restore_model(model, arrays):
    """Load the ``model/*`` arrays of a checkpoint into ``model`` (strict)."""
    model.load_state_dict({k[len("model/") :]: v for k, v in arrays.items() if k.startswith("model/")})


def restore_optimizer(optimizer, meta, arrays):
    """Rebuild an optimizer's state from a checkpoint written by save_checkpoint."""
    saved = meta["optimizer"]
    state = {int(i): dict(s) for i, s in saved["scalars"].items()}
    for key, array in arrays.items():
        if key.startswith("optim/"):
            _, i, name = key.split("/", 2)
            state.setdefault(int(i), {})[name] = array
    optimizer.load_state_dict({"state": state, "param_groups": saved["param_groups"]})


def stored_parameter_count(arrays):
    """How many numbers the ``model/*`` arrays of a checkpoint hold."""
    return sum(int(a.size) for k, a in arrays.items() if k.startswith("model/"))


def _check_step(step, directory):
    if isinstance(step, bool) or not isinstance(step, int) or step < 0:
        raise CheckpointError(directory, f"{CONFIG} has step {step!r}; a step is an integer >= 0")


def _write_json(path, meta):
    atomic_write(path, lambda f: f.write(json.dumps(meta, indent=1).encode("utf-8")))
