"""Orthogonality checks, QR and polar orthogonalisation, retraction, and orthogonal Procrustes."""

import numpy as np
import pytest
from scipy.stats import ortho_group, special_ortho_group

import minilora as ml
from minilora.orthogonal import (
    default_tolerance,
    is_orthogonal,
    orthogonality_error,
    orthogonalize,
    procrustes,
    procrustes_loss,
    project_tangent,
    retract_qr,
)

RNG = np.random.default_rng(0)


def fro(a):
    return float(np.linalg.norm(a))


# ----------------------------------------------------------------------------
# orthogonality_error and is_orthogonal (Eq. 1-2)


def test_orthogonality_error_of_known_matrices():
    assert orthogonality_error(np.diag([2.0, 1.0])) == pytest.approx(3.0, rel=1e-15)  # WᵀW - I = diag(3, 0)
    Q = ortho_group.rvs(6, random_state=1)
    for c in (0.5, 1.1, 3.0):  # (cQ)ᵀ(cQ) - I = (c² - 1) I
        assert orthogonality_error(c * Q) == pytest.approx(abs(c * c - 1.0) * np.sqrt(6), rel=1e-12)
        assert orthogonality_error(c * Q, norm="max") == pytest.approx(abs(c * c - 1.0), rel=1e-12)
    assert orthogonality_error(Q) < 1e-14
    assert orthogonality_error(Q[:, :3]) < 1e-14  # tall: orthonormal columns
    W = RNG.normal(size=(4, 7))
    assert orthogonality_error(W) == pytest.approx(fro(W @ W.T - np.eye(4)), rel=1e-14)  # wide: the rows
    assert orthogonality_error(W) == pytest.approx(orthogonality_error(W.T), rel=1e-14)


def test_orthogonality_error_takes_tensors_lists_and_measures_float32_in_float64():
    Q = ortho_group.rvs(5, random_state=2)
    q32 = Q.astype(np.float32)
    exact = fro(q32.astype(np.float64).T @ q32.astype(np.float64) - np.eye(5))
    assert orthogonality_error(ml.Tensor(q32)) == pytest.approx(exact, rel=1e-12)
    assert 1e-9 < exact < 1e-6  # float32 rounding of Q, which a float32 product would blur
    assert orthogonality_error([[0, 1], [1, 0]]) == 0.0  # an integer permutation


def test_is_orthogonal_and_its_default_tolerance():
    Q = ortho_group.rvs(8, random_state=3)
    assert is_orthogonal(Q) and is_orthogonal(Q.astype(np.float32)) and is_orthogonal(np.eye(3, dtype=np.int64))
    assert default_tolerance(Q) == pytest.approx(100 * 8 * 2.0**-52)
    assert default_tolerance(Q.astype(np.float32)) == pytest.approx(100 * 8 * 2.0**-23)
    nudged = Q + 1e-9 * RNG.normal(size=Q.shape)
    assert not is_orthogonal(nudged) and is_orthogonal(nudged, tol=1e-7)
    assert not is_orthogonal(2.0 * Q, tol=1.0)


def test_checks_refuse_bad_input():
    with pytest.raises(ValueError, match="norm must be one of"):
        orthogonality_error(np.eye(2), norm="nuc")
    with pytest.raises(ValueError, match=r"needs a matrix \(2-D\), got shape \(2, 2, 2\)"):
        orthogonality_error(np.zeros((2, 2, 2)))
    with pytest.raises(ValueError, match="nan or inf"):
        orthogonalize(np.array([[1.0, np.nan], [0.0, 1.0]]))
    with pytest.raises(ValueError, match="tol must be a non-negative"):
        is_orthogonal(np.eye(2), tol=-1.0)
    with pytest.raises(ValueError, match="method must be one of"):
        orthogonalize(np.eye(2), method="gram-schmidt")


# ----------------------------------------------------------------------------
# orthogonalize: QR (Eq. 3) and polar (Eq. 4-5)


