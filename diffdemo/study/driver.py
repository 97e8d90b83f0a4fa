"""The study command's driver: expand the study, print the plan, run every run not in the database yet on an
executor, and store each task's rows as they arrive (the only writer of the database)."""

from __future__ import annotations

import sys
import time
from collections.abc import Callable
from pathlib import Path

from diffdemo.study.database import DB_NAME, Database
from diffdemo.study.executors import loaded_model, local_rows, ray_rows
from diffdemo.study.planning import ordered, plan, progress_bar, say_plan
from diffdemo.study.spec import Run, Study, expand, group, model_hash


def run_study(
    study: Study,
    out: Path,
    *,
    executor: str = "local",
    workers: int = 1,
    limit: int | None = None,
    progress: bool = True,
    dry_run: bool = False,
    say: Callable[[str], None] = lambda s: print(s, file=sys.stderr, flush=True),
) -> dict:
    """Expand, print the plan, run every run not in the database yet, store each row as it arrives."""
    from diffdemo.estimates import measure_cost

    db = Database(Path(out) / DB_NAME, study.name)
    try:
        model = loaded_model(study.model)
        digest = model_hash(model)
        db.set_model_hash(study.model, digest)
        runs = expand(study, digest)
        finished = db.done()
        tasks = group(ordered([r for r in runs if r.key not in finished], study, model.schedule.T))
        if limit is not None:
            tasks = tasks[:limit]
        todo = [r for t in tasks for r in t]
        costs = {f: measure_cost(model.with_precision(f)) for f in sorted({_format(model, t) for t in tasks})}
        p = plan(tasks, [costs[_format(model, t)] for t in tasks], model.schedule.T)
        est = sum(p["seconds"])
        say_plan(say, study, len(runs), len(todo), len(tasks), p["evaluations"], est, costs, executor, limit)
        summary = {"study": study.name, "out": str(out), "runs": len(runs), "to_run": len(todo), "ran": 0,
                   "evaluations": p["evaluations"], "estimate_s": est, "executor": executor}  # fmt: skip
        if dry_run or not todo:
            return summary
        if executor == "ray":
            stream = ray_rows(tasks)
        else:
            stream = local_rows(tasks, model, workers)
        started = time.time()
        db.session(executor)
        bar = progress_bar(est, len(todo), progress)
        weight = {t[0].key: s for t, s in zip(tasks, p["seconds"])}
        ran = _store(stream, db, study, digest, bar, weight, len(todo), say)
        summary.update(ran=ran, seconds=time.time() - started)
        return summary
    finally:
        db.close()


def _format(model, task: list[Run]) -> str:
    """The number format (fp32 or bf16) the task's network runs in on this machine (``precision`` resolved)."""
    from diffdemo.precision import resolve_precision

    p = task[0].params
    return resolve_precision(p["precision"], model.device, p.get("method", "denoise"))


def _store(stream, db: Database, study: Study, digest: str, bar, weight: dict, todo: int, say) -> int:
    """Store each task's rows as they arrive, one transaction per task, and move the bar by the task's estimated
    seconds; the runs stored. An interruption keeps what is stored and says how to resume."""
    ran = 0
    try:
        for task, rows in stream:
            by_image = {row["image"]: row for row in rows}
            db.add([_full_row(study, run, by_image[run.image], digest) for run in task])
            ran += len(task)
            bar.update(weight[task[0].key] or 0.0)
            bar.set_postfix_str(f"{ran}/{todo} runs")
    except KeyboardInterrupt:
        say(f"interrupted: {ran} of {todo} runs stored; run the same command again to resume")
        raise
    finally:
        bar.close()
        stream.close()
    return ran


def _full_row(study: Study, run: Run, row: dict, digest: str) -> dict:
    return {**row, "key": run.key, "study": study.name, "problem": run.problem, "image": run.image,
            "kind": run.params["kind"], "seed": run.params.get("seed"), "params": run.params, "model": study.model,
            "model_hash": digest, "finished_at": time.time()}  # fmt: skip
