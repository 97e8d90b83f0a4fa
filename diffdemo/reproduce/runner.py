"""``reproduce``: every stage of the poster in order over one ``Reproduction``, then the report."""

from __future__ import annotations

import time
from pathlib import Path

import torch

from diffdemo import defaults
from diffdemo.models import DiffusionModel
from diffdemo.reproduce.budgets import BUDGETS, Budget
from diffdemo.reproduce.jacobian_figures import fig6_sensitivity, fig7_energy
from diffdemo.reproduce.prior_figures import fig1_denoising, fig2_samples
from diffdemo.reproduce.report import claims, write_report
from diffdemo.reproduce.reproduction import Reproduction
from diffdemo.reproduce.restoration_figures import methods_table, sweep
from diffdemo.reproduce.spacing_figures import fig10_spacings
from diffdemo.reproduce.specs import SWEEPS
from diffdemo.reproduce.spectrum_figures import spectra
from diffdemo.threads import auto_threads

# the poster's order: Figs. 1-5, the methods table (shown after Fig. 5), the analysis, Fig. 10, the claims
STAGES = (
    fig1_denoising,
    fig2_samples,
    *(lambda run, key=key: sweep(run, key) for key in SWEEPS),
    methods_table,
    fig6_sensitivity,
    fig7_energy,
    spectra,
    fig10_spacings,
    claims,
)


def reproduce(
    model: DiffusionModel,
    out: str | Path,
    budget: str | Budget = "full",
    seed: int = defaults.SEED,
    progress: bool = True,
    threads: int | None = None,
    precision: str = "auto",
) -> dict:
    """Run every figure of the poster and write the report; returns where it is plus the run's summary.

    ``precision`` (auto, fp32, bf16) is the network's number format for the sampling figures (diffdemo/precision.py).
    """
    budget = BUDGETS[budget] if isinstance(budget, str) else budget
    threads = int(threads) if threads else auto_threads()
    previous_threads = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        start = time.perf_counter()
        run = Reproduction(model, budget, Path(out), seed=seed, progress=progress, precision=precision)
        try:
            for stage in STAGES:
                stage(run)
        finally:
            run.bar.close()
        seconds = time.perf_counter() - start
        where = write_report(run, seconds)
    finally:
        torch.set_num_threads(previous_threads)
    return {
        **where,
        "out": str(Path(out)),
        "budget": budget.name,
        "model": model.name,
        "seed": seed,
        "seconds": round(seconds, 1),
        "threads": threads,
        "precision": run.metrics["precision"],
        "figures": [e["key"] for e in run.figures.entries],
    }
