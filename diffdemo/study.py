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
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import platform
import sqlite3
import subprocess
import sys
import time
import tomllib
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from itertools import product
from pathlib import Path

from diffdemo import defaults, validation
from diffdemo.errors import DiffdemoError

DB_NAME = "study.sqlite"
KINDS = ("restore", "denoise")
# The CLI's restore options a run may set, with the CLI's defaults (None: the method's own default applies).
RESTORE_PARAMS: dict[str, object] = {
    "method": "dps",
    "operator": "gaussian_blur",
    "sigma_y": defaults.SIGMA_Y,
    "steps": None,
    "schedule": defaults.SPACING,
    "seed": defaults.SEED,
    "t0": None,
    "scale": None,
    "zeta": None,
    "samples": None,
    "raw_dps_step": False,
    "box": None,
    "box_preset": "center",
    "drop": defaults.DROP,
    "blur_std": None,
    "kernel_size": None,
}
# Figure 1's reverse diffusion (experiments.denoising): the face noised to t, then steps back to 0.
DENOISE_PARAMS: dict[str, object] = {"t": 300, "steps": None, "schedule": defaults.SPACING, "seed": defaults.SEED}
RUN_WIDE = {"precision": "auto", "size": None}  # the study's (or a problem's) model-wide settings
CHECKED = ("sigma_y", "steps", "seed", "scale", "zeta", "samples", "drop", "blur_std", "kernel_size", "size")
METRICS = ("psnr", "ssim", "lpips")


class StudyError(DiffdemoError):
    """A study file or output folder that cannot be used: one line, before any work."""


# --- the study file ----------------------------------------------------------------------------------------------
@dataclass
class Problem:
    """One problem of a study: its fixed parameters, its grid axes (the parameters given as lists), how the
    report lays it out (``rows`` x ``columns`` axes) and the configuration its differences are taken against."""

    name: str
    title: str
    kind: str
    fixed: dict
    axes: dict[str, list]
    reference: dict | None = None
    rows: str | None = None
    columns: str | None = None
    variants: list[dict] = field(default_factory=lambda: [{}])
    given: tuple = ()
    # True: a grid point's images in one batch; n: in batches of n (file order). Restore problems only: Figure 1's
    # denoising scores one image (experiments.denoising), so a denoise problem runs its images one by one.
    batch: bool | int = False


@dataclass
class Study:
    name: str
    title: str
    description: str
    model: str
    images: list[str]
    problems: list[Problem]
    source: str = ""
    path: str = ""


@dataclass
class Run:
    """One run: the problem it belongs to, the image, and every parameter (the CLI's defaults filled in)."""

    problem: str
    image: str
    params: dict
    key: str = ""
    config: tuple = field(default=(), repr=False)  # the grid point (axis, value) pairs: the report groups on it


