"""Solutions to the exercises of notebook 01 (the test suite runs this file)."""

import math

import numpy as np
from exercises import (
    check_gaussian_projection,
    check_jl_dimension,
    check_orthonormal_basis,
)

# Exercise 1: k ≥ 4 ln n / (ε²/2 - ε³/3), rounded up.
assert check_jl_dimension(math.ceil(4 * math.log(10_000) / (0.1**2 / 2 - 0.1**3 / 3)))


# Exercise 2: entries N(0, 1/D), so that E‖Rx‖² = ‖x‖².
def gaussian_projection(d, D, rng):
    return rng.standard_normal((D, d)) / math.sqrt(D)


assert check_gaussian_projection(gaussian_projection)


# Exercise 3: the Q of a thin QR decomposition.
def orthonormal_basis(M):
    return np.linalg.qr(M)[0]


assert check_orthonormal_basis(orthonormal_basis)
