"""Every run through ``diffdemo.experiments``: the app's handler and the command line, given the same seeded
request, write the same pictures bit for bit (sample, denoise, restore), whichever precision "auto" resolves to."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from diffdemo import precision
from diffdemo.cli import main
from tests.conftest import strict_loads

IMAGE = "london_006_neutral"


def pixels(path) -> np.ndarray:
    return np.asarray(Image.open(path))


def app_files(handler, *args) -> dict[str, Path]:
    """The handler run to its end, called as gradio calls it; the PNGs it saved, by name."""
    *_, last = handler(*args)
    files = last[-1]
    return {Path(f).stem: Path(f) for f in files if f.endswith(".png") and "@" not in Path(f).name}


def cli_json(capsys, argv: list[str]) -> dict:
    assert main(argv) == 0
    return strict_loads(capsys.readouterr().out.strip().splitlines()[-1])


@pytest.fixture(params=[False, True], ids=["auto=fp32", "auto=bf16"])
def auto_bf16(request, monkeypatch, tiny_model_dir):
    """'auto' resolved to fp32, then to bf16 as on a CPU with AVX512_BF16 / AMX: the app and the CLI must agree
    on it (the app once ran Generate and Denoise as loaded, fp32, while the CLI resolved 'auto')."""
    monkeypatch.setattr(precision, "fast_bf16", lambda device: request.param)
    monkeypatch.setenv("DIFFDEMO_MODEL", str(tiny_model_dir))
    return "bf16" if request.param else "fp32"


def test_sample_app_and_cli_bit_identical(auto_bf16, tiny_model_dir, tmp_path, capsys):
    from diffdemo.ui.generate import run_sample

    model = str(tiny_model_dir)
    app = app_files(run_sample, model, 7, 2, 4, "quadratic")
    line = cli_json(capsys, ["sample", "--model", model, "--seed", "7", "--n", "2", "--steps", "4",
                             "--spacing", "quadratic", "--out", str(tmp_path)])  # fmt: skip
    assert line["precision"] == auto_bf16
    for i in range(2):
        ours, theirs = pixels(app[f"sample_{i:02d}"]), pixels(tmp_path / f"sample_{i:03d}.png")
        assert ours.shape == (16, 16, 3) and np.array_equal(ours, theirs), i
    assert not np.array_equal(pixels(app["sample_00"]), pixels(app["sample_01"]))  # two draws, not one copied


def test_denoise_app_and_cli_bit_identical(auto_bf16, tiny_model_dir, tmp_path, capsys):
    from diffdemo.ui.denoise import run_denoise

    model = str(tiny_model_dir)
    app = app_files(run_denoise, model, IMAGE, None, 5, 300, 6, "quadratic")
    line = cli_json(capsys, ["denoise", "--model", model, "--image", IMAGE, "--seed", "5", "--t", "300",
                             "--steps", "6", "--spacing", "quadratic", "--out", str(tmp_path)])  # fmt: skip
    assert line["precision"] == auto_bf16 and line["denoised"]["nfe"] == 6
    for name in ("clean", "noised", "denoised"):
        assert np.array_equal(pixels(app[name]), pixels(tmp_path / f"{name}.png")), name
    assert not np.array_equal(pixels(app["noised"]), pixels(app["denoised"]))


@pytest.mark.parametrize("method", ["sdedit", "dps"])
def test_restore_app_and_cli_bit_identical(auto_bf16, tiny_model_dir, tmp_path, capsys, method):
    from diffdemo.ui.restore import run_restore

    model = str(tiny_model_dir)
    args = [model, IMAGE, None, 3, "gaussian_blur", 2.0, 13, "center", 0.5, 0.05, method, 300, 1.0, 3.0, 4]
    app = app_files(run_restore, *args, None, True, 2, "auto", "quadratic")
    argv = ["restore", "--model", model, "--image", IMAGE, "--seed", "3", "--operator", "gaussian_blur"]
    argv += ["--blur-std", "2", "--kernel-size", "13", "--sigma-y", "0.05", "--method", method, "--t0", "300"]
    argv += ["--scale", "3", "--steps", "4", "--samples", "2", "--spacing", "quadratic", "--out", str(tmp_path)]
    line = cli_json(capsys, argv)
    assert line["precision"] == auto_bf16
    assert np.array_equal(pixels(app["truth"]), pixels(tmp_path / "truth.png"))
    assert np.array_equal(pixels(app["measurement"]), pixels(tmp_path / "measurement.png"))
    assert np.array_equal(pixels(app[f"result_{method}"]), pixels(tmp_path / "reconstruction.png"))


def test_one_mean_sd_over_images():
    """The one aggregate every table prints: the sample standard deviation (ddof = 1), missing values left out;
    reproduce's tables use it."""
    import statistics

    from diffdemo import metrics, reproduce

    values = [21.0, 23.5, None, 26.25]
    present = [v for v in values if v is not None]
    assert metrics.mean_sd(values) == pytest.approx((statistics.fmean(present), statistics.stdev(present)), rel=1e-12)
    assert metrics.mean_sd([3.0]) == (3.0, 0.0) and metrics.format_mean_sd([1.0, 2.0, 3.0], 1) == "2.0 ± 1.0"
    # reproduce's figures and table call metrics.mean_sd itself and compute no spread of their own
    sources = {p.name: p.read_text() for p in Path(reproduce.__file__).parent.glob("*.py")}
    users = {name for name, text in sources.items() if "metrics.mean_sd(" in text}
    assert {"prior_figures.py", "restoration_figures.py", "spacing_figures.py"} <= users, users
    assert not [name for name, text in sources.items() if "stdev" in text or "ddof" in text or "np.std(" in text]
    assert "ddof = 1" in metrics.MEAN_SD


