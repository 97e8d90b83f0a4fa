"""The study file: its TOML read and checked (unknown keys, bad values, missing images refused before any work),
expanded into runs (one per problem, grid point and image, each keyed by sha256 of the study, the model's and the
image's hashes and the run's parameters) and grouped into tasks (a batch's runs together)."""

from __future__ import annotations

import hashlib
import json
import tomllib
from collections.abc import Iterable
from dataclasses import dataclass, field
from itertools import product
from pathlib import Path

from diffdemo import defaults, validation
from diffdemo.errors import DiffdemoError

KINDS = ("restore", "denoise")
# The CLI's restore options a run may set, with the CLI's defaults (None: the method's own default applies).
RESTORE_PARAMS: dict[str, object] = {
    "method": "dps",
    "operator": "gaussian_blur",
    "sigma_y": defaults.SIGMA_Y,
    "steps": None,
    "spacing": None,  # as ``restore`` without --spacing: each method's tuned list for the task (defaults.py)
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
DENOISE_PARAMS: dict[str, object] = {"t": 300, "steps": None, "spacing": defaults.SPACING, "seed": defaults.SEED}
RUN_WIDE = {"precision": "auto", "size": None}  # the study's (or a problem's) model-wide settings
CHECKED = ("sigma_y", "steps", "seed", "scale", "zeta", "samples", "drop", "blur_std", "kernel_size", "size")
METRICS = ("psnr", "ssim", "lpips")
# Keys renamed since: a study file that still uses the old name is refused with the new one (not as an unknown key,
# and not ignored, as an unknown [defaults] key would be). 'schedule' named the timestep spacing before the noise
# schedule (diffdemo/schedule.py) and the spacing (diffdemo/spacing.py) had names of their own.
RENAMED = {"schedule": "spacing"}


class StudyError(DiffdemoError):
    """A study file or output folder that cannot be used: one line, before any work."""


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
    _refuse_renamed(data, "the study")
    _refuse_renamed(data.get("defaults", {}), "[defaults]")
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


def _refuse_renamed(names: Iterable[str], where: str) -> None:
    for old in RENAMED:
        if old in names:
            raise StudyError(f"'{old}' is now called '{RENAMED[old]}' (in {where}): rename it in the study file")


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
    ref, variants = table.get("reference"), table.get("variants", [{}])
    named = [*table, table.get("rows"), table.get("columns"), *(ref if isinstance(ref, dict) else ())]
    named += [k for v in (variants if isinstance(variants, list) else []) if isinstance(v, dict) for k in v]
    _refuse_renamed(named, f"problem {name!r}")
    given = {**{k: v for k, v in common.items() if k in params or k in RUN_WIDE}, **table}
    _refuse_unknown(given, set(params) | set(RUN_WIDE) | layout, f"problem {name!r}")
    values = {k: v for k, v in given.items() if k not in layout}
    axes = {k: v for k, v in values.items() if isinstance(v, list) and not (k == "box" and _is_box(v))}
    for k, v in axes.items():
        if not v or len({json.dumps(x) for x in v}) != len(v):
            raise StudyError(f"problem {name!r}: the axis {k} must list distinct values")
    fixed = {**RUN_WIDE, **params, **{k: v for k, v in values.items() if k not in axes}}
    if not isinstance(variants, list) or not variants or not all(isinstance(v, dict) for v in variants):
        raise StudyError(f"problem {name!r}: variants must be a list of tables, e.g. [{{method = 'dps'}}]")
    varied = {k for v in variants for k in v}
    _refuse_unknown({k: 0 for k in varied}, set(params) - set(axes), f"problem {name!r}'s variants")
    for variant, point in product(variants, product(*axes.values())):  # every run checked before any work
        _check({**fixed, **variant, **dict(zip(axes, point))}, name)
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
    from diffdemo.spacing import SPACINGS

    try:
        for name in CHECKED:
            if p.get(name) is not None:
                validation.check(name, p[name], name)
    except DiffdemoError as exc:
        raise StudyError(f"problem {problem!r}: {exc}") from None
    if "method" in p and p["method"] not in METHODS:
        raise StudyError(f"problem {problem!r}: unknown method {p['method']!r}; choose from {', '.join(METHODS)}")
    if p.get("spacing") not in SPACINGS and not (p.get("spacing") is None and "method" in p):
        raise StudyError(f"problem {problem!r}: unknown spacing {p.get('spacing')!r}")
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
                    run.key = _sha({**ident, "run": _as_keyed(run.params)})
                    runs.append(run)
    return runs


def _chunks(images: list[str], batch: bool | int) -> list[list[str]]:
    """The images in the groups that run together: each alone, all at once (True), or n at a time."""
    if batch is False:
        return [[i] for i in images]
    n = len(images) if batch is True else int(batch)
    return [images[i : i + n] for i in range(0, len(images), n)]


def _as_keyed(params: dict) -> dict:
    """The parameters as a run's key hashes them: each renamed one under its old name (RENAMED), so that the keys,
    and with them a database made before a rename, stay valid (it resumes where it stopped, --report reads it)."""
    old = {new: old for old, new in RENAMED.items()}
    return {old.get(k, k): v for k, v in params.items()}


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


def group(runs: list[Run]) -> list[list[Run]]:
    """Runs into tasks, in order: the runs of one batch together (at the first one's place), every other alone."""
    tasks: dict = {}
    for r in runs:
        key = (r.problem, r.config, tuple(r.params["batch"])) if "batch" in r.params else r.key
        tasks.setdefault(key, []).append(r)
    return list(tasks.values())
