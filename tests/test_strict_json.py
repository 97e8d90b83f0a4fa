"""Every JSON the CLI writes parses with a strict parser (NaN / Infinity rejected): each command's last stdout line
and every .json file it leaves in --out. reproduce's metrics.json and claims.json are checked in
tests/test_reproduce.py and the app's results.json in tests/test_app.py (each on the run those tests already make).
"""

from __future__ import annotations

import subprocess
import sys

import pytest

from diffdemo import metrics
from diffdemo.cli import main
from diffdemo.imaging import bundled_images
from tests.conftest import strict_loads

# command -> (arguments, the file in --out that holds the same record as the stdout line)
RUNS = {
    "restore_dps": (["restore", "--method", "dps", "--steps", "3", "--samples", "1"], "metrics.json"),
    "restore_denoise": (["restore", "--method", "denoise", "--operator", "noise", "--steps", "3"], "metrics.json"),
    "sample": (["sample", "--n", "1", "--steps", "3"], "samples.json"),
    "probe": (["probe", "--pixel", "3", "4", "--t", "100", "--t-sweep", "50,100"], "probe.json"),
    "spectrum": (["spectrum", "--t", "100", "--k", "1", "--iters", "2", "--steps", "10"], "spectrum.json"),
}


def run(capsys, argv) -> tuple[int, str, str]:
    code = main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return code, out, err


@pytest.mark.parametrize("name", list(RUNS))
def test_stdout_line_and_every_file_are_strict_json(capsys, tmp_path, tiny_model_dir, name):
    argv, record_file = RUNS[name]
    out_dir = tmp_path / "out"
    code, out, err = run(capsys, [*argv, "--model", tiny_model_dir, "--out", out_dir])
    assert code == 0, err
    line = strict_loads(out.strip().splitlines()[-1])
    files = {p.name: strict_loads(p.read_text()) for p in out_dir.rglob("*.json")}
    assert set(files) == {record_file}
    assert files[record_file] == line  # the file and the stdout line are the same record
    assert line["model"] == str(tiny_model_dir)


def test_stability_profile_file_and_line_are_strict_json(capsys, tmp_path, tiny_model_dir):
    path = tmp_path / "profiles" / "tiny.json"
    code, out, err = run(capsys, ["profile", "--model", tiny_model_dir, "--iters", 2, "--images", 1, "--out", path])
    assert code == 0, err
    line = strict_loads(out.strip().splitlines()[-1])
    stored = strict_loads(path.read_text())
    assert line["profile"] == str(path)
    assert line["t"] == stored["t"] and line["rho_Js"] == stored["rho_Js"] and stored["model"] == str(tiny_model_dir)
    assert len(stored["t"]) == len(stored["rho_Jf"])


def test_an_infinite_score_is_written_as_null(capsys, tmp_path, tiny_model_dir):
    """Noise-free identity measurement: y == x0, so the measurement's PSNR is +inf; strict JSON has no inf."""
    out_dir = tmp_path / "out"
    argv = ["restore", "--method", "denoise", "--operator", "noise", "--sigma-y", 0, "--steps", 1, "--out", out_dir]
    code, out, err = run(capsys, [*argv, "--model", tiny_model_dir])
    assert code == 0, err
    line = strict_loads(out.strip().splitlines()[-1])
    assert line["psnr_measurement"] is None
    assert strict_loads((out_dir / "metrics.json").read_text())["psnr_measurement"] is None


def test_a_nan_score_is_written_as_null(capsys, monkeypatch):
    images = bundled_images()
    monkeypatch.setattr(metrics, "lpips", lambda *args, **kwargs: float("nan"))
    code, out, err = run(capsys, ["lpips", images["london_006_neutral"], images["cc0_lisa1"], "--size", 32])
    assert code == 0, err
    assert strict_loads(out.strip().splitlines()[-1]) == {"lpips": None, "net": "alex", "size": 32}


def test_lpips_line_is_strict_json(capsys):
    images = bundled_images()
    code, out, err = run(capsys, ["lpips", images["london_006_neutral"], images["london_006_neutral"], "--size", 32])
    assert code == 0, err
    assert strict_loads(out.strip().splitlines()[-1]) == {"lpips": 0.0, "net": "alex", "size": 32}


@pytest.mark.slow
def test_nan_scale_exits_2_in_one_line_as_a_real_process(tmp_path):
    """The issue's own command: a real process, exit 2, one line, and nothing written."""
    out_dir = tmp_path / "out"
    argv = ["restore", "--method", "dps", "--steps", "3", "--scale", "nan", "--out", str(out_dir)]
    done = subprocess.run([sys.executable, "-m", "diffdemo", *argv], capture_output=True, text=True, timeout=120)
    assert done.returncode == 2 and done.stdout == ""
    assert done.stderr == "error: --scale must be a finite number, got nan\n"
    assert not out_dir.exists()
