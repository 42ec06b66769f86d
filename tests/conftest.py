"""Fixtures only; helpers that tests import live in tests/helpers.py."""

import pytest

import minilora as ml
from minilora.data import sentiment_corpus, two_domain_corpus


@pytest.fixture(autouse=True)
def _fresh_seed():
    """Every test starts from the same random stream."""
    ml.manual_seed(0)
    yield


@pytest.fixture(scope="module")
def domains():
    """The two generated text domains at seed 0 (tests/test_data_*.py)."""
    return two_domain_corpus(seed=0)


@pytest.fixture(scope="module")
def reviews():
    """20,000 labelled reviews at seed 0 (tests/test_data_sentiment.py)."""
    return sentiment_corpus(n=20000, seed=0)
