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
import json
import pathlib

from minilora import backend
from minilora.data import CharTokenizer, Tokenizer, plays
from minilora.fileio import atomic_write, sha256_file
from minilora.models import build_model
from minilora.models.common import mean_loss
from minilora.train import TrainConfig, Trainer
from minilora.train import checkpoint as ckpt
from minilora.train.lm import lm_batches

# The genres the base learns; the histories are the held-out domain.
PRETRAIN_GENRES = ("comedies", "problems", "roman", "romances", "tragedies")

# 6 x 224 keeps the float16 weights under the 8 MB the package may ship.
MODEL_CONFIG = dict(block_size=256, n_layer=6, n_head=4, n_embd=224, dropout=0.1)

TRAIN_CONFIG = TrainConfig(
    max_iters=2400, batch_size=16, block_size=256, lr=2e-3, min_lr=2e-4, warmup_iters=150,
    weight_decay=0.1, beta1=0.9, beta2=0.99, grad_clip=1.0, eval_interval=200, eval_iters=20, seed=0,
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
             overwrite=False, log=print, progress=True):
    """Run the recipe; returns the Trainer. Checkpoints go to ``out`` after every evaluation.

    A directory that already holds a checkpoint needs ``resume=True`` (go on) or
    ``overwrite=True`` (start again), as for ``python -m minilora train``.
    """
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
    checkpoint = ({"directory": out, "kind": "gpt", "model_config": config, "tokenizer": tokenizer, "overwrite": overwrite}
                  if out else None)
    trainer = Trainer(model, train_config, train_batch, eval_sets, checkpoint, log=log, progress=progress)
    if resume:
        trainer.resume(out)
    trainer.fit()
    return trainer


def windows(ids, block_size, batch_size, limit=None):
    """Consecutive, non-overlapping windows of ``ids`` as (x, y) batches of equal size (the rest is dropped)."""
    n = (ids.shape[0] - 1) // block_size
    n -= n % batch_size
    if limit is not None:
        n = min(n, limit * batch_size)
    starts = backend.xp.arange(n, dtype=backend.int64) * block_size               # (n,)
    index = starts[:, None] + backend.xp.arange(block_size, dtype=backend.int64)  # (n, T)
    return [(ids[index[i:i + batch_size]], ids[index[i:i + batch_size] + 1]) for i in range(0, n, batch_size)]


def evaluate_base(model, tokenizer, block_size=256, batch_size=16, limit=None):
    """Mean loss (nats/char) over every full window of the pretraining genres' validation plays."""
    _, val_ids = pretraining_data(tokenizer)
    return mean_loss(model, windows(val_ids, block_size, batch_size, limit))


def first_losses(n=20):
    """The training losses of the recipe's first ``n`` steps, rerun from scratch.

    The warmup's learning rate does not depend on the number of steps, and
    evaluation draws from its own generator, so a short rerun takes exactly
    the first steps of the full run.
    """
    short = dataclasses.replace(TRAIN_CONFIG, max_iters=n, eval_interval=n, eval_iters=1)
    return pretrain(out=None, train_config=short, log=lambda *_: None, progress=False).step_losses


def _model_from(meta, weights):
    model = build_model(meta["kind"], meta["model_config"])
    model.load_state_dict({k: backend.asarray(v, dtype=backend.float32) for k, v in weights.items()})
    return model.eval()


def export_base(run_dir, dest, name="shakespeare", log=print):
    """Write a finished pretraining run as a shippable base: float16 npz + JSON.

    ``dest/<name>.npz`` holds the weights in float16 (half the bytes; the
    loader casts them back to float32), ``dest/<name>.json`` the model config,
    the tokenizer, the recipe and its loss history, and the figures the tests
    check: the validation loss with float32 and with float16 weights, the loss
    on a fixed sample of two batches, and the first 20 training losses.
    Returns the sha256 of both files, which ``minilora/pretrained/__init__.py`` records.
    """
    meta, arrays = ckpt.load_checkpoint(run_dir)
    float32 = {k[len("model/"):]: v for k, v in arrays.items() if k.startswith("model/")}
    float16 = {k: backend.asarray(v, dtype=backend.dtype("float16")) for k, v in float32.items()}
    tokenizer = Tokenizer.from_dict(meta["tokenizer"])
    log("measuring the validation loss with float32 and float16 weights (a few minutes)")
    model16 = _model_from(meta, float16)
    figures = {
        "val_loss": evaluate_base(model16, tokenizer),
        "val_loss_float32": evaluate_base(_model_from(meta, float32), tokenizer),
        "check_loss": {"batches": 2, "loss": evaluate_base(model16, tokenizer, limit=2)},
        "first_losses": first_losses(20),
    }
    dest = pathlib.Path(dest)
    dest.mkdir(parents=True, exist_ok=True)
    atomic_write(dest / f"{name}.npz", lambda f: backend.save_npz(f, float16))
    info = {"name": name, "kind": meta["kind"], "model_config": meta["model_config"], "tokenizer": meta["tokenizer"],
            "genres": list(PRETRAIN_GENRES), "train_config": meta.get("train_config"), **figures,
            "history": meta.get("history")}
    atomic_write(dest / f"{name}.json", lambda f: f.write(json.dumps(info, indent=1).encode("utf-8")))
    return sha256_file(dest / f"{name}.npz"), sha256_file(dest / f"{name}.json")
