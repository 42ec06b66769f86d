"""solve and matrix_exp: forwards against numpy/scipy, VJPs against their closed forms, errors."""

import numpy as np
import pytest
import scipy.linalg

import minilora as ml
import minilora.nn.functional as F
from minilora.autograd.ops.linalg import THETA13, expm
from tests.helpers import t64

RNG = np.random.default_rng(0)


def well_conditioned(*shape):
    return RNG.uniform(-1.0, 1.0, shape) + 4.0 * np.eye(shape[-1])


@pytest.mark.parametrize("a_shape, b_shape", [((4, 4), (4, 2)), ((4, 4), (4,)), ((3, 4, 4), (4, 2)), ((4, 4), (2, 1, 4, 3)), ((2, 1, 3, 3), (5, 3, 1))])
def test_solve_matches_numpy_and_broadcasts(a_shape, b_shape):
    a, b = well_conditioned(*a_shape), RNG.normal(size=b_shape)
    x = F.solve(ml.Tensor(a), ml.Tensor(b)).data
    np.testing.assert_allclose(x, np.linalg.solve(a, b), rtol=1e-12, atol=1e-14)
    column = len(b_shape) == 1  # a vector b is one column
    residual = a @ (x[:, None] if column else x) - (b[:, None] if column else b)
    assert np.abs(residual).max() < 1e-13


def test_solve_vjp_is_the_closed_form_and_skips_what_is_not_needed():
    """B̄ = A⁻ᵀX̄, Ā = -B̄Xᵀ (Eq. 12); with B constant only Ā is formed, and it still checks."""
    A, B = t64(well_conditioned(4, 4)), t64((4, 3), seed=2)
    X = F.solve(A, B)
    G = RNG.normal(size=(4, 3))
    X.backward(G)
    gb = np.linalg.solve(A.data.T, G)
    np.testing.assert_allclose(B.grad, gb, rtol=1e-12)
    np.testing.assert_allclose(A.grad, -gb @ X.data.T, rtol=1e-12)
    constant = RNG.normal(size=(4, 3))
    assert ml.gradcheck(lambda a: F.solve(a, constant), [t64(well_conditioned(4, 4))])
    fixed_a = well_conditioned(4, 4)
    b = t64((4, 2))
    assert ml.gradcheck(lambda b: F.solve(fixed_a, b), [b])


def test_solve_refuses_bad_shapes_and_singular_matrices():
    with pytest.raises(ValueError, match=r"square matrix or a stack"):
        F.solve(np.ones((3, 4)), np.ones((3, 1)))
    with pytest.raises(ValueError, match=r"needs 3 rows"):
        F.solve(np.eye(3), np.ones((4, 2)))
    with pytest.raises(ValueError, match=r"vector right-hand side needs a single matrix"):
        F.solve(np.stack([np.eye(3)] * 2), np.ones(3))
    with pytest.raises(ValueError, match=r"singular.*no unique solution"):
        F.solve(t64(np.ones((3, 3))), np.ones((3, 1)))
    with pytest.raises(ValueError, match=r"do not broadcast"):
        F.solve(np.stack([np.eye(3)] * 2), np.ones((4, 3, 1)))


@pytest.mark.parametrize("scale", [0.01, 1.0, 4.0, 30.0])
def test_matrix_exp_matches_scipy_across_scales(scale):
    """Small norms use the Padé approximant alone; large ones scale and square (Eq. 15)."""
    a = RNG.normal(size=(6, 6)) * scale
    reference = scipy.linalg.expm(a)
    np.testing.assert_allclose(F.matrix_exp(ml.Tensor(a)).data, reference, rtol=1e-12 * max(1.0, scale), atol=1e-13 * np.abs(reference).max())


def test_matrix_exp_of_a_stack_float32_and_exact_cases():
    stack = RNG.normal(size=(3, 5, 5))
    np.testing.assert_allclose(expm(stack), np.stack([scipy.linalg.expm(a) for a in stack]), rtol=1e-12, atol=1e-13)
    a32 = stack[0].astype(np.float32)
    out = F.matrix_exp(ml.Tensor(a32))
    assert out.dtype == np.float32
    np.testing.assert_allclose(out.data, scipy.linalg.expm(stack[0]), rtol=2e-5, atol=2e-5)
    np.testing.assert_allclose(expm(np.zeros((4, 4))), np.eye(4), rtol=0, atol=2e-16)  # exp(0) = I to rounding
    theta = 0.7  # a plane rotation: exp([[0, -θ], [θ, 0]]) = [[cos θ, -sin θ], [sin θ, cos θ]]
    np.testing.assert_allclose(expm(np.array([[0.0, -theta], [theta, 0.0]])), [[np.cos(theta), -np.sin(theta)], [np.sin(theta), np.cos(theta)]], atol=1e-15)
    a = RNG.normal(size=(5, 5))
    np.testing.assert_allclose(expm(a) @ expm(-a), np.eye(5), atol=1e-13)


def test_the_squared_gradcheck_case_really_scales_and_squares():
    """The gradcheck case "matrix_exp-squared" is meant to exercise s > 0: its 1-norms exceed θ₁₃."""
    a = np.random.default_rng(3).uniform(-3.0, 3.0, size=(2, 5, 5))  # what t64((2, 5, 5), seed=3, low=-3, high=3) draws
    assert np.abs(a).sum(axis=-2).max() > THETA13


def test_matrix_exp_vjp_equals_the_frechet_integral():
    """Eq. 16: Ā = ∫₀¹ exp(sAᵀ) Ē exp((1-s)Aᵀ) ds, here by 20-point Gauss–Legendre quadrature."""
    A, G = t64(RNG.normal(size=(4, 4))), RNG.normal(size=(4, 4))
    F.matrix_exp(A).backward(G)
    nodes, weights = np.polynomial.legendre.leggauss(20)
    s_values, weights = (nodes + 1.0) / 2.0, weights / 2.0
    integral = sum(w * scipy.linalg.expm(s * A.data.T) @ G @ scipy.linalg.expm((1.0 - s) * A.data.T) for s, w in zip(s_values, weights))
    np.testing.assert_allclose(A.grad, integral, rtol=1e-11, atol=1e-12)


def test_matrix_exp_vjp_of_a_zero_gradient_is_zero_and_large_gradients_scale():
    A = t64(RNG.normal(size=(3, 3)))
    F.matrix_exp(A).backward(np.zeros((3, 3)))
    np.testing.assert_array_equal(A.grad, np.zeros((3, 3)))
    G = RNG.normal(size=(3, 3))
    small, large = t64(A.data.copy()), t64(A.data.copy())
    F.matrix_exp(small).backward(G)
    F.matrix_exp(large).backward(G * 1e12)  # linear in Ē: normalising Ē first keeps the digits
    np.testing.assert_allclose(large.grad, small.grad * 1e12, rtol=1e-13)


def test_matrix_exp_refuses_non_square_input():
    with pytest.raises(ValueError, match=r"matrix_exp: needs a square matrix"):
        F.matrix_exp(np.ones((2, 3)))
