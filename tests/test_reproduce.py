"""`python -m diffdemo reproduce`: every figure (PNG + HTML), metrics.json and both reports, on the tiny model."""

from __future__ import annotations

import numpy as np
import pytest

from diffdemo import metrics as quality
from diffdemo.cli import EXIT_USAGE, main
from diffdemo.imaging import bundled_images, load_image, to_tensor
from diffdemo.operators import make_operator
from diffdemo.restore import make_problem
from tests.conftest import strict_loads

FIGURES = (
    "fig1_denoising",
    "fig2_samples",
    "fig3_sdedit",
    "fig4_score_ald",
    "fig5_dps",
    "fig6_sensitivity",
    "fig7_energy",
    "fig8_spectrum",
    "fig9_singular_vectors",
    "fig10_spacings",
)


def measurement_psnr(metrics: dict, task: str, image: str) -> float:
    """PSNR of the seeded measurement of one bundled image, from the operator the run's metrics.json reports."""
    spec = dict(metrics["operators"][task])
    name = spec.pop("operator")
    if name == "gaussian_blur":
        op = make_operator(name, metrics["size"], std=spec["std"], kernel_size=spec["kernel_size"])
    else:
        op = make_operator(name, metrics["size"], box=tuple(spec["box"]))
    x0 = to_tensor(load_image(bundled_images()[image], metrics["size"]))
    return quality.psnr(make_problem(x0, op, metrics["sigma_y"], metrics["seed"]).y, x0)


