"""The claims' verdict rules on synthetic numbers: each claim reaches agrees, disagrees, mixed and inconclusive.

The numbers are built so that the right verdict is known by construction (monotone series with small seeded noise,
opposite series, too few timesteps, unconverged residuals, differences whose interval covers 0).
"""

from __future__ import annotations

import numpy as np
import pytest

from diffdemo import claims as C

TS = [10, 50, 100, 200, 300, 500, 700, 900]
RNG = np.random.default_rng(0)


@pytest.fixture(autouse=True)
def _seeded():
    """Each test draws the same noise whichever tests run before it (the verdicts are pinned, not drawn)."""
    global RNG
    RNG = np.random.default_rng(0)


def _noisy(values, sd=0.05):
    return (np.asarray(values, dtype=float) + RNG.normal(0, sd, len(values))).tolist()


def _verdict(key: str, metrics: dict, budget: str = "full") -> dict:
    (row,) = [r for r in C.evaluate_claims(metrics, budget=budget) if r["key"] == key]
    return row


# --- the rules themselves ---------------------------------------------------------------------------------------------
def test_trend_rule_pools_series_and_tells_noise_from_a_trend():
    falling = {f"img{i}/p{j}": _noisy(np.linspace(10, 1, 8), 0.5) for i in range(3) for j in range(3)}
    f = C.trend(TS, falling, -1, "r50 vs t")
    assert f.verdict == C.AGREES and f.effect < -0.9 and f.low <= f.effect <= f.high
    noise = {f"img{i}/p{j}": RNG.normal(0, 1, 8).tolist() for i in range(3) for j in range(3)}
    assert C.trend(TS, noise, -1, "r50 vs t").verdict == C.INCONCLUSIVE
    # three timesteps never decide a trend, however clean
    assert C.trend(TS[:3], {"a": [3.0, 2.0, 1.0]}, -1, "x vs t").verdict == C.INCONCLUSIVE


def test_trend_rule_says_rises_then_falls_with_the_peak_and_its_interval():
    bump = [1, 4, 8, 12, 14, 10, 6, 3]
    series = {f"img{i}/p{j}": _noisy(bump, 0.3) for i in range(3) for j in range(3)}
    f = C.trend(TS, series, -1, "r90 vs t")
    assert f.verdict == C.DISAGREES and "rises then falls" in f.statistic
    assert f.effect == 300 and f.low <= 300 <= f.high
    # a monotone series is not called a bump
    assert "rises then falls" not in C.trend(TS, {"a/1": list(range(8))}, +1, "x vs t").statistic


def test_paired_rule_interval_and_contradiction():
    assert C.paired({"deblur": [1.0, 1.2, 0.8, 1.1], "inpaint": [0.5, 0.7, 0.6, 0.4]}, "A - B").verdict == C.AGREES
    assert C.paired({"deblur": [-1.0, -1.2, -0.8], "inpaint": [-0.5, -0.7, -0.6]}, "A - B").verdict == C.DISAGREES
    assert C.paired({"deblur": [1.0, 1.2, 0.8], "inpaint": [-0.5, -0.7, -0.6]}, "A - B").verdict == C.MIXED
    assert C.paired({"deblur": [1.0, -1.2, 0.8, -1.1]}, "A - B").verdict == C.INCONCLUSIVE
    assert C.paired({"deblur": [1.0, 1.2]}, "A - B").verdict == C.INCONCLUSIVE  # two images: no verdict


def test_every_row_carries_its_budget_and_intervals():
    m = _fig1_metrics(psnr=lambda i: np.linspace(30, 15, 8), lpips=lambda i: np.linspace(0.02, 0.2, 8))
    quick = _verdict("fig1_denoising", m, budget="quick")
    assert quick["budget"] == C.SMOKE and C.SMOKE in C.summary_line(quick)
    assert all(f["low"] is not None and f["high"] is not None for f in quick["findings"])
    assert _verdict("fig1_denoising", m)["budget"] == "full budget"


# --- one test per claim: every verdict reachable ----------------------------------------------------------------------
def _fig1_metrics(psnr, lpips, ts=TS, images=3):
    per = {
        "psnr": {str(t): [_noisy(psnr(i))[k] for i in range(images)] for k, t in enumerate(ts)},
        "lpips": {str(t): [_noisy(lpips(i), 0.001)[k] for i in range(images)] for k, t in enumerate(ts)},
    }
    by_t = {str(t): {"psnr": {"mean": float(np.mean(per["psnr"][str(t)]))}} for t in ts}
    return {"fig1_denoising": {"by_t": by_t, "images": [f"im{i}" for i in range(images)], "per_image": per}}


