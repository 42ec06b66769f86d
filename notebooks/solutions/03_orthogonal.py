"""Solutions to the exercises of notebook 03 (the test suite runs this file)."""

import numpy as np
from exercises import check_cayley, check_householder, check_procrustes


# Exercise 1: (I + A)⁻¹(I - A), by a solve rather than an explicit inverse.
def cayley(A):
    eye = np.eye(len(A))
    return np.linalg.solve(eye + A, eye - A)


assert check_cayley(cayley)


# Exercise 2: W = UVᵀ from the SVD of XᵀY.
def procrustes(X, Y):
    U, _, Vh = np.linalg.svd(X.T @ Y)
    return U @ Vh


assert check_procrustes(procrustes)


# Exercise 3: H = I - 2vvᵀ / vᵀv.
def householder(v):
    return np.eye(len(v)) - 2.0 * np.outer(v, v) / (v @ v)


assert check_householder(householder)