def test_one_t_interval_of_a_mean():
    """The 95 % Student t interval behind every paired difference (claims' verdicts, study reports, the few-step
    bench) is metrics.mean_interval: mean ± t(0.975, n - 1) sd / sqrt(n), checked against the tabled t value."""
    from diffdemo import metrics

    low, high = metrics.mean_interval([1.0, 2.0, 3.0])
    u = 0.975  # Student t with 2 degrees of freedom has a closed-form quantile: (2u - 1) / sqrt(2 u (1 - u))
    half = (2 * u - 1) / math.sqrt(2 * u * (1 - u)) / math.sqrt(3)  # = 4.3027 / sqrt(3); sd(1, 2, 3) = 1
    assert low == pytest.approx(2 - half, rel=1e-12) and high == pytest.approx(2 + half, rel=1e-12)
    assert metrics.mean_interval([5.0]) == (None, None) and metrics.mean_interval([0.5, 0.5]) == (0.5, 0.5)
    root = Path(__file__).resolve().parent.parent
    for path in ("diffdemo/claims/verdicts.py", "diffdemo/study/reporting.py", "bench/bench_fewstep.py"):
        text = (root / path).read_text()
        assert "mean_interval(" in text and "stats.t.interval" not in text, path


def test_a_run_from_t0_takes_at_most_t0_plus_one_steps_in_one_rule():
    """SDEdit's and denoising's min(steps, t0 + 1), written once (spacing.steps_from) and used by the timestep list,
    the cost model and reproduce's progress units alike."""
    from diffdemo.estimates import evaluations
    from diffdemo.models import GaussianPrior
    from diffdemo.restore import timesteps_for
    from diffdemo.spacing import steps_from

    assert (steps_from(3, 5), steps_from(10, 5), steps_from(None, 5)) == (3, 6, 6)
    prior = GaussianPrior(torch.zeros(1, 2, 2), torch.zeros(4, 0), torch.ones(0), 1.0)
    for steps, t0 in ((3, 5), (10, 5), (25, 300)):
        assert len(timesteps_for(prior, steps, t0, "uniform")) == steps_from(steps, t0)
        assert evaluations("sdedit", steps=steps, t0=t0)["forwards"] == steps_from(steps, t0)
        assert evaluations("denoise", steps=steps, t=t0)["forwards"] == steps_from(steps, t0)
