"""Where a study's tasks run: in this process, on a pool of spawned processes, or as Ray tasks. Each yields
(task, rows) as tasks finish; rows go back to the driver, which alone writes the database.

Pool workers and Ray tasks call ``execute_by_name``, pickled by its module path (``diffdemo.study.executors``):
it stays a top-level function of this module."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

from diffdemo.study.one_run import execute
from diffdemo.study.spec import Run, StudyError

_models: dict = {}


def loaded_model(name: str):
    """The model ``name``, loaded once per process (the driver's, and each pool or Ray worker's)."""
    from diffdemo.models import load_model

    if name not in _models:
        _models[name] = load_model(name)
    return _models[name]


def _worker_threads(n: str) -> None:
    from diffdemo.threads import ENV

    os.environ[ENV] = n  # this worker's own environment: threads.ensure() then chooses n


DIE_ONCE = "DIFFDEMO_STUDY_DIE_ONCE"  # a path: the first worker task to see it missing creates it and exits


def execute_by_name(params: dict) -> list[dict]:
    """``execute`` in a worker (a pool process, a Ray task): the model loaded there once, the app's thread rule."""
    from diffdemo import threads

    marker = os.environ.get(DIE_ONCE)
    if marker and not Path(marker).exists():  # fault injection for the retry test: this worker dies, once
        Path(marker).touch()
        os._exit(1)
    threads.ensure()
    return execute(params, loaded_model(params["model"]))


def local_rows(tasks: list[list[Run]], model, workers: int = 1) -> Iterator[tuple[list[Run], list[dict]]]:
    """The tasks one after another in this process, or on ``workers`` spawned processes (as they finish)."""
    if workers <= 1:
        for task in tasks:
            yield task, execute(task[0].params, model)
        return
    import multiprocessing
    from concurrent.futures import ProcessPoolExecutor, as_completed

    from diffdemo.threads import ENV, auto_threads

    n = os.environ.get(ENV) or str(auto_threads(concurrency=workers))  # the cores shared among the workers
    spawn = multiprocessing.get_context("spawn")
    with ProcessPoolExecutor(workers, mp_context=spawn, initializer=_worker_threads, initargs=(n,)) as pool:
        futures = {pool.submit(execute_by_name, task[0].params): task for task in tasks}
        try:
            for future in as_completed(futures):
                yield futures[future], future.result()
        finally:
            for f in futures:
                f.cancel()


def connect_ray(address: str | None = None, env: dict | None = None, **options) -> None:
    """ray.init on ``address`` (or RAY_ADDRESS; else a local Ray on this machine), its workers importing this
    checkout's diffdemo (a cluster's workers need it installed or on their PYTHONPATH the same way) with the
    environment variables ``env``."""
    import ray

    root = str(Path(__file__).resolve().parents[2])  # the checkout: diffdemo/study/ is two below it
    path = os.pathsep.join(filter(None, [root, os.environ.get("PYTHONPATH")]))
    env = {"env_vars": {"PYTHONPATH": path, **(env or {})}}
    ray.init(address=address or os.environ.get("RAY_ADDRESS"), runtime_env=env, log_to_driver=False, **options)


RAY_RETRIES = 3  # a worker that dies loses its run, which Ray runs again up to this many times


def ray_rows(tasks: list[list[Run]], address: str | None = None) -> Iterator[tuple[list[Run], list[dict]]]:
    """The runs as Ray tasks, one per run (or batch), each asking for a GPU where the cluster has one; rows come back here.

    Connects to ``address`` (or RAY_ADDRESS), else starts a local Ray on this machine's cores. A task whose worker
    dies is retried (``max_retries``); an exception inside a run is not (it would fail again)."""
    try:
        import ray
    except ImportError:
        raise StudyError("--ray needs Ray: python3 -m pip install -r requirements-ray.txt") from None
    if not ray.is_initialized():
        connect_ray(address)
    gpus = ray.cluster_resources().get("GPU", 0) > 0
    task = ray.remote(num_cpus=1, num_gpus=1 if gpus else 0, max_retries=RAY_RETRIES)(execute_by_name)
    pending = {task.remote(t[0].params): t for t in tasks}
    try:
        while pending:
            (ready,), _ = ray.wait(list(pending), num_returns=1)
            runs = pending.pop(ready)
            yield runs, ray.get(ready)
    finally:
        for ref in pending:
            ray.cancel(ref)
