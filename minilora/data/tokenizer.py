"""A character-level tokenizer: one integer id per distinct character.

Character tokens keep the vocabulary tiny (a few dozen ids), so the embedding
and output layers of a small language model stay small and every id can be
inspected by eye. The vocabulary is the sorted set of characters seen in the
text it was fitted on, so fitting the same text always gives the same ids,
and a checkpoint can carry the tokenizer as a short JSON list of characters.

    tok = CharTokenizer.fit(text)
    ids = tok.encode("hello")        # list of ints
    tok.decode(ids) == "hello"
    tok.save("tokenizer.json"); CharTokenizer.load("tokenizer.json") == tok
"""

import json
import pathlib

from minilora import backend

_FORMAT = "minilora.CharTokenizer"
_VERSION = 1


class CharTokenizer:
    """Maps each character of a fixed vocabulary to its index in that vocabulary.

    ``chars`` is the vocabulary in id order; ``CharTokenizer.fit(text)`` is the
    usual way to build one. Ids are positions in ``chars``: ``stoi`` maps a
    character to its id and ``itos`` maps an id back (nanoGPT's names).
    """

    def __init__(self, chars):
        chars = list(chars)
        for c in chars:
            if not isinstance(c, str) or len(c) != 1:
                raise ValueError(f"a CharTokenizer vocabulary holds single characters, got {c!r}")
        if len(set(chars)) != len(chars):
            repeated = sorted({c for c in chars if chars.count(c) > 1})
            raise ValueError(f"the vocabulary lists these characters more than once: {repeated!r}")
        if not chars:
            raise ValueError("a CharTokenizer needs at least one character in its vocabulary")
        self.itos = chars
        self.stoi = {c: i for i, c in enumerate(chars)}

    @classmethod
    def fit(cls, text):
        """A tokenizer whose vocabulary is the sorted set of characters in ``text``.

        Fit on *all* the text you will encode (train, validation, and the
        fine-tuning corpus too), since a character missing here cannot be
        encoded later.
        """
        if not isinstance(text, str):
            raise TypeError(f"CharTokenizer.fit expects a str, got {type(text).__name__}")
        if not text:
            raise ValueError("cannot fit a CharTokenizer on empty text: there are no characters to learn")
        return cls(sorted(set(text)))

    @property
    def vocab_size(self):
        """The number of distinct ids, i.e. the rows an embedding table needs."""
        return len(self.itos)

    def __len__(self):
        return self.vocab_size

    def encode(self, text):
        """The list of ids of the characters of ``text``, in order.

        Raises ValueError naming the first character outside the vocabulary
        and its position, because silently dropping or replacing it would
        shift every later token.
        """
        stoi = self.stoi
        try:
            return [stoi[c] for c in text]
        except KeyError:
            position = next(i for i, c in enumerate(text) if c not in stoi)
            c = text[position]
            raise ValueError(
                f"character {c!r} (U+{ord(c):04X}) at position {position} is not in this tokenizer's "
                f"vocabulary of {self.vocab_size} characters. Fit the tokenizer on all the text you "
                f"will encode, e.g. CharTokenizer.fit(train_text + finetune_text)."
            ) from None

    def decode(self, ids):
        """The string spelled by ``ids`` (a list of ints, a 1-D array, or a tensor)."""
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
        return "".join(out)

    # -- serialisation: plain JSON, so a checkpoint's config can embed it --

    def to_dict(self):
        """A JSON-friendly dict that ``from_dict`` turns back into an equal tokenizer."""
        return {"format": _FORMAT, "version": _VERSION, "chars": list(self.itos)}

    @classmethod
    def from_dict(cls, d):
        """The tokenizer described by ``d`` (as written by ``to_dict``)."""
        if not isinstance(d, dict) or d.get("format") != _FORMAT or not isinstance(d.get("chars"), list):
            raise ValueError(
                f"not a CharTokenizer description: expected a dict with format {_FORMAT!r} and a "
                f"'chars' list, as written by CharTokenizer.to_dict()"
            )
        if d.get("version") != _VERSION:
            raise ValueError(f"unsupported CharTokenizer format version {d.get('version')!r} (this is {_VERSION})")
        return cls(d["chars"])

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
                f"column {err.colno}); write it with CharTokenizer.save()"
            ) from None
        try:
            return cls.from_dict(d)
        except ValueError as err:
            raise ValueError(f"tokenizer file {str(path)!r}: {err}") from None

    def __eq__(self, other):
        return isinstance(other, CharTokenizer) and self.itos == other.itos

    def __hash__(self):
        return hash(tuple(self.itos))

    def __repr__(self):
        preview = "".join(self.itos[:20])
        more = "..." if self.vocab_size > 20 else ""
        return f"CharTokenizer(vocab_size={self.vocab_size}, chars={preview!r}{more})"
