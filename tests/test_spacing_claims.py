"""Timestep spacings (uniform, quadratic, Karras, spectral), the stability profile command, and the claims rules."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
import torch

from diffdemo import claims as C
from diffdemo.cli import main
from diffdemo.schedule import Schedule
from diffdemo.spacing import (
    SPACINGS,
    distinct_descending,
    karras_timesteps,
    logsnr_timesteps,
    make_timesteps,
    profile_stiffness,
    spectral_timesteps,
    strided_timesteps,
)
from diffdemo.stability import contracting_stiffness
from tests.conftest import strict_loads

LINEAR = Schedule.linear()
PROFILE = {"t": [1, 10, 100, 500, 999], "rho_Js": [5000.0, 800.0, 60.0, 4.0, 1.5]}


# --- spacing lists ------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("kind", SPACINGS)
@pytest.mark.parametrize("steps,start", [(1, None), (2, None), (20, None), (50, None), (250, None), (50, 300),
                                         (301, 300), (7, 6), (1000, None)])  # fmt: skip
def test_spacing_lists_are_valid(kind, steps, start):
    ts = make_timesteps(LINEAR, steps, start, kind, PROFILE)
    top = 999 if start is None else start
    assert len(ts) == steps
    assert ts[0] == top
    assert all(a > b for a, b in zip(ts, ts[1:]))  # strictly descending, so unique
    assert ts[-1] == (0 if steps > 1 else top)
    assert all(isinstance(t, int) for t in ts)


def test_spacing_rejects_bad_input():
    with pytest.raises(ValueError, match="unknown spacing"):
        make_timesteps(LINEAR, 10, None, "cosine")
    with pytest.raises(ValueError, match="stability profile"):
        make_timesteps(LINEAR, 10, None, "spectral")
    with pytest.raises(ValueError, match="steps must be"):
        make_timesteps(LINEAR, 302, 300, "karras")


def test_distinct_descending_resolves_collisions():
    assert distinct_descending([5, 0.4, 0.3, 0.2, 0.0], 5) == [5, 3, 2, 1, 0]
    assert distinct_descending([9, 9, 9, 0], 9) == [9, 8, 7, 0]
    assert distinct_descending([3, 2.2, 0.9, 0], 3) == [3, 2, 1, 0]


def test_logsnr_is_the_spectral_rule_on_the_formula_and_equal_steps_in_log_snr():
    abar = LINEAR.alpha_bar.double().numpy()
    formula = spectral_timesteps(LINEAR, 50, np.arange(1000), 1 / (1 - abar))
    assert logsnr_timesteps(LINEAR, 50) == formula == make_timesteps(LINEAR, 50, None, "logsnr")
    # sum_u beta_u / (1 - abar_u) ~ -log SNR: the steps cut log SNR(t) = log(abar / (1 - abar)) into near-equal
    # pieces (rounding to integer t near t = 0 is left out)
    log_snr = np.log(abar / (1 - abar))

    def spread(ts):  # coefficient of variation of the log-SNR steps between consecutive timesteps, ends left out
        d = np.diff(log_snr[np.array(ts)])[2:-8]
        return d.std() / d.mean()

    assert spread(logsnr_timesteps(LINEAR, 50)) < 0.05
    assert spread(strided_timesteps(1000, 50)) > 0.2  # the uniform stride, for contrast


def test_stiffness_counts_contracting_modes_only():
    # the expanding +2.1 (Re >= 0) sets no explicit-Euler limit: stiffness is the largest |lambda| with Re < 0
    assert contracting_stiffness([2.1 + 0j, -1.25 + 0j, -1.2 + 0.3j]) == pytest.approx(1.25)
    assert math.isnan(contracting_stiffness([0.5 + 0j]))
    assert profile_stiffness({"t": [1], "rho_Js": [3.0], "stiff_Js": [2.0]}) == [2.0]
    assert profile_stiffness({"t": [1], "rho_Js": [3.0]}) == [3.0]  # an older profile: its spectral radius
    # the spectral list reads the stiffness, not rho, when the profile has it
    bump = {**PROFILE, "rho_Js": [5000.0, 800.0, 60.0, 40.0, 1.5], "stiff_Js": PROFILE["rho_Js"]}
    assert make_timesteps(LINEAR, 30, None, "spectral", bump) == make_timesteps(LINEAR, 30, None, "spectral", PROFILE)


def test_uniform_matches_the_strided_list():
    for n in (2, 10, 250):
        assert make_timesteps(LINEAR, n, None, "uniform") == strided_timesteps(1000, n)


def test_karras_hand_computed():
    # sigma_t = sqrt((1 - abar_t)/abar_t): sigma_999 = 157.407, sigma_0 = 0.0100005. With rho = 7 the middle of three
    # is ((157.407^(1/7) + 0.0100005^(1/7)) / 2)^7 = ((2.0593 + 0.51795) / 2)^7 = 5.9112; the nearest discrete
    # level in log sigma is t = 593 (sigma_592 = 5.8751, sigma_593 = 5.9114, sigma_594 = 5.9480).
    assert karras_timesteps(LINEAR, 3) == [999, 593, 0]


def test_quadratic_is_ddim_quad():
    # t_i = 999 (1 - i/4)^2 for i = 0..4: 999, 561.94, 249.75, 62.44, 0
    assert make_timesteps(LINEAR, 5, None, "quadratic") == [999, 562, 250, 62, 0]


def test_spectral_rule_oracles():
    ts = list(range(1000))
    # rho = c / beta_t: every timestep carries the same stiffness, so equal shares are the uniform stride (n - 1
    # divides 999 here, so the targets are integers and no rounding tie can differ by round-off)
    for n in (4, 10, 28, 38, 112):
        flat = spectral_timesteps(LINEAR, n, ts, (3.0 / LINEAR.betas).tolist())
        assert flat == strided_timesteps(1000, n)
    # rho constant: equal increments of C(s) = sum_{u=1..s} beta_u with linear betas, solved in closed form
    b0, b1, T, n = 1e-4, 0.02, 1000, 12
    k = (b1 - b0) / (T - 1)
    C = lambda s: b0 * s + k * s * (s + 1) / 2  # noqa: E731  sum_{u=1..s} (b0 + k u)
    expected = []
    for i in range(n):
        level = C(999) * (1 - i / (n - 1))
        # k/2 s^2 + (b0 + k/2) s - level = 0
        a2, a1 = k / 2, b0 + k / 2
        expected.append(math.floor((-a1 + math.sqrt(a1 * a1 + 4 * a2 * level)) / (2 * a2) + 0.5))
    got = spectral_timesteps(LINEAR, n, [0, 999], [2.0, 2.0])
    assert got == expected


def test_spectral_puts_steps_where_rho_is_large():
    ts = spectral_timesteps(LINEAR, 50, PROFILE["t"], PROFILE["rho_Js"])
    uni = strided_timesteps(1000, 50)
    assert sum(t < 100 for t in ts) > sum(t < 100 for t in uni)


# --- profile command + restore --spacing spectral on a tiny model -------------------------------------------------------
def run_cli(argv, capsys):
    code = main([str(a) for a in argv])
    out = capsys.readouterr()
    return code, out.out, out.err


@pytest.mark.slow
def test_profile_then_restore_spectral_for_every_method(tiny_model_dir, tmp_path, capsys):
    code, out, err = run_cli(["profile", "--model", tiny_model_dir, "--iters", 3, "--images", 1], capsys)
    assert code == 0, err
    summary = strict_loads(out.strip().splitlines()[-1])
    stored = strict_loads((tiny_model_dir / "stability_profile.json").read_text())
    assert stored["t"] == summary["t"] and len(stored["rho_Js"]) == len(stored["t"])
    assert all(v > 0 and math.isfinite(v) for v in stored["rho_Js"])
    for method, op in (("denoise", "noise"), ("sdedit", "gaussian_blur"), ("score_ald", "box_inpaint"),
                       ("dps", "gaussian_blur")):  # fmt: skip
        out_dir = tmp_path / method
        argv = ["restore", "--model", tiny_model_dir, "--method", method, "--operator", op, "--steps", 3]
        argv += ["--spacing", "spectral", "--out", out_dir]
        if method in ("denoise", "sdedit"):
            argv += ["--t0", 200]
        code, out, err = run_cli(argv, capsys)
        assert code == 0, err
        result = strict_loads(out.strip().splitlines()[-1])
        assert result["spacing"] == "spectral" and result["params"]["spacing"] == "spectral"
        assert result["nfe"] == 3
        assert strict_loads((out_dir / "metrics.json").read_text())["spacing"] == "spectral"


def test_spectral_without_profile_is_a_one_line_error(tmp_path, capsys):
    from diffdemo.train import export
    from tests.conftest import make_tiny_unet

    model_dir = tmp_path / "bare"
    export(make_tiny_unet(16), model_dir, {"step": 0})
    argv = ["restore", "--model", model_dir, "--method", "dps", "--steps", 2, "--spacing", "spectral"]
    code, out, err = run_cli([*argv, "--out", tmp_path / "o"], capsys)
    assert code == 2
    assert "profile --model" in err and len(err.strip().splitlines()) == 1


def test_spacings_change_the_run_but_not_its_cost(tiny_model):
    from diffdemo.defaults import params_for
    from diffdemo.experiments import run_restoration
    from diffdemo.operators import make_operator
    from diffdemo.restore import make_problem

    x0 = torch.zeros(1, 3, 16, 16)
    problem = make_problem(x0, make_operator("gaussian_blur", 16), 0.05)
    from diffdemo.restore import diffusion_frames
    from diffdemo.spacing import make_timesteps

    (a,) = run_restoration(tiny_model, problem, ["dps"], overrides={"steps": 4, "samples": 1})
    (b,) = run_restoration(tiny_model, problem, ["dps"], overrides={"steps": 4, "samples": 1, "spacing": "karras"})
    tuned = params_for("dps", "gaussian_blur")["spacing"]
    assert a.spacing == tuned == "logsnr" and b.spacing == "karras"  # none named: DPS deblurring's tuned list
    assert a.nfe == b.nfe == 4
    for kind in ("uniform", "quadratic", "karras"):  # the sampler visits exactly the spacing's list
        visited = [f.t for f in diffusion_frames(tiny_model, "dps", problem, steps=4, spacing=kind)]
        assert visited == make_timesteps(tiny_model.schedule, 4, None, kind)
    # Karras (rho = 7 on the model's noise levels) against the even stride
    assert make_timesteps(tiny_model.schedule, 4, None, "karras") == [999, 775, 301, 0]
    assert make_timesteps(tiny_model.schedule, 4) == [999, 666, 333, 0]


# --- claims ---------------------------------------------------------------------------------------------------------
def test_structure_stand_in():
    rng = np.random.default_rng(0)
    noise = rng.standard_normal((3, 64, 64))
    yy, xx = np.mgrid[0:64, 0:64] / 64.0
    smooth = np.stack([np.sin(2 * np.pi * xx) * np.cos(np.pi * yy)] * 3)
    assert abs(C.smoothness(noise)) < 0.05
    assert C.smoothness(smooth) > 0.95
    assert C.image_correlation(smooth, 2 * smooth + 1) == pytest.approx(1.0)
    assert C.image_correlation(noise, smooth) < 0.05


def _three_point_metrics() -> dict:
    """A run as the old quick budget made it: three timesteps per trend, two images in the table."""
    ts = [50, 250, 500]
    by_t = {str(t): {"psnr": {"mean": 30 - t / 50, "std": 0.5}, "lpips": None} for t in ts}
    curve = lambda t: {"t": t, "r50": 1 + t / 40, "r90": 2 + t / 10}  # noqa: E731
    table = [
        {"task": task, "method": m, "images": 2, "nfe": 10, "psnr": {"mean": p, "std": 1.0}, "psnr_per_image": [p, p]}
        for task in ("deblur", "inpaint")
        for m, p in (("dps", 25.0), ("score_ald", 24.0), ("sdedit", 21.0), ("wiener", 23.0))
    ]
    meas = {task: {"mean": 22.0, "per_image": [22.0, 22.0]} for task in ("deblur", "inpaint")}
    return {
        "fig1_denoising": {"images": ["a"], "by_t": by_t, "lpips_status": "LPIPS unavailable: offline"},
        "methods_table": {"rows": table, "psnr_measurement": meas},
        "fig7_energy": {"on": "J_D", "image": "a", "pixels": {"nose": {"curves": [curve(t) for t in ts]}}},
    }


def test_three_points_or_two_images_decide_nothing():
    rows = {r["key"]: r for r in C.evaluate_claims(_three_point_metrics(), budget="quick")}
    # perfectly monotone, but three timesteps: a trend needs MIN_POINTS; two images: no interval over images
    for key in ("fig1_denoising", "fig4_score_ald", "fig5_dps", "fig7_energy"):
        assert rows[key]["verdict"] == C.INCONCLUSIVE, key
        assert rows[key]["budget"] == C.SMOKE
    assert "not measured" in rows["fig1_denoising"]["numbers"]["lpips"]
    json.dumps(C.evaluate_claims({}), allow_nan=False)  # nothing measured: strict JSON, every verdict 'not measured'
    assert {r["verdict"] for r in C.evaluate_claims({})} == {C.NOT_MEASURED}
    md = C.claims_markdown(list(rows.values()))
    assert md.count("\n") == len(rows) + 1 and "**inconclusive**" in md
