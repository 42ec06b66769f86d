"""Fixtures only; helpers that tests import live in tests/helpers.py."""

import pytest

import minilora as ml


@pytest.fixture(autouse=True)
def _fresh_seed():
    """Every test starts from the same random stream."""
    ml.manual_seed(0)
    yield
