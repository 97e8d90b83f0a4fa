"""The one validation module (every parameter: type, finiteness, range), the strict JSON writer and the CLI's
error contract: the user's errors exit 2 before any work, bugs exit 1 with their traceback."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from diffdemo import jsonio, validation
from diffdemo.cli import main
from diffdemo.defaults import RANGES
from diffdemo.errors import DiffdemoError, InvalidParameter
from tests.conftest import strict_loads


@pytest.mark.parametrize(
    "name,value,needle",
    [
        ("scale", math.nan, "finite"),
        ("scale", 1e30, "between 0 and 100"),
        ("scale", -1, "between 0 and 100"),
        ("zeta", math.nan, "finite"),
        ("zeta", math.inf, "finite"),
        ("blur_std", 0, "between 0.3 and 10"),
        ("samples", 1000, "between 1 and 16"),
        ("seed", -1, "between 0 and 2147483647"),
        ("eps", math.inf, "finite"),
        ("eps", 0.0, "above 0"),
        ("steps", 0, "between 1 and 1000"),
        ("steps", 2.5, "whole number"),
        ("steps", "ten", "must be a number"),
        ("steps", None, "missing"),
        ("steps", True, "must be a number"),
        ("sigma_y", -0.1, "between 0 and 1"),
        ("sigma_y", "nan", "finite"),
        ("kernel_size", 12, "odd"),
        ("size", 20, "multiple of 8"),
        ("drop", 1.0, "between 0 and 0.95"),
    ],
)
def test_each_rule_refuses_with_its_message(name, value, needle):
    with pytest.raises(InvalidParameter, match=needle):
        validation.check(name, value)


def test_values_in_range_come_back_typed():
    assert validation.check("steps", 250.0) == 250 and isinstance(validation.check("steps", 250.0), int)
    assert validation.check("scale", "2.5") == 2.5
    assert validation.check("eps", 1.0) == 1.0  # the upper bound is inclusive, the lower one open
    for name, (low, high, kind) in RANGES.items():
        for edge in (low, high):
            if name == "kernel_size" and edge % 2 == 0 or name == "size" and edge % 8 or name == "eps" and edge == low:
                continue
            value = validation.check(name, edge)
            assert value == edge and isinstance(value, int if kind == "int" else float), (name, edge)


def test_one_timestep_rule():
    assert validation.check_timestep(1, 1000) == 1 and validation.check_timestep(999.0, 1000) == 999
    for bad in (0, 1000, -5, math.nan):
        with pytest.raises(InvalidParameter):
            validation.check_timestep(bad, 1000)
    assert validation.check_timesteps("700, 50 50", 1000) == [50, 700]
    with pytest.raises(InvalidParameter, match="at least one"):
        validation.check_timesteps([], 1000)


def test_out_dir_refused_when_a_file_or_under_one(tmp_path):
    afile = tmp_path / "file.txt"
    afile.write_text("x")
    for bad in (afile, afile / "sub"):
        with pytest.raises(InvalidParameter, match="--out"):
            validation.check_out_dir(bad)
    assert validation.check_out_dir(tmp_path / "new" / "deeper") == tmp_path / "new" / "deeper"


def test_strict_json_nulls_every_non_finite_number(tmp_path):
    value = {
        "nan": math.nan,
        "inf": [math.inf, -math.inf, 1.5],
        "numpy": np.float32("nan"),
        "int": np.int64(3),
        "tensor": torch.tensor([1.0, math.inf]),
        "big": np.zeros(1000),
        "nested": ({"deep": math.nan},),
    }
    text = jsonio.dumps(value)
    parsed = strict_loads(text)
    assert parsed["nan"] is None and parsed["inf"] == [None, None, 1.5] and parsed["numpy"] is None
    assert parsed["int"] == 3 and parsed["tensor"] == [1.0, None] and parsed["big"] == "array(1000,)"
    assert parsed["nested"] == [{"deep": None}]
    path = jsonio.write_json(tmp_path / "a" / "r.json", value)
    assert strict_loads(path.read_text()) == parsed


# --- the CLI -------------------------------------------------------------------------------------------
ODD = [
    (["restore", "--method", "dps", "--steps", "3", "--scale", "nan"], "--scale must be a finite number"),
    (["restore", "--method", "dps", "--steps", "3", "--scale", "1e30"], "--scale must be between"),
    (["restore", "--method", "dps", "--steps", "3", "--scale", "-1"], "--scale must be between"),
    (["restore", "--method", "score_ald", "--steps", "3", "--zeta", "nan"], "--zeta must be a finite"),
    (["restore", "--method", "wiener", "--blur-std", "0"], "--blur-std must be between"),
    (["restore", "--method", "dps", "--samples", "1000"], "--samples must be between"),
    (["restore", "--method", "dps", "--seed", "-1"], "--seed must be between"),
    (["restore", "--method", "dps", "--sigma-y", "inf"], "--sigma-y must be a finite"),
    (["restore", "--method", "sdedit", "--t0", "0"], "--t0 must be between 1 and 999"),
    (["restore", "--method", "dps", "--kernel-size", "8"], "--kernel-size must be odd"),
    (["probe", "--pixel", "3", "3", "--t", "10", "--eps", "inf"], "--eps must be a finite"),
    (["probe", "--pixel", "3", "3", "--t", "10", "--eps", "nan"], "--eps must be a finite"),
    (["sample", "--n", "1000"], "--n must be between 1 and 256"),
    (["sample", "--seed", "-1"], "--seed must be between"),
    (["spectrum", "--k", "1000"], "--k must be between"),
]


NEEDS_MODEL = ("--t0",)  # the timestep rule needs the model's T: loading it is allowed, evaluating it is not


def forbid_work(monkeypatch, allow_loading: bool = False) -> None:
    """Make any work fail loudly (exit 1, a traceback): loading a model, unless allowed, and evaluating a network."""
    import diffdemo.cli as cli
    import diffdemo.models as models

    def refuse(*args, **kwargs):
        raise AssertionError("work started before the input was checked")

    if not allow_loading:
        monkeypatch.setattr(models, "load_model", refuse)
        monkeypatch.setattr(cli, "load_model", refuse, raising=False)
    monkeypatch.setattr(models.UNetModel, "eps", refuse)


@pytest.mark.parametrize("argv,needle", ODD, ids=[" ".join(a[:1] + a[-2:]) for a, _ in ODD])
def test_cli_refuses_odd_parameters_with_exit_2_before_any_work(
    capsys, monkeypatch, tmp_path, tiny_model_dir, argv, needle
):
    forbid_work(monkeypatch, allow_loading=any(a in NEEDS_MODEL for a in argv))
    out_dir = tmp_path / "out"
    code = main([*argv, "--model", str(tiny_model_dir), "--out", str(out_dir)])
    out, err = capsys.readouterr()
    assert code == 2 and out == ""
    assert err.startswith("error: ") and err.count("\n") == 1 and needle in err, err
    assert not out_dir.exists()  # refused before anything was written


COMMANDS = {
    "restore": ["restore", "--method", "dps", "--steps", "3"],
    "sample": ["sample", "--n", "1", "--steps", "1"],
    "probe": ["probe", "--pixel", "3", "3", "--t", "10"],
    "spectrum": ["spectrum", "--t", "100", "--k", "1", "--iters", "1"],
    "reproduce": ["reproduce", "--tiny", "--no-progress"],
}


def bad_out(tmp_path, monkeypatch, kind: str) -> str:
    """An --out that cannot be used: an existing file, a path below a file, or a folder without write permission
    (os.access answers no: the tests may run as root, who may write anywhere)."""
    afile = tmp_path / "taken.png"
    afile.write_bytes(b"x")
    if kind == "file":
        return str(afile)
    if kind == "below_a_file":
        return str(afile / "run")
    monkeypatch.setattr(validation.os, "access", lambda path, mode: False)
    return str(tmp_path / "locked" / "run")


@pytest.mark.parametrize(
    "kind,needle",
    [
        ("file", "exists and is not a folder"),
        ("below_a_file", "cannot be created: a folder on its way is a file"),
        ("no_permission", "cannot be written here (no permission to create or write it)"),
    ],
)
@pytest.mark.parametrize("command", list(COMMANDS))
def test_cli_refuses_a_bad_out_before_any_work(capsys, monkeypatch, tmp_path, tiny_model_dir, command, kind, needle):
    out = bad_out(tmp_path, monkeypatch, kind)
    forbid_work(monkeypatch)
    code = main([*COMMANDS[command], "--model", str(tiny_model_dir), "--out", out])
    captured = capsys.readouterr()
    assert (code, captured.out) == (2, "")
    assert captured.err == f"error: --out {out} {needle}\n"


@pytest.mark.parametrize(
    "kind,needle",
    [("folder", "is a folder: give a file name"), ("below_a_file", "cannot be created: a folder on its way is a file")],
)
def test_cli_profile_out_is_a_file(capsys, monkeypatch, tmp_path, tiny_model_dir, kind, needle):
    out = str(tmp_path) if kind == "folder" else bad_out(tmp_path, monkeypatch, kind)
    forbid_work(monkeypatch)
    code = main(["profile", "--model", str(tiny_model_dir), "--iters", "1", "--images", "1", "--out", out])
    captured = capsys.readouterr()
    assert (code, captured.out) == (2, "") and captured.err.startswith(f"error: --out {out} {needle}")
    assert captured.err.count("\n") == 1
    taken = tmp_path / "profile.json"
    taken.write_text("{}")
    assert validation.check_out_file(taken) == taken  # an existing profile is overwritten, not refused


def project_errors():
    """The project's own error types: the user's input or environment, said in one line."""
    from diffdemo.cli import UsageError
    from diffdemo.errors import OverBudget
    from diffdemo.imaging import ImageError
    from diffdemo.models import ModelUnavailable
    from diffdemo.serving import TimeCapReached

    return [DiffdemoError, InvalidParameter, OverBudget, ImageError, ModelUnavailable, TimeCapReached, UsageError]


def fail_inside_the_network(monkeypatch, exc: Exception) -> list:
    """Every network evaluation raises ``exc`` (an internal failure deep in a run); returns the calls made."""
    import diffdemo.models as models

    calls = []

    def eps(self, x, t):
        calls.append(t)
        raise exc

    monkeypatch.setattr(models.UNetModel, "eps", eps)
    return calls


SAMPLE = ["sample", "--n", "1", "--steps", "2"]


@pytest.mark.parametrize("error", project_errors(), ids=lambda e: e.__name__)
def test_cli_project_errors_are_exit_2_with_one_line(capsys, monkeypatch, tmp_path, tiny_model_dir, error):
    calls = fail_inside_the_network(monkeypatch, error("first line\nsecond line"))
    code = main([*SAMPLE, "--model", str(tiny_model_dir), "--out", str(tmp_path / "o")])
    assert (code, capsys.readouterr().err, len(calls)) == (2, "error: first line\n", 1)


@pytest.mark.parametrize("error", [ValueError, RuntimeError, KeyError, TypeError, ZeroDivisionError, AssertionError])
def test_cli_bug_is_exit_1_with_traceback(capsys, monkeypatch, tmp_path, tiny_model_dir, error):
    """Anything else is a bug, ValueError included (it used to be reported as a usage error)."""
    calls = fail_inside_the_network(monkeypatch, error("a bug, not the user's input"))
    code = main([*SAMPLE, "--model", str(tiny_model_dir), "--out", str(tmp_path / "o")])
    out, err = capsys.readouterr()
    assert (code, out, len(calls)) == (1, "", 1)
    assert err.startswith("Traceback (most recent call last):")
    assert err.rstrip().splitlines()[-1] == f"{error.__name__}: " + str(error("a bug, not the user's input"))
    assert "in eps" in err  # the traceback reaches the failing line


def test_cli_interrupt_is_exit_130_with_one_line(capsys, monkeypatch, tmp_path, tiny_model_dir):
    fail_inside_the_network(monkeypatch, KeyboardInterrupt())
    code = main([*SAMPLE, "--model", str(tiny_model_dir), "--out", str(tmp_path / "o")])
    assert (code, capsys.readouterr().err) == (130, "error: interrupted\n")


def test_cli_stdout_and_files_are_strict_json(capsys, tmp_path, tiny_model_dir):
    out_dir = tmp_path / "run"
    code = main(["restore", "--model", str(tiny_model_dir), "--method", "wiener", "--out", str(out_dir)])
    out, err = capsys.readouterr()
    assert code == 0, err
    line = strict_loads(out.strip().splitlines()[-1])
    assert line["method"] == "wiener" and line["lpips"] is None  # 16 px: below LPIPS's smallest input
    assert strict_loads((out_dir / "metrics.json").read_text())["psnr"] == line["psnr"]


def test_flags_take_booleans_only():
    """dps_normalize="no" used to count as true (bool("no")): a yes/no parameter takes True or False, and a wrong
    type is named with what it wants, cut short."""
    from diffdemo.errors import InvalidParameter
    from diffdemo.validation import check_flag

    assert check_flag("DPS normalize", True) is True and check_flag("DPS normalize", False) is False
    for value in ("no", "false", {}, 0, 1, None, [True], "x" * 1_000_000):
        with pytest.raises(InvalidParameter, match="DPS normalize must be true or false") as info:
            check_flag("DPS normalize", value)
        assert len(str(info.value)) < 120


def test_wrong_types_name_the_parameter_and_what_it_wants():
    from diffdemo.errors import InvalidParameter
    from diffdemo.validation import check, check_choice

    for value in ({}, [1], "x" * 1_000_000, object()):
        with pytest.raises(InvalidParameter) as info:
            check("steps", value)
        assert "steps" in str(info.value) and "number" in str(info.value) and len(str(info.value)) < 120
    with pytest.raises(InvalidParameter, match="unknown method") as info:
        check_choice("method", "y" * 1_000_000, ("dps", "sdedit"))
    assert len(str(info.value)) < 120
