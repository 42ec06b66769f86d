"""The LoRA paper §7 measurements against cases with known answers."""

import numpy as np
import pytest

from minilora.lora.analysis import energy_fraction, singular_values, subspace_similarity


def test_energy_fraction_of_a_rank_k_matrix():
    rng = np.random.default_rng(0)
    delta = rng.normal(size=(20, 3)) @ rng.normal(size=(3, 30))
    sigma = singular_values(delta)
    assert energy_fraction(sigma, 3) == pytest.approx(1.0, abs=1e-12)
    assert energy_fraction(sigma, 1) < 1.0
    assert energy_fraction(np.array([3.0, 4.0]), 1) == pytest.approx(9 / 25)


def test_identical_adapters_have_similarity_one_where_nested():
    a = np.random.default_rng(0).normal(size=(4, 50))
    phi = subspace_similarity(a, a)
    np.testing.assert_allclose(np.diag(phi), 1.0, atol=1e-12)
    assert np.all(phi <= 1 + 1e-12) and np.all(phi >= 0)


def test_similarity_ignores_basis_and_scale_within_a_subspace():
    rng = np.random.default_rng(1)
    a = rng.normal(size=(3, 40))
    mixed = rng.normal(size=(3, 3)) @ a  # same row space, different basis
    assert subspace_similarity(a, mixed)[2, 2] == pytest.approx(1.0, abs=1e-10)


def test_unrelated_random_subspaces_are_nearly_orthogonal():
    rng = np.random.default_rng(2)
    phi = subspace_similarity(rng.normal(size=(8, 2000)), rng.normal(size=(8, 2000)))
    assert phi.max() < 0.05  # expectation about max(i, j)/d = 0.004


def test_smaller_subspace_inside_a_larger_one():
    rng = np.random.default_rng(3)
    big = rng.normal(size=(6, 30))
    small = rng.normal(size=(2, 6)) @ big  # a 2-d subspace of big's 6-d row space
    phi = subspace_similarity(big, small)
    assert phi.shape == (6, 2)
    assert phi[5, 1] == pytest.approx(1.0, abs=1e-10)
