"""Cayley, exponential and Householder parametrisations: gradients, orthogonality to rounding,
determinants, the Cayley inverse, training that stays orthogonal, and the drift it avoids."""

import numpy as np
import pytest
import scipy.linalg
from scipy.stats import ortho_group, special_ortho_group

import minilora as ml
from minilora.optim import Adam, warmup_cosine
from minilora.orthogonal import (
    CayleyOrthogonal,
    ExpmOrthogonal,
    HouseholderOrthogonal,
    cayley_inverse,
    cayley_map,
    drift_experiment,
    exponential_map,
    householder_product,
    orthogonality_error,
    procrustes,
    procrustes_loss,
)
from tests.helpers import t64

RNG = np.random.default_rng(0)
BOUND = {"float32": 1e-5, "float64": 1e-12}

GRADCHECKS = [
    ("cayley", cayley_map, (4, 4), 1.0),
    ("cayley-stack", cayley_map, (2, 3, 3), 1.0),
    ("cayley-large", cayley_map, (4, 4), 5.0),
    ("exponential", exponential_map, (4, 4), 1.0),
    ("exponential-squared", exponential_map, (4, 4), 4.0),  # ‖A‖₁ > θ₁₃: scaling and squaring
    ("householder", householder_product, (3, 5), 1.0),
    ("householder-full", householder_product, (5, 5), 1.0),
]


@pytest.mark.parametrize("name, fn, shape, scale", GRADCHECKS, ids=[c[0] for c in GRADCHECKS])
def test_gradcheck_through_the_raw_parameters(name, fn, shape, scale):
    assert ml.gradcheck(fn, [t64(shape, low=-scale, high=scale, seed=3)])


@pytest.mark.parametrize("fn", [cayley_map, exponential_map, householder_product])
def test_random_parameters_give_orthogonal_matrices_to_1e_12(fn):
    for seed in range(5):
        for scale in (0.1, 1.0, 5.0):
            W = fn(np.random.default_rng(seed).normal(size=(8, 8)) * scale).data
            assert orthogonality_error(W) < 1e-12


def test_cayley_and_exponential_maps_give_rotations_householder_gives_det_minus_one_to_the_k():
    for seed in range(5):
        S = np.random.default_rng(seed).normal(size=(8, 8)) * 2.0
        assert np.linalg.det(cayley_map(S).data) == pytest.approx(1.0, abs=1e-12)
        assert np.linalg.det(exponential_map(S).data) == pytest.approx(1.0, abs=1e-12)
        for k in range(1, 9):
            assert np.linalg.det(householder_product(S[:k]).data) == pytest.approx((-1.0) ** k, abs=1e-12)


def test_householder_product_is_the_product_of_its_reflections():
    """Eq. 17b (the UT form, five ops) against Eq. 17 multiplied out one reflection at a time."""
    for k in (1, 3, 6):
        V = RNG.normal(size=(k, 6))
        product = np.eye(6)
        for v in V:
            product = product @ (np.eye(6) - 2.0 * np.outer(v, v) / (v @ v))
        np.testing.assert_allclose(householder_product(V).data, product, atol=1e-14)


def test_exponential_map_is_scipys_expm_of_the_skew_part():
    S = RNG.normal(size=(6, 6))
    np.testing.assert_allclose(exponential_map(S).data, scipy.linalg.expm(S - S.T), atol=1e-13)


def test_cayley_map_and_its_inverse_undo_each_other():
    S = RNG.normal(size=(7, 7))
    A = S - S.T
    W = cayley_map(S).data
    np.testing.assert_allclose(W, np.linalg.solve(np.eye(7) + A, np.eye(7) - A), atol=1e-14)  # Eq. 11
    np.testing.assert_allclose(2.0 * cayley_inverse(W), A, atol=1e-12)  # S comes back as A/2
    R = special_ortho_group.rvs(7, random_state=1)
    np.testing.assert_allclose(cayley_map(cayley_inverse(R)).data, R, atol=1e-10)
    np.testing.assert_allclose(CayleyOrthogonal.from_matrix(R).weight().data, R, atol=1e-10)


def test_cayley_inverse_refuses_what_the_cayley_map_cannot_reach():
    with pytest.raises(ValueError, match="eigenvalue -1"):
        cayley_inverse(np.diag([-1.0, 1.0, 1.0]))  # a reflection
    with pytest.raises(ValueError, match="eigenvalue -1"):
        cayley_inverse(np.diag([-1.0, -1.0, 1.0]))  # a half turn: a rotation, but at the map's edge
    with pytest.raises(ValueError, match="not orthogonal"):
        cayley_inverse(2.0 * np.eye(3))
    with pytest.raises(ValueError, match="square matrix"):
        cayley_inverse(ortho_group.rvs(4, random_state=2)[:, :2])


def test_cayley_gradient_is_eq_13():
    """Ā = -(I + A)⁻ᵀ W̄ (I + W)ᵀ and S̄ = Ā - Āᵀ, written out against what backward computes."""
    S = t64((5, 5), seed=4)
    W = cayley_map(S)
    G = RNG.normal(size=(5, 5))
    W.backward(G)
    A, I = S.data - S.data.T, np.eye(5)
    A_bar = -np.linalg.solve((I + A).T, G) @ (I + W.data).T
    np.testing.assert_allclose(S.grad, A_bar - A_bar.T, atol=1e-13)


