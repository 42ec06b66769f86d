"""Tokenizers: text to integer ids and back, one id per character or per word.

``CharTokenizer`` keeps the vocabulary tiny (a few dozen ids), so the
embedding and output layers of a small language model stay small and every
id can be inspected by eye. ``WordTokenizer`` suits short, word-structured
sentences such as the sentiment corpus, where a word is one token instead of
five, so a sentence is a dozen tokens and attention is far cheaper.

Either vocabulary is the sorted set of units seen in the text it was fitted
on, so fitting the same text always gives the same ids, and a checkpoint can
carry the tokenizer as a short JSON list.

    tok = CharTokenizer.fit(text)
    ids = tok.encode("hello")        # list of ints
    tok.decode(ids) == "hello"
    tok.save("tokenizer.json"); CharTokenizer.load("tokenizer.json") == tok
"""

import json
import pathlib
import re

from minilora import backend

_VERSION = 1


class Tokenizer:
    """Maps each unit (a character, a word) of a fixed vocabulary to its index in it.

    ``itos`` is the vocabulary in id order and ``stoi`` maps a unit back to
    its id (nanoGPT's names). Subclasses say how text splits into units and
    how units join back into text.
    """

    unit = "unit"  # what one token is, for messages
    vocab_key = "units"  # the key of the vocabulary list in to_dict()

    def __init__(self, units):
        units = list(units)
        for u in units:
            self._check_unit(u)
        if len(set(units)) != len(units):
            repeated = sorted({u for u in units if units.count(u) > 1})
            raise ValueError(f"the vocabulary lists these {self.unit}s more than once: {repeated!r}")
        if not units:
            raise ValueError(f"a {type(self).__name__} needs at least one {self.unit} in its vocabulary")
        self.itos = units
        self.stoi = {u: i for i, u in enumerate(units)}

    def _check_unit(self, u):
        if not isinstance(u, str) or not u:
            raise ValueError(f"a {type(self).__name__} vocabulary holds non-empty strings, got {u!r}")

    @classmethod
    def split_text(cls, text, **options):
        """The units of ``text``, in order (``options`` as recorded by ``options()``)."""
        raise NotImplementedError

    def split(self, text):
        return self.split_text(text, **self.options())

    def join(self, units):
        raise NotImplementedError

    @classmethod
    def fit(cls, text, **options):
        """A tokenizer whose vocabulary is the sorted set of units in ``text``.

        Fit on *all* the text you will encode (train, validation, and the
        fine-tuning corpus too), since a unit missing here cannot be encoded later.
        """
        if not isinstance(text, str):
            raise TypeError(f"{cls.__name__}.fit expects a str, got {type(text).__name__}")
        if not text:
            raise ValueError(f"cannot fit a {cls.__name__} on empty text: there is nothing to learn")
        return cls(sorted(set(cls.split_text(text, **options))), **options)

    @property
    def vocab_size(self):
        """The number of distinct ids, i.e. the rows an embedding table needs."""
        return len(self.itos)

    def __len__(self):
        return self.vocab_size

    def encode(self, text):
        """The list of ids of the units of ``text``, in order.

        Raises ValueError naming the first unit outside the vocabulary and its
        position, because silently dropping or replacing it would shift every
        later token.
        """
        stoi = self.stoi
        units = self.split(text)
        try:
            return [stoi[u] for u in units]
        except KeyError:
            position = next(i for i, u in enumerate(units) if u not in stoi)
            raise ValueError(
                f"{self._describe(units[position])} at position {position} is not in this tokenizer's "
                f"vocabulary of {self.vocab_size} {self.unit}s. Fit the tokenizer on all the text you "
                f"will encode, e.g. {type(self).__name__}.fit(train_text + finetune_text)."
            ) from None

    def _describe(self, unit):
        return f"{self.unit} {unit!r}"

    def decode(self, ids):
        """The text spelled by ``ids`` (a list of ints, a 1-D array, or a tensor)."""
        if hasattr(ids, "numpy") and not backend.is_array(ids):  # a Tensor
            ids = ids.numpy()
        if backend.is_array(ids):
            array = backend.to_numpy(ids)
            if array.ndim != 1:
                raise ValueError(f"decode expects a 1-D sequence of ids, got shape {tuple(array.shape)}")
            ids = array.tolist()
        itos, n = self.itos, len(self.itos)
        out = []
        for position, i in enumerate(ids):
            i = int(i)
            if not 0 <= i < n:
                raise ValueError(f"id {i} at position {position} is outside the vocabulary [0, {n})")
            out.append(itos[i])
        return self.join(out)

    # -- serialisation: plain JSON, so a checkpoint's config can embed it --

    def options(self):
        """Settings besides the vocabulary that to_dict must record."""
        return {}

    def to_dict(self):
        """A JSON-friendly dict that ``from_dict`` turns back into an equal tokenizer."""
        return {"format": f"minilora.{type(self).__name__}", "version": _VERSION, self.vocab_key: list(self.itos), **self.options()}

    @classmethod
    def from_dict(cls, d):
        """The tokenizer described by ``d`` (as written by ``to_dict``)."""
        if cls is Tokenizer:  # dispatch on the recorded format
            kinds = {f"minilora.{k.__name__}": k for k in (CharTokenizer, WordTokenizer)}
            kind = kinds.get(d.get("format")) if isinstance(d, dict) else None
            if kind is None:
                raise ValueError(f"not a tokenizer description: expected a dict whose 'format' is one of {sorted(kinds)}")
            return kind.from_dict(d)
        expected = f"minilora.{cls.__name__}"
        if not isinstance(d, dict) or d.get("format") != expected or not isinstance(d.get(cls.vocab_key), list):
            raise ValueError(
                f"not a {cls.__name__} description: expected a dict with format {expected!r} and a "
                f"{cls.vocab_key!r} list, as written by {cls.__name__}.to_dict()"
            )
        if d.get("version") != _VERSION:
            raise ValueError(f"unsupported {cls.__name__} format version {d.get('version')!r} (this is {_VERSION})")
        options = {k: v for k, v in d.items() if k not in ("format", "version", cls.vocab_key)}
        try:
            return cls(d[cls.vocab_key], **options)
        except TypeError:
            raise ValueError(f"{cls.__name__} description has unknown settings {sorted(options)}") from None

    def save(self, path):
        """Write the tokenizer to ``path`` as UTF-8 JSON."""
        text = json.dumps(self.to_dict(), ensure_ascii=False, indent=1)
        pathlib.Path(path).write_text(text + "\n", encoding="utf-8")

    @classmethod
    def load(cls, path):
        """Read a tokenizer written by ``save``; a malformed file raises ValueError saying why."""
        path = pathlib.Path(path)
        if not path.is_file():
            what = "is a directory" if path.is_dir() else "does not exist"
            raise FileNotFoundError(f"tokenizer file {str(path)!r} {what}; pass the JSON file written by save()")
        try:
            d = json.loads(path.read_text(encoding="utf-8"))
        except UnicodeDecodeError as err:
            raise ValueError(f"tokenizer file {str(path)!r} is not UTF-8 text (byte offset {err.start})") from None
        except json.JSONDecodeError as err:
            raise ValueError(
                f"tokenizer file {str(path)!r} is not valid JSON ({err.msg} at line {err.lineno}, "
                f"column {err.colno}); write it with {cls.__name__}.save()"
            ) from None
        try:
            return cls.from_dict(d)
        except ValueError as err:
            raise ValueError(f"tokenizer file {str(path)!r}: {err}") from None

    def __eq__(self, other):
        return type(other) is type(self) and self.itos == other.itos and self.options() == other.options()

    def __hash__(self):
        return hash(tuple(self.itos))

    def __repr__(self):
        preview = self.itos[:20]
        more = "..." if self.vocab_size > 20 else ""
        return f"{type(self).__name__}(vocab_size={self.vocab_size}, {self.vocab_key}={preview!r}{more})"