def load_study(path: str | Path) -> Study:
    """Read and check a study file (TOML): unknown keys, bad values and missing images are refused here."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
        data = tomllib.loads(text)
    except (OSError, UnicodeDecodeError) as exc:
        raise StudyError(f"cannot read the study file {path}: {exc.strerror or exc}") from None
    except tomllib.TOMLDecodeError as exc:
        raise StudyError(f"{path} is not valid TOML: {exc}") from None
    study = parse_study(data, text)
    study.path = str(path)
    return study


def parse_study(data: dict, source: str = "") -> Study:
    known = {"name", "title", "description", "model", "images", "precision", "size", "defaults", "problem", "batch"}
    _refuse_unknown(data, known, "the study")
    name = str(data.get("name") or "")
    if not name or not name.replace("_", "").replace("-", "").isalnum():
        raise StudyError("a study needs a name of letters, digits, '-' and '_' (its rows are keyed on it)")
    wide = {k: data[k] for k in RUN_WIDE if k in data}
    common = {**wide, **data.get("defaults", {})}
    problems = [_problem(p, common, data.get("batch", False)) for p in data.get("problem", [])]
    if not problems:
        raise StudyError("a study needs at least one [[problem]]")
    if len({p.name for p in problems}) != len(problems):
        raise StudyError("two problems share a name")
    from diffdemo.models import DEFAULT_MODEL

    return Study(name, str(data.get("title", name)), str(data.get("description", "")).strip(),
                 str(data.get("model", DEFAULT_MODEL)), _images(data.get("images", "bundled")), problems, source)  # fmt: skip


def _refuse_unknown(table: dict, known: Iterable[str], where: str) -> None:
    unknown = sorted(set(table) - set(known))
    if unknown:
        raise StudyError(f"unknown key{'s' * (len(unknown) > 1)} in {where}: {', '.join(unknown)}")


def _problem(table: dict, common: dict, batch: bool | int = False) -> Problem:
    layout = {"name", "title", "kind", "reference", "rows", "columns", "variants", "batch"}
    kind = table.get("kind", "restore")
    if kind not in KINDS:
        raise StudyError(f"problem kind must be one of {', '.join(KINDS)}, got {kind!r}")
    params = DENOISE_PARAMS if kind == "denoise" else RESTORE_PARAMS
    name = str(table.get("name") or "")
    if not name:
        raise StudyError("every [[problem]] needs a name")
    given = {**{k: v for k, v in common.items() if k in params or k in RUN_WIDE}, **table}
    _refuse_unknown(given, set(params) | set(RUN_WIDE) | layout, f"problem {name!r}")
    values = {k: v for k, v in given.items() if k not in layout}
    axes = {k: v for k, v in values.items() if isinstance(v, list) and not (k == "box" and _is_box(v))}
    for k, v in axes.items():
        if not v or len({json.dumps(x) for x in v}) != len(v):
            raise StudyError(f"problem {name!r}: the axis {k} must list distinct values")
    fixed = {**RUN_WIDE, **params, **{k: v for k, v in values.items() if k not in axes}}
    variants = table.get("variants", [{}])
    if not isinstance(variants, list) or not variants or not all(isinstance(v, dict) for v in variants):
        raise StudyError(f"problem {name!r}: variants must be a list of tables, e.g. [{{method = 'dps'}}]")
    varied = {k for v in variants for k in v}
    _refuse_unknown({k: 0 for k in varied}, set(params) - set(axes), f"problem {name!r}'s variants")
    for variant, point in product(variants, product(*axes.values())):  # every run checked before any work
        _check({**fixed, **variant, **dict(zip(axes, point))}, name)
    ref = table.get("reference")
    if ref is not None and (not isinstance(ref, dict) or not set(ref) <= set(axes) | varied):
        raise StudyError(f"problem {name!r}: reference must name values of its grid axes or variants")
    if ref is not None:
        configs = ({**v, **dict(zip(axes, pt))} for v, pt in product(variants, product(*axes.values())))
        if not any(all(c.get(k) == x for k, x in ref.items()) for c in configs):
            raise StudyError(f"problem {name!r}: no configuration matches the reference {ref}")
    for axis in (table.get("rows"), table.get("columns")):
        if axis is not None and axis not in axes:
            raise StudyError(f"problem {name!r}: rows / columns must be grid axes ({', '.join(axes)})")
    given_keys = tuple(sorted(k for k in values if k not in axes))
    return Problem(name, str(table.get("title", name)), kind, fixed, axes, ref, table.get("rows"), table.get("columns"),
                   variants, given_keys, _batch(table.get("batch", batch), name) if kind == "restore" else False)  # fmt: skip


def _batch(value, problem: str) -> bool | int:
    if isinstance(value, bool) or (isinstance(value, int) and value >= 1):
        return value
    raise StudyError(f"problem {problem!r}: batch must be true, false or a number of images >= 1")


def _is_box(v: list) -> bool:
    return len(v) == 4 and all(isinstance(x, int) for x in v)


def _check(p: dict, problem: str) -> None:
    from diffdemo.precision import PRECISIONS
    from diffdemo.restore import METHODS
    from diffdemo.spacing import SCHEDULES

    try:
        for name in CHECKED:
            if p.get(name) is not None:
                validation.check(name, p[name], name)
    except DiffdemoError as exc:
        raise StudyError(f"problem {problem!r}: {exc}") from None
    if "method" in p and p["method"] not in METHODS:
        raise StudyError(f"problem {problem!r}: unknown method {p['method']!r}; choose from {', '.join(METHODS)}")
    if p.get("schedule") not in SCHEDULES:
        raise StudyError(f"problem {problem!r}: unknown schedule {p.get('schedule')!r}")
    if p.get("precision") not in PRECISIONS:
        raise StudyError(f"problem {problem!r}: precision must be one of {', '.join(PRECISIONS)}")


def _images(spec) -> list[str]:
    """'bundled' (the six test faces), a folder (its PNG / JPEG files), or a list of bundled names and paths."""
    from diffdemo.imaging import bundled_images

    bundled = bundled_images()
    if spec == "bundled":
        return sorted(bundled)
    if isinstance(spec, str):
        folder = Path(spec)
        if not folder.is_dir():
            raise StudyError(f"images: {spec!r} is neither 'bundled', a folder nor a list")
        found = sorted(str(p) for p in folder.iterdir() if p.suffix.lower() in (".png", ".jpg", ".jpeg"))
        if not found:
            raise StudyError(f"images: no PNG or JPEG files in {spec}")
        return found
    names = [str(s) for s in spec]
    for n in names:
        if n not in bundled:
            validation.check_image_file(n, "images")
    return names


# --- runs and their keys -----------------------------------------------------------------------------------------
def expand(study: Study, model_hash: str) -> list[Run]:
    """Every run of the study in file order (problem, grid point, image), each with its key."""
    runs = []
    image_hashes = {image: _image_hash(image) for image in study.images}
    for problem in study.problems:
        for variant, point in product(problem.variants, product(*problem.axes.values())):
            config = tuple(variant.items()) + tuple(zip(problem.axes, point))
            params = {**problem.fixed, **dict(config), "kind": problem.kind, "model": study.model}
            for chunk in _chunks(study.images, problem.batch):
                for image in chunk:
                    run = Run(problem.name, image, {**params, "image": image}, config=config)
                    ident = {"study": study.name, "model_hash": model_hash, "image_sha": image_hashes[image]}
                    if problem.batch:  # a batch's images share one run (one measurement noise draw for all)
                        run.params["batch"] = list(chunk)
                        ident["batch_sha"] = [image_hashes[i] for i in chunk]
                    run.key = _sha({**ident, "run": run.params})
                    runs.append(run)
    return runs


def _chunks(images: list[str], batch: bool | int) -> list[list[str]]:
    """The images in the groups that run together: each alone, all at once (True), or n at a time."""
    if batch is False:
        return [[i] for i in images]
    n = len(images) if batch is True else int(batch)
    return [images[i : i + n] for i in range(0, len(images), n)]


def _sha(obj) -> str:
    return hashlib.sha256(json.dumps(obj, sort_keys=True, allow_nan=False).encode()).hexdigest()


def _image_hash(image: str) -> str:
    from diffdemo.imaging import bundled_images

    path = bundled_images().get(image, image)
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


def model_hash(model) -> str:
    """sha256 of the network's weights (names, shapes, dtypes, bytes) and its noise schedule."""
    import torch

    digest = hashlib.sha256()
    net = getattr(model, "unet", None)
    state = net.state_dict() if net is not None else {}
    for name in sorted(state):
        tensor = state[name].detach().cpu().contiguous()
        digest.update(f"{name}:{tuple(tensor.shape)}:{tensor.dtype}".encode())
        digest.update(tensor.view(-1).view(dtype=torch.uint8).numpy().tobytes())
    digest.update(model.schedule.alpha_bar.double().cpu().numpy().tobytes())
    return digest.hexdigest()


