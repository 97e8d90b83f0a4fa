"""studies/sweeps.toml, the claims' sweeps (Figs. 3-5) as a study: its grid is BUDGETS["full"]'s, its runs are
reproduce's (every parameter as reproduce sets it), and a row of it is ``Reproduction.restoration``'s run of the
same method, task, image and swept value, bit for bit (run here on the tiny model at the tiny budget's steps)."""

from __future__ import annotations

import hashlib
import json
import sqlite3
from pathlib import Path

import pytest
import torch

from diffdemo import defaults, study
from diffdemo.defaults import params_for
from diffdemo.reproduce.budgets import BUDGETS
from diffdemo.reproduce.specs import FIGURES, SWEEPS, TASKS

SWEEPS_FILE = Path(__file__).resolve().parent.parent / "studies" / "sweeps.toml"
OPERATOR_TASK = {operator: task for task, (operator, _) in TASKS.items()}
SPEC_OF = {FIGURES[key].method: FIGURES[key] for key in SWEEPS}  # method -> its sweep (Fig. 3, 4 or 5)


def _problems(spec: study.Study) -> dict[tuple[str, str], study.Problem]:
    """{(sweep key, task): problem}: each method-and-task once."""
    found: dict[tuple[str, str], study.Problem] = {}
    for p in spec.problems:
        key = (SPEC_OF[p.fixed["method"]].key, OPERATOR_TASK[p.fixed["operator"]])
        assert key not in found, f"{key} appears twice"
        found[key] = p
    return found


def test_sweeps_study_is_the_full_budgets_grid_with_reproduces_parameters():
    """The study's swept values and steps are BUDGETS['full']'s (they cannot drift apart), on both of reproduce's
    tasks, with reproduce's seed, sigma_y, one chain, fp32 and the spacing reproduce resolves per method and task."""
    full = BUDGETS["full"]
    spec = study.load_study(SWEEPS_FILE)
    problems = _problems(spec)
    assert set(problems) == {(key, task) for key in SWEEPS for task in TASKS}
    assert spec.model == "faces64" and len(spec.images) == 6  # all six bundled faces, not reproduce's two
    for (key, task), p in problems.items():
        fig = FIGURES[key]
        assert p.axes == {fig.param: list(getattr(full, fig.values))}, p.name
        assert p.columns == fig.param and p.reference and set(p.reference) == {fig.param}
        assert p.reference[fig.param] in p.axes[fig.param]
        operator, options = TASKS[task]
        f = p.fixed
        assert f["operator"] == operator and f["box_preset"] == options.get("preset", f["box_preset"])
        assert (f["steps"], f["samples"], f["seed"], f["sigma_y"]) == (full.steps, 1, defaults.SEED, defaults.SIGMA_Y)
        assert f["precision"] == "fp32" and p.batch is False  # each image alone, as reproduce runs it
        assert f["spacing"] == params_for(fig.method, operator)["spacing"], p.name  # what reproduce leaves to defaults
        assert not f["raw_dps_step"] and f["box"] is None and f["kernel_size"] is None and f["blur_std"] is None
        assert all(f[k] is None for k in ("t0", "zeta", "scale") if k != fig.param)


@pytest.fixture(scope="module")
def tiny_sweeps(tmp_path_factory, tiny_model_dir):
    """studies/sweeps.toml as it is, but on the tiny model, the tiny budget's steps, reproduce's sweep images (the
    claims' two) and each axis cut to its two ends and its reference, run through the study command's path:
    (the study, its rows)."""
    spec = study.load_study(SWEEPS_FILE)
    spec.model, spec.images = str(tiny_model_dir), _reproduce_images(BUDGETS["full"].sweep_images)
    for p in spec.problems:
        ((axis, values),) = p.axes.items()
        p.fixed["steps"] = BUDGETS["tiny"].steps
        p.axes = {axis: list(dict.fromkeys([values[0], p.reference[axis], values[-1]]))}
    out = tmp_path_factory.mktemp("sweeps") / "out"
    study.run_study(spec, out, progress=False, say=lambda s: None)
    db = sqlite3.connect(out / study.DB_NAME)
    db.row_factory = sqlite3.Row
    rows = [dict(r) for r in db.execute("SELECT * FROM runs")]
    db.close()
    return spec, rows


def _reproduce_images(n: int) -> list[str]:
    """The images reproduce takes first (defaults.IMAGE, then the rest sorted): Reproduction.image_names."""
    from diffdemo.imaging import bundled_images

    return sorted(bundled_images(), key=lambda name: (name != defaults.IMAGE, name))[:n]


def test_a_sweeps_row_is_reproduces_run_bit_for_bit(tiny_sweeps, tiny_model_dir, tmp_path):
    """Every (method, task, image, swept value) of the study equals Reproduction.restoration's run of it: the same
    PSNR, SSIM, LPIPS, residual, NFE, resolved parameters and reconstruction bytes (reproduce --precision fp32)."""
    from diffdemo.models import load_model
    from diffdemo.reproduce.reproduction import Reproduction

    spec, rows = tiny_sweeps
    names = _reproduce_images(BUDGETS["full"].sweep_images)
    assert len(rows) == sum(len(values) for p in spec.problems for values in p.axes.values()) * len(names) == 34
    run = Reproduction(load_model(str(tiny_model_dir)), BUDGETS["tiny"], tmp_path, seed=defaults.SEED,
                       progress=False, precision="fp32")  # fmt: skip
    assert run.image_names[: len(names)] == names
    problems = {p.name: p for p in spec.problems}
    for row in rows:
        p = problems[row["problem"]]
        fig = SPEC_OF[p.fixed["method"]]
        value = json.loads(row["params"])[fig.param]
        theirs = run.restoration(fig.method, OPERATOR_TASK[p.fixed["operator"]], row["image"], **{fig.param: value})
        what = f"{row['problem']} {row['image']} {fig.param}={value}"
        recon = theirs.reconstruction.detach().cpu().to(torch.float32).contiguous()
        assert row["recon_sha"] == hashlib.sha256(recon.numpy().tobytes()).hexdigest(), what
        for key in ("psnr", "ssim", "lpips", "residual", "nfe", "precision", "spacing"):
            assert row[key] == getattr(theirs, key), f"{what}: {key}"  # exact: the same floats
        assert json.loads(row["resolved"]) == theirs.params, what
