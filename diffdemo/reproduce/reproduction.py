"""One seeded reproduction (``Reproduction``): the model, the budget, the test images and both problems on each,
the cache of restorations the figures share, and the progress bar with the work it plans.

The progress bar counts the one cost model's image evaluations (diffdemo/estimates.py): ``units`` of one run,
``run_units`` of one restoration, ``planned_units`` of the whole reproduction (``restoration_plan``: every
restoration it will make, sweeps first, without duplicates).
"""

from __future__ import annotations

import sys
from pathlib import Path

from diffdemo import baselines, defaults
from diffdemo.defaults import params_for
from diffdemo.estimates import evaluations, image_evaluations
from diffdemo.experiments import Row, compared, run_restoration
from diffdemo.figures import Figures
from diffdemo.imaging import bundled_images, load_image, to_tensor
from diffdemo.models import DiffusionModel
from diffdemo.operators import make_operator
from diffdemo.precision import check_precision
from diffdemo.reproduce.budgets import Budget
from diffdemo.reproduce.specs import FIGURES, PROBE_PIXELS, SWEEPS, TASKS
from diffdemo.restore import DIFFUSION_METHODS, make_problem


def _table_params(method: str, operator: str, steps: int | None) -> dict:
    """A method's parameters in the methods table: its swept parameter at the task's default, and ``steps``
    (None: the method's default steps). Sweeps and table share runs when these match."""
    params = {}
    if method in DIFFUSION_METHODS:
        params["steps"] = int(steps if steps is not None else params_for(method, operator)["steps"])
    swept = {"sdedit": ("t0", int), "score_ald": ("zeta", float), "dps": ("scale", float)}
    if method in swept:
        name, kind = swept[method]
        params[name] = kind(params_for(method, operator)[name])
    return params


# --- the run ----------------------------------------------------------------------------------------------------
class Reproduction:
    """One seeded reproduction: model, budget, images, problems, a cache of restorations and the progress bar."""

    def __init__(
        self, model: DiffusionModel, budget: Budget, out: Path, seed: int = 0, progress: bool = True,
        precision: str = "auto",
    ):  # fmt: skip
        from tqdm import tqdm

        self.model, self.budget, self.out, self.seed = model, budget, out, int(seed)
        self.precision = check_precision(precision)
        self.size = model.size
        self.sigma_y = defaults.SIGMA_Y
        out.mkdir(parents=True, exist_ok=True)
        self.figures = Figures(out)
        names = sorted(bundled_images(), key=lambda n: (n != defaults.IMAGE, n))
        n_table = budget.table_images or len(names)
        self.image_names = names[: max(n_table, budget.sweep_images, budget.denoise_images)]
        self.images = {n: to_tensor(load_image(bundled_images()[n], self.size)) for n in self.image_names}
        self.table_names = names[:n_table]
        self.ops = {task: make_operator(name, self.size, **params) for task, (name, params) in TASKS.items()}
        self.problems = {
            (task, n): make_problem(self.images[n], self.ops[task], self.sigma_y, self.seed)
            for task in TASKS
            for n in self.image_names
        }
        self.results: dict[tuple, Row] = {}
        self.metrics: dict = {}
        self.table_sentence = ""
        self.bar = tqdm(total=planned_units(self), desc="reproduce", unit="nfe", file=sys.stderr, disable=not progress)

    def restoration(self, method: str, task: str, name: str, **overrides) -> Row:
        """One method on one problem (experiments.run_restoration; cached: sweeps and the table share runs)."""
        key = (method, task, name, tuple(sorted(overrides.items())))
        if key not in self.results:
            self.bar.set_postfix_str(f"{method} {task} {name}", refresh=False)
            # one chain per run: the poster's figures show single posterior draws (and the budget counts one)
            extra = {"steps": self.budget.steps, "samples": 1} if method in DIFFUSION_METHODS else {}
            model = self.model if method in DIFFUSION_METHODS else None
            problem = self.problems[(task, name)]
            (row,) = run_restoration(
                model, problem, [method], overrides={**extra, **overrides}, precision=self.precision
            )
            self.results[key] = row
            self.bar.update(run_units(self.budget, method, **overrides))
        return self.results[key]

    def table_params(self, method: str, task: str) -> dict:
        return _table_params(method, self.ops[task].name, self.budget.table_steps)

    def table_methods(self, task: str) -> list[str]:
        return compared(self.ops[task].name) + list(baselines.applicable(self.ops[task]))

    def probe_pixels(self) -> list[tuple[str, tuple[int, int]]]:
        n = self.budget.probe_pixels
        return [(name, (int(fx * self.size), int(fy * self.size))) for name, (fx, fy) in PROBE_PIXELS[:n]]

    def timesteps(self, field: str) -> list[int]:
        """The Budget's timesteps ``field`` that this model has (t < T)."""
        return [t for t in getattr(self.budget, field) if t < self.model.schedule.T]

    def profile(self) -> dict | None:
        from diffdemo.profiles import load_profile

        try:
            return load_profile(self.model.name)
        except ValueError:
            return None

    def fig10_plan(self) -> list[tuple[str, int]]:
        from diffdemo.spacing import SPACINGS

        spacings = [s for s in SPACINGS if s != "spectral" or self.profile() is not None]
        return [(s, int(n)) for s in spacings for n in self.budget.spacing_nfes]


