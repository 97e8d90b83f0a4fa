"""The app's controls start where diffdemo/defaults.py says, and where the CLI starts: one set of numbers."""

from __future__ import annotations

import pytest

from diffdemo import cli
from diffdemo.defaults import DEFAULTS, RANGES, SAMPLE, UI, params_for
from diffdemo.operators import default_blur

ELEM_IDS = {"denoise.t": "dn-t", "restore.steps": "ip-steps", "probe.t": "sens-t"}  # ids the browser tests use


@pytest.fixture(scope="module")
def controls():
    """The built (not launched) app's components by elem_id, and by label for the pickers."""
    import app

    blocks = list(app.build_app().blocks.values())
    by_id = {b.elem_id: b for b in blocks if getattr(b, "elem_id", None)}
    by_label = {b.label: b for b in blocks if getattr(b, "label", None)}
    return by_id, by_label


def test_every_slider_reads_the_ui_table(controls):
    by_id, _ = controls
    for name, (low, high, value, step) in UI.items():
        slider = by_id[ELEM_IDS.get(name, name.replace(".", "-"))]
        assert (slider.minimum, slider.maximum, slider.value, slider.step) == (low, high, value, step), name
        param = name.split(".")[1]
        if param in RANGES:  # a slider may narrow the allowed range, never widen it
            assert RANGES[param][0] <= low <= value <= high <= RANGES[param][1], name


def test_initial_values_are_the_tuned_defaults():
    operator, method = "gaussian_blur", "dps"
    tuned = params_for(method, operator)
    assert UI["restore.steps"][2] == tuned["steps"]  # the task's own steps where it has them (TASK_DEFAULTS)
    assert UI["restore.samples"][2] == tuned["samples"]
    assert UI["restore.scale"][2] == tuned["scale"]
    assert UI["restore.zeta"][2] == params_for("score_ald", operator)["zeta"]
    assert UI["restore.t0"][2] == params_for("sdedit", operator)["t0"]
    assert UI["denoise.steps"][2] == DEFAULTS["denoise"]["steps"]
    assert (UI["restore.kernel_size"][2], UI["restore.blur_std"][2]) == default_blur(64)  # the operator's own


def test_app_starts_where_the_cli_does(controls):
    by_id, by_label = controls
    restore = cli.build_parser().parse_args(["restore", "--out", "x"])
    sample = cli.build_parser().parse_args(["sample", "--out", "x"])
    assert by_label["Operator A"].value == restore.operator and by_label["Method"].value == restore.method
    assert by_label["Image"].value == restore.image and by_id["seed"].value == restore.seed == sample.seed
    assert by_id["restore-sigma_y"].value == restore.sigma_y
    assert by_id["restore-drop"].value == restore.drop and by_label["hole"].value == restore.box_preset
    # the CLI leaves these unset and takes the method's tuned value (params_for) or the operator's default blur
    assert restore.steps is None and restore.scale is None and restore.blur_std is None and restore.kernel_size is None
    assert by_id["ip-steps"].value == params_for(restore.method, restore.operator)["steps"]
    assert by_id["sample-n"].value == sample.n == SAMPLE["n"]
    assert by_id["sample-steps"].value == sample.steps == SAMPLE["steps"]
