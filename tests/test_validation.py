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


@pytest.mark.parametrize("argv,needle", ODD, ids=[" ".join(a[:1] + a[-2:]) for a, _ in ODD])
def test_cli_refuses_odd_parameters_with_exit_2_before_any_work(capsys, tmp_path, tiny_model_dir, argv, needle):
    out_dir = tmp_path / "out"
    code = main([*argv, "--model", str(tiny_model_dir), "--out", str(out_dir)])
    out, err = capsys.readouterr()
    assert code == 2 and out == ""
    assert err.startswith("error: ") and err.count("\n") == 1 and needle in err, err
    assert not out_dir.exists()  # refused before anything was written


def test_cli_refuses_an_existing_file_as_out(capsys, tmp_path, tiny_model_dir):
    afile = tmp_path / "taken.png"
    afile.write_bytes(b"x")
    code = main(["sample", "--model", str(tiny_model_dir), "--n", "1", "--steps", "1", "--out", str(afile)])
    assert code == 2 and "exists and is not a folder" in capsys.readouterr().err


def test_cli_bug_is_exit_1_with_traceback(capsys, monkeypatch, tmp_path, tiny_model_dir):
    import diffdemo.cli as cli

    def broken(args):
        raise KeyError("a bug, not the user's input")

    monkeypatch.setattr(cli, "run_sample", broken)
    code = main(["sample", "--model", str(tiny_model_dir), "--n", "1", "--steps", "1", "--out", str(tmp_path / "o")])
    err = capsys.readouterr().err
    assert code == 1 and "Traceback" in err and "KeyError" in err


def test_cli_project_errors_are_exit_2(capsys, monkeypatch, tmp_path, tiny_model_dir):
    import diffdemo.cli as cli

    def refused(args):
        raise DiffdemoError("first line\nsecond line")

    monkeypatch.setattr(cli, "run_sample", refused)
    code = main(["sample", "--model", str(tiny_model_dir), "--n", "1", "--steps", "1", "--out", str(tmp_path / "o")])
    assert code == 2 and capsys.readouterr().err == "error: first line\n"


def test_cli_stdout_and_files_are_strict_json(capsys, tmp_path, tiny_model_dir):
    out_dir = tmp_path / "run"
    code = main(["restore", "--model", str(tiny_model_dir), "--method", "wiener", "--out", str(out_dir)])
    out, err = capsys.readouterr()
    assert code == 0, err
    line = strict_loads(out.strip().splitlines()[-1])
    assert line["method"] == "wiener" and line["lpips"] is None or isinstance(line["lpips"], float)
    assert strict_loads((out_dir / "metrics.json").read_text())["psnr"] == line["psnr"]
