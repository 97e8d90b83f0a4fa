"""Regenerate the poster's Figures 1-10 and its methods table from seeded runs (``python -m diffdemo reproduce``).

Every figure is written twice: a PNG (matplotlib; plotly's static export needs kaleido, which is not a
dependency) and an interactive plotly HTML page sharing one ``plotly.min.js`` in the output folder, so the
folder opens offline. ``metrics.json`` holds every number behind the figures; ``report.md`` and ``report.html``
show the figures in the poster's order with one sentence each.

What each figure shows (its titles, axis, method and swept parameter) is data, ``FIGURES``; how much work a run
does is data, ``BUDGETS``; the code that runs them is one function per figure over a ``Reproduction`` (the run's
model, images, problems and cache of restorations). Every restoration goes through
``diffdemo.experiments.run_restoration`` and Figure 1 through ``experiments.psnr_lpips_vs_t``, as in the app.

The package, one concept a module: ``specs`` (what each figure shows) and ``budgets`` (how much work), the data;
``reproduction`` (one run: its images, problems, cache of restorations and progress); the figures by group,
``prior_figures`` (Figs. 1-2), ``restoration_figures`` (Figs. 3-5 and the methods table), ``jacobian_figures``
(Figs. 6-7), ``spectrum_figures`` (Figs. 8-9) and ``spacing_figures`` (Fig. 10); ``report`` (the claims,
metrics.json and the report pages); ``runner`` (``reproduce``: the stages in order). The names below are
importable from ``diffdemo.reproduce``.
"""

from __future__ import annotations

from diffdemo.reproduce.budgets import BUDGET_TABLE, BUDGETS, Budget
from diffdemo.reproduce.report import command_line, refresh_claims, write_report
from diffdemo.reproduce.reproduction import Reproduction, planned_units, restoration_plan, run_units, units
from diffdemo.reproduce.restoration_figures import table_markdown
from diffdemo.reproduce.runner import STAGES, reproduce
from diffdemo.reproduce.spacing_figures import fig10_panels
from diffdemo.reproduce.specs import FIGURES, PROBE_PIXELS, SWEEPS, TASK_TITLES, TASKS, FigureSpec

__all__ = [
    "BUDGETS",
    "BUDGET_TABLE",
    "FIGURES",
    "PROBE_PIXELS",
    "STAGES",
    "SWEEPS",
    "TASKS",
    "TASK_TITLES",
    "Budget",
    "FigureSpec",
    "Reproduction",
    "command_line",
    "fig10_panels",
    "planned_units",
    "refresh_claims",
    "reproduce",
    "restoration_plan",
    "run_units",
    "table_markdown",
    "units",
    "write_report",
]
