"""Every experiment the app, the CLI, ``reproduce`` and the benchmarks run, as generators of what they show.

Callers only format what these yield:

- ``restoration``: one problem, one or several methods. The diffusion methods run interleaved (one advancing at
  a time, the one furthest behind); a ``Step`` per streamed frame, a ``Row`` as each method finishes, then the
  classical baselines' Rows. Closing the generator stops every run. ``run_restoration`` drains it.
- ``denoising``: Figure 1's single run (noise the image to t, reverse diffusion back with no data term).
- ``psnr_lpips_vs_t``: Figure 1's curve, the one definition of how the noisy input and its denoising score.
- ``sampling``: unconditional samples (eq. 25), the sampler's frames then a ``Sampled``.
- ``probing``: Jacobian columns at a pixel and energy vs radius over timesteps (poster 3.7, Figure 7).
- ``spectra``: singular values / vectors and spectral radii over timesteps (poster 3.8, Figures 8, 9).
- ``profiling``: the stability profile rho(J_s)(t) the spectral spacing is built on (``diffdemo.stability``).

Each resolves what a run needs in one place, so the same request gives the same pixels and numbers from the app,
the CLI and ``reproduce``: the network's precision (``network``: a sampler's "auto" -> fp32 or bf16 by the device,
``ANALYSIS_PRECISION`` for every Jacobian), the spacing name into a timestep list (``timesteps_for``, which also
holds a run from t0 to at most t0 + 1 steps), and each method's parameters (``restore.resolved_params``).

The package: ``resolve`` (the network's precision), ``restore_runs``, ``denoise_runs``, ``sample_runs``, ``analysis_runs``;
every name is importable from ``diffdemo.experiments``.
"""

from __future__ import annotations

from diffdemo.experiments.analysis_runs import energy_curves, probing, profiling, spectra
from diffdemo.experiments.denoise_runs import denoising, log_timesteps, noisy_metrics, psnr_lpips_vs_t
from diffdemo.experiments.resolve import ANALYSIS_PRECISION, network
from diffdemo.experiments.restore_runs import (
    Row,
    Skipped,
    Step,
    compared,
    interleave,
    restoration,
    run_restoration,
)
from diffdemo.experiments.sample_runs import Sampled, run_sampling, sampling
from diffdemo.restore import timesteps_for

__all__ = [
    "ANALYSIS_PRECISION",
    "Row",
    "Sampled",
    "Skipped",
    "Step",
    "compared",
    "denoising",
    "energy_curves",
    "interleave",
    "log_timesteps",
    "network",
    "noisy_metrics",
    "probing",
    "profiling",
    "psnr_lpips_vs_t",
    "restoration",
    "run_restoration",
    "run_sampling",
    "sampling",
    "spectra",
    "timesteps_for",
]