# --- one run -------------------------------------------------------------------------------------------------------
def execute(run: dict, model) -> list[dict]:
    """Run one study run (``Run.params``) on ``model`` through the experiments path; its rows (without the study's
    columns), one per image: one, or every image of ``run["batch"]`` run together. A single-image restore run
    makes the problem exactly as ``python -m diffdemo restore`` does, and its row is that command's result."""
    from diffdemo.experiments import Row, denoising, run_restoration
    from diffdemo.imaging import bundled_images, load_image, to_tensor
    from diffdemo.operators import make_operator
    from diffdemo.restore import DIFFUSION_METHODS, make_problem, model_for

    p = run
    size = model.size if p.get("size") is None else int(p["size"])
    names = p.get("batch") or [p["image"]]
    x0 = _cat([to_tensor(load_image(bundled_images().get(n, n), size)) for n in names])
    if p["kind"] == "denoise":
        net = model_for(model, "denoise", p["precision"])
        t = validation.check_timestep(int(p["t"]), model.schedule.T, "t")
        steps = int(p["steps"]) if p.get("steps") is not None else None
        rows = [r for r in denoising(net, x0, t, steps=steps, seed=int(p["seed"]), every=None, schedule=p["schedule"])
                if isinstance(r, Row)]  # fmt: skip
        noisy, row = rows
        per = _per_image(row, x0, None, lambda i: noisy_extra(net, noisy, x0, t, i, len(names)))
        method = "denoise"
    else:
        options = dict(box=p["box"], preset=p["box_preset"], drop=p["drop"], std=p["blur_std"])
        op = make_operator(p["operator"], size, kernel_size=p["kernel_size"], mask_seed=p["seed"], **options)
        problem = make_problem(x0, op, p["sigma_y"], p["seed"])
        overrides = {k: p[k] for k in ("steps", "t0", "scale", "zeta", "samples")}
        overrides.update(schedule=p["schedule"], normalize=False if p["raw_dps_step"] else None)
        method = p["method"]
        network = model if method in DIFFUSION_METHODS else None
        (row,) = run_restoration(network, problem, [method], overrides=overrides, precision=p["precision"])
        per = _per_image(row, x0, problem, lambda i: {"psnr_measurement": _psnr(problem.y[i : i + 1], x0[i : i + 1])})
    common = {"method": method, "seconds": row.seconds, "nfe": row.nfe, "precision": row.precision,
              "schedule": row.schedule, "resolved": row.params, "machine": machine(), "code_version": code_version()}  # fmt: skip
    return [{**common, **one, "image": name} for name, one in zip(names, per)]


