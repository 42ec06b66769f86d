"""The training loop: AdamW with warmup + cosine decay, clipping, evaluation,
checkpoints, resuming, and a stop with a clear message if the loss blows up.

A Trainer works with any model that answers ``model(*batch) -> (logits, loss)``:
a language-model batch is ``(idx, targets)``, a classifier batch
``(idx, labels, mask)``. It draws training batches from a callable and
evaluates on a fixed list of batches, made once from their own generator,
so every evaluation sees the same data and drawing it never shifts the
training stream. That is what makes a resumed run match an uninterrupted one.
"""

import math
import time
from dataclasses import asdict, dataclass, field

from minilora import backend, validate
from minilora.models.common import mean_loss
from minilora.optim import AdamW, clip_grad_norm_, warmup_cosine
from minilora.train import checkpoint as ckpt
from minilora.train.plots import plot_history
from minilora.train.progress import Progress
from minilora.train.rundir import open_run_directory


@dataclass
class TrainConfig:
    """How a model is trained. Each field's ``help`` is also its ``--help`` line in ``python -m minilora train``."""

    max_iters: int = field(default=2000, metadata={"help": "optimizer steps"})
    batch_size: int = field(default=12, metadata={"help": "sequences per step"})
    block_size: int = field(default=64, metadata={"help": "tokens per training sequence (language models)"})
    lr: float = field(default=1e-3, metadata={"help": "peak learning rate"})
    min_lr: float = field(default=1e-4, metadata={"help": "floor the cosine decays to"})
    warmup_iters: int = field(default=100, metadata={"help": "linear warmup steps"})
    weight_decay: float = field(default=0.1, metadata={"help": "AdamW decay on matrices (not on biases, LayerNorm, vectors)"})
    beta1: float = field(default=0.9, metadata={"help": "AdamW's first-moment decay"})
    beta2: float = field(default=0.99, metadata={"help": "AdamW's second-moment decay"})
    grad_clip: float = field(default=1.0, metadata={"help": "global gradient-norm limit (0: off)"})
    eval_interval: int = field(default=250, metadata={"help": "evaluate (and checkpoint) every this many steps"})
    eval_iters: int = field(default=20, metadata={"help": "batches per evaluation"})
    seed: int = field(default=0, metadata={"help": "seeds the model init, the batches and dropout"})

    def __post_init__(self):
        """Refuse a value that would train badly or crash later, naming the field and its range."""
        name = type(self).__name__
        for attr, low in (("max_iters", 1), ("batch_size", 1), ("block_size", 1), ("warmup_iters", 0), ("eval_interval", 1), ("eval_iters", 1), ("seed", 0)):
            validate.integer(name, attr, getattr(self, attr), low)
        validate.number(name, "lr", self.lr, 0)
        validate.number(name, "min_lr", self.min_lr, 0, self.lr)  # the floor the schedule decays to, so at most lr
        validate.number(name, "weight_decay", self.weight_decay, 0)
        validate.number(name, "beta1", self.beta1, 0, 1, high_open=True)
        validate.number(name, "beta2", self.beta2, 0, 1, high_open=True)
        validate.number(name, "grad_clip", self.grad_clip, 0)  # 0 turns clipping off; below 0 it would flip the gradient


class NonFiniteLossError(RuntimeError):
    """The loss (or the gradient norm) became nan or inf; training stopped."""


def make_optimizer(model, config):
    """AdamW (Eq. O2 in docs/math.md) that decays matrices but not biases and gains (the usual GPT-2 split)."""
    params = [p for p in model.parameters() if p.requires_grad]
    if not params:
        raise ValueError("every parameter of the model is frozen, so training would change nothing; unfreeze some first")
    decay = [p for p in params if p.ndim >= 2]
    no_decay = [p for p in params if p.ndim < 2]
    groups = [{"params": ps, "weight_decay": wd} for ps, wd in ((decay, config.weight_decay), (no_decay, 0.0)) if ps]
    return AdamW(groups, lr=config.lr, betas=(config.beta1, config.beta2))


