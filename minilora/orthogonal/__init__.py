"""Orthogonal transforms: article 000's random projections and article 002's learned orthogonal W.

    from minilora.orthogonal import orthogonality_error, orthogonalize, CayleyOrthogonal, apply_oft

* ``checks``           -- ‖WᵀW - I‖, QR and polar orthogonalisation, QR retraction
* ``projections``      -- Gaussian and orthogonal random projections, Johnson–Lindenstrauss checks
* ``parametrizations`` -- Cayley, exponential and Householder maps, as functions and Modules
* ``oft``              -- orthogonal fine-tuning (OFTLinear, apply_oft), hyperspherical energy
* ``procrustes``       -- the closed-form best orthogonal alignment
* ``drift``            -- plain gradient descent against retraction and parametrisation, plotted

The equations are derived in docs/orthogonal.md.
"""

from minilora.orthogonal.checks import (
    default_tolerance,
    is_orthogonal,
    orthogonality_error,
    orthogonalize,
    project_tangent,
    retract_qr,
)
from minilora.orthogonal.drift import drift_experiment, plot_drift, regression_task
from minilora.orthogonal.oft import (
    OFTConfig,
    OFTLinear,
    apply_oft,
    block_diagonal,
    hyperspherical_energy,
    mark_only_oft_as_trainable,
    merge_oft,
    neuron_cosines,
    oft_layers,
    unmerge_oft,
)
from minilora.orthogonal.parametrizations import (
    CayleyOrthogonal,
    ExpmOrthogonal,
    HouseholderOrthogonal,
    cayley_inverse,
    cayley_map,
    exponential_map,
    householder_product,
    skew,
)
from minilora.orthogonal.procrustes import procrustes, procrustes_loss
from minilora.orthogonal.projections import (
    JLCheck,
    distortion,
    gaussian_projection,
    jl_check,
    jl_min_dim,
    jl_pair_failure_bound,
    orthogonal_projection,
    orthogonal_scale,
)

__all__ = [
    "orthogonality_error", "is_orthogonal", "default_tolerance", "orthogonalize", "retract_qr", "project_tangent",
    "gaussian_projection", "orthogonal_projection", "orthogonal_scale", "distortion",
    "jl_min_dim", "jl_pair_failure_bound", "jl_check", "JLCheck",
    "skew", "cayley_map", "cayley_inverse", "exponential_map", "householder_product",
    "CayleyOrthogonal", "ExpmOrthogonal", "HouseholderOrthogonal",
    "OFTConfig", "OFTLinear", "apply_oft", "oft_layers", "mark_only_oft_as_trainable", "merge_oft", "unmerge_oft",
    "block_diagonal", "neuron_cosines", "hyperspherical_energy",
    "procrustes", "procrustes_loss",
    "regression_task", "drift_experiment", "plot_drift",
]  # fmt: skip