def _cat(images: list):
    import torch

    return images[0] if len(images) == 1 else torch.cat(images)


def _psnr(x, reference) -> float:
    from diffdemo.metrics import psnr

    return psnr(x, reference)


def noisy_extra(model, noisy, x0, t: int, i: int, n: int) -> dict:
    """Figure 1's scores of image i's noised input (experiments.noisy_scores' one definition)."""
    from diffdemo.experiments import noisy_scores

    if n == 1:
        return {f"{k}_noisy": getattr(noisy, k) for k in METRICS}
    scores = noisy_scores(model, noisy.reconstruction[i : i + 1], x0[i : i + 1], t)
    return {f"{k}_noisy": scores[k] for k in METRICS}


def _per_image(row, x0, problem, extra: Callable[[int], dict]) -> list[dict]:
    """Each image's scores: the Row's own for a single image, else each image of the batch scored alone
    (restore.quality_scores on the image's slice of the problem)."""
    import torch

    from diffdemo.metrics import all_metrics
    from diffdemo.restore import Problem, quality_scores

    recon = row.reconstruction.detach().cpu().to(torch.float32).contiguous()
    out = []
    for i in range(recon.shape[0]):
        x = recon[i : i + 1]
        if recon.shape[0] == 1:
            scores = {k: getattr(row, k) for k in (*METRICS, "residual")}
        elif problem is None:
            scores = {**all_metrics(x, x0[i : i + 1]), "residual": None}
        else:
            one = Problem(x0[i : i + 1], problem.operator, problem.sigma_y, problem.y[i : i + 1], problem.seed)
            scores = quality_scores(one, x)
        sha = hashlib.sha256(x.contiguous().numpy().tobytes()).hexdigest()
        out.append({**scores, "extra": extra(i), "recon_sha": sha})
    return out


def machine() -> str:
    """This machine in one line: CPU model, its vector flags, cores, torch and its threads, and a GPU if any."""
    import torch

    cpu, flags = platform.processor() or platform.machine(), set()
    try:
        info = Path("/proc/cpuinfo").read_text()
        cpu = next((ln.split(":", 1)[1].strip() for ln in info.splitlines() if ln.startswith("model name")), cpu)
        words = next((ln.split(":", 1)[1].split() for ln in info.splitlines() if ln.startswith("flags")), [])
        flags = {w for w in words if w == "avx2" or w.startswith(("avx512", "amx"))}
    except OSError:
        pass
    from diffdemo.threads import usable_cores

    text = f"{cpu} ({' '.join(sorted(flags)) or 'no AVX2'}), {usable_cores()} cores, torch {torch.__version__}, "
    text += f"{torch.get_num_threads()} threads"
    if torch.cuda.is_available():
        text += f", GPU {torch.cuda.get_device_name(0)}"
    return text


_version: list[str] = []


def code_version() -> str:
    """The git commit of this checkout (with '-dirty' when it has uncommitted changes)."""
    if not _version:
        root = Path(__file__).resolve().parent.parent
        try:
            head = subprocess.run(["git", "rev-parse", "--short=12", "HEAD"], cwd=root, capture_output=True,
                                  text=True, timeout=10, check=True).stdout.strip()  # fmt: skip
            dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=root,
                                   capture_output=True, text=True, timeout=10).stdout.strip()  # fmt: skip
            _version.append(head + ("-dirty" if dirty else ""))
        except (OSError, subprocess.SubprocessError):
            _version.append("unknown (not a git checkout)")
    return _version[0]


# --- the database ------------------------------------------------------------------------------------------------
COLUMNS = {
    "key": "TEXT PRIMARY KEY",
    "study": "TEXT NOT NULL",
    "problem": "TEXT NOT NULL",
    "image": "TEXT NOT NULL",
    "kind": "TEXT",
    "method": "TEXT",
    "seed": "INTEGER",
    "params": "TEXT NOT NULL",  # the run's parameters as given (JSON)
    "resolved": "TEXT",  # the method's parameters as it ran (defaults filled in, JSON)
    "psnr": "REAL",
    "ssim": "REAL",
    "lpips": "REAL",
    "residual": "REAL",
    "seconds": "REAL",
    "nfe": "INTEGER",
    "precision": "TEXT",
    "schedule": "TEXT",
    "model": "TEXT",
    "model_hash": "TEXT",
    "code_version": "TEXT",
    "machine": "TEXT",
    "recon_sha": "TEXT",
    "extra": "TEXT",
    "finished_at": "REAL",
}


