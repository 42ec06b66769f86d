"""The recipe of minilora's shipped base model: a character GPT pretrained on the plays.

``python -m minilora pretrain`` runs it. It trains a 6-layer GPT on the
training plays of five genres (every genre but the histories, which stay
unseen as a new domain to adapt to), evaluates on the validation plays of the
same genres, and checkpoints to ``--out`` so an interrupted run resumes where
it stopped. ``python -m minilora pretrain --export DIR`` turns the finished
checkpoint into the files that ship in ``minilora/pretrained/``.

Everything is drawn from one seed, so the same command gives the same loss
history; ``tests/test_pretrained.py`` reruns the first 20 steps against the
losses recorded when the shipped base was made.
"""

import dataclasses
import hashlib
import json
import pathlib

from minilora import backend
from minilora.data import CharTokenizer
from minilora.data import plays
from minilora.fileio import atomic_write
from minilora.models import build_model
from minilora.train import TrainConfig, Trainer
from minilora.train import checkpoint as ckpt
from minilora.train.lm import lm_batches

# The genres the base learns; the histories are the held-out domain.
PRETRAIN_GENRES = ("comedies", "problems", "roman", "romances", "tragedies")

# 6 x 224 keeps the float16 weights under the 8 MB the package may ship.
MODEL_CONFIG = dict(block_size=256, n_layer=6, n_head=4, n_embd=224, dropout=0.1)

TRAIN_CONFIG = TrainConfig(
    max_iters=4000, batch_size=16, block_size=256, lr=1.5e-3, min_lr=1.5e-4, warmup_iters=200,
    weight_decay=0.1, beta1=0.9, beta2=0.99, grad_clip=1.0, eval_interval=250, eval_iters=20, seed=0,
)


def base_tokenizer():
    """The character vocabulary of all 38 plays, every genre and split (79 symbols).

    Fitting it on every play, not just the pretraining ones, lets the base
    encode the held-out histories; a vocabulary is not learned content.
    """
    return CharTokenizer.fit(plays.plays_text(plays.GENRES, split=None))


def pretraining_data(tokenizer, genres=PRETRAIN_GENRES):
    """(train ids, val ids): the training and validation plays of ``genres``, encoded."""
    return tuple(backend.asarray(tokenizer.encode(plays.plays_text(genres, split)), dtype=backend.int64)
                 for split in ("train", "val"))


def pretrain(out="minilora-pretrain", train_config=TRAIN_CONFIG, model_config=MODEL_CONFIG, resume=False,
             log=print, progress=True):
    """Run the recipe; returns the Trainer. Checkpoints go to ``out`` after every evaluation."""
    backend.manual_seed(train_config.seed)
    tokenizer = base_tokenizer()
    train_ids, val_ids = pretraining_data(tokenizer)
    config = {**model_config, "vocab_size": tokenizer.vocab_size}
    model = build_model("gpt", config)
    log(f"pretraining a GPT of {sum(p.size for p in model.parameters()):,} parameters on "
        f"{train_ids.shape[0]:,} characters of {', '.join(PRETRAIN_GENRES)} "
        f"(validation: {val_ids.shape[0]:,} characters of other plays)")
    cfg = train_config
    train_batch, eval_sets = lm_batches(train_ids, val_ids, cfg.block_size, cfg.batch_size, cfg.eval_iters, cfg.seed)
    checkpoint = {"directory": out, "kind": "gpt", "model_config": config, "tokenizer": tokenizer} if out else None
    trainer = Trainer(model, train_config, train_batch, eval_sets, checkpoint, log=log, progress=progress)
    if resume:
        trainer.resume(out)
    trainer.fit()
    return trainer


def file_sha256(path):
    """The sha256 of a file's bytes, as hex."""
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def export_base(run_dir, dest, name="shakespeare", extra=None):
    """Write a finished pretraining run as a shippable base: float16 npz + JSON.

    ``dest/<name>.npz`` holds the weights in float16 (half the bytes; the
    loader casts them back to float32), ``dest/<name>.json`` the model config,
    the tokenizer, the recipe, its loss history and ``extra`` facts. Returns
    the npz's sha256, which ``minilora/pretrained/__init__.py`` records.
    """
    meta, arrays = ckpt.load_checkpoint(run_dir)
    weights = {k[len("model/"):]: backend.asarray(v, dtype=backend.dtype("float16"))
               for k, v in arrays.items() if k.startswith("model/")}
    dest = pathlib.Path(dest)
    dest.mkdir(parents=True, exist_ok=True)
    atomic_write(dest / f"{name}.npz", lambda f: backend.save_npz(f, weights))
    info = {
        "name": name,
        "kind": meta["kind"],
        "model_config": meta["model_config"],
        "tokenizer": meta["tokenizer"],
        "genres": list(PRETRAIN_GENRES),
        "train_config": meta.get("train_config"),
        "history": meta.get("history"),
        **(extra or {}),
    }
    atomic_write(dest / f"{name}.json", lambda f: f.write(json.dumps(info, indent=1).encode("utf-8")))
    return file_sha256(dest / f"{name}.npz")


def recipe():
    """The recipe as one JSON-able dict (model config and training config)."""
    return {"model_config": dict(MODEL_CONFIG), "train_config": dataclasses.asdict(TRAIN_CONFIG),
            "genres": list(PRETRAIN_GENRES)}