class CharTokenizer(Tokenizer):
    """One id per character: the tokenizer of the character-level language models."""

    unit, vocab_key = "character", "chars"

    def _check_unit(self, c):
        if not isinstance(c, str) or len(c) != 1:
            raise ValueError(f"a CharTokenizer vocabulary holds single characters, got {c!r}")

    def _describe(self, c):
        return f"character {c!r} (U+{ord(c):04X})"

    @classmethod
    def split_text(cls, text):
        return list(text)

    def join(self, chars):
        return "".join(chars)


class WordTokenizer(Tokenizer):
    """One id per word or punctuation mark; ``lower=True`` folds case first.

    "It wasn't bad!" becomes ["it", "wasn't", "bad", "!"]. Decoding joins
    with single spaces, so spacing around punctuation is not restored.
    """

    unit, vocab_key = "word", "words"
    PATTERN = re.compile(r"[\w']+|[^\w\s]")  # runs of letters/digits/apostrophes, or one other symbol

    def __init__(self, words, lower=True):
        self.lower = lower
        super().__init__(words)

    def options(self):
        return {"lower": self.lower}

    @classmethod
    def split_text(cls, text, lower=True):
        return cls.PATTERN.findall(text.lower() if lower else text)

    def join(self, words):
        return " ".join(words)
