"""The tasks of ``python -m minilora compare``: each provides a pretrained model and trains and scores its variants.

By default both tasks start from the base that ships with minilora (a
character GPT pretrained on five genres of the plays, docs/training.md) and
are the demo's tasks (minilora/experiments/demo_tasks.py, docs/lora.md §6):

* ``ShippedBaseTask("histories")``: the genre the base never saw (new
  content); the metric is the validation loss on the histories;
* ``ShippedBaseTask("teacher")``: the base plus a planted rank-2 change in
  q_proj and v_proj is the teacher (low rank, controlled); the metric is the
  KL divergence to it on the validation plays.

``--quick`` and the tests use two tasks on generated corpora instead, each
of which pretrains its own small model in seconds:

* ``DomainShiftTask``: the demo's task (minilora/experiments/lora_demo.py,
  docs/lora.md §6). A character-level GPT is pretrained on domain A and
  adapted to domain B; the metric is the validation loss on B (lower is
  better), and the recovered share of full fine-tuning's gain (Eq. 10 in docs/lora.md).
* ``SentimentTask``: article 003's setting, a pretrained language model
  fine-tuned to classify sentiment. A word-level GPT is pretrained by
  next-word prediction on the training sentences (no labels), and its
  embeddings and blocks become the encoder of a TextClassifier with a fresh
  head; the metric is validation accuracy (higher is better).

All answer the same questions, so the methods in compare.py are written
once: ``pretrained()`` (a fresh copy of the pretrained model),
``student(width)`` (an untrained narrower one), ``train(model, iters, lr)``
and ``evaluate(model)``.
Every training run reseeds minilora's generator first, so every method sees
the same batches whatever ran before it.
"""

import dataclasses
import time
from dataclasses import dataclass

from minilora import backend, pretrained, validate
from minilora.data import CharTokenizer, two_domain_corpus
from minilora.experiments import demo_tasks
from minilora.experiments.lora_demo import LEARNING_RATES, DemoConfig
from minilora.models import GPT, ClassifierConfig, GPTConfig, TextClassifier
from minilora.models.common import mean_loss
from minilora.train import TrainConfig, Trainer
from minilora.train.classify import accuracy, sentiment_splits
from minilora.train.lm import encode_corpus, lm_batches


@dataclass
class DomainShiftConfig:
    seed: int = 0  # seeds the corpus, the model and every batch
    out: str = "minilora-compare"  # where results go
    n_layer: int = 2  # GPT blocks
    n_head: int = 4  # attention heads
    n_embd: int = 64  # model width
    block_size: int = 32  # context length
    batch_size: int = 16  # sequences per step
    pretrain_iters: int = 400  # steps on domain A
    adapt_iters: int = 200  # steps on domain B, for every method
    eval_iters: int = 8  # evaluation batches per domain
    pretrain_lr: float = 2e-3  # peak learning rate of pretraining
    full_lr: float = 1e-3  # peak learning rate of full fine-tuning
    lora_lr: float = 1e-2  # peak learning rate of the low-rank methods

    def __post_init__(self):
        name = type(self).__name__
        validate.integer(name, "seed", self.seed, 0)
        for field in ("n_layer", "n_head", "n_embd", "block_size", "batch_size", "pretrain_iters", "adapt_iters", "eval_iters"):
            validate.integer(name, field, getattr(self, field), 1)
        for field in ("pretrain_lr", "full_lr", "lora_lr"):
            validate.number(name, field, getattr(self, field), 0)

    @classmethod
    def quick(cls, **overrides):
        """A run of a few seconds, for tests: the same steps, with tiny sizes and few iterations."""
        small = dict(n_layer=2, n_head=2, n_embd=32, block_size=32, batch_size=8, pretrain_iters=60, adapt_iters=20, eval_iters=2)
        return cls(**{**small, **overrides})


def add_recovery(rows, metric):
    """recovered = (none - method) / (none - full): each row's share of full fine-tuning's gain (Eq. 10 in docs/lora.md)."""
    none = next(r for r in rows if r["method"] == "no adaptation")[metric]
    full = next(r for r in rows if r["method"] == "full fine-tuning")[metric]
    for r in rows:
        r["recovery"] = (none - r[metric]) / (none - full) if none != full else float("nan")