# ----------------------------------------------------------------------------
# The Modules


@pytest.mark.parametrize("cls", [CayleyOrthogonal, ExpmOrthogonal])
def test_cayley_and_expm_modules_start_at_the_identity_and_compute_y_equals_xw(cls):
    model = cls(5)
    assert model.S.dtype == np.float32 and model.S.requires_grad
    np.testing.assert_allclose(model.weight().data, np.eye(5), atol=1e-7)
    model.S.data = RNG.normal(size=(5, 5)).astype(np.float32)
    X = ml.Tensor(RNG.normal(size=(3, 4, 5)).astype(np.float32))
    np.testing.assert_allclose(model(X).data, X.data @ model.weight().data, rtol=1e-6)


@pytest.mark.parametrize("cls", [CayleyOrthogonal, ExpmOrthogonal, HouseholderOrthogonal])
def test_a_float32_training_step_stays_float32(cls):
    model = cls(4)
    loss = (model(ml.Tensor(RNG.normal(size=(6, 4)).astype(np.float32))) ** 2.0).sum()
    assert loss.dtype == np.float32
    loss.backward()
    assert all(p.grad.dtype == np.float32 for p in model.parameters())


def test_modules_refuse_bad_sizes():
    with pytest.raises(ValueError, match="n must be a positive integer"):
        CayleyOrthogonal(0)
    with pytest.raises(ValueError, match=r"k must be an integer in \[1, n=4\]"):
        HouseholderOrthogonal(4, k=5)
    with pytest.raises(ValueError, match="a row of V is zero"):
        householder_product(np.array([[1.0, 0.0], [0.0, 0.0]]))
    with pytest.raises(ValueError, match=r"V must be \(k, n\)"):
        householder_product(np.ones((3, 2)))
    with pytest.raises(ValueError, match="square matrix or a stack"):
        cayley_map(np.ones((2, 3)))
    assert "n=4, k=2" in repr(HouseholderOrthogonal(4, k=2))


# ----------------------------------------------------------------------------
# Learning W by gradient descent: 1000 steps of Y = XW on the drift task (n = 8)


@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("method", ["cayley", "expm", "householder"])
def test_1000_adam_steps_stay_orthogonal_and_reach_the_closed_form_optimum(method, dtype):
    run = drift_experiment(method, steps=1000, dtype=dtype)
    assert max(run["error"]) < BOUND[dtype]  # at every one of the 1000 steps
    assert abs(run["loss"][-1] / run["optimum"] - 1.0) < 1e-6  # procrustes(X, Y, special=True)
    assert run["loss"][0] > 1.5 * run["optimum"] and len(run["loss"]) == 1001  # it had somewhere to go


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_plain_gradient_descent_drifts_and_a_qr_retraction_brings_it_back(dtype):
    naive = drift_experiment("naive", steps=300, dtype=dtype)
    assert naive["error"][0] < BOUND[dtype]  # it starts at W = I
    assert naive["error"][-1] > 0.5 and naive["error"][-1] > 5 * naive["error"][1]  # and keeps walking away
    assert naive["loss"][-1] < 0.95 * naive["optimum"]  # "better" than any rotation: it is no longer one
    retracted = drift_experiment("retract_qr", steps=300, dtype=dtype)
    assert max(retracted["error"]) < BOUND[dtype]
    assert abs(retracted["loss"][-1] / retracted["optimum"] - 1.0) < 1e-6


def fit(model, x, y, steps=400, lr=0.1):
    """Adam with a cosine decay on ‖XW - Y‖², as in drift_experiment; returns the final W."""
    optimizer = Adam(list(model.parameters()), lr=lr)
    for step in range(steps):
        optimizer.zero_grad()
        residual = model(x) - y
        (residual * residual).sum().backward()
        optimizer.param_groups[0]["lr"] = warmup_cosine(step, lr, 0, steps)
        optimizer.step()
    return model.weight().data


def test_householder_with_n_minus_1_reflections_fits_a_reflection_that_cayley_cannot():
    n = 6
    X = RNG.normal(size=(60, n))
    reflection = ortho_group.rvs(n, random_state=3)
    reflection[:, 0] *= -np.sign(np.linalg.det(reflection))  # det -1
    Y = X @ reflection + 0.1 * RNG.normal(size=(60, n))
    best = procrustes_loss(X, Y, procrustes(X, Y))
    best_rotation = procrustes_loss(X, Y, procrustes(X, Y, special=True))
    assert best_rotation > 2.0 * best  # the target is far from every rotation
    ml.manual_seed(1)
    householder = fit(HouseholderOrthogonal(n, k=n - 1, dtype="float64"), X, Y)
    assert np.linalg.det(householder) == pytest.approx(-1.0)
    assert abs(procrustes_loss(X, Y, householder) / best - 1.0) < 1e-6
    cayley = fit(CayleyOrthogonal(n, dtype="float64"), X, Y)
    assert np.linalg.det(cayley) == pytest.approx(1.0)
    assert procrustes_loss(X, Y, cayley) >= best_rotation * (1.0 - 1e-12)