def test_fig1_rule():
    down, up = np.linspace(30, 15, 8), np.linspace(0.02, 0.2, 8)
    assert _verdict("fig1_denoising", _fig1_metrics(lambda i: down, lambda i: up))["verdict"] == C.AGREES
    assert _verdict("fig1_denoising", _fig1_metrics(lambda i: down[::-1], lambda i: up[::-1]))["verdict"] == C.DISAGREES
    opposite = _fig1_metrics(lambda i: down if i == 0 else down[::-1], lambda i: up, images=2)
    assert _verdict("fig1_denoising", opposite)["verdict"] == C.MIXED
    few = _fig1_metrics(lambda i: down[:3], lambda i: up[:3], ts=TS[:3])
    assert _verdict("fig1_denoising", few)["verdict"] == C.INCONCLUSIVE


def _fig3_metrics(psnr, t0s=TS, images=2):
    d = {"values": t0s, "images": [f"im{i}" for i in range(images)]}
    for task in ("deblur", "inpaint"):
        per = [_noisy(psnr(task, i)) for i in range(images)]
        d[task] = {"runs": [{"psnr": float(np.mean(col)), "psnr_per_image": list(col)} for col in zip(*per)]}
    return {"fig3_sdedit": d}


def test_fig3_rule():
    down = np.linspace(28, 18, 8)
    assert _verdict("fig3_sdedit", _fig3_metrics(lambda task, i: down))["verdict"] == C.AGREES
    assert _verdict("fig3_sdedit", _fig3_metrics(lambda task, i: down[::-1]))["verdict"] == C.DISAGREES
    split = _fig3_metrics(lambda task, i: down if task == "deblur" else down[::-1])
    assert _verdict("fig3_sdedit", split)["verdict"] == C.MIXED
    flat = _fig3_metrics(lambda task, i: 20 + 0.5 * np.array([1, -1, 1, -1, -1, 1, -1, 1]))
    assert _verdict("fig3_sdedit", flat)["verdict"] == C.INCONCLUSIVE


def _table(psnr: dict, images=6, baselines=("tv",)):
    """methods_table with per-image PSNR psnr[method](task) (arrays over images) and the measurement."""
    rows = []
    for task in ("deblur", "inpaint"):
        for method in (*psnr, *baselines):
            vals = psnr[method](task) if method in psnr else np.full(images, 30.0)
            rows.append({"task": task, "method": method, "psnr": {"mean": float(np.mean(vals))}, "images": images,
                         "nfe": 10, "psnr_per_image": list(map(float, vals))})  # fmt: skip
    meas = {task: {"mean": 20.0, "per_image": [20.0] * images} for task in ("deblur", "inpaint")}
    return {"methods_table": {"rows": rows, "psnr_measurement": meas}}


def _around(level, sd=0.3, n=6):
    return level + RNG.normal(0, sd, n)


def test_fig4_rule():
    def m(ald, sdedit):
        return _table({"sdedit": lambda task: _around(sdedit(task)), "score_ald": lambda task: _around(ald(task)),
                       "dps": lambda task: _around(25)})  # fmt: skip

    assert _verdict("fig4_score_ald", m(lambda t: 24, lambda t: 21))["verdict"] == C.AGREES
    assert _verdict("fig4_score_ald", m(lambda t: 17, lambda t: 19))["verdict"] == C.DISAGREES
    # above y but below SDEdit: the two parts of the claim contradict each other
    assert _verdict("fig4_score_ald", m(lambda t: 22, lambda t: 24))["verdict"] == C.MIXED
    spread = 20 + np.array([3.0, -3.0, 2.0, -2.0, 1.0, -1.0])  # mean 20 = y = SDEdit, wide spread: no decision
    noisy = _table({"sdedit": lambda task: np.full(6, 20.0), "score_ald": lambda task: spread,
                    "dps": lambda task: _around(25)})  # fmt: skip
    assert _verdict("fig4_score_ald", noisy)["verdict"] == C.INCONCLUSIVE


def test_fig5_rule_ranks_the_three_diffusion_methods_only():
    def m(dps, baseline_level=40.0):
        base = {"sdedit": lambda task: _around(21), "score_ald": lambda task: _around(23), "dps": dps}
        out = _table(base)
        for r in out["methods_table"]["rows"]:
            if r["method"] == "tv":  # a classical baseline far ahead: beside the verdict, not in it
                r["psnr"]["mean"], r["psnr_per_image"] = baseline_level, [baseline_level] * 6
        return out

    agrees = _verdict("fig5_dps", m(lambda task: _around(26)))
    assert agrees["verdict"] == C.AGREES and agrees["numbers"]["deblur_all_methods"][0][0] == "tv"
    assert _verdict("fig5_dps", m(lambda task: _around(19)))["verdict"] == C.DISAGREES
    split = m(lambda task: _around(26 if task == "deblur" else 19))
    assert _verdict("fig5_dps", split)["verdict"] == C.MIXED
    level = 23 + np.array([3.0, -3.0, 2.0, -2.0, 1.0, -1.0])  # around the better rival, no decision
    assert _verdict("fig5_dps", m(lambda task: level))["verdict"] == C.INCONCLUSIVE