class Database:
    """The study's SQLite file: its name, one row per finished run, and each session's wall time."""

    def __init__(self, path: Path, study: str, create: bool = True):
        if not create and not path.exists():
            raise StudyError(f"no study database in {path.parent}: run the study first")
        path.parent.mkdir(parents=True, exist_ok=True)
        self.path, self.study, self._session = path, study, None
        self.db = sqlite3.connect(path)
        self.db.executescript(
            "CREATE TABLE IF NOT EXISTS study (name TEXT PRIMARY KEY, created REAL);"
            "CREATE TABLE IF NOT EXISTS models (name TEXT PRIMARY KEY, hash TEXT);"
            f"CREATE TABLE IF NOT EXISTS runs ({', '.join(f'{k} {v}' for k, v in COLUMNS.items())});"
            "CREATE TABLE IF NOT EXISTS sessions (started REAL, finished REAL, executor TEXT, runs INTEGER,"
            " machine TEXT);"
        )
        names = [r[0] for r in self.db.execute("SELECT name FROM study")]
        if names and names != [study]:
            raise StudyError(f"{path.parent} holds the study {names[0]!r}, not {study!r}: give another --out")
        if not names:
            self.db.execute("INSERT INTO study VALUES (?, ?)", (study, time.time()))
            self.db.commit()

    def done(self) -> set[str]:
        return {k for (k,) in self.db.execute("SELECT key FROM runs WHERE study = ?", (self.study,))}

    def add(self, rows: list[dict]) -> None:
        """Store the rows of one finished task in one transaction (an interruption loses only the task going on)."""
        for row in rows:
            values = {k: json.dumps(v, sort_keys=True) if isinstance(v, (dict, list)) else v for k, v in row.items()}
            cols = [k for k in COLUMNS if k in values]
            self.db.execute(f"INSERT OR REPLACE INTO runs ({', '.join(cols)}) VALUES ({', '.join('?' * len(cols))})",
                            [values[k] for k in cols])  # fmt: skip
        if self._session is not None:
            self.db.execute("UPDATE sessions SET finished = ?, runs = runs + ? WHERE rowid = ?",
                            (time.time(), len(rows), self._session))  # fmt: skip
        self.db.commit()

    def rows(self) -> dict[str, dict]:
        cur = self.db.execute("SELECT * FROM runs WHERE study = ?", (self.study,))
        names = [d[0] for d in cur.description]
        out = {}
        for values in cur:
            row = dict(zip(names, values))
            for k in ("params", "resolved", "extra"):
                row[k] = json.loads(row[k]) if row[k] else {}
            out[row["key"]] = row
        return out

    def set_model_hash(self, name: str, digest: str) -> None:
        self.db.execute("INSERT OR REPLACE INTO models VALUES (?, ?)", (name, digest))
        self.db.commit()

    def model_hash(self, name: str) -> str | None:
        found = self.db.execute("SELECT hash FROM models WHERE name = ?", (name,)).fetchone()
        return found[0] if found else None

    def session(self, executor: str) -> None:
        """A new session (this invocation's wall time), kept up to date by ``add``: a killed one still counts."""
        now = time.time()
        cur = self.db.execute("INSERT INTO sessions VALUES (?, ?, ?, 0, ?)", (now, now, executor, machine()))
        self.db.commit()
        self._session = cur.lastrowid

    def sessions(self) -> list[tuple]:
        return list(self.db.execute("SELECT started, finished, executor, runs, machine FROM sessions"))

    def close(self) -> None:
        self.db.close()


# --- the plan: evaluations and the cost model's estimate ----------------------------------------------------------
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


def plan(tasks: list[list[Run]], cost: dict | None, T: int = 1000) -> dict:
    """Runs, network evaluations (each image counted) and the cost model's seconds (``estimates.run_seconds``)
    of each task."""
    from diffdemo.estimates import image_evaluations, run_seconds

    works = [task_work(t, T) for t in tasks]
    seconds = [run_seconds(cost, **w) if cost and w else 0.0 for w in works]
    evaluations = sum(image_evaluations(w) for w in works if w)
    return {"runs": sum(map(len, tasks)), "evaluations": evaluations, "seconds": seconds}


def group(runs: list[Run]) -> list[list[Run]]:
    """Runs into tasks, in order: the runs of one batch together (at the first one's place), every other alone."""
    tasks: dict = {}
    for r in runs:
        key = (r.problem, r.config, tuple(r.params["batch"])) if "batch" in r.params else r.key
        tasks.setdefault(key, []).append(r)
    return list(tasks.values())


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


# --- executors -------------------------------------------------------------------------------------------------------
_models: dict = {}


