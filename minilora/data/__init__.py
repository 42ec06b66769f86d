"""Data: character, word and WordPiece tokenizers, built-in corpora, the plays, text files and batches.

    from minilora.data import CharTokenizer, load_corpus, train_val_split, get_batch

    text = load_corpus("builtin:domain_a")          # or a path to any UTF-8 text file
    tok = CharTokenizer.fit(text)
    train, val = train_val_split(tok.encode(text), val_fraction=0.1, block_size=64)
    x, y = get_batch(train, block_size=64, batch_size=12)   # y is x shifted by one

Everything random is drawn from a seed: corpora from their ``seed`` argument,
batches from the generator that ``minilora.manual_seed`` sets.
"""

from minilora.data.corpora import domain_a, domain_b, two_domain_corpus
from minilora.data.plays import GENRES, SPLITS, Line, Play, load_plays, parse_play, plays_text
from minilora.data.sentiment import NEGATIVE_WORDS, POSITIVE_WORDS, sentiment_corpus
from minilora.data.text import (
    builtin_names,
    encode_sentences,
    get_batch,
    iterate_minibatches,
    load_corpus,
    read_text_file,
    train_val_split,
)
from minilora.data.tokenizer import CharTokenizer, Tokenizer, WordTokenizer
from minilora.data.wordpiece import WordPieceTokenizer

__all__ = [
    "CharTokenizer",
    "WordTokenizer",
    "WordPieceTokenizer",
    "Tokenizer",
    "load_corpus",
    "builtin_names",
    "read_text_file",
    "two_domain_corpus",
    "domain_a",
    "domain_b",
    "sentiment_corpus",
    "GENRES",
    "SPLITS",
    "Line",
    "Play",
    "load_plays",
    "parse_play",
    "plays_text",
    "POSITIVE_WORDS",
    "NEGATIVE_WORDS",
    "train_val_split",
    "get_batch",
    "encode_sentences",
    "iterate_minibatches",
]
