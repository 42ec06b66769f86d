"""Random projections: their scaling (Eq. 6-7), the Johnson–Lindenstrauss bound (Eq. 8-9)
and the spread of their distortion (Eq. 10), over n = 200 points."""

import math

import numpy as np
import pytest

import minilora as ml
from minilora import backend
from minilora.models import RNNConfig
from minilora.models.rnn import random_projection
from minilora.orthogonal import (
    distortion,
    gaussian_projection,
    jl_check,
    jl_min_dim,
    jl_pair_failure_bound,
    orthogonal_projection,
    orthogonal_scale,
    orthogonality_error,
)

KINDS = {"gaussian": gaussian_projection, "orthogonal": orthogonal_projection}
N_POINTS, D = 200, 1000
POINTS = np.random.default_rng(2024).normal(size=(N_POINTS, D))


def draw(kind, d_in, d_out, seed):
    """A projection from its own stream; seeds 0-999, never 2024, so R is independent of POINTS."""
    return KINDS[kind](d_in, d_out, generator=backend.new_generator(seed), dtype="float64")


def test_gaussian_entries_are_n_0_1_over_d_out_and_seeded():
    R = gaussian_projection(100, 400)
    assert R.shape == (400, 100) and R.dtype == np.float32
    assert abs(R.var() * 400 - 1.0) < 0.03 and abs(R.mean()) < 3.0 / math.sqrt(400 * 100 * 400)  # 40,000 draws
    ml.manual_seed(7)
    a = gaussian_projection(10, 20)
    ml.manual_seed(7)
    np.testing.assert_array_equal(gaussian_projection(10, 20), a)  # the main stream follows manual_seed
    np.testing.assert_array_equal(gaussian_projection(10, 20, generator=backend.new_generator(7)), a)


@pytest.mark.parametrize("kind", ["gaussian", "orthogonal"])
def test_both_projections_keep_squared_lengths_in_expectation(kind):
    """E‖Rx‖² = ‖x‖²: the mean over 400 independent R of ‖Rx‖²/‖x‖², within 4 standard errors of 1."""
    x = np.random.default_rng(1).normal(size=64)
    k = 16
    ratios = np.array([np.sum((draw(kind, 64, k, seed) @ x) ** 2) / np.sum(x * x) for seed in range(400)])
    standard_error = math.sqrt(2.0 / k) / math.sqrt(400)  # std of χ²_k/k is √(2/k); Eq. 10 is smaller still
    assert abs(ratios.mean() - 1.0) < 4 * standard_error


def test_orthogonal_projection_scale_is_derived_not_guessed():
    """Down: Q has orthonormal rows, E‖Qx‖² = (k/d)‖x‖², so R = √(d/k)·Q and RRᵀ = (d/k) I exactly (Eq. 7)."""
    R = draw("orthogonal", 64, 16, 0)
    assert orthogonal_scale(64, 16) == 2.0
    np.testing.assert_allclose(R @ R.T, 4.0 * np.eye(16), atol=1e-12)
    x = np.random.default_rng(2).normal(size=64)
    unscaled = [np.sum((draw("orthogonal", 64, 16, s) / 2.0 @ x) ** 2) / np.sum(x * x) for s in range(400)]
    assert abs(np.mean(unscaled) - 16 / 64) < 0.02  # what the scale corrects: only k/d of the length survives
    up = draw("orthogonal", 16, 40, 0)  # up: orthonormal columns, every length kept exactly, no scale
    assert orthogonal_scale(16, 40) == 1.0 and orthogonality_error(up) < 1e-13
    np.testing.assert_allclose(distortion(POINTS[:20, :16], up), 1.0, atol=1e-13)


@pytest.mark.parametrize("kind", ["gaussian", "orthogonal"])
def test_charrnn_projection_is_the_same_matrix(kind):
    """CharRNN (a lower layer) draws its frozen R itself; it must be this module's R, number for number."""
    config = RNNConfig(vocab_size=5, embed_dim=8, projection=kind, proj_dim=24)
    ml.manual_seed(3)
    theirs = random_projection(config, kind)
    ours = KINDS[kind](8, 24, generator=backend.new_generator(3))
    np.testing.assert_array_equal(ours, theirs)


def test_distortion_is_every_pair_in_triu_order():
    X = np.random.default_rng(3).normal(size=(6, 5))
    P = np.random.default_rng(4).normal(size=(3, 5))
    i, j = np.triu_indices(6, 1)
    brute = np.linalg.norm((X[i] - X[j]) @ P.T, axis=1) / np.linalg.norm(X[i] - X[j], axis=1)
    np.testing.assert_allclose(distortion(ml.Tensor(X), P), brute, rtol=1e-13)