# --- cost accounting for the progress bar: the one cost model's image evaluations (diffdemo/estimates.py) ---------
def units(task: str, **params) -> int:
    """Network evaluations of one run counted per image (``estimates.evaluations``, ``image_evaluations``)."""
    return image_evaluations(evaluations(task, **params))


def run_units(budget: Budget, method: str, **overrides) -> int:
    if method not in DIFFUSION_METHODS:
        return 1  # a classical baseline: no network, one tick
    p = params_for(method, **{"steps": budget.steps, "samples": 1, **overrides})
    kind = "denoise_restore" if method == "denoise" else method  # the estimates' name of restoration's denoising
    return units(kind, steps=int(p["steps"]), t0=p.get("t0"), samples=1)


def planned_units(run: Reproduction) -> int:
    b = run.budget
    total = sum(units("denoise", t=t, steps=b.denoise_steps) for t in b.denoise_ts) * b.denoise_images
    total += units("sample", n=b.n_samples, steps=b.sample_steps)
    total += sum(run_units(b, key[0], **dict(key[3])) for key in restoration_plan(run))
    total += sum(run_units(b, "dps", steps=nfe) * b.sweep_images for _, nfe in run.fig10_plan())
    sweeps = b.probe_pixels * max(1, min(b.claim_images, len(run.image_names)))
    total += sweeps * units("energy", n_t=len(run.timesteps("energy_ts")))
    return total + b.probe_pixels * units("probe", sweep=0) + spectrum_units(run)


def spectrum_units(run: Reproduction) -> int:
    b = run.budget
    return units("spectrum", k=b.spectrum_k, iters=b.spectrum_iters, n_t=len(run.timesteps("spectrum_ts")))


def restoration_plan(run: Reproduction) -> list[tuple]:
    """Every (method, task, image, overrides) this run restores, sweeps first, without duplicates."""
    b = run.budget
    plan: list[tuple] = []
    for task in TASKS:
        for n in run.image_names[: b.sweep_images]:
            for spec in (FIGURES[k] for k in SWEEPS):
                kind = type(getattr(b, spec.values)[0])
                plan += [(spec.method, task, n, ((spec.param, kind(v)),)) for v in getattr(b, spec.values)]
    for task in TASKS:
        for n in run.table_names:
            plan += [(m, task, n, tuple(sorted(run.table_params(m, task).items()))) for m in run.table_methods(task)]
    return list(dict.fromkeys(plan))