def _model(name: str):
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
    return execute(params, _model(params["model"]))


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

    root = str(Path(__file__).resolve().parent.parent)
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


# --- running a study ------------------------------------------------------------------------------------------------
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
        model = _model(study.model)
        digest = model_hash(model)
        db.set_model_hash(study.model, digest)
        runs = expand(study, digest)
        finished = db.done()
        tasks = group(ordered([r for r in runs if r.key not in finished], study, model.schedule.T))
        if limit is not None:
            tasks = tasks[:limit]
        todo = [r for t in tasks for r in t]
        cost = measure_cost(model) if todo else None
        p = plan(tasks, cost, model.schedule.T)
        est = sum(p["seconds"])
        _say_plan(say, study, len(runs), len(todo), len(tasks), p["evaluations"], est, cost, executor, limit)
        summary = {"study": study.name, "out": str(out), "runs": len(runs), "to_run": len(todo), "ran": 0,
                   "evaluations": p["evaluations"], "estimate_s": est, "executor": executor}  # fmt: skip
        if dry_run or not todo:
            return summary
        if executor == "ray":
            stream = ray_rows(tasks)
        else:
            stream = local_rows(tasks, model, workers)
        started, ran = time.time(), 0
        db.session(executor)
        bar = _bar(est, len(todo), progress)
        weight = {t[0].key: s for t, s in zip(tasks, p["seconds"])}
        try:
            for task, rows in stream:
                by_image = {row["image"]: row for row in rows}
                db.add([_full_row(study, run, by_image[run.image], digest) for run in task])
                ran += len(task)
                bar.update(weight[task[0].key] or 0.0)
                bar.set_postfix_str(f"{ran}/{len(todo)} runs")
        except KeyboardInterrupt:
            say(f"interrupted: {ran} of {len(todo)} runs stored; run the same command again to resume")
            raise
        finally:
            bar.close()
            stream.close()
        summary.update(ran=ran, seconds=time.time() - started)
        return summary
    finally:
        db.close()


def _say_plan(say, study: Study, runs: int, todo: int, tasks: int, evaluations: int, est: float, cost, executor: str,
              limit) -> None:  # fmt: skip
    """The plan before a study starts: runs done and to go, network evaluations, the cost model's time."""
    from diffdemo.estimates import format_seconds

    head = f"study {study.name!r}: {runs} runs ({runs - todo} done{', limit' * (limit is not None)}"
    say(f"{head}, {todo} to run in {tasks} tasks), {evaluations:,} network evaluations to go")
    if cost:
        say(f"estimate on this machine: {format_seconds(est)} of runs one after another ({study.model}: "
            f"{cost['forward_s'] * 1000:.0f} ms a forward, {cost['grad_s'] * 1000:.0f} ms a DPS gradient, "
            f"timed now; {machine()}); executor: {executor}")  # fmt: skip


def _bar(estimate: float, runs: int, enabled: bool):
    """A progress bar over the estimated seconds of work, so its ETA weighs a 250-step run above a 20-step one."""
    from tqdm import tqdm

    return tqdm(total=round(estimate, 1) or runs, unit="s", unit_scale=False, disable=not enabled, file=sys.stderr,
                bar_format="{l_bar}{bar}| {elapsed}<{remaining} (cost-model s) {postfix}")  # fmt: skip


def _full_row(study: Study, run: Run, row: dict, digest: str) -> dict:
    return {**row, "key": run.key, "study": study.name, "problem": run.problem, "image": run.image,
            "kind": run.params["kind"], "seed": run.params.get("seed"), "params": run.params, "model": study.model,
            "model_hash": digest, "finished_at": time.time()}  # fmt: skip


# --- the report ----------------------------------------------------------------------------------------------------
SD = (
    "sd: the sample standard deviation over the runs of a configuration (ddof = 1). s: wall seconds of the run that "
    "made the row (the images of a batch share one run and its seconds)"
)
PAIRED = (
    "Δ: the mean of the paired per-image differences d_i = x_i - x_i(reference) over the images both ran, with its "
    "95% interval mean ± t(0.975, n - 1) sd(d) / sqrt(n) (scipy.stats.t)"
)


def mean_sd(values: list[float]) -> tuple[float, float]:
    """Mean and the sample standard deviation (ddof = 1; nan for a single value)."""
    import numpy as np

    a = np.asarray(values, dtype=float)
    return float(a.mean()), float(a.std(ddof=1)) if len(a) > 1 else math.nan