def train_config(iters, lr, batch_size, block_size, seed):
    """The schedule every run uses: warmup to ``lr``, cosine decay to lr/10, no evaluations in between."""
    return TrainConfig(max_iters=iters, batch_size=batch_size, block_size=block_size, lr=lr, min_lr=lr / 10,
                       warmup_iters=min(50, iters // 10), eval_interval=max(1, iters), eval_iters=1, seed=seed)  # fmt: skip


class _Task:
    """What every task shares; a subclass sets the data, the models and the metric."""

    modules_to_save = ()  # modules an adapter trains fully besides itself (a classifier's new head)
    output_layer = ""  # the layer "output layer only" trains
    keeps_lm_head = True  # whether the adapted model keeps the pretrained model's lm_head

    @property
    def width(self):
        return self.config.n_embd

    def describe(self):
        return f"pretraining ({self.config.pretrain_iters} steps)"

    def pretrain(self):
        """Train the base model on the pretraining data; returns the seconds it took."""
        started = time.perf_counter()
        backend.manual_seed(self.seed)
        model = self._pretrain_model()
        backend.manual_seed(self.seed)
        config = train_config(self.config.pretrain_iters, self.config.pretrain_lr, self.batch_size, self.block_size, self.seed)
        Trainer(model, config, self._pretrain_batch, {}, log=lambda *_: None, progress=self.progress).fit()
        self._pretrained = model.state_dict()
        self.pretrain_loss = self._pretrain_loss(model)
        return time.perf_counter() - started

    def pretrained(self):
        """A fresh model holding the pretrained weights (a classifier's head freshly initialised, the same each time)."""
        backend.manual_seed(self.seed)
        model = self.new_model()
        state = {k: v for k, v in self._pretrained.items() if self.keeps_lm_head or not k.startswith("lm_head.")}
        model.load_state_dict(state, strict=self.keeps_lm_head)  # a classifier lacks lm_head and has a new head
        return model

    def parameter_count(self, width):
        """Parameters of an untrained model of this width (the random stream is left where it was)."""
        state = backend.get_rng_state()
        count = self.new_model(width).num_parameters()
        backend.set_rng_state(state)
        return count

    def student(self, width):
        """An untrained model of a smaller width, initialised the same way each time."""
        backend.manual_seed(self.seed)
        return self.new_model(width)

    def train(self, model, iters, lr):
        """Train ``model`` on the task's training data for ``iters`` steps; returns the Trainer (its step times).

        The generator is reseeded first, so every method sees the same batches.
        """
        backend.manual_seed(self.seed)
        config = train_config(iters, lr, self.batch_size, self.block_size, self.seed)
        trainer = Trainer(model, config, self.train_batch, {}, log=lambda *_: None, progress=self.progress)
        trainer.fit()
        return trainer


class DomainShiftTask(_Task):
    """Pretrain a character GPT on domain A, adapt it to domain B (sizes from a DomainShiftConfig)."""

    name = "domain shift"
    metric = "loss_b"  # validation loss on B, nats per character
    metric_label = "val loss B"
    higher_is_better = False
    output_layer = "lm_head"

    def __init__(self, config, progress=True):
        self.config, self.seed, self.progress = config, config.seed, progress
        self.batch_size, self.block_size = config.batch_size, config.block_size
        text_a, text_b = two_domain_corpus(seed=config.seed)
        self.tokenizer = CharTokenizer.fit(text_a + text_b)  # one vocabulary for both domains, as in the demo
        _, train_a, val_a = encode_corpus(text_a, self.tokenizer)
        _, train_b, val_b = encode_corpus(text_b, self.tokenizer)
        args = (config.block_size, config.batch_size, config.eval_iters, config.seed)
        self._pretrain_batch, evals_a = lm_batches(train_a, val_a, *args)
        self.train_batch, evals_b = lm_batches(train_b, val_b, *args)
        self.val_a, self.val_b = evals_a["val"], evals_b["val"]

    def new_model(self, width=None):
        c = self.config
        return GPT(GPTConfig(self.tokenizer.vocab_size, c.block_size, c.n_layer, c.n_head, width or c.n_embd))

    def _pretrain_model(self):
        return self.new_model()

    def _pretrain_loss(self, model):
        return mean_loss(model, self.val_a)

    def evaluate(self, model):
        return {"loss_b": mean_loss(model, self.val_b)}


@dataclass
class SentimentConfig:
    seed: int = 0  # seeds the corpus, the models and every batch
    n_sentences: int = 20_000  # corpus size; 80% train, 20% validation
    n_layer: int = 1  # Transformer blocks
    n_head: int = 4  # attention heads
    n_embd: int = 32  # model width
    batch_size: int = 64  # sentences per step
    pretrain_iters: int = 300  # next-word prediction steps on the training sentences
    adapt_iters: int = 300  # classification steps, for every method
    pretrain_lr: float = 3e-3  # peak learning rate of pretraining and of models trained from scratch
    full_lr: float = 3e-3  # peak learning rate of full fine-tuning and of retraining after compression
    lora_lr: float = 1e-2  # peak learning rate of the adapters

    @classmethod
    def quick(cls, **overrides):
        """Tiny sizes and few steps, for tests."""
        small = dict(n_sentences=1200, n_embd=16, n_head=2, batch_size=32, pretrain_iters=20, adapt_iters=15)
        return cls(**{**small, **overrides})


class SentimentTask(_Task):
    """Pretrain a word-level GPT on the sentences, then classify them with its encoder and a new head."""

    name = "sentiment"
    metric = "accuracy"  # validation accuracy
    metric_label = "val accuracy"
    higher_is_better = True
    keeps_lm_head = False  # the classifier has its own head; the language model's is dropped
    modules_to_save = ("head",)
    output_layer = "head"

    def __init__(self, config, progress=True):
        self.config, self.seed, self.progress = config, config.seed, progress
        self.tokenizer, self.train_split, self.val_split = sentiment_splits(n=config.n_sentences, seed=config.seed)
        self.batch_size, self.block_size = config.batch_size, self.train_split.x.shape[1]

    def new_model(self, width=None):
        c = self.config
        return TextClassifier(ClassifierConfig(self.tokenizer.vocab_size, self.block_size, n_layer=c.n_layer, n_head=c.n_head, n_embd=width or c.n_embd))

    def _pretrain_model(self):
        # The classifier's encoder, with an lm_head: parameter names match TextClassifier's, so the weights carry over.
        c = self.config
        return GPT(GPTConfig(self.tokenizer.vocab_size, self.block_size, c.n_layer, c.n_head, c.n_embd))

    def train_batch(self):
        """A batch of random training sentences: (x, y, mask)."""
        return self.train_split.rows(backend.randint(0, len(self.train_split), (self.batch_size,)))

    def _pretrain_batch(self):
        x, _, mask = self.train_batch()  # next-word prediction needs no labels
        return _next_word_batch(x, mask)

    def _pretrain_loss(self, model):
        x, _, mask = self.val_split.rows(slice(0, 500))
        return mean_loss(model, [_next_word_batch(x, mask)])

    def evaluate(self, model):
        return {"accuracy": accuracy(model, self.val_split)}


def _next_word_batch(x, mask):
    """(inputs, targets) for next-word prediction on right-padded sentences; padding targets are ignored (-100)."""
    xp = backend.get_array_module(x)
    targets = xp.where(mask[:, 1:], x[:, 1:], -100)  # (B, T-1): the next word, or nothing after the sentence ends
    return x[:, :-1], targets


# ----------------------------------------------------------------------------
# The default tasks: the shipped base, adapted as in the demo.


@dataclass
class ShippedBaseConfig:
    seed: int = 0  # seeds the batches, the adapters and the students
    block_size: int = 128  # characters per training window, as in the demo
    batch_size: int = 8  # windows per step
    adapt_iters: int = 60  # steps for every method, as in the demo
    eval_iters: int = 6  # evaluation batches
    full_lr: float = None  # full fine-tuning and retraining after compression (None: the demo's tuned rate for the task)
    lora_lr: float = 1e-2  # the adapters and the output layer alone (the demo's LoRA rate)
    pretrain_lr: float = 2e-3  # the students, trained from scratch (the base's own pretraining rate)

    def __post_init__(self):
        name = type(self).__name__
        validate.integer(name, "seed", self.seed, 0)
        for field in ("block_size", "batch_size", "adapt_iters", "eval_iters"):
            validate.integer(name, field, getattr(self, field), 1)
        for field in ("lora_lr", "pretrain_lr") + (("full_lr",) if self.full_lr is not None else ()):
            validate.number(name, field, getattr(self, field), 0)


class ShippedBaseTask(_Task):
    """One of the demo's tasks (``"histories"`` or ``"teacher"``) on the shipped base, nothing pretrained here."""

    metric = "val_loss"  # the task's loss on its validation batches: cross-entropy, or KL to the teacher
    higher_is_better = False
    output_layer = "lm_head"

    def __init__(self, task, config, progress=True):
        if task not in ("histories", "teacher"):
            raise ValueError(f"unknown task {task!r} for the shipped base; choose 'histories' or 'teacher'")
        self.config, self.seed, self.progress = config, config.seed, progress
        self.batch_size, self.block_size = config.batch_size, config.block_size
        if config.full_lr is None:
            self.config = config = dataclasses.replace(config, full_lr=LEARNING_RATES[task]["full"])
        base, self.tokenizer = pretrained.load("shakespeare")
        self.meta = pretrained.info("shakespeare")
        self.base_config = self.meta["model_config"]
        backend.manual_seed(config.seed)
        demo = DemoConfig(seed=config.seed, tasks=(task,), block_size=config.block_size, batch_size=config.batch_size,
                          eval_iters=config.eval_iters)  # fmt: skip
        self.task = demo_tasks.TASKS[task](base, self.tokenizer, demo)
        self.name, self.train_batch = task, self.task.train_batch
        self.metric_label = "KL to teacher" if self.task.wrap else "val loss"
        self._pretrained = base.state_dict()

    @property
    def width(self):
        return self.base_config["n_embd"]

    def describe(self):
        return f"the shipped base ({self.meta['val_loss']:.3f} nats/char on its validation plays), {self.task.description}"

    def pretrain(self):
        """Nothing to pretrain: the base ships with minilora. Its loss is the one recorded with it."""
        self.pretrain_loss = self.meta["val_loss"]
        return 0.0

    def new_model(self, width=None):
        return GPT(GPTConfig(**{**self.base_config, "n_embd": width or self.width}))

    def train(self, model, iters, lr):
        """As ``_Task.train``, on the task's loss: the teacher task trains ``model`` to imitate the teacher."""
        trained = self.task.wrap(model) if self.task.wrap else model
        return super().train(trained, iters, lr)

    def evaluate(self, model):
        return {"val_loss": mean_loss(self.task.wrap(model) if self.task.wrap else model, self.task.eval_batches)}
