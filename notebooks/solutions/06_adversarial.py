"""Solutions to the exercises of notebook 06 (the test suite runs this file)."""

import numpy as np
from exercises import check_fgsm_linf, check_l2_step, check_project_l2


# Exercise 1: the dual norm of L∞ is L1, attained at ε·sign(g).
def fgsm_linf(g, eps):
    return eps * np.sign(g)


assert check_fgsm_linf(fgsm_linf)


# Exercise 2: the dual of L2 is L2, attained along g itself.
def l2_step(g, eps):
    norm = np.linalg.norm(g)
    return eps * g / norm if norm > 0 else np.zeros_like(g)


assert check_l2_step(l2_step)


# Exercise 3: rescale onto the sphere if outside, else leave it.
def project_l2(delta, eps):
    norm = np.linalg.norm(delta)
    return delta * min(1.0, eps / norm) if norm > 0 else delta


assert check_project_l2(project_l2)
