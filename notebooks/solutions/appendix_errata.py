"""Solutions to the exercises of the appendix notebook (the test suite runs this file)."""

from exercises import (
    check_full_delta_count,
    check_output_shift,
    check_truncation_formula,
)


# Exercise 1: the singular values once, between the two factors.
def truncate(U, S, Vh, k):
    return (U[:, :k] * S[:k]) @ Vh[:k]


assert check_truncation_formula(truncate)

# Exercise 2: a full δ has m·n numbers; a diagonal one min(m, n).
assert check_full_delta_count((100 * 300, 100))

# Exercise 3: +ε moves p towards the target 1, so -log p goes down.
assert check_output_shift("lowers")