@pytest.mark.parametrize("shape", [(8, 8), (10, 4), (4, 10)])
@pytest.mark.parametrize("method", ["qr", "polar"])
def test_both_methods_give_orthonormal_columns_or_rows_to_1e_12(shape, method):
    W = RNG.normal(size=shape)
    Q = orthogonalize(W, method)
    assert Q.shape == shape and Q.dtype == np.float64
    assert orthogonality_error(Q) < 1e-12


def test_qr_is_numpys_qr_with_positive_diagonal_and_unique():
    W = RNG.normal(size=(7, 5))
    Q = orthogonalize(W, "qr")
    q_np, r_np = np.linalg.qr(W)
    np.testing.assert_allclose(Q, q_np * np.sign(np.diag(r_np)), atol=1e-14)
    R = Q.T @ W  # W = QR with R upper triangular and a positive diagonal
    np.testing.assert_allclose(np.tril(R, -1), 0.0, atol=1e-13)
    assert (np.diag(R) > 0).all()
    # Uniqueness: W·T has the same Q for any upper-triangular T with a positive diagonal (W·D for D diagonal too).
    T = np.triu(RNG.normal(size=(5, 5)), 1) + np.diag(RNG.uniform(0.1, 3.0, size=5))
    np.testing.assert_allclose(orthogonalize(W @ T, "qr"), Q, atol=1e-12)
    np.testing.assert_allclose(orthogonalize(W * RNG.uniform(0.5, 2.0, size=5), "qr"), Q, atol=1e-12)


def test_polar_is_the_nearest_orthogonal_matrix():
    W = RNG.normal(size=(6, 6)) + 2.0 * np.eye(6)
    P, Q = orthogonalize(W, "polar"), orthogonalize(W, "qr")
    sigma = np.linalg.svd(W, compute_uv=False)
    assert fro(W - P) ** 2 == pytest.approx(((sigma - 1.0) ** 2).sum(), rel=1e-12)  # Eq. 5
    assert fro(W - P) < fro(W - Q)
    others = ortho_group.rvs(6, size=2000, random_state=4)
    assert fro(W - P) < np.linalg.norm(W - others, axis=(1, 2)).min()
    # W = P H with H = PᵀW symmetric positive definite: the polar decomposition.
    H = P.T @ W
    np.testing.assert_allclose(H, H.T, atol=1e-12)
    assert np.linalg.eigvalsh(H).min() > 0
    np.testing.assert_allclose(orthogonalize(P, "polar"), P, atol=1e-14)  # orthogonal already: itself


def test_orthogonalize_keeps_the_kind_and_dtype():
    W = RNG.normal(size=(5, 5)).astype(np.float32)
    out = orthogonalize(ml.Tensor(W, requires_grad=True), "polar")
    assert isinstance(out, ml.Tensor) and out.dtype == np.float32 and not out.requires_grad
    assert orthogonality_error(out) < 1e-5


# ----------------------------------------------------------------------------
# QR retraction and the tangent projection (Eq. 18)


@pytest.mark.parametrize("dtype, bound", [("float64", 1e-12), ("float32", 1e-5)])
def test_retract_qr_puts_a_drifted_matrix_back_in_place(dtype, bound):
    W = ml.nn.Parameter((ortho_group.rvs(8, random_state=5) + 0.3 * RNG.normal(size=(8, 8))).astype(dtype))
    assert orthogonality_error(W) > 0.5
    data_before = W.data
    assert retract_qr(W) is W and W.data is not data_before
    assert W.dtype == np.dtype(dtype) and orthogonality_error(W) < bound


def test_an_orthogonal_matrix_is_a_fixed_point_of_the_retraction():
    Q = special_ortho_group.rvs(6, random_state=6)
    params = [ml.Tensor(Q.copy()), ml.Tensor(Q[:, :4].copy())]
    retract_qr(params)
    np.testing.assert_allclose(params[0].data, Q, atol=1e-14)
    np.testing.assert_allclose(params[1].data, Q[:, :4], atol=1e-14)


