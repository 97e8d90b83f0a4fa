"""Sensitivity and spectral analysis of the score network (poster sections 3.7, 3.8, 4.6, 4.7; eqs. 31-35).

Every Jacobian here is of the score s(x, t) = -eps(x, t) / sqrt(1 - abar_t) (eq. 22) and the two affine maps of it,
the reverse step J_f (eq. 34) and the denoiser J_D (Tweedie, eq. 11). So one network Jacobian-vector product gives
all three columns, and spectra need only J_s v and J_s^T u products: no Jacobian is ever materialised.

One concept per module, lowest first:

- ``products``: J_s v and J_s^T u (exact JVP / VJP or finite differences), TF32 and attention kernel guards, the
  traced JVP graph, ``RowOperators`` (a I + b J_s for a batch of rows);
- ``jacobians``: the operators' names and affine coefficients, the probe's state x_t and unit direction, one
  column or row of each Jacobian;
- ``energy``: energy vs radius of one column (Figure 7);
- ``probe``: a click at one pixel, and the energy curve swept over timesteps;
- ``krylov``: Lanczos bidiagonalisation and Arnoldi on row-batched operators, their Ritz values and results;
- ``limits``: the explicit-Euler step limit and the largest stable stride;
- ``spectrum``: singular values / vectors and spectral radius at one timestep or swept over many (Figures 8, 9).

Callers import from here (``from diffdemo.analysis import probe``); the names below are the package's public face.
"""

from diffdemo.analysis.energy import EnergyCurve, energy_vs_radius
from diffdemo.analysis.jacobians import (
    KINDS,
    LABELS,
    affine_coefficients,
    jacobian_column,
    jacobian_columns,
    jacobian_row,
    jacobian_rows,
    operator_kind,
    pixel_basis,
    state_at,
)
from diffdemo.analysis.krylov import RESIDUAL_TOL, EigResult, SingularResult, arnoldi
from diffdemo.analysis.limits import euler_step_limit, max_stable_stride
from diffdemo.analysis.probe import ProbeResult, energy_sweep, probe, relative_error
from diffdemo.analysis.products import METHODS, Progress, RowOperators, prepare_probe, score_jvp, score_vjp
from diffdemo.analysis.spectrum import (
    SpectrumResult,
    eig_result,
    row_operators,
    spectral_radius,
    spectrum_sweep,
    top_singular,
)

__all__ = [
    "KINDS",
    "LABELS",
    "METHODS",
    "RESIDUAL_TOL",
    "EigResult",
    "EnergyCurve",
    "ProbeResult",
    "Progress",
    "RowOperators",
    "SingularResult",
    "SpectrumResult",
    "affine_coefficients",
    "arnoldi",
    "eig_result",
    "energy_sweep",
    "energy_vs_radius",
    "euler_step_limit",
    "jacobian_column",
    "jacobian_columns",
    "jacobian_row",
    "jacobian_rows",
    "max_stable_stride",
    "operator_kind",
    "pixel_basis",
    "prepare_probe",
    "probe",
    "relative_error",
    "row_operators",
    "score_jvp",
    "score_vjp",
    "spectral_radius",
    "spectrum_sweep",
    "state_at",
    "top_singular",
]
