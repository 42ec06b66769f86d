"""Solutions to the exercises of notebook 04 (the test suite runs this file)."""

import math

import numpy as np
from exercises import (
    check_break_even_rank,
    check_eckart_young_error,
    check_low_rank_approx,
    check_rank_for_energy,
)

# Exercise 1: k(m + n) < mn  <=>  k < mn/(m + n) = 128·512/640 = 102.4, so k = 102.
assert check_break_even_rank(math.ceil(128 * 512 / (128 + 512)) - 1)


# Exercise 2: the tail of the singular values.
def my_error(S, k, norm="fro"):
    if norm == "spectral":
        return S[k] if k < len(S) else 0.0
    return math.sqrt(np.sum(S[k:] ** 2))


assert check_eckart_young_error(my_error)


# Exercise 3: the first k whose cumulative energy share reaches f.
def my_rank_for_energy(S, f):
    shares = np.cumsum(S**2) / np.sum(S**2)
    return int(np.searchsorted(shares, f - 1e-12)) + 1


assert check_rank_for_energy(my_rank_for_energy)


# Exercise 4: U_k diag(S_k) V_kᵀ.
def my_low_rank_approx(W, k):
    U, S, Vh = np.linalg.svd(W, full_matrices=False)
    return (U[:, :k] * S[:k]) @ Vh[:k]


assert check_low_rank_approx(my_low_rank_approx)