@pytest.mark.parametrize("shape", [(6, 6), (8, 3)])
def test_project_tangent_is_the_orthogonal_projection_onto_the_tangent_space(shape):
    W = ortho_group.rvs(shape[0], random_state=7)[:, : shape[1]]
    G = RNG.normal(size=shape)
    P = project_tangent(W, G)
    M = W.T @ P
    np.testing.assert_allclose(M, -M.T, atol=1e-13)  # tangent: Wᵀξ + ξᵀW = 0
    np.testing.assert_allclose(project_tangent(W, P), P, atol=1e-13)  # a projection
    assert abs(np.sum((G - P) * P)) < 1e-12  # and an orthogonal one


def test_project_tangent_refuses_mismatched_or_wide_matrices():
    W = ortho_group.rvs(5, random_state=7)[:, :2]
    with pytest.raises(ValueError, match="G has shape"):
        project_tangent(W, np.ones((5, 1)))
    with pytest.raises(ValueError, match="square or tall"):
        project_tangent(W.T, np.ones((2, 5)))


# ----------------------------------------------------------------------------
# Orthogonal Procrustes (Eq. 21-22)


def test_procrustes_recovers_a_planted_orthogonal_matrix_exactly():
    X = RNG.normal(size=(50, 7))
    for Q in (special_ortho_group.rvs(7, random_state=8), ortho_group.rvs(7, random_state=9)):
        np.testing.assert_allclose(procrustes(X, X @ Q), Q, atol=1e-10)


def test_procrustes_with_noise_beats_every_other_orthogonal_matrix():
    X = RNG.normal(size=(40, 5))
    Y = X @ ortho_group.rvs(5, random_state=10) + 0.8 * RNG.normal(size=(40, 5))
    W = procrustes(X, Y)
    best = procrustes_loss(X, Y, W)
    assert orthogonality_error(W) < 1e-13
    others = ortho_group.rvs(5, size=3000, random_state=11)
    assert best < min(procrustes_loss(X, Y, Q) for Q in others)
    for _ in range(50):  # and it is a local minimum: every nearby orthogonal matrix is worse
        nearby = orthogonalize(W + 1e-3 * RNG.normal(size=(5, 5)), "polar")
        assert procrustes_loss(X, Y, nearby) > best


def test_special_procrustes_is_the_best_rotation():
    X = RNG.normal(size=(40, 4))
    reflection = ortho_group.rvs(4, random_state=12)
    reflection[:, 0] *= np.sign(np.linalg.det(reflection)) * -1.0  # det -1
    Y = X @ reflection + 0.1 * RNG.normal(size=(40, 4))
    W, R = procrustes(X, Y), procrustes(X, Y, special=True)
    assert np.linalg.det(W) == pytest.approx(-1.0) and np.linalg.det(R) == pytest.approx(1.0)
    rotations = special_ortho_group.rvs(4, size=3000, random_state=13)
    assert procrustes_loss(X, Y, W) < procrustes_loss(X, Y, R) < min(procrustes_loss(X, Y, Q) for Q in rotations)
    Z = X @ special_ortho_group.rvs(4, random_state=14)  # when the best matrix is a rotation, both agree
    np.testing.assert_allclose(procrustes(X, Z, special=True), procrustes(X, Z), atol=1e-12)


def test_procrustes_returns_tensors_for_tensors_and_refuses_mismatched_points():
    X = RNG.normal(size=(10, 3))
    out = procrustes(ml.Tensor(X), ml.Tensor(X))
    assert isinstance(out, ml.Tensor)
    np.testing.assert_allclose(out.data, np.eye(3), atol=1e-12)
    with pytest.raises(ValueError, match=r"same shape \(N points × d coordinates"):
        procrustes(X, X[:, :2])
