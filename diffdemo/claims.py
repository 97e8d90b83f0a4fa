"""The poster's claims as data, and verdicts computed from measured numbers (never written by hand).

Each ``Claim`` names its figure, the poster's statement, what is measured and the rule that maps the numbers to
``agrees`` / ``disagrees`` / ``mixed`` (or ``not measured`` when the run has no such numbers). ``evaluate_claims``
reads the dict ``reproduce`` writes to metrics.json and returns one row per claim: numbers, rule, verdict.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np

from diffdemo.jsonio import plain, write_json

AGREES, DISAGREES, MIXED, NOT_MEASURED = "agrees", "disagrees", "mixed", "not measured"
TREND = 0.5  # |Spearman rank correlation| a trend needs to count as one (below: mixed)


def spearman(x: Sequence[float], y: Sequence[float]) -> float:
    """Spearman rank correlation (average ranks for ties); nan with fewer than 2 points or a constant series."""
    x, y = np.asarray(x, dtype=np.float64), np.asarray(y, dtype=np.float64)
    if x.size < 2 or x.size != y.size:
        return math.nan

    def ranks(v):
        order = np.argsort(v, kind="stable")
        r = np.empty(v.size)
        r[order] = np.arange(v.size, dtype=np.float64)
        for val in np.unique(v):  # ties share their mean rank
            r[v == val] = r[v == val].mean()
        return r

    rx, ry = ranks(x), ranks(y)
    if rx.std() == 0 or ry.std() == 0:
        return math.nan
    return float(np.corrcoef(rx, ry)[0, 1])


def trend_verdict(rhos: Sequence[float], sign: int) -> str:
    """Verdict on a claimed trend of sign ``sign`` (+1 rises, -1 falls) from rank correlations, one per series
    (a pixel, an image, a task): agrees when every finite one has sign * rho >= TREND, disagrees when every one has
    sign * rho <= -TREND, mixed otherwise."""
    vals = [sign * r for r in rhos if r is not None and math.isfinite(r)]
    if not vals:
        return NOT_MEASURED
    if all(v >= TREND for v in vals):
        return AGREES
    if all(v <= -TREND for v in vals):
        return DISAGREES
    return MIXED


def combine(verdicts: Sequence[str]) -> str:
    """All agree -> agrees; all disagree -> disagrees; any measured mixture -> mixed."""
    measured = [v for v in verdicts if v != NOT_MEASURED]
    if not measured:
        return NOT_MEASURED
    if all(v == AGREES for v in measured):
        return AGREES
    if all(v == DISAGREES for v in measured):
        return DISAGREES
    return MIXED


def margin_verdict(margins: Sequence[float], threshold: float = 0.0) -> str:
    """A claimed 'A beats B' from margins A - B (one per task): agrees when every margin > threshold, disagrees when
    every margin < -threshold... or below 0, mixed otherwise."""
    vals = [m for m in margins if m is not None and math.isfinite(m)]
    if not vals:
        return NOT_MEASURED
    if all(m > threshold for m in vals):
        return AGREES
    if all(m <= 0 for m in vals):
        return DISAGREES
    return MIXED


def rank_verdict(is_best: Sequence[bool]) -> str:
    """'X is the strongest': agrees when X ranks first in every comparison, disagrees in none, mixed otherwise."""
    if not is_best:
        return NOT_MEASURED
    if all(is_best):
        return AGREES
    if not any(is_best):
        return DISAGREES
    return MIXED


# --- a measurable stand-in for "interpretable" singular vectors (Fig. 9) ---------------------------------------------
def smoothness(v: np.ndarray) -> float:
    """1 - E/4 with E = sum |grad v|^2 / sum v^2 (forward differences, both axes, every channel): about 0 for white
    noise (E ~ 4) and near 1 for a smooth, face-scale pattern."""
    v = np.asarray(v, dtype=np.float64)
    v = v - v.mean(axis=(-2, -1), keepdims=True)
    dx, dy = np.diff(v, axis=-1), np.diff(v, axis=-2)
    energy = float((v**2).sum())
    if energy == 0:
        return math.nan
    return 1.0 - float((dx**2).sum() + (dy**2).sum()) / energy / 4.0


def image_correlation(v: np.ndarray, image: np.ndarray) -> float:
    """|Pearson correlation| between the singular vector and the (mean-removed) image, pixels and channels pooled."""
    a, b = np.asarray(v, dtype=np.float64).ravel(), np.asarray(image, dtype=np.float64).ravel()
    a, b = a - a.mean(), b - b.mean()
    den = float(np.linalg.norm(a) * np.linalg.norm(b))
    return abs(float(a @ b) / den) if den > 0 else math.nan


# --- the claims -------------------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Claim:
    key: str
    figure: str
    statement: str  # the poster's claim, in its words where possible
    measured: str  # what numbers we use
    rule: str  # how those numbers give the verdict
    evaluate: Callable[[dict], tuple[dict, str]]  # metrics -> (numbers, verdict)


def _fig1(m: dict) -> tuple[dict, str]:
    d = m.get("fig1_denoising")
    if not d:
        return {}, NOT_MEASURED
    ts = sorted(int(t) for t in d["by_t"])
    psnr = [d["by_t"][str(t)]["psnr"]["mean"] for t in ts]
    nums = {
        "t": ts,
        "psnr_mean": psnr,
        "psnr_sd": [d["by_t"][str(t)]["psnr"]["std"] for t in ts],
        "images": len(d["images"]),
        "spearman_t_psnr": spearman(ts, psnr),
    }
    verdicts = [trend_verdict([nums["spearman_t_psnr"]], -1)]
    lp = [(d["by_t"][str(t)].get("lpips") or {}).get("mean") for t in ts]
    if all(v is not None for v in lp):
        nums["lpips_mean"] = lp
        nums["spearman_t_lpips"] = spearman(ts, lp)
        verdicts.append(trend_verdict([nums["spearman_t_lpips"]], +1))
        nums["lpips"] = "available"
    else:
        nums["lpips"] = f"not measured: {d.get('lpips_status', 'unavailable')}; the verdict rests on PSNR alone"
    return nums, combine(verdicts)


def _fig3(m: dict) -> tuple[dict, str]:
    d = m.get("fig3_sdedit")
    if not d:
        return {}, NOT_MEASURED
    nums, rhos = {"t0": d["values"], "images": len(d["images"])}, []
    for task in ("deblur", "inpaint"):
        if task in d:
            psnr = [r["psnr"] for r in d[task]["runs"]]
            nums[f"psnr_{task}"] = psnr
            nums[f"spearman_t0_psnr_{task}"] = spearman(d["values"], psnr)
            rhos.append(nums[f"spearman_t0_psnr_{task}"])
    return nums, trend_verdict(rhos, -1)


def _table_rows(m: dict) -> list[dict]:
    return (m.get("methods_table") or {}).get("rows", [])


def _fig4(m: dict) -> tuple[dict, str]:
    rows = [r for r in _table_rows(m) if r["method"] == "score_ald"]
    if not rows:
        return {}, NOT_MEASURED
    meas = m["methods_table"]["psnr_measurement"]
    nums, margins = {}, []
    for r in rows:
        task = r["task"]
        margin = r["psnr"]["mean"] - meas[task]["mean"]
        nums[task] = {
            "score_ald_psnr": r["psnr"]["mean"],
            "score_ald_sd": r["psnr"]["std"],
            "measurement_psnr": meas[task]["mean"],
            "margin_db": margin,
            "images": r["images"],
            "nfe": r["nfe"],
        }
        margins.append(margin)
    return nums, margin_verdict(margins, 0.5)


def _fig5(m: dict) -> tuple[dict, str]:
    nums, best = {}, []
    rows = _table_rows(m)
    for task in sorted({r["task"] for r in rows}):
        ranked = sorted((r for r in rows if r["task"] == task), key=lambda r: -r["psnr"]["mean"])
        nums[f"{task}_defaults"] = {
            "ranking": [(r["method"], round(r["psnr"]["mean"], 3)) for r in ranked],
            "dps_first": ranked[0]["method"] == "dps",
        }
        best.append(ranked[0]["method"] == "dps")
    sweeps = {k: m.get(f"fig{n}_{k}") for n, k in ((3, "sdedit"), (4, "score_ald"), (5, "dps"))}
    if all(sweeps.values()):
        for task in ("deblur", "inpaint"):
            tops = {k: max(r["psnr"] for r in v[task]["runs"]) for k, v in sweeps.items() if task in v}
            if len(tops) == 3:
                winner = max(tops, key=tops.get)
                nums[f"{task}_equal_steps"] = {
                    "steps": sweeps["dps"]["steps"],
                    "best_psnr_of_sweep": tops,
                    "dps_first": winner == "dps",
                }
                best.append(winner == "dps")
    return nums, rank_verdict(best)


def _fig7(m: dict) -> tuple[dict, str]:
    d = m.get("fig7_energy")
    if not d:
        return {}, NOT_MEASURED
    series = {}
    for img, pixels in {d.get("image", "image 0"): d["pixels"], **d.get("other_images", {})}.items():
        for name, p in pixels.items():
            ts = [c["t"] for c in p["curves"]]
            series[f"{img}/{name}"] = (ts, [c["r50"] for c in p["curves"]], [c["r90"] for c in p["curves"]])
    rhos = {k: spearman(ts, r50) for k, (ts, r50, _) in series.items()}
    lo = [s[1][0] for s in series.values()]
    hi = [s[1][-1] for s in series.values()]
    ts = next(iter(series.values()))[0]
    nums = {
        "on": d["on"],
        "series": len(series),
        "t_first": ts[0],
        "t_last": ts[-1],
        "r50_first_mean": float(np.mean(lo)),
        "r50_first_sd": float(np.std(lo)),
        "r50_last_mean": float(np.mean(hi)),
        "r50_last_sd": float(np.std(hi)),
        "r90_first_mean": float(np.mean([s[2][0] for s in series.values()])),
        "r90_last_mean": float(np.mean([s[2][-1] for s in series.values()])),
        "spearman_t_r50": rhos,
    }
    return nums, trend_verdict(list(rhos.values()), -1)


def _trends(ts: list, rows: list[dict], **columns: str) -> dict:
    """{"t": ts, name: the column of ``rows`` per name, ..., "spearman_t_<name>": its rank correlation with t, ...}."""
    series = {name: [r[key] for r in rows] for name, key in columns.items()}
    return {"t": ts, **series, **{f"spearman_t_{name}": spearman(ts, v) for name, v in series.items()}}


def _fig8(m: dict) -> tuple[dict, str]:
    d = m.get("fig8_spectrum")
    if not d:
        return {}, NOT_MEASURED
    nums = _trends(d["timesteps"], d["results"], rho_Jf="rho_Jf", sigma_max_Jf="sigma_max_Jf")
    rhos = [nums["spearman_t_rho_Jf"]]
    prof = m.get("stability_profile")
    if prof and (prof.get("rho_Jf_per_image") or prof.get("rho_Jf")):
        per = [spearman(prof["t"], row) for row in prof.get("rho_Jf_per_image") or [prof["rho_Jf"]]]
        nums["profile_t"] = prof["t"]
        nums["profile_rho_Jf"] = prof.get("rho_Jf")
        nums["profile_spearman_t_rho_Jf"] = per
        rhos += per
    return nums, trend_verdict(rhos, -1)


def _fig9(m: dict) -> tuple[dict, str]:
    d = m.get("fig9_singular_vectors")
    if not d or "structure" not in d:
        return {}, NOT_MEASURED
    columns = dict(smoothness="smoothness_mean", image_correlation="image_correlation_mean")
    nums = _trends(d["timesteps"], d["structure"], **columns)
    return nums, trend_verdict([nums["spearman_t_smoothness"], nums["spearman_t_image_correlation"]], -1)


CLAIMS: tuple[Claim, ...] = (
    Claim(
        "fig1_denoising",
        "Fig. 1",
        "Denoising quality improves as the starting t falls: 'LPIPS ... decreases when the starting image is less noisy'",
        "PSNR (and LPIPS when its weights are available) of reverse diffusion vs starting t, mean over images",
        f"Spearman rank correlation rho over t: PSNR needs rho <= -{TREND} (LPIPS rho >= +{TREND}) to agree, the "
        f"opposite sign beyond {TREND} disagrees, anything between is mixed; with both metrics, both must agree",
        _fig1,
    ),
    Claim(
        "fig3_sdedit",
        "Fig. 3",
        "SDEdit's PSNR decreases as the initial noise t0 increases, in deblurring and inpainting",
        "SDEdit PSNR vs t0 per task",
        f"per task Spearman rho(t0, PSNR) <= -{TREND}; agrees when every task does, disagrees when every task has "
        f"rho >= +{TREND}, else mixed",
        _fig3,
    ),
    Claim(
        "fig4_score_ald",
        "Fig. 4",
        "Score-ALD gives higher PSNR than the degraded measurement",
        "methods table: Score-ALD PSNR at its tuned defaults minus the measurement's PSNR, per task",
        "agrees when the margin exceeds 0.5 dB in every task, disagrees when it is <= 0 in every task, else mixed",
        _fig4,
    ),
    Claim(
        "fig5_dps",
        "Fig. 5 / conclusion",
        "DPS gives the strongest reconstructions",
        "per task: the methods table's ranking by mean PSNR (tuned defaults, baselines included), and the best PSNR "
        "of each sweep (SDEdit t0, Score-ALD zeta, DPS scale) at the same number of reverse steps",
        "agrees when DPS ranks first in every comparison, disagrees when it ranks first in none, else mixed",
        _fig5,
    ),
    Claim(
        "fig7_energy",
        "Fig. 7",
        "'As t increases it becomes more local' (energy of one pixel's response vs radius)",
        "r50 (radius holding half of the squared response of J_D's column, centre excluded) vs t, for every probed "
        "pixel on several images",
        f"per (image, pixel) Spearman rho(t, r50) <= -{TREND} means more local as t grows; agrees when all series "
        f"do, disagrees when all have rho >= +{TREND}, else mixed",
        _fig7,
    ),
    Claim(
        "fig8_spectrum",
        "Fig. 8 / conclusion",
        "The spectral radius of the linearised reverse map grows as the sample approaches the clean image (t -> 0)",
        "rho(J_f) of the one-step reverse map (Arnoldi) vs t; also per image of the stability profile when present",
        f"Spearman rho(t, rho(J_f)) <= -{TREND} in every series agrees, >= +{TREND} in every series disagrees",
        _fig8,
    ),
    Claim(
        "fig9_singular_vectors",
        "Fig. 9",
        "Only low-noise timesteps have understandable dominant singular vectors",
        "stand-in for 'understandable': spatial smoothness 1 - E/4 (E = ||grad v||^2/||v||^2, 0 for white noise) and "
        "|correlation| with the image, of the top right singular vectors of J_f, mean over them, vs t",
        f"both measures need Spearman rho(t, .) <= -{TREND} (more structure at low t) to agree; both >= +{TREND} "
        "disagree; else mixed",
        _fig9,
    ),
)


def evaluate_claims(metrics: dict) -> list[dict]:
    """One row per claim: figure, statement, measured, rule, numbers and the computed verdict (strict-JSON ready)."""
    rows = []
    for c in CLAIMS:
        numbers, verdict = c.evaluate(metrics)
        rows.append(
            {
                "key": c.key,
                "figure": c.figure,
                "statement": c.statement,
                "measured": c.measured,
                "rule": c.rule,
                "numbers": plain(numbers),
                "verdict": verdict,
            }
        )
    return rows


def summary_line(row: dict) -> str:
    """A short sentence of the key numbers behind one verdict, for reports and the app."""
    n = row["numbers"]
    k = row["key"]
    if row["verdict"] == NOT_MEASURED:
        return "not measured in this run"
    if k == "fig1_denoising":
        return (
            f"PSNR {n['psnr_mean'][0]:.1f} dB at t={n['t'][0]} to {n['psnr_mean'][-1]:.1f} dB at t={n['t'][-1]} "
            f"(Spearman {n['spearman_t_psnr']:.2f}, {n['images']} image(s)); "
            + ("LPIPS too" if n["lpips"] == "available" else "LPIPS not measured (unavailable here): PSNR alone")
        )
    if k == "fig3_sdedit":
        parts = [f"{t}: rho {n.get('spearman_t0_psnr_' + t, float('nan')):.2f}" for t in ("deblur", "inpaint")]
        return f"PSNR vs t0 in {n['t0']}: " + ", ".join(parts)
    if k == "fig4_score_ald":
        return "; ".join(f"{t}: {v['margin_db']:+.2f} dB over y ({v['score_ald_psnr']:.1f} ± {v['score_ald_sd']:.1f})"
                         for t, v in n.items())  # fmt: skip
    if k == "fig5_dps":
        return "; ".join(
            f"{key}: first is {(v['ranking'][0][0] if 'ranking' in v else max(v['best_psnr_of_sweep'], key=v['best_psnr_of_sweep'].get))}"
            for key, v in n.items()
        )
    if k == "fig7_energy":
        return (
            f"r50 {n['r50_first_mean']:.1f} ± {n['r50_first_sd']:.1f} px at t={n['t_first']} -> "
            f"{n['r50_last_mean']:.1f} ± {n['r50_last_sd']:.1f} px at t={n['t_last']} over {n['series']} "
            f"(image, pixel) series; r90 {n['r90_first_mean']:.1f} -> {n['r90_last_mean']:.1f} px"
        )
    if k == "fig8_spectrum":
        return (
            f"rho(J_f) {n['rho_Jf'][0]:.4f} at t={n['t'][0]} -> {n['rho_Jf'][-1]:.4f} at t={n['t'][-1]} "
            f"(Spearman {n['spearman_t_rho_Jf']:.2f})"
            + (
                f"; stability profile: Spearman {', '.join(f'{r:.2f}' for r in n['profile_spearman_t_rho_Jf'])}, "
                f"peak {max(n['profile_rho_Jf']):.4f} at t={n['profile_t'][int(np.argmax(n['profile_rho_Jf']))]}"
                if n.get("profile_rho_Jf")
                else ""
            )
        )
    if k == "fig9_singular_vectors":
        return (
            f"smoothness {n['smoothness'][0]:.2f} at t={n['t'][0]} -> {n['smoothness'][-1]:.2f} at t={n['t'][-1]}; "
            f"abs. correlation with the image {n['image_correlation'][0]:.2f} -> {n['image_correlation'][-1]:.2f}"
        )
    return ""


def claims_markdown(rows: list[dict]) -> str:
    """The claims table for report.md / README."""
    lines = ["| figure | poster's claim | measured on this model | verdict | rule |", "|---|---|---|---|---|"]
    for r in rows:
        lines.append(f"| {r['figure']} | {r['statement']} | {summary_line(r)} | **{r['verdict']}** | {r['rule']} |")
    return "\n".join(lines)


def append_claims_section(out, rows: list[dict], lpips_status: str) -> None:
    """Add 'The poster's claims on this model' to report.md and report.html (written by figures.write_report_pages)."""
    import html as _html
    from pathlib import Path

    from diffdemo.figures import md_table_to_html

    out = Path(out)
    heading = "The poster's claims on this model"
    counts = {v: sum(r["verdict"] == v for r in rows) for v in (AGREES, MIXED, DISAGREES, NOT_MEASURED)}
    sentence = (
        "Each verdict is computed from this run's numbers by the rule beside it (diffdemo/claims.py): "
        + ", ".join(f"{n} {v}" for v, n in counts.items() if n)
        + f". LPIPS: {lpips_status}."
    )
    table = claims_markdown(rows)
    md_path, html_path = out / "report.md", out / "report.html"
    md = md_path.read_text()
    md_path.write_text(md + f"\n## {heading}\n\n{sentence}\n\n{table}\n")
    page = html_path.read_text()
    section = f"<h2>{_html.escape(heading)}</h2><p>{_html.escape(sentence)}</p>{md_table_to_html(table)}"
    html_path.write_text(page.replace("</body></html>", section + "</body></html>"))


CLAIMS_NAME = "claims.json"  # written by reproduce into its output folder; a copy next to a model feeds the app


def write_claims_file(path, rows: list[dict], **about) -> None:
    """Strict JSON: where the numbers come from (model, budget, seed, ...) and the claim rows."""
    write_json(path, {**about, "claims": rows})


def stored_claims_markdown(model_name: str) -> str:
    """The claims table stored next to a model (a copy of a reproduce run's claims.json), for the app's panel."""
    import json

    from diffdemo.models import resolve_model_dir

    folder = resolve_model_dir(str(model_name))
    path = folder / CLAIMS_NAME if folder is not None else None
    if path is None or not path.is_file():
        return (
            f"No claims table stored for `{model_name}`. Run `python -m diffdemo reproduce --model {model_name} "
            "--out DIR` (the verdicts are in DIR/report.md) and copy DIR/claims.json next to the model."
        )
    data = json.loads(path.read_text())
    head = (
        f"Verdicts computed by `diffdemo/claims.py` from a `reproduce` run ({data.get('budget', '?')} budget, seed "
        f"{data.get('seed', '?')}, LPIPS: {data.get('lpips_status', '?')}); each rule is in the last column."
    )
    return head + "\n\n" + claims_markdown(data["claims"])
