"""BERT's WordPiece tokenizer, written out: text to the ids a pretrained BERT expects.

Four stages, each a few lines below, read from a Hugging Face ``tokenizer.json``:

1. **Normalise** (``BertNormalizer``): drop control characters and map every
   whitespace character to a space (``clean_text``); put spaces around CJK
   ideographs so each is its own word (``handle_chinese_chars``); decompose to
   NFD and drop the combining marks (``strip_accents``, which defaults to
   ``lowercase``); lower-case.
2. **Pre-tokenise** (``BertPreTokenizer``): split on whitespace, and make
   every punctuation character a word of its own.
3. **WordPiece** (the model): each word becomes the longest vocabulary entry
   that starts it, then the longest ``##``-prefixed entry that continues from
   there, and so on. If some position has no match, or the word is longer than
   ``max_input_chars_per_word`` characters, the whole word is ``[UNK]``.
4. **Post-process**: ``[CLS] tokens [SEP]``, cut to ``max_length`` first, then
   padded with ``[PAD]`` to the longest sentence of the batch, with an
   attention mask that is 1 on real tokens and 0 on padding.

Special tokens written in the text itself ("[MASK]") are matched before any of
this, as the added tokens of the file say, and keep their own ids.

    tok = WordPieceTokenizer.from_file("tokenizer.json")
    tok.tokenize("Unaffable!")        # ['una', '##ff', '##able', '!']
    batch = tok(["a sentence", "another one"], max_length=256)
    batch["input_ids"], batch["attention_mask"]   # (2, T) int64 arrays
"""

import json
import pathlib
import re
import unicodedata

from minilora import backend

# CJK Unified Ideographs and their extensions: the blocks BERT spaces out (Korean
# and Japanese kana are written with spaces or are not in these blocks).
_CJK_RANGES = (
    (0x4E00, 0x9FFF), (0x3400, 0x4DBF), (0x20000, 0x2A6DF), (0x2A700, 0x2B73F),
    (0x2B740, 0x2B81F), (0x2B920, 0x2CEAF), (0xF900, 0xFAFF), (0x2F800, 0x2FA1F),
)  # fmt: skip


def is_cjk(c):
    code = ord(c)
    return any(lo <= code <= hi for lo, hi in _CJK_RANGES)


def is_whitespace(c):
    """Unicode White_Space: the space, line and paragraph separators, and tab, newline, vertical tab,
    form feed, return and next line (U+0085)."""
    return c in " \t\n\x0b\x0c\r\x85" or unicodedata.category(c) in ("Zs", "Zl", "Zp")


def is_control(c):
    """Controls, format marks, private use and surrogates, except tab, newline and return.
    Unassigned code points (Cn) are kept, as the reference tokenizer keeps them."""
    return c not in "\t\n\r" and unicodedata.category(c) in ("Cc", "Cf", "Co", "Cs")


def is_punctuation(c):
    """Unicode punctuation, plus every ASCII symbol ($, +, <, =, >, ^, `, |, ~ are symbols in Unicode)."""
    code = ord(c)
    if 33 <= code <= 47 or 58 <= code <= 64 or 91 <= code <= 96 or 123 <= code <= 126:
        return True
    return unicodedata.category(c).startswith("P")