def test_jl_min_dim_is_the_dasgupta_gupta_bound():
    for n, eps in [(200, 0.5), (200, 0.1), (10_000, 0.3), (2, 0.9)]:
        k = jl_min_dim(n, eps)
        assert k == math.ceil(4 * math.log(n) / (eps**2 / 2 - eps**3 / 3))
        assert k - 1 < 4 * math.log(n) / (eps**2 / 2 - eps**3 / 3) <= k
        # At that k each tail of Lemma 2.2 is at most 1/n², so a pair fails with probability <= 2/n².
        assert jl_pair_failure_bound(k, eps) <= 2.0 / n**2
    assert jl_min_dim(200, 0.5) == 255


@pytest.mark.parametrize("kind", ["gaussian", "orthogonal"])
def test_at_the_jl_dimension_every_one_of_19900_pairs_is_within_the_bound(kind):
    """n = 200, ε = 0.5, k = 255: each squared distance within [0.5, 1.5] of the original (Eq. 8),
    for five independent projections. The theorem allows at most 2/n² of pairs outside on average."""
    k = jl_min_dim(N_POINTS, 0.5)
    for seed in range(5):
        report = jl_check(POINTS, draw(kind, D, k, seed), 0.5)
        assert (report.n_points, report.k, report.k_min) == (N_POINTS, k, k)
        assert report.within == 1.0 and report.worst < 0.5
        assert 1.0 - report.within <= report.failure_bound <= 2.0 / N_POINTS**2


@pytest.mark.parametrize("kind", ["gaussian", "orthogonal"])
def test_below_the_jl_dimension_pairs_fail_but_no_more_often_than_the_per_pair_bound(kind):
    """Eq. 9 bounds the expected fraction of pairs outside [1 - ε, 1 + ε]; here it is met where it bites."""
    outside = {}
    for k in (16, 32, 64):
        report = jl_check(POINTS, draw(kind, D, k, 11), 0.5)
        outside[k] = 1.0 - report.within
        assert outside[k] <= report.failure_bound
    assert outside[16] > 0.05  # the bound is not met vacuously: at k = 16 many pairs do fail
    assert outside[16] > outside[32] > outside[64]


@pytest.mark.parametrize("kind", ["gaussian", "orthogonal"])
def test_distortion_shrinks_as_k_grows_as_eq_10_says(kind):
    """std of ‖R(xᵢ - xⱼ)‖²/‖xᵢ - xⱼ‖²: √(2/k) for Gaussian R, √(2(d-k)/(k(d+2))) for orthogonal R (Eq. 10)."""
    spreads = []
    for k in (16, 64, 256):
        squared = distortion(POINTS, draw(kind, D, k, 5)) ** 2
        theory = math.sqrt(2.0 / k) if kind == "gaussian" else math.sqrt(2.0 * (D - k) / (k * (D + 2)))
        assert squared.std() == pytest.approx(theory, rel=0.1)
        assert abs(squared.mean() - 1.0) < 0.05
        spreads.append(squared.std())
    assert spreads[0] > spreads[1] > spreads[2]


def test_the_orthogonal_projection_spreads_less_than_the_gaussian_one():
    """Eq. 10: the factor (d - k)/(d + 2) < 1 is the gain of orthonormal rows; at k = d/2 about √2."""
    k = D // 2
    gaussian = (distortion(POINTS, draw("gaussian", D, k, 8)) ** 2).std()
    orthogonal = (distortion(POINTS, draw("orthogonal", D, k, 8)) ** 2).std()
    assert gaussian / orthogonal == pytest.approx(math.sqrt((D + 2) / (D - k)), rel=0.1)


def test_projection_functions_refuse_bad_input():
    with pytest.raises(ValueError, match="d_out must be a positive integer"):
        gaussian_projection(4, 0)
    with pytest.raises(ValueError, match="d_in must be a positive integer"):
        orthogonal_projection(2.5, 3)
    with pytest.raises(ValueError, match=r"cannot act on points of dimension 4"):
        distortion(np.ones((3, 4)), np.ones((2, 5)))
    with pytest.raises(ValueError, match="at least 2 points"):
        distortion(np.ones((1, 4)), np.ones((2, 4)))
    with pytest.raises(ValueError, match="points 0 and 2 of X coincide"):
        distortion(np.array([[1.0, 2.0], [0.0, 1.0], [1.0, 2.0]]), np.eye(2))
    with pytest.raises(ValueError, match="eps must lie strictly between 0 and 1"):
        jl_min_dim(100, 1.0)
    with pytest.raises(ValueError, match="n_points must be an integer >= 2"):
        jl_min_dim(1, 0.5)
    with pytest.raises(ValueError, match="k must be a positive integer"):
        jl_pair_failure_bound(0, 0.5)
