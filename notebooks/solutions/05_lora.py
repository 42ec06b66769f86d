"""Solutions to the exercises of notebook 05 (the test suite runs this file)."""

import numpy as np
from exercises import (
    check_dora_weight,
    check_lora_cost,
    check_pissa_init,
    check_subspace_similarity,
)

# Exercise 1: r(d_in + d_out) parameters; r·d_in + d_out·r + d_out multiply-adds per token.
r, d_in, d_out = 8, 768, 768
assert check_lora_cost((r * (d_in + d_out), r * d_in + d_out * r + d_out))


# Exercise 2: PiSSA: the top-r part of W0 in the factors, the rest in the base.
def my_pissa(W0, r, scaling):
    U, S, Vh = np.linalg.svd(W0, full_matrices=False)
    root = np.sqrt(S[:r] / scaling)
    B, A = U[:, :r] * root, root[:, None] * Vh[:r]
    return A, B, W0 - scaling * B @ A


assert check_pissa_init(my_pissa)


# Exercise 3: φ(i, j) = ‖U_iᵀ V_j‖²_F / min(i, j), from the right singular vectors of each A.
def my_phi(A1, A2):
    V1 = np.linalg.svd(A1, full_matrices=False)[2]  # rows: right singular vectors, largest first
    V2 = np.linalg.svd(A2, full_matrices=False)[2]
    r1, r2 = len(V1), len(V2)
    return np.array([[np.sum((V1[:i] @ V2[:j].T) ** 2) / min(i, j) for j in range(1, r2 + 1)] for i in range(1, r1 + 1)])


assert check_subspace_similarity(my_phi)


# Exercise 4: DoRA: a magnitude per output row times the normalised direction W0 + s·BA.
def my_dora_weight(W0, A, B, scaling, m):
    V = W0 + scaling * B @ A
    return m[:, None] * V / np.linalg.norm(V, axis=1, keepdims=True)


assert check_dora_weight(my_dora_weight)