@pytest.mark.slow
def test_reproduce_writes_every_figure_and_report(tiny_model_dir, tmp_path, capsys):
    out = tmp_path / "report"
    rc = main(["reproduce", "--out", str(out), "--model", str(tiny_model_dir), "--tiny", "--no-progress"])
    stdout = capsys.readouterr().out.strip().splitlines()
    assert rc == 0
    result = strict_loads(stdout[-1])  # the last stdout line is strict JSON saying where the report is
    assert result["report"] == str(out / "report.html")
    assert result["figures"] == list(FIGURES)
    assert f"report: {out / 'report.html'}" in stdout[:-1]

    written = {p.relative_to(out).as_posix(): strict_loads(p.read_text()) for p in out.rglob("*.json")}  # no NaN/inf
    assert {"metrics.json", "claims.json"} <= set(written)
    metrics = written["metrics.json"]
    for key in (*FIGURES, "methods_table", "model", "budget", "seed", "lpips_status", "figures", "seconds"):
        assert key in metrics, key
    md = (out / "report.md").read_text()
    page = (out / "report.html").read_text()
    assert (out / "plotly.min.js").is_file()  # the HTML pages open offline
    for entry in metrics["figures"]:
        for files in entry["files"]:
            for name in (files["png"], files["html"]):
                assert (out / name).is_file() and (out / name).stat().st_size > 0, name
                assert f"({name})" in md, name  # markdown links, relative
                assert f'"{name}"' in page, name  # html img / iframe / link, relative
            assert (out / files["png"]).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
            assert "plotly" in (out / files["html"]).read_text()[:5000].lower()
    # the figures appear in the poster's order, the methods table after Fig. 5
    positions = [md.index(f"({key}.png)") for key in FIGURES]
    assert positions == sorted(positions)
    assert md.index("(fig5_dps.png)") < md.index("## Methods table") < md.index("(fig6_sensitivity.png)")

    table = metrics["methods_table"]
    methods = {(r["task"], r["method"]) for r in table["rows"]}
    for task in ("deblur", "inpaint"):
        for m in ("sdedit", "score_ald", "dps", "tv"):  # Compare all's set (experiments.compared)
            assert (task, m) in methods
        assert (task, "denoise") not in methods  # plain denoising restores only the noise operator
    assert ("deblur", "wiener") in methods and ("inpaint", "biharmonic") in methods
    assert all(r["images"] == len(table["images"]) == 2 for r in table["rows"])
    assert all(r["psnr"]["mean"] is not None and r["psnr"]["std"] is not None for r in table["rows"])
    # LPIPS: a number or an explicit "unavailable" reason, never a made-up value
    assert metrics["lpips_status"] == "available" or "unavailable" in metrics["lpips_status"]
    if metrics["lpips_status"] != "available":
        assert all(r["lpips"]["mean"] is None for r in table["rows"])
        assert "LPIPS" in md and "n/a" in md
    # Figs. 3-5 carry the measurement's PSNR as the reference line: that of y = A x0 + sigma_y n drawn from the seed
    # (one measurement shared by every method), recomputed here from the operators the run reports
    for key in ("fig3_sdedit", "fig4_score_ald", "fig5_dps"):
        for task in ("deblur", "inpaint"):
            expected = np.mean([measurement_psnr(metrics, task, name) for name in metrics[key]["images"]])
            assert metrics[key][task]["psnr_measurement"] == pytest.approx(expected, abs=1e-9), (key, task)
            assert len(metrics[key][task]["runs"]) == len(metrics[key]["values"])
    for task in ("deblur", "inpaint"):
        expected = [measurement_psnr(metrics, task, name) for name in table["images"]]
        assert table["psnr_measurement"][task]["mean"] == pytest.approx(np.mean(expected), abs=1e-9)
    # Fig. 1: eq. 3's noise level sigma_t = sqrt((1 - abar_t) / abar_t) of the noised input x_t / sqrt(abar_t), whose
    # unclipped MSE on [0, 1] is sigma_t^2 / 4 (clipping only lowers it; 768 values put the sample mean within ~5 %)
    from diffdemo.models import load_model

    schedule = load_model(str(tiny_model_dir)).schedule
    for t, row in metrics["fig1_denoising"]["by_t"].items():
        abar = schedule.abar(int(t))
        assert row["sigma"] == pytest.approx(((1 - abar) / abar) ** 0.5, rel=1e-6)
        assert row["psnr_noisy"]["mean"] > 10 * np.log10(4 / row["sigma"] ** 2) - 0.5, t
    assert len(metrics["fig8_spectrum"]["results"]) == len(metrics["fig9_singular_vectors"]["singular_values"])
    # the claims table: every claim with its numbers, rule and a computed verdict, in metrics.json and the report
    from diffdemo.claims import CLAIMS, INCONCLUSIVE, VERDICTS

    claims = metrics["claims"]
    assert [(c["key"], c["rule"], c["statement"]) for c in claims] == [(c.key, c.rule, c.statement) for c in CLAIMS]
    for c in claims:
        assert isinstance(c["numbers"], dict) and c["verdict"] in VERDICTS and c["budget"] == "smoke run: quick budget"
    measured = {c["key"] for c in claims if c["verdict"] != "not measured"}
    assert {"fig1_denoising", "fig3_sdedit", "fig4_score_ald", "fig5_dps"} <= measured  # a random net may tie r50
    assert metrics["claims"][4]["numbers"]["images"] == 2  # two faces x two pixels (tiny budget)
    # two timesteps per trend decide nothing
    assert all(c["verdict"] == INCONCLUSIVE for c in claims if c["key"] in ("fig1_denoising", "fig7_energy"))
    assert all(c["exclude_centre"] for p in metrics["fig7_energy"]["pixels"].values() for c in p["curves"])
    assert written["claims.json"]["budget"] == "tiny" and written["claims.json"]["command"].endswith(f"--out {out}")
    assert written["claims.json"]["claims"] == claims
    assert "## The poster's claims on this model" in md and "The poster&#x27;s claims on this model" in page
    assert md.index("(fig10_spacings.png)") < md.index("## The poster's claims on this model")
    # the rules re-applied to the finished run's numbers give the same table, with no network evaluation
    assert main(["reproduce", "--out", str(out), "--claims-only"]) == 0
    capsys.readouterr()
    assert strict_loads((out / "claims.json").read_text())["claims"] == claims
    assert (out / "report.md").read_text().count("## The poster's claims on this model") == 1
    fig10 = metrics["fig10_spacings"]["by_spacing"]
    assert {"uniform", "quadratic", "karras"} <= set(fig10)
    assert all([r["nfe"] for r in rows] == [2, 3] for rows in fig10.values())
    # each row ran its own list (the default list is quadratic: a "uniform" row must not silently run it)
    assert fig10["uniform"][-1]["psnr_per_image"] != fig10["quadratic"][-1]["psnr_per_image"]


def test_reproduce_bad_input_exits_2(tiny_model_dir, tmp_path, capsys):
    a_file = tmp_path / "not_a_folder"
    a_file.write_text("x")
    cases = [
        ["reproduce", "--out", str(a_file), "--model", str(tiny_model_dir), "--tiny"],
        ["reproduce", "--out", str(tmp_path / "r"), "--model", "no-such-model", "--quick"],
        ["reproduce", "--out", str(tmp_path / "r"), "--model", str(tiny_model_dir), "--quick", "--tiny"],
        ["reproduce", "--out", str(tmp_path / "r"), "--seed", "-1"],
        ["reproduce"],  # --out is required
    ]
    for argv in cases:
        assert main(argv) == EXIT_USAGE, argv
        err = capsys.readouterr().err.strip().splitlines()
        assert len(err) == 1 and err[0].startswith("error: "), (argv, err)
    assert not (tmp_path / "r").exists()  # nothing written on bad input