def _fig7_metrics(r50, ts=TS, images=3):
    def pixels(i):
        return {name: {"curves": [{"t": t, "r50": a, "r90": 3 * a + 1, "exclude_centre": True}
                                  for t, a in zip(ts, _noisy(r50(i, j), 0.2))]}
                for j, name in enumerate(("nose", "eyelid", "cheek"))}  # fmt: skip

    return {"fig7_energy": {"on": "J_D (centre excluded)", "image": "im0", "pixels": pixels(0),
                            "other_images": {f"im{i}": pixels(i) for i in range(1, images)}}}  # fmt: skip


def test_fig7_rule():
    down = np.linspace(12, 2, 8)
    assert _verdict("fig7_energy", _fig7_metrics(lambda i, j: down))["verdict"] == C.AGREES
    assert _verdict("fig7_energy", _fig7_metrics(lambda i, j: down[::-1]))["verdict"] == C.DISAGREES
    bump = _verdict("fig7_energy", _fig7_metrics(lambda i, j: np.array([1, 4, 8, 12, 14, 10, 6, 3])))
    assert bump["verdict"] == C.DISAGREES and "rises then falls" in C.summary_line(bump)
    split = _fig7_metrics(lambda i, j: down if i == 0 else down[::-1], images=2)
    assert _verdict("fig7_energy", split)["verdict"] == C.MIXED
    few = _fig7_metrics(lambda i, j: down[:3], ts=TS[:3])
    assert _verdict("fig7_energy", few)["verdict"] == C.INCONCLUSIVE


def _fig8_metrics(rho, residual=0.0, profile=None):
    results = [{"t": t, "rho_Jf": r, "eig_residual_Jf": residual, "arnoldi_steps": 30} for t, r in zip(TS, rho)]
    m = {"fig8_spectrum": {"timesteps": TS, "results": results}}
    if profile is not None:
        m["stability_profile"] = {"t": TS, "rho_Jf_per_image": profile, "residual_Jf_per_image": [[0.0] * 8] * 2}
    return m


def test_fig8_rule_needs_converged_values():
    down = 1 + np.linspace(0.02, 0.001, 8)
    assert _verdict("fig8_spectrum", _fig8_metrics(down))["verdict"] == C.AGREES
    assert _verdict("fig8_spectrum", _fig8_metrics(down[::-1]))["verdict"] == C.DISAGREES
    # the spectrum run falls, the profile's two images rise
    split = _fig8_metrics(down, profile=[list(down[::-1]), list(down[::-1] + 1e-4)])
    assert _verdict("fig8_spectrum", split)["verdict"] == C.MIXED
    # profile timesteps whose residual is too large are left out and named (here leaving too few to decide)
    m = _fig8_metrics(down, profile=[list(down), list(down + 1e-4)])
    m["stability_profile"]["residual_Jf_per_image"] = [[0.01] + [0.0] * 7] * 2
    (_, prof) = _verdict("fig8_spectrum", m)["findings"]
    assert prof["verdict"] == C.INCONCLUSIVE and "t = 10 left out" in prof["why"]
    m["stability_profile"]["residual_Jf_per_image"] = [[0.01] * 8] * 2  # every timestep left out: nothing to score
    assert _verdict("fig8_spectrum", m)["findings"][1]["verdict"] == C.NOT_MEASURED
    # residuals as large as rho - 1: the trend cannot be read off these values
    unconverged = _verdict("fig8_spectrum", _fig8_metrics(down, residual=0.01))
    assert unconverged["verdict"] == C.INCONCLUSIVE and "unconverged" in C.summary_line(unconverged)


def _fig9_metrics(smooth, corr, residual=1e-6):
    values = [[1.01, 1.005, 1.0]] * 8
    structure = [{"smoothness_mean": a, "image_correlation_mean": b} for a, b in zip(smooth, corr)]
    return {"fig9_singular_vectors": {"timesteps": TS, "singular_values": values,
                                      "residuals": [[residual] * 3] * 8, "structure": structure}}  # fmt: skip


def test_fig9_rule_needs_converged_vectors():
    down = np.linspace(0.6, 0.05, 8)
    assert _verdict("fig9_singular_vectors", _fig9_metrics(down, down / 4))["verdict"] == C.AGREES
    assert _verdict("fig9_singular_vectors", _fig9_metrics(down[::-1], down[::-1]))["verdict"] == C.DISAGREES
    assert _verdict("fig9_singular_vectors", _fig9_metrics(down, down[::-1]))["verdict"] == C.MIXED
    # residual 2e-3 of sigma against a gap of 5e-3: the vectors are still mixtures of their neighbours
    row = _verdict("fig9_singular_vectors", _fig9_metrics(down, down / 4, residual=2e-3))
    assert row["verdict"] == C.INCONCLUSIVE


def test_vectors_converged_against_the_gap():
    assert C.vectors_converged([2.0, 1.0], [1e-3, 1e-3]) == [True, True]
    assert C.vectors_converged([1.002, 1.0], [1e-3, 1e-3]) == [False, False]


@pytest.mark.parametrize("key", [c.key for c in C.CLAIMS])
def test_not_measured_when_the_run_has_no_numbers(key):
    row = _verdict(key, {})
    assert row["verdict"] == C.NOT_MEASURED and row["findings"] == []
