"""Language-model training from a corpus to a checkpoint, and loading it back.

The CLI's ``train``, ``sample`` and ``eval`` commands are thin wrappers
around these functions, and so are the demos: one code path, one set of tests.
"""

from minilora import backend
from minilora.data import CharTokenizer, Tokenizer, get_batch, train_val_split
from minilora.models import build_model
from minilora.train import checkpoint as ckpt
from minilora.train.rundir import open_run_directory
from minilora.train.trainer import Trainer


def encode_corpus(text, tokenizer=None, val_fraction=0.1):
    """(tokenizer, train ids, val ids) for a text; the tokenizer is fitted if not given."""
    tokenizer = tokenizer or CharTokenizer.fit(text)
    ids = backend.asarray(tokenizer.encode(text), dtype=backend.int64)
    train, val = train_val_split(ids, val_fraction)
    return tokenizer, train, val


def lm_batches(train_ids, val_ids, block_size, batch_size, eval_iters, seed=0):
    """A sampler of training batches, and fixed evaluation batches from their own generator.

    Because the evaluation batches come from a separate generator, evaluating
    never shifts the training batches, and every evaluation sees the same data,
    so the numbers in a loss history are comparable with each other.
    """
    generator = backend.new_generator(seed + 1)
    eval_sets = {
        name: [get_batch(ids, block_size, batch_size, generator=generator) for _ in range(eval_iters)]
        for name, ids in (("train", train_ids), ("val", val_ids))
    }
    return (lambda: get_batch(train_ids, block_size, batch_size)), eval_sets


def train_language_model(kind, model_config, text, train_config, out=None, tokenizer=None, resume=False, log=print, progress=True, overwrite=False):
    """Train a "gpt" or "rnn" model on ``text``; returns (model, tokenizer, trainer).

    ``model_config`` is a dict of the model's config fields without ``vocab_size``
    (it comes from the tokenizer). With ``out``, checkpoints go there; with
    ``resume=True`` the run saved in ``out`` continues where it stopped, and
    ``overwrite=True`` replaces a checkpoint there (without either, a directory
    holding a checkpoint is refused, so no run is lost by mistake).
    """
    backend.manual_seed(train_config.seed)
    # To resume, lock the directory before reading the checkpoint in it: a second run must
    # meet the lock, never a checkpoint the first run is halfway through replacing. (A new
    # run takes the lock in Trainer.fit, after its settings have been checked.)
    lock = open_run_directory(out, resume, overwrite) if resume and out is not None else None
    if resume:
        meta, arrays = ckpt.load_checkpoint(out)
        kind, model_config = meta["kind"], meta["model_config"]
        tokenizer = _tokenizer(out, meta)
        ckpt.checked_config(out, meta, arrays)  # refuse sizes the arrays do not hold before building below
    tokenizer, train_ids, val_ids = encode_corpus(text, tokenizer)
    model_config = {**model_config, "vocab_size": tokenizer.vocab_size}
    model = build_model(kind, model_config)
    cfg = train_config
    train_batch, eval_sets = lm_batches(train_ids, val_ids, cfg.block_size, cfg.batch_size, cfg.eval_iters, cfg.seed)
    checkpoint = None
    if out is not None:
        checkpoint = {"directory": out, "kind": kind, "model_config": model_config, "tokenizer": tokenizer, "overwrite": overwrite}
    trainer = Trainer(model, train_config, train_batch, eval_sets, checkpoint, log=log, progress=progress, lock=lock)
    if resume:
        trainer.resume(out)
    trainer.fit()
    return model, tokenizer, trainer


def load_model(directory):
    """(model, tokenizer, meta) from a checkpoint directory, in eval mode."""
    meta, arrays = ckpt.load_checkpoint(directory)
    model = ckpt.model_from_checkpoint(directory, meta, arrays)
    return model.eval(), _tokenizer(directory, meta), meta


def _tokenizer(directory, meta):
    if "tokenizer" not in meta:
        raise ckpt.CheckpointError(directory, f"{ckpt.CONFIG} has no tokenizer, so ids cannot be turned into text and back; it was not written by `train`")
    with ckpt.reading(directory):
        return Tokenizer.from_dict(meta["tokenizer"])
