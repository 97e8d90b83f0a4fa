"""Studies: a grid of experiments written as a small TOML file, run into a database, reported from it.

A study file names the model, the images, and one or more problems; every parameter given as a list is a grid
axis, and ``variants`` lists parameter sets tried side by side. ``expand`` turns it into runs: one per (problem,
grid point, image). ``execute`` runs one through the one engine path (``experiments.run_restoration``, or
``experiments.denoising`` for Figure 1's reverse diffusion) with the CLI's own defaults, so a single-image restore
row equals ``python -m diffdemo restore`` on the same arguments; with ``batch`` the images of a grid point run as
one batched problem (one task, one noise draw for the batch, each image scored alone).

Rows go to ``study.sqlite`` in the output folder, one per finished run, committed as it arrives and keyed by
sha256(study name, model hash, image hash, the run's parameters): a study run again skips every finished run
(resume), and a folder that holds another study is refused (rows of two studies never mix). Only the driver
writes the database; executors (one process, a process pool, Ray tasks) return rows to it.

``report`` reads the database alone (plus the study file for its layout): per configuration the mean and the
sample standard deviation (ddof = 1) over images, and the paired per-image difference against a named reference
configuration with its 95% Student-t interval (scipy.stats.t).

One concept per module, each name re-exported here (``from diffdemo import study; study.run_study(...)``):

- ``spec``: the study file read and checked, expanded into keyed runs, grouped into tasks;
- ``one_run``: one run through the engine, its rows; ``provenance``: the machine and the code version of a row;
- ``database``: the SQLite file (schema, rows, sessions, resume);
- ``planning``: network evaluations, the cost model's estimate, the run order, the plan's lines, the progress bar;
- ``executors``: local, process pool and Ray (their workers call ``executors.execute_by_name``);
- ``driver``: ``run_study``, the study command's main loop;
- ``reporting``: the tables, the paired differences, the figure and the ``--results`` section.
"""

from __future__ import annotations

from diffdemo.study.database import COLUMNS, DB_NAME, Database
from diffdemo.study.driver import run_study
from diffdemo.study.executors import (
    DIE_ONCE,
    RAY_RETRIES,
    connect_ray,
    execute_by_name,
    loaded_model,
    local_rows,
    ray_rows,
)
from diffdemo.study.one_run import execute, noisy_extra
from diffdemo.study.planning import ordered, plan, progress_bar, say_plan, task_work, work_of
from diffdemo.study.provenance import code_version, machine
from diffdemo.study.reporting import BEGIN, END, PAIRED, SD, mean_sd, paired, report, write_section
from diffdemo.study.spec import (
    CHECKED,
    DENOISE_PARAMS,
    KINDS,
    METRICS,
    RESTORE_PARAMS,
    RUN_WIDE,
    Problem,
    Run,
    Study,
    StudyError,
    expand,
    group,
    load_study,
    model_hash,
    parse_study,
)

__all__ = [
    "BEGIN", "CHECKED", "COLUMNS", "DB_NAME", "DENOISE_PARAMS", "DIE_ONCE", "END", "KINDS", "METRICS", "PAIRED",
    "RAY_RETRIES", "RESTORE_PARAMS", "RUN_WIDE", "SD", "Database", "Problem", "Run", "Study", "StudyError",
    "code_version", "connect_ray", "execute", "execute_by_name", "expand", "group", "load_study", "loaded_model",
    "local_rows", "machine", "mean_sd", "model_hash", "noisy_extra", "ordered", "paired", "parse_study", "plan",
    "progress_bar", "ray_rows", "report", "run_study", "say_plan", "task_work", "work_of", "write_section",
]  # fmt: skip
