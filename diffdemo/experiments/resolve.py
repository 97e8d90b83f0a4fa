"""What every experiment resolves the one way: the network's precision (``network``). The spacing name becomes a
timestep list in ``restore.timesteps_for`` (re-exported by the package), a method's parameters in
``restore.resolved_params``."""

from __future__ import annotations

from diffdemo.models import DiffusionModel
from diffdemo.restore import model_for

ANALYSIS_PRECISION = "fp32"  # every Jacobian is differentiated in fp32: a bf16 output would drown a difference


def network(model: DiffusionModel, method: str, precision: str = "auto") -> DiffusionModel:
    """The model whose network runs in the precision resolved for ``method`` ("sample", "denoise", a restoration
    method; "analysis": always ``ANALYSIS_PRECISION``): the one place a precision name is resolved."""
    return model_for(model, method, ANALYSIS_PRECISION if method == "analysis" else precision)
