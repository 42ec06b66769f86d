"""Checkpoints: arrays in an .npz (never pickled), everything else in a JSON file.

A checkpoint directory holds

* ``config.json``: the model's kind and config, the tokenizer, the step, the
  optimizer's hyperparameters and step counts, the random generator's state,
  the loss history, and the name of the arrays file that belongs to it;
* ``arrays-<step>.npz``: the parameters (``model/<name>``) and the optimizer's
  moment arrays (``optim/<i>/<key>``).

Writes are atomic in two moves. The new arrays go to a new file name, and
only when that file is complete does ``config.json`` switch to it, by
``os.replace`` (atomic on POSIX and Windows). A crash at any point leaves
``config.json`` naming a complete arrays file: the new one or the old one.
"""

import json
import pathlib

from minilora import backend
from minilora.fileio import atomic_write

CONFIG = "config.json"


def save_checkpoint(directory, model, kind, model_config, tokenizer=None, optimizer=None, step=0, extra=None):
    """Write a checkpoint of ``model`` (and ``optimizer``) to ``directory``.

    ``kind`` names the model class ("gpt", "rnn", "classifier"), ``model_config``
    is its config as a dict, ``extra`` any JSON-able facts (train config, history).
    """
    directory = pathlib.Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    arrays = {f"model/{name}": array for name, array in model.state_dict().items()}
    meta = {"kind": kind, "model_config": model_config, "step": int(step), "rng_state": backend.get_rng_state()}
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
    meta["arrays"] = f"arrays-{int(step):07d}.npz"
    atomic_write(directory / meta["arrays"], lambda f: backend.save_npz(f, arrays))
    atomic_write(directory / CONFIG, lambda f: f.write(json.dumps(meta, indent=1).encode("utf-8")))
    for stale in directory.glob("arrays-*.npz"):  # older ones, and any a crash left unreferenced
        if stale.name != meta["arrays"]:
            stale.unlink(missing_ok=True)
    return directory


def load_checkpoint(directory):
    """Read a checkpoint: (meta dict from config.json, dict of arrays)."""
    directory = pathlib.Path(directory)
    config_path = directory / CONFIG
    if not config_path.is_file():
        raise FileNotFoundError(f"no checkpoint in {directory}: {CONFIG} is missing (train one with `python -m minilora train --out {directory}`)")
    try:
        meta = json.loads(config_path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as err:
        raise ValueError(f"{config_path} is not valid JSON ({err}); the checkpoint is damaged") from err
    arrays_path = directory / meta.get("arrays", "")
    if not arrays_path.is_file():
        raise FileNotFoundError(f"{config_path} names {meta.get('arrays')!r}, which is missing; the checkpoint is incomplete")
    return meta, backend.load_npz(arrays_path)


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
