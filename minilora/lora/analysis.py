"""Why LoRA works: the measurements of the LoRA paper's §7, as small functions.

* ``energy_fraction``: how much of a weight update ΔW lies in its top-k
  singular directions, Σ_{i≤k} σᵢ² / Σ_i σᵢ². If full fine-tuning's ΔW has
  most of its energy in a few directions, a rank-r update can capture it.
* ``subspace_similarity``: for two adapters of ranks r₁ and r₂, with Uᵢ the
  top-i right singular vectors of A₁ and Vⱼ the top-j of A₂,

      φ(i, j) = ‖Uᵢᵀ Vⱼ‖²_F / min(i, j)  ∈ [0, 1]      (Eq. 11 in docs/lora.md),

  which is 1 when the smaller subspace lies inside the larger one and about
  max(i, j)/d (near 0) for unrelated random subspaces of ℝ^d. The paper
  finds that the top directions of adapters trained with different ranks
  overlap strongly: the useful update has a very low rank.
* ``amplification_factor``: ‖ΔW‖_F / ‖UᵀWV‖_F (Eq. 15 in docs/lora.md), how strongly
  an update amplifies directions that W itself hardly uses.
"""

from minilora import backend
from minilora.matrices import energy_fraction, singular_values, svd

__all__ = ["singular_values", "energy_fraction", "right_singular_vectors", "subspace_similarity", "amplification_factor"]


def right_singular_vectors(a):
    """The right singular vectors of ``a`` (r × d) as columns of a d × r array, strongest first."""
    return svd(a)[2].T


def subspace_similarity(a1, a2):
    """φ[i-1, j-1] = ‖U_iᵀ V_j‖²_F / min(i, j) for i ≤ rank(a1), j ≤ rank(a2) (rows of a: the rank)."""
    xp = backend.get_array_module(a1)
    u, v = right_singular_vectors(a1), right_singular_vectors(a2)
    overlap = (u.T @ v) ** 2  # (r1, r2): squared cosines between single directions
    cumulative = overlap.cumsum(axis=0).cumsum(axis=1)  # [i-1, j-1] = ‖U_iᵀ V_j‖²_F
    i = xp.arange(1, u.shape[1] + 1)[:, None]
    j = xp.arange(1, v.shape[1] + 1)[None, :]
    return cumulative / xp.minimum(i, j)


def amplification_factor(delta_w, w, r):
    """‖ΔW‖_F / ‖Uᵀ W V‖_F, with U, V the top-r left and right singular vectors of ΔW.

    The LoRA paper (§7.3) asks how strongly the update amplifies directions
    that W already has: it projects W onto ΔW's own r-dimensional input and
    output subspaces and compares norms (Eq. 15 in docs/lora.md). A large
    factor means ΔW boosts directions W uses only weakly, instead of
    repeating W's top directions; the paper finds about 20 at r = 4 for
    GPT-3's query and value updates.
    """
    xp = backend.get_array_module(delta_w)
    u, _, vt = svd(delta_w)  # float64
    projected = u[:, :r].T @ w.astype(backend.float64) @ vt[:r].T  # (r, r): W in ΔW's subspaces
    return float(xp.linalg.norm(delta_w.astype(backend.float64)) / xp.linalg.norm(projected))