class WordPieceTokenizer:
    """A BERT WordPiece tokenizer (module docstring: normalise, split, WordPiece, [CLS]/[SEP]).

    ``vocab`` lists the tokens in id order. The other arguments are the fields
    of a ``tokenizer.json`` with the same names; ``from_file`` reads them.
    """

    def __init__(self, vocab, *, lowercase=True, strip_accents=None, clean_text=True, handle_chinese_chars=True,
                 unk_token="[UNK]", cls_token="[CLS]", sep_token="[SEP]", pad_token="[PAD]",
                 continuing_prefix="##", max_input_chars_per_word=100, special_tokens=(), max_length=512):  # fmt: skip
        self.vocab = list(vocab)
        self.token_to_id = {t: i for i, t in enumerate(self.vocab)}
        if len(self.token_to_id) != len(self.vocab):
            raise ValueError("the WordPiece vocabulary lists some tokens twice; each token needs one id")
        for name, token in (("unk_token", unk_token), ("cls_token", cls_token), ("sep_token", sep_token), ("pad_token", pad_token)):
            if token not in self.token_to_id:
                raise ValueError(f"{name} {token!r} is not in the vocabulary; a BERT vocabulary needs it")
        self.lowercase, self.clean_text, self.handle_chinese_chars = lowercase, clean_text, handle_chinese_chars
        self.strip_accents = lowercase if strip_accents is None else strip_accents  # BERT's rule: follow lowercase
        self.unk_token, self.cls_token, self.sep_token, self.pad_token = unk_token, cls_token, sep_token, pad_token
        self.continuing_prefix, self.max_input_chars_per_word = continuing_prefix, max_input_chars_per_word
        self.max_length = max_length  # the longest sequence the encoder takes, [CLS] and [SEP] included
        self.special_tokens = sorted(set(special_tokens) | {unk_token, cls_token, sep_token, pad_token}, key=len, reverse=True)
        self._special = re.compile("(" + "|".join(re.escape(t) for t in self.special_tokens) + ")")

    # -- reading a tokenizer.json --

    @classmethod
    def from_file(cls, path, max_length=512):
        """The tokenizer a Hugging Face ``tokenizer.json`` describes (a BERT WordPiece one)."""
        path = pathlib.Path(path)
        if not path.is_file():
            raise FileNotFoundError(f"{str(path)!r} does not exist; pass the tokenizer.json of a BERT model")
        try:
            spec = json.loads(path.read_text(encoding="utf-8"))
        except (UnicodeDecodeError, json.JSONDecodeError) as err:
            raise ValueError(f"{str(path)!r} is not a JSON tokenizer file ({err})") from None
        try:
            return cls.from_dict(spec, max_length=max_length)
        except ValueError as err:
            raise ValueError(f"{str(path)!r}: {err}") from None

    @classmethod
    def from_dict(cls, spec, max_length=512):
        """The tokenizer of a parsed ``tokenizer.json``; anything but BERT's pipeline is refused by name."""
        model = spec.get("model") if isinstance(spec, dict) else None
        if not isinstance(model, dict) or model.get("type") != "WordPiece" or not isinstance(model.get("vocab"), dict):
            found = model.get("type") if isinstance(model, dict) else None
            raise ValueError(f"expected a WordPiece tokenizer with a vocab, found model type {found!r}")
        normalizer = spec.get("normalizer") or {}
        if normalizer and normalizer.get("type") != "BertNormalizer":
            raise ValueError(f"only BertNormalizer is implemented, this file uses {normalizer.get('type')!r}")
        pre = (spec.get("pre_tokenizer") or {}).get("type")
        if pre not in (None, "BertPreTokenizer"):
            raise ValueError(f"only BertPreTokenizer is implemented, this file uses {pre!r}")
        by_id = sorted(model["vocab"].items(), key=lambda item: item[1])
        if [i for _, i in by_id] != list(range(len(by_id))):
            raise ValueError("the vocabulary's ids are not 0, 1, ..., n-1")
        return cls(
            [token for token, _ in by_id],
            lowercase=normalizer.get("lowercase", True),
            strip_accents=normalizer.get("strip_accents"),
            clean_text=normalizer.get("clean_text", True),
            handle_chinese_chars=normalizer.get("handle_chinese_chars", True),
            unk_token=model.get("unk_token", "[UNK]"),
            continuing_prefix=model.get("continuing_subword_prefix", "##"),
            max_input_chars_per_word=model.get("max_input_chars_per_word", 100),
            special_tokens=[t["content"] for t in spec.get("added_tokens", []) if t.get("special")],
            max_length=max_length,
        )

    @property
    def vocab_size(self):
        return len(self.vocab)

    def __len__(self):
        return len(self.vocab)

    # -- 1. normalise, 2. pre-tokenise, 3. WordPiece --

    def normalize(self, text):
        """Stage 1: BertNormalizer (module docstring)."""
        if self.clean_text:
            text = "".join(" " if is_whitespace(c) else c for c in text if c not in "\x00\ufffd" and not is_control(c))
        if self.handle_chinese_chars:
            text = "".join(f" {c} " if is_cjk(c) else c for c in text)
        if self.strip_accents:
            text = "".join(c for c in unicodedata.normalize("NFD", text) if unicodedata.category(c) != "Mn")
        return text.lower() if self.lowercase else text

    @staticmethod
    def pre_tokenize(text):
        """Stage 2: the words of ``text``, split on whitespace, each punctuation character alone."""
        words, current = [], []
        for c in text:
            if is_whitespace(c) or is_punctuation(c):
                if current:
                    words.append("".join(current))
                    current = []
                if not is_whitespace(c):
                    words.append(c)
            else:
                current.append(c)
        if current:
            words.append("".join(current))
        return words

    def wordpiece(self, word):
        """Stage 3: greedy longest-match-first pieces of one word, or [UNK] for the whole word."""
        if len(word) > self.max_input_chars_per_word:
            return [self.unk_token]
        pieces, start = [], 0
        while start < len(word):
            for end in range(len(word), start, -1):  # the longest candidate first
                piece = word[start:end] if start == 0 else self.continuing_prefix + word[start:end]
                if piece in self.token_to_id:
                    break
            else:  # no prefix of the rest is in the vocabulary: the word cannot be spelled
                return [self.unk_token]
            pieces.append(piece)
            start = end
        return pieces

    def tokenize(self, text):
        """The WordPiece tokens of ``text``, without [CLS] and [SEP]."""
        if not isinstance(text, str):
            raise TypeError(f"tokenize expects a str, got {type(text).__name__}")
        tokens = []
        for i, part in enumerate(self._special.split(text)):
            if i % 2:  # the split's odd parts are the special tokens themselves
                tokens.append(part)
                continue
            for word in self.pre_tokenize(self.normalize(part)):
                tokens.extend(self.wordpiece(word))
        return tokens

    # -- 4. ids, [CLS]/[SEP], truncation, padding --

    def encode(self, text, max_length=None):
        """``[CLS] ids [SEP]`` for one text, cut so the whole is at most ``max_length`` ids."""
        max_length = self.max_length if max_length is None else max_length
        if max_length < 2:
            raise ValueError(f"max_length must leave room for [CLS] and [SEP], got {max_length}")
        ids = [self.token_to_id[t] for t in self.tokenize(text)][: max_length - 2]
        return [self.token_to_id[self.cls_token], *ids, self.token_to_id[self.sep_token]]

    def __call__(self, texts, max_length=None):
        """A padded batch: ``input_ids``, ``attention_mask`` and ``token_type_ids``, each (n, T) int64,
        T the longest encoded text (at most ``max_length``)."""
        if isinstance(texts, str):
            texts = [texts]
        if not texts:
            raise ValueError("nothing to tokenize: pass a non-empty list of strings")
        encoded = [self.encode(t, max_length) for t in texts]
        width = max(len(ids) for ids in encoded)
        pad = self.token_to_id[self.pad_token]
        input_ids = [ids + [pad] * (width - len(ids)) for ids in encoded]
        mask = [[1] * len(ids) + [0] * (width - len(ids)) for ids in encoded]
        xp = backend.xp
        return {
            "input_ids": xp.asarray(input_ids, dtype=backend.int64),  # (n, T)
            "attention_mask": xp.asarray(mask, dtype=backend.int64),  # (n, T): 1 real, 0 padding
            "token_type_ids": xp.zeros((len(texts), width), dtype=backend.int64),  # one segment: all 0
        }

    def decode(self, ids, skip_special_tokens=True):
        """Text from ids: ``##`` pieces glued to the piece before, words joined by spaces."""
        special = set(self.special_tokens) if skip_special_tokens else set()
        words = []
        for i in ids:
            token = self.vocab[int(i)]
            if token in special:
                continue
            if token.startswith(self.continuing_prefix) and words:
                words[-1] += token[len(self.continuing_prefix) :]
            else:
                words.append(token)
        return " ".join(words)

    def __repr__(self):
        return f"WordPieceTokenizer(vocab_size={self.vocab_size}, lowercase={self.lowercase}, max_length={self.max_length})"