class Trainer:
    """Train ``model`` on batches from ``train_batch()``; evaluate on ``eval_sets``.

    ``eval_sets`` maps a name ("train", "val") to a list of batches.
    ``checkpoint`` (optional) is a dict with ``directory``, ``kind``,
    ``model_config``, ``tokenizer`` and optionally ``overwrite``: given it, the
    Trainer writes a checkpoint after each evaluation and can resume from one.
    It locks the directory from ``resume`` (or the start of ``fit``) to the end
    of ``fit``, and refuses a directory that holds a checkpoint unless told to
    resume it or (``overwrite: True``) replace it (minilora/train/rundir.py).
    ``lock``: that directory's lock, if the caller took it already (``open_run_directory``).
    """

    def __init__(self, model, config, train_batch, eval_sets, checkpoint=None, log=print, progress=True, lock=None):
        self.model, self.config = model, config
        self.train_batch, self.eval_sets = train_batch, eval_sets
        self.checkpoint, self.log, self.show_progress = checkpoint, log, progress
        self.optimizer = make_optimizer(model, config)
        self.step = 0
        self.history = []  # one dict per evaluation: step, <name>_loss, lr, elapsed
        self.step_seconds = []  # the duration of each training step (no evaluation, no saving)
        self.step_losses = []  # the training loss of each step this process ran
        self.last_saved_step = None  # the step of the newest checkpoint written
        self._lock = lock  # the open lock file of the checkpoint directory while this run holds it (a caller may pass one it took)
        self._resumed = False  # resume() loaded the checkpoint this run continues

    # -- evaluation --------------------------------------------------------------
    def evaluate(self):
        """Mean loss over each evaluation set, with dropout off and no graph built."""
        return {name: mean_loss(self.model, batches) for name, batches in self.eval_sets.items()}

    # -- the loop ----------------------------------------------------------------
    def fit(self):
        """Train until ``max_iters``; returns the history. Raises NonFiniteLossError on nan/inf."""
        # A directory this Trainer resumed from or already saved into holds its own run.
        self._claim_directory(resume=self.last_saved_step is not None or self._resumed)
        try:
            return self._fit()
        finally:
            self._release_directory()

    def _fit(self):
        cfg = self.config
        progress = Progress(cfg.max_iters, start=self.step) if self.show_progress else None
        t0 = time.perf_counter()
        self.model.train()
        while True:
            if self.step % cfg.eval_interval == 0 or self.step == cfg.max_iters:
                self._evaluate_and_save(time.perf_counter() - t0)
            if self.step >= cfg.max_iters:
                break
            lr = warmup_cosine(self.step, cfg.lr, cfg.warmup_iters, cfg.max_iters, cfg.min_lr)
            for group in self.optimizer.param_groups:
                group["lr"] = lr
            started = time.perf_counter()
            batch = self.train_batch()
            _, loss = self.model(*batch)
            loss_value = loss.item()
            if not math.isfinite(loss_value):
                self._stop(f"the loss became {loss_value}")
            self.optimizer.zero_grad()
            loss.backward()
            if cfg.grad_clip:
                norm = clip_grad_norm_(self.optimizer.params(), cfg.grad_clip)
                if not math.isfinite(norm):
                    self._stop(f"the gradient norm became {norm}")
            self.optimizer.step()
            self.step_seconds.append(time.perf_counter() - started)
            self.step_losses.append(loss_value)
            if progress:
                progress.update(self.step, tokens=batch[0].size, loss=loss_value, lr=f"{lr:.2e}")
            self.step += 1
        if progress:
            progress.close()
        return self.history

    def _evaluate_and_save(self, elapsed):
        losses = self.evaluate()
        entry = {"step": self.step, **{f"{k}_loss": v for k, v in losses.items()}, "elapsed": round(elapsed, 2)}
        self.history.append(entry)
        self.log(f"step {self.step:5d}  " + "  ".join(f"{k} loss {v:.4f}" for k, v in losses.items()))
        if all(math.isfinite(v) for v in losses.values()) and self.checkpoint:
            self.save()
            self.last_saved_step = self.step

    def _stop(self, what):
        where = ""
        if self.checkpoint and self.last_saved_step is not None:
            where = f" The last good checkpoint (step {self.last_saved_step}) in {self.checkpoint['directory']} is intact."
        raise NonFiniteLossError(
            f"{what} at step {self.step}; training stopped.{where} Try a lower learning rate "
            "(--lr) or gradient clipping (--grad-clip), or check the data."
        )

    # -- checkpoints -------------------------------------------------------------
    def save(self):
        c = self.checkpoint
        extra = {"train_config": asdict(self.config), "history": self.history}
        files = ("loss.png",) if self.history else ()
        ckpt.save_checkpoint(c["directory"], self.model, c["kind"], c["model_config"], c.get("tokenizer"), self.optimizer, self.step, extra, files)
        if self.history:
            plot_history(self.history, f"{c['directory']}/loss.png", title=f"{c['kind']} training")

    def resume(self, directory):
        """Continue the run saved in ``directory``: weights, optimizer, step, RNG and history."""
        if self.checkpoint:
            self._claim_directory(resume=True)
        meta, arrays = ckpt.load_checkpoint(directory)
        with ckpt.reading(directory):
            ckpt.restore_model(self.model, arrays)
            ckpt.restore_optimizer(self.optimizer, meta, arrays)
            backend.set_rng_state(meta["rng_state"])
            self.step = meta["step"]
            self.history = list(meta.get("history", []))
            if self.history and self.history[-1]["step"] == self.step:
                self.history.pop()  # fit() evaluates this step again, with the same result
        self._resumed = True
        return meta

    def _claim_directory(self, resume):
        if self.checkpoint and self._lock is None:
            self._lock = open_run_directory(self.checkpoint["directory"], resume, self.checkpoint.get("overwrite", False))

    def _release_directory(self):
        if self._lock is not None:
            self._lock.close()
            self._lock = None
