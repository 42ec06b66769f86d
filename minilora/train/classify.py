"""Sentence classification on the built-in sentiment corpus: data, training, accuracy.

Sentences are split into words (``WordTokenizer``): a sentence is about a
dozen tokens, and "not" and "but", which decide the labels, are single
tokens. They are padded on the right to the longest one, with a mask marking
the real words; each batch is trimmed to its own longest sentence, so
attention never pays for columns of padding.
"""

from dataclasses import dataclass

from minilora import backend
from minilora.data import WordTokenizer, encode_sentences, sentiment_corpus
from minilora.models import ClassifierConfig, TextClassifier
from minilora.nn.module import evaluating
from minilora.train.trainer import Trainer


@dataclass
class Split:
    x: object  # (N, T) int64 token ids, right-padded
    y: object  # (N,) int64 labels
    mask: object  # (N, T) bool, True on real tokens

    def __len__(self):
        return self.x.shape[0]

    def rows(self, index):
        """The rows ``index`` as a batch (x, y, mask), trimmed to its longest sentence."""
        mask = self.mask[index]
        T = int(mask.sum(axis=1).max())
        return self.x[index][:, :T], self.y[index], mask[:, :T]


def sentiment_splits(n=20_000, seed=0, val_fraction=0.2):
    """(tokenizer, train Split, validation Split) from the built-in sentiment corpus."""
    pairs = sentiment_corpus(n=n, seed=seed)
    tokenizer = WordTokenizer.fit(" ".join(s for s, _ in pairs))
    x, mask = encode_sentences(tokenizer, [s for s, _ in pairs])
    y = backend.asarray([label for _, label in pairs], dtype=backend.int64)
    cut = int(round(n * (1.0 - val_fraction)))
    return tokenizer, Split(x[:cut], y[:cut], mask[:cut]), Split(x[cut:], y[cut:], mask[cut:])


def accuracy(model, split, batch_size=500):
    """The fraction of ``split`` that ``model`` labels correctly (eval mode, no graph)."""
    correct = 0
    with evaluating(model):
        for start in range(0, len(split), batch_size):
            x, y, mask = split.rows(slice(start, start + batch_size))
            logits, _ = model(x, mask=mask)
            correct += int((logits.data.argmax(axis=-1) == y).sum())
    return correct / len(split)


def majority_baseline(train, val):
    """Accuracy on ``val`` of always answering the most common training label."""
    xp = backend.get_array_module(train.y)
    counts = xp.bincount(train.y)
    return float((val.y == counts.argmax()).mean())


def train_classifier(model_config, train_config, n=20_000, seed=0, log=print, progress=True, objective=None):
    """Train a TextClassifier on the sentiment corpus; returns (model, metrics, trainer).

    ``model_config`` is a dict of ClassifierConfig fields without ``vocab_size``
    and ``block_size``, which come from the data. ``objective``, if given, maps
    the classifier to the module the Trainer minimises instead, one whose
    training loss differs but whose parameters are the classifier's (e.g.
    adversarial training's wrapper, minilora/experiments/robustness.py).
    """
    backend.manual_seed(train_config.seed)
    tokenizer, train, val = sentiment_splits(n=n, seed=seed)
    config = ClassifierConfig(vocab_size=tokenizer.vocab_size, block_size=train.x.shape[1], **model_config)
    model = TextClassifier(config)
    batch = train_config.batch_size
    generator = backend.new_generator(train_config.seed + 1)
    eval_sets = {
        "train": [train.rows(backend.randint(0, len(train), (batch,), generator)) for _ in range(train_config.eval_iters)],
        "val": [val.rows(slice(i * batch, (i + 1) * batch)) for i in range(min(train_config.eval_iters, len(val) // batch))],
    }
    trained = model if objective is None else objective(model)
    trainer = Trainer(trained, train_config, lambda: train.rows(backend.randint(0, len(train), (batch,))), eval_sets, log=log, progress=progress)
    trainer.fit()
    metrics = {
        "train_accuracy": accuracy(model, train),
        "val_accuracy": accuracy(model, val),
        "majority_baseline": majority_baseline(train, val),
    }
    return model, metrics, trainer
