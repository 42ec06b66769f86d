"""minilora/data/corpora.py: the two generated text domains."""

import re
import time

import numpy as np

from minilora.data import (
    CharTokenizer,
    two_domain_corpus,
)

# ----------------------------------------------------------------------------
# The two-domain corpus


def test_domains_are_deterministic_and_change_with_the_seed(domains):
    assert two_domain_corpus(seed=0) == domains
    other = two_domain_corpus(seed=1)
    assert other[0] != domains[0] and other[1] != domains[1]


def test_domain_sizes_lines_and_speed():
    start = time.perf_counter()
    a, b = two_domain_corpus(seed=3)
    elapsed = time.perf_counter() - start
    assert elapsed < 2.0, f"generating both domains took {elapsed:.2f} s"
    for text in (a, b):
        assert 300_000 <= len(text) <= 500_000
        assert text.endswith("\n") and "\r" not in text
        lines = text.splitlines()
        assert len(set(lines)) > 0.5 * len(lines), "too many repeated lines to call it varied"


def test_a_tokenizer_fitted_on_a_encodes_b(domains):
    a, b = domains
    assert set(b) <= set(a)
    assert len(set(a) & set(b)) >= 0.9 * len(set(a))  # most of the character set is shared


def test_domains_differ_in_characters_and_words(domains):
    a, b = domains
    tok = CharTokenizer.fit(a)
    pa = np.bincount(tok.encode(a), minlength=tok.vocab_size) / len(a)
    pb = np.bincount(tok.encode(b), minlength=tok.vocab_size) / len(b)
    total_variation = 0.5 * np.abs(pa - pb).sum()
    assert total_variation > 0.25  # measured 0.35 for seed 0
    words_a = set(re.findall(r"[a-z]+", a.lower()))
    words_b = set(re.findall(r"[a-z]+", b.lower()))
    shared = words_a & words_b
    assert {"the", "and", "to"} <= shared  # English in both ...
    assert len(shared) / len(words_a | words_b) < 0.2  # ... but mostly different words


def _bigram_log_probs(ids, vocab_size):
    counts = np.full((vocab_size, vocab_size), 0.1)
    np.add.at(counts, (ids[:-1], ids[1:]), 1.0)
    return np.log(counts / counts.sum(axis=1, keepdims=True))


def _bigram_loss(log_probs, ids):
    return -log_probs[ids[:-1], ids[1:]].mean()


def test_a_model_of_a_is_clearly_worse_on_b_and_adapting_helps(domains):
    """A bigram model stands in for a pretrained LM: the shift is real and learnable."""
    a, b = domains
    tok = CharTokenizer.fit(a)
    ids_a, ids_b = np.array(tok.encode(a)), np.array(tok.encode(b))
    train_a, val_a = ids_a[: len(ids_a) * 9 // 10], ids_a[len(ids_a) * 9 // 10 :]
    train_b, val_b = ids_b[: len(ids_b) * 9 // 10], ids_b[len(ids_b) * 9 // 10 :]
    model_a = _bigram_log_probs(train_a, tok.vocab_size)
    model_b = _bigram_log_probs(train_b, tok.vocab_size)
    loss_a_on_a, loss_a_on_b = _bigram_loss(model_a, val_a), _bigram_loss(model_a, val_b)
    loss_b_on_b = _bigram_loss(model_b, val_b)
    assert loss_a_on_b > loss_a_on_a + 0.75  # measured 3.46 vs 2.25 nats
    assert loss_b_on_b < loss_a_on_b - 0.75  # measured 2.19 nats after "adapting"