def paired(values: dict, reference: dict) -> tuple[float, float, float, int] | None:
    """Mean paired difference over the shared images and its 95% t interval: (mean, low, high, n)."""
    import numpy as np
    from scipy import stats

    shared = sorted(set(values) & set(reference))
    if not shared:
        return None
    d = np.array([values[k] - reference[k] for k in shared], dtype=float)
    if len(d) < 2:
        return float(d[0]), math.nan, math.nan, 1
    sem = d.std(ddof=1) / math.sqrt(len(d))
    if sem == 0:
        return float(d.mean()), float(d.mean()), float(d.mean()), len(d)
    low, high = stats.t.interval(0.95, len(d) - 1, loc=d.mean(), scale=sem)
    return float(d.mean()), float(low), float(high), len(d)


def _label(config: tuple) -> str:
    return ", ".join(f"{k}={v}" for k, v in config) or "(one configuration)"


def _cell(values: list[float], digits: int) -> str:
    if not values:
        return "—"
    m, s = mean_sd(values)
    return f"{m:.{digits}f} ± {s:.{digits}f}" if not math.isnan(s) else f"{m:.{digits}f}"


def report(study: Study, out: Path, figure: Path | None = None) -> str:
    """The study's tables (markdown) from its database; a figure of PSNR against the numeric column axis."""
    db = Database(Path(out) / DB_NAME, study.name, create=False)
    try:
        digest = db.model_hash(study.model)
        rows = db.rows()
        sessions = db.sessions()
    finally:
        db.close()
    runs = expand(study, digest) if digest else []
    found = [r for r in runs if r.key in rows]
    lines = [f"# {study.title}", ""]
    if study.description:
        lines += [study.description, ""]
    wall = sum(f - s for s, f, *_ in sessions)
    machines = sorted({rows[r.key]["machine"] for r in found})
    versions = sorted({rows[r.key]["code_version"] for r in found})
    own = sum(rows[r.key]["seconds"] / len(r.params.get("batch") or [1]) for r in found)  # a batch's run once
    lines += [
        f"Generated by `python -m diffdemo study {study.path or 'FILE'} --out DIR --report` from its database alone. "
        f"Model {study.model} (weights sha256 {digest[:12] if digest else '?'}), {len(study.images)} images: "
        f"{', '.join(Path(i).stem for i in study.images)}. {len(found)} of {len(runs)} runs finished"
        + (" (the rest: '—' / the counts in n; **not complete**)." if len(found) < len(runs) else "."),
        f"Wall time {wall / 60:.1f} min over {len(sessions)} session(s); the runs' own time "
        f"{own / 60:.1f} min. Machine(s): {'; '.join(machines) or '—'}. "
        f"Code: {', '.join(versions) or '—'}.",
        f"{SD}. {PAIRED}.",
        "",
    ]
    by_problem: dict[str, list[Run]] = {}
    for r in runs:
        by_problem.setdefault(r.problem, []).append(r)
    curves = []
    for problem in study.problems:
        lines += _problem_table(problem, by_problem.get(problem.name, []), rows)
        if problem.columns and all(isinstance(v, (int, float)) for v in problem.axes[problem.columns]):
            curves.append((problem, _groups(by_problem.get(problem.name, []), rows)))
    if figure is not None and found and curves:
        _figure(curves, figure)
        lines += [f"![PSNR against {curves[0][0].columns}]({figure.name})", ""]
    return "\n".join(lines)


def _groups(runs: list[Run], rows: dict) -> dict[tuple, dict]:
    """Per configuration: {metric: {(image, seed): value}} over its finished runs, and the planned count."""
    groups: dict[tuple, dict] = {}
    for r in runs:
        g = groups.setdefault(r.config, {"planned": 0, **{m: {} for m in (*METRICS, "seconds", "nfe")}, "extra": {}})
        g["planned"] += 1
        row = rows.get(r.key)
        if row is None:
            continue
        ident = (r.image, r.params.get("seed"))
        for m in (*METRICS, "seconds", "nfe"):
            if row[m] is not None:
                g[m][ident] = row[m]
        for k, v in row["extra"].items():
            if v is not None:
                g["extra"].setdefault(k, {})[ident] = v
    return groups


