"""The base model that ships with minilora, loaded and checked against its recorded hash.

    from minilora import pretrained
    model, tokenizer = pretrained.load("shakespeare")

``shakespeare`` is a character GPT pretrained on five genres of the plays
(every genre but the histories) by ``python -m minilora pretrain``; its
recipe, loss curve and figures are in docs/training.md. The package holds its
weights as float16 (``shakespeare.npz``, to keep the package small) and its
config, tokenizer and training history as JSON (``shakespeare.json``). Both
files' sha256 are recorded below, and ``load`` refuses a file that does not
match: a damaged or swapped base would make every number of the demo wrong
without any error.
"""

import json
import pathlib

from minilora import backend
from minilora.data import Tokenizer
from minilora.fileio import sha256_file
from minilora.models import build_model

DIRECTORY = pathlib.Path(__file__).resolve().parent

# name -> sha256 of <name>.npz and <name>.json, written when the base was exported.
BASES = {
    "shakespeare": {
        "npz": "e4100e5018e84460bc37f036ee5d91e68732b18051576d27ff8b953fd83b0cab",
        "json": "71070ae4cb732248085720b237e3c75b3897eac1ab80f1f042d48d9c58e90661",
    },
}


def available():
    """The names ``load`` accepts."""
    return sorted(BASES)


def _checked(name, suffix, directory):
    """The path of ``<name>.<suffix>``, after its sha256 has been compared with the record."""
    path = pathlib.Path(directory) / f"{name}.{suffix}"
    if not path.is_file():
        raise FileNotFoundError(f"the base {name!r} is missing its file {path}; reinstall minilora "
                                f"(`pip install -e .`) or re-export it with `python -m minilora pretrain --export`")
    expected, actual = BASES[name][suffix], sha256_file(path)
    if actual != expected:
        raise ValueError(f"{path} has sha256 {actual}, but minilora records {expected} for the base "
                         f"{name!r}: the file is damaged or was replaced. Reinstall minilora to restore it.")
    return path


def info(name="shakespeare", directory=DIRECTORY):
    """The base's JSON record: model config, tokenizer, recipe, loss history and figures."""
    if name not in BASES:
        raise ValueError(f"unknown base {name!r}; available: " + ", ".join(repr(n) for n in available()))
    return json.loads(_checked(name, "json", directory).read_text(encoding="utf-8"))


def load(name="shakespeare", directory=DIRECTORY):
    """``(model, tokenizer)``: the shipped base in float32, in eval mode, its hash checked."""
    meta = info(name, directory)
    arrays = backend.load_npz(_checked(name, "npz", directory))
    model = build_model(meta["kind"], meta["model_config"])
    model.load_state_dict({k: backend.asarray(v, dtype=backend.float32) for k, v in arrays.items()})
    return model.eval(), Tokenizer.from_dict(meta["tokenizer"])


def sha256(name="shakespeare"):
    """The recorded sha256 of the base's weights file."""
    return BASES[name]["npz"]


__all__ = ["load", "info", "available", "sha256", "BASES", "DIRECTORY"]
