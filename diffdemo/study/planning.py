"""The plan before a study runs and its progress while it runs: each run's network evaluations, the cost model's
seconds (``diffdemo.estimates``), the order runs go in, the plan's lines and the progress bar."""

from __future__ import annotations

import sys

from diffdemo.study.provenance import machine
from diffdemo.study.spec import Run, Study


def work_of(params: dict, T: int = 1000) -> dict:
    """The run's network evaluations in ``estimates.evaluations``' terms (a baseline: none)."""
    from diffdemo.defaults import params_for
    from diffdemo.estimates import evaluations
    from diffdemo.restore import DIFFUSION_METHODS

    if params["kind"] == "denoise":
        steps = params.get("steps") or int(params["t"]) + 1
        return evaluations("denoise", t=params["t"], steps=steps)
    method = params["method"]
    if method not in DIFFUSION_METHODS:
        return {}
    given = {k: params.get(k) for k in ("steps", "t0", "samples")}
    p = params_for(method, params["operator"], **given)
    if method == "denoise":  # from the t matched to sigma_y (or t0): at most t0 + 1 steps
        return evaluations("denoise_restore", steps=min(int(p["steps"]), int(p.get("t0") or T - 1) + 1))
    return evaluations(method, steps=p["steps"], t0=p.get("t0"), samples=p.get("samples"))


def task_work(task: list[Run], T: int = 1000) -> dict:
    """A task's network evaluations: its run's, with a batch of images as large a batch as that many chains."""
    work = work_of(task[0].params, T)
    if work and len(task) > 1:
        work = {**work, "batch": work.get("batch", 1) * len(task)}
    return work


def plan(tasks: list[list[Run]], costs: list[dict], T: int = 1000) -> dict:
    """Runs, network evaluations (each image counted) and the cost model's seconds (``estimates.run_seconds``)
    of each task, ``costs[i]`` being the timing of task i's network in the number format it runs in."""
    from diffdemo.estimates import image_evaluations, run_seconds

    works = [task_work(t, T) for t in tasks]
    seconds = [run_seconds(cost, **w) if cost and w else 0.0 for w, cost in zip(works, costs)]
    evaluations = sum(image_evaluations(w) for w in works if w)
    return {"runs": sum(map(len, tasks)), "evaluations": evaluations, "seconds": seconds}


def ordered(runs: list[Run], study: Study, T: int = 1000) -> list[Run]:
    """The order runs go in: each problem's reference configuration first (every difference needs it), then the
    cheapest first by network evaluations, so a study stopped early has the most runs, and whole cheap columns, done."""
    from diffdemo.estimates import image_evaluations

    refs = {p.name: p.reference for p in study.problems if p.reference}

    def is_ref(run: Run) -> bool:
        ref = refs.get(run.problem)
        return ref is not None and all(dict(run.config).get(k) == v for k, v in ref.items())

    def cost(run: Run) -> int:
        work = work_of(run.params, T)
        return image_evaluations(work) if work else 0

    return sorted(runs, key=lambda r: (not is_ref(r), cost(r)))  # sorted is stable: file order among equals


def say_plan(say, study: Study, runs: int, todo: int, tasks: int, evaluations: int, est: float, costs: dict,
             executor: str, limit) -> None:  # fmt: skip
    """The plan before a study starts: runs done and to go, network evaluations, the cost model's time."""
    from diffdemo.estimates import format_seconds

    head = f"study {study.name!r}: {runs} runs ({runs - todo} done{', limit' * (limit is not None)}"
    say(f"{head}, {todo} to run in {tasks} tasks), {evaluations:,} network evaluations to go")
    if costs:
        timed = "; ".join(f"{f}: {c['forward_s'] * 1000:.0f} ms a forward, {c['grad_s'] * 1000:.0f} ms a DPS gradient"
                          for f, c in costs.items())  # fmt: skip
        say(f"estimate on this machine: {format_seconds(est)} of runs one after another ({study.model} {timed}, "
            f"timed now; {machine()}); executor: {executor}")  # fmt: skip


def progress_bar(estimate: float, runs: int, enabled: bool):
    """A progress bar over the estimated seconds of work, so its ETA weighs a 250-step run above a 20-step one."""
    from tqdm import tqdm

    return tqdm(total=round(estimate, 1) or runs, unit="s", unit_scale=False, disable=not enabled, file=sys.stderr,
                bar_format="{l_bar}{bar}| {elapsed}<{remaining} (cost-model s) {postfix}")  # fmt: skip