def _problem_table(problem: Problem, runs: list[Run], rows: dict) -> list[str]:
    groups = _groups(runs, rows)
    fixed = {k: problem.fixed[k] for k in problem.given}
    lines = [f"## {problem.title}", ""]
    if fixed:
        lines += ["Set in the study file: " + ", ".join(f"{k}={v}" for k, v in sorted(fixed.items())) + ".", ""]
    if problem.rows and problem.columns:
        cols = problem.axes[problem.columns]
        lines += [f"PSNR (dB), mean ± sd over images; rows: {problem.rows}, columns: {problem.columns}.", "",
                  f"| {problem.rows} | " + " | ".join(f"{problem.columns} {c}" for c in cols) + " |",
                  "|---|" + "---:|" * len(cols)]  # fmt: skip
        for rv in problem.axes[problem.rows]:
            cells = []
            for cv in cols:
                matching = [
                    g for cfg, g in groups.items() if dict(cfg)[problem.rows] == rv and dict(cfg)[problem.columns] == cv
                ]
                values = [v for g in matching for v in g["psnr"].values()]
                planned = sum(g["planned"] for g in matching)
                partial = f" ({len(values)}/{planned})" if values and len(values) < planned else ""
                cells.append(_cell(values, 2) + partial)
            lines.append(f"| {rv} | " + " | ".join(cells) + " |")
        lines.append("")
    ref_cfg = None
    if problem.reference:
        ref_cfg = next((c for c in groups if all(dict(c).get(k) == v for k, v in problem.reference.items())), None)
    extra_keys = sorted({k for g in groups.values() for k in g["extra"]})
    head = ["configuration", "n", "PSNR (dB)", "SSIM", "LPIPS", *extra_keys, "s", "NFE"]
    if ref_cfg is not None:
        head += [f"Δ PSNR vs {_label(ref_cfg)} [95% CI]", "Δ SSIM [95% CI]"]
    lines += ["| " + " | ".join(head) + " |", "|---|" + "---:|" * (len(head) - 1)]
    for cfg, g in groups.items():
        n = len(g["psnr"])
        cells = [_label(cfg), f"{n}/{g['planned']}", _cell(list(g["psnr"].values()), 2),
                 _cell(list(g["ssim"].values()), 3), _cell(list(g["lpips"].values()), 3)]  # fmt: skip
        cells += [_cell(list(g["extra"].get(k, {}).values()), 2 if k.startswith("psnr") else 3) for k in extra_keys]
        cells += [_cell(list(g["seconds"].values()), 1), _cell(list(g["nfe"].values()), 0)]
        if ref_cfg is not None:
            for metric, digits in (("psnr", 2), ("ssim", 3)):
                if cfg == ref_cfg:
                    cells.append("reference")
                    continue
                d = paired(g[metric], groups[ref_cfg][metric])
                if d is None:
                    cells.append("—")
                elif math.isnan(d[1]):
                    cells.append(f"{d[0]:+.{digits}f} (n = 1)")
                else:
                    cells.append(f"{d[0]:+.{digits}f} [{d[1]:+.{digits}f}, {d[2]:+.{digits}f}]")
        lines.append("| " + " | ".join(cells) + " |")
    return lines + [""]


def _figure(curves: list, path: Path) -> None:
    """PSNR (mean ± standard error) against the numeric column axis, one line per row-axis value, per problem."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    ncol = min(3, len(curves))
    nrow = -(-len(curves) // ncol)
    fig, axes = plt.subplots(nrow, ncol, figsize=(4.6 * ncol, 3.6 * nrow), squeeze=False)
    for ax in list(axes.flat)[len(curves) :]:
        ax.axis("off")
    for ax, (problem, groups) in zip(axes.flat, curves):
        series = problem.axes[problem.rows] if problem.rows else [None]
        for s in series:
            pts = []
            for x in problem.axes[problem.columns]:
                values = [v for c, g in groups.items() if dict(c)[problem.columns] == x
                          and (s is None or dict(c)[problem.rows] == s) for v in g["psnr"].values()]  # fmt: skip
                if len(values) > 1:
                    m, sd = mean_sd(values)
                    pts.append((x, m, sd / math.sqrt(len(values))))
            if pts:
                ax.errorbar(*zip(*pts), marker="o", capsize=2, label=str(s) if s is not None else None)
        ax.set_xscale("log")
        ticks = problem.axes[problem.columns]
        ax.set_xticks(ticks, [str(t) for t in ticks])
        ax.minorticks_off()
        ax.set_title(problem.title, fontsize=9)
        ax.set_xlabel(problem.columns)
        ax.set_ylabel("PSNR (dB), mean ± s.e.")
        if problem.rows:
            ax.legend(fontsize=7)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=90)
    plt.close(fig)


BEGIN = "<!-- study:{name} begin: generated by python -m diffdemo study --report; edit the study file instead -->"
END = "<!-- study:{name} end -->"


def write_section(path: Path, name: str, text: str) -> Path:
    """Put ``text`` between this study's markers in ``path`` (replacing what was there; the rest kept)."""
    begin, end = BEGIN.format(name=name), END.format(name=name)
    block = f"{begin}\n{text.rstrip()}\n{end}\n"
    old = path.read_text(encoding="utf-8") if path.exists() else ""
    if begin in old and end in old:
        head, rest = old.split(begin, 1)
        new = head + block.rstrip("\n") + rest.split(end, 1)[1]  # what follows the end marker, as it was
    else:
        new = block + ("\n" + old if old else "")
    path.write_text(new, encoding="utf-8")
    return path
