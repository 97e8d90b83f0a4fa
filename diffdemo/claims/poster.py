"""The poster's claims as data: each ``Claim`` names its figure, the poster's statement, what is measured and the
rule (``verdicts.trend`` / ``verdicts.paired``) that turns the numbers of reproduce's metrics.json into findings."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, replace

import numpy as np

from diffdemo.claims.measures import VECTOR_GAP, vectors_converged
from diffdemo.claims.verdicts import ALPHA, MIN_POINTS, Finding, paired, trend


@dataclass(frozen=True)
class Claim:
    """One claim of the poster and how this model's numbers are scored against it."""

    key: str
    figure: str
    statement: str  # the poster's claim, in its words where possible
    measured: str  # what numbers we use
    rule: str  # how those numbers give the verdict (the rules of claims.verdicts, named)
    evaluate: Callable[[dict], tuple[dict, list[Finding]]]  # metrics -> (numbers beside, findings)


def _by_t(per_t: Mapping[str, Sequence], ts: Sequence[int], prefix: str) -> dict[str, list]:
    """{str(t): [one value per image]} -> {"<prefix>image i": [value at each t]}."""
    n = min(len(per_t[str(t)]) for t in ts)
    return {f"{prefix}image {i}": [per_t[str(t)][i] for t in ts] for i in range(n)}


def _fig1(m: dict) -> tuple[dict, list[Finding]]:
    d = m.get("fig1_denoising")
    if not d:
        return {}, []
    ts = sorted(int(t) for t in d["by_t"])
    per = d.get("per_image") or {"psnr": {str(t): [d["by_t"][str(t)]["psnr"]["mean"]] for t in ts}}
    nums = {"t": ts, "psnr_mean": [d["by_t"][str(t)]["psnr"]["mean"] for t in ts], "images": len(d["images"])}
    found = [trend(ts, _by_t(per["psnr"], ts, ""), -1, "PSNR vs t")]
    lp = per.get("lpips")
    if lp and all(v is not None for t in ts for v in lp[str(t)]):
        found.append(trend(ts, _by_t(lp, ts, ""), +1, "LPIPS vs t"))
    else:
        nums["lpips"] = f"not measured: {d.get('lpips_status', 'unavailable')}; the verdict rests on PSNR alone"
    return nums, found


def _sweep_series(d: dict, task: str) -> dict[str, list]:
    """Per image, PSNR at each swept value (older runs: the mean over images)."""
    runs = d[task]["runs"]
    if all("psnr_per_image" in r for r in runs):
        n = min(len(r["psnr_per_image"]) for r in runs)
        return {f"{d['images'][i]}/{task}": [r["psnr_per_image"][i] for r in runs] for i in range(n)}
    return {f"mean/{task}": [r["psnr"] for r in runs]}


def _fig3(m: dict) -> tuple[dict, list[Finding]]:
    d = m.get("fig3_sdedit")
    if not d:
        return {}, []
    series = {k: v for task in ("deblur", "inpaint") if task in d for k, v in _sweep_series(d, task).items()}
    return {"t0": d["values"], "images": len(d["images"])}, [trend(d["values"], series, -1, "PSNR vs t0")]


def _rows(m: dict) -> dict[tuple[str, str], dict]:
    return {(r["task"], r["method"]): r for r in (m.get("methods_table") or {}).get("rows", [])}


def _per_image(row: dict | None) -> list[float] | None:
    return None if row is None else row.get("psnr_per_image")


def _diffs(m: dict, a: str, b: Callable[[dict, str], list | None]) -> dict[str, list[float]]:
    """Per task, per image: PSNR of method ``a`` minus ``b(rows, task)`` (both over the table's images)."""
    rows, out = _rows(m), {}
    for task in sorted({t for t, _ in rows}):
        pa, pb = _per_image(rows.get((task, a))), b(rows, task)
        if pa and pb and len(pa) == len(pb):
            out[task] = [x - y for x, y in zip(pa, pb)]
    return out


def _fig4(m: dict) -> tuple[dict, list[Finding]]:
    rows = _rows(m)
    if not any(meth == "score_ald" for _, meth in rows):
        return {}, []
    meas = m["methods_table"]["psnr_measurement"]
    vs_y = _diffs(m, "score_ald", lambda rows, task: meas[task].get("per_image"))
    vs_sdedit = _diffs(m, "score_ald", lambda rows, task: _per_image(rows.get((task, "sdedit"))))
    nums = {task: {"score_ald_psnr": rows[(task, "score_ald")]["psnr"]["mean"], "measurement_psnr": meas[task]["mean"],
                   "sdedit_psnr": (rows.get((task, "sdedit")) or {}).get("psnr", {}).get("mean"),
                   "images": rows[(task, "score_ald")]["images"], "nfe": rows[(task, "score_ald")]["nfe"]}
            for task in sorted({t for t, meth in rows if meth == "score_ald"})}  # fmt: skip
    return nums, [paired(vs_y, "Score-ALD - y"), paired(vs_sdedit, "Score-ALD - SDEdit")]


POSTER_METHODS = ("sdedit", "score_ald", "dps")  # the three the poster ranks (Fig. 5 / conclusion)


def _fig5(m: dict) -> tuple[dict, list[Finding]]:
    rows = _rows(m)

    def best_rival(rows, task):
        rivals = [_per_image(rows.get((task, meth))) for meth in POSTER_METHODS if meth != "dps"]
        return None if not all(rivals) else [max(v) for v in zip(*rivals)]

    nums = {}
    for task in sorted({t for t, _ in rows}):  # every method, baselines included, reported beside the verdict
        ranked = sorted((r for (t, _), r in rows.items() if t == task), key=lambda r: -r["psnr"]["mean"])
        nums[f"{task}_all_methods"] = [(r["method"], round(r["psnr"]["mean"], 3)) for r in ranked]
    for task in ("deblur", "inpaint"):  # equal-steps sweeps, beside: best of each sweep (chosen on its own data)
        sweeps = {k: m.get(f"fig{n}_{k}") for n, k in ((3, "sdedit"), (4, "score_ald"), (5, "dps"))}
        if all(v and task in v for v in sweeps.values()):
            nums[f"{task}_equal_steps_best"] = {k: max(r["psnr"] for r in v[task]["runs"]) for k, v in sweeps.items()}
    if not _diffs(m, "dps", best_rival):
        return nums, []
    return nums, [paired(_diffs(m, "dps", best_rival), "DPS - best of SDEdit, Score-ALD")]


def _fig7(m: dict) -> tuple[dict, list[Finding]]:
    d = m.get("fig7_energy")
    if not d:
        return {}, []
    images = {d.get("image", "image 0"): d["pixels"], **d.get("other_images", {})}
    ts = [c["t"] for c in next(iter(d["pixels"].values()))["curves"]]
    nums = {"on": d["on"], "also_on": d.get("also_on"), "t": ts, "images": len(images)}
    found = []
    for q in ("r50", "r90"):
        series = {f"{img}/{name}": [c[q] for c in p["curves"]] for img, px in images.items() for name, p in px.items()}
        nums[f"{q}_mean"] = np.mean(list(series.values()), axis=0).tolist()
        found.append(trend(ts, series, -1, f"{q} of {d['on']} vs t"))
    if not all(c.get("exclude_centre") for px in images.values() for p in px.values() for c in p["curves"]):
        nums["note"] = "centre pixel included (an older run): r50 at low t is the centre itself"
    return nums, found


def _fig8(m: dict) -> tuple[dict, list[Finding]]:
    d = m.get("fig8_spectrum")
    if not d:
        return {}, []
    res = d["results"]
    ts = [r["t"] for r in res]
    # rho(J_f) ~ 1 + O(beta_t): its trend lives in rho - 1, so a value counts when its Ritz residual is under a
    # tenth of |rho(J_f) - 1| (the residual bounds the eigenvalue error of a near-normal matrix)
    bad = [str(r["t"]) for r in res if r["eig_residual_Jf"] * r["rho_Jf"] > 0.1 * abs(r["rho_Jf"] - 1)]
    nums = {"t": ts, "rho_Jf": [r["rho_Jf"] for r in res], "arnoldi_steps": [r["arnoldi_steps"] for r in res]}
    found = [trend(ts, {"spectrum run": nums["rho_Jf"]}, -1, "rho(J_f) vs t (spectrum run)", bad)]
    prof = m.get("stability_profile")
    if prof and prof.get("rho_Jf_per_image"):
        per, resid = prof["rho_Jf_per_image"], prof.get("residual_Jf_per_image")
        # timesteps where some image's value is unconverged are left out (and said), not guessed at
        keep = [j for j in range(len(prof["t"]))
                if resid is None or all(resid[i][j] <= 0.1 * abs(row[j] - 1) for i, row in enumerate(per))]  # fmt: skip
        dropped = [str(t) for j, t in enumerate(prof["t"]) if j not in keep]
        series = {f"profile image {i}": [row[j] for j in keep] for i, row in enumerate(per)}
        f = trend([prof["t"][j] for j in keep], series, -1, "rho(J_f) vs t (stability profile)")
        if dropped:
            f = replace(f, why=f"t = {', '.join(dropped)} left out (unconverged Ritz values); {f.why}")
        found.append(f)
        nums.update(profile_t=prof["t"], profile_rho_Jf=prof.get("rho_Jf"), profile_left_out=dropped)
        if resid is None:
            nums["profile_note"] = "profile without residuals (older): its values were not checked for convergence"
    return nums, found


def _fig9(m: dict) -> tuple[dict, list[Finding]]:
    d = m.get("fig9_singular_vectors")
    if not d or "structure" not in d:
        return {}, []
    ts = d["timesteps"]
    ok = [vectors_converged(v, r) for v, r in zip(d["singular_values"], d["residuals"])]
    bad = [str(t) for t, flags in zip(ts, ok) if not all(flags)]
    nums = {"t": ts, "vectors_converged": ok, "iters": d.get("iters")}
    found = []
    for name, key in (("smoothness", "smoothness_mean"), ("image correlation", "image_correlation_mean")):
        nums[name] = [row[key] for row in d["structure"]]
        found.append(trend(ts, {"image 0": nums[name]}, -1, f"{name} vs t", bad))
    return nums, found


_TREND_RULE = (
    f"trend rule: mean Spearman rho over the series (images, pixels, tasks), permutation test over t "
    f"(p < {ALPHA / 3:.3g}: shape and trend tests share {ALPHA}), 95 % interval by bootstrap over images (Fisher z "
    f"for one); inconclusive below {MIN_POINTS} "
    "timesteps or with unconverged Krylov values; mixed when series are significant in opposite directions; "
    "a significant rise-then-fall (the peak chosen inside each permutation) disagrees with a monotone claim (peak t "
    "and its interval shown)"
)
_PAIRED_RULE = (
    "paired rule: per-image PSNR differences pooled over both tasks, mean with its Student t 95 % interval: above 0 "
    "agrees, below disagrees, covering 0 (or < 3 images) inconclusive; tasks significant in opposite directions: mixed"
)
CLAIMS: tuple[Claim, ...] = (
    Claim("fig1_denoising", "Fig. 1",
          "Denoising quality improves as the starting t falls: 'LPIPS ... decreases when the starting image is less noisy'",
          "PSNR (and LPIPS when its weights are available) of reverse diffusion vs starting t, per image",
          f"PSNR must fall and LPIPS rise with t; {_TREND_RULE}; both metrics must agree", _fig1),
    Claim("fig3_sdedit", "Fig. 3",
          "SDEdit's PSNR decreases as the initial noise t0 increases, in deblurring and inpainting",
          "SDEdit PSNR vs t0, per (image, task)", f"PSNR must fall with t0; {_TREND_RULE}", _fig3),
    Claim("fig4_score_ald", "Fig. 4",
          "Score-ALD improves on SDEdit, with higher PSNR than the degraded measurement",
          "methods table (each method's tuned defaults): Score-ALD PSNR minus the measurement's and minus SDEdit's, "
          "per image and task", f"{_PAIRED_RULE}; both comparisons must agree", _fig4),
    Claim("fig5_dps", "Fig. 5 / conclusion",
          "DPS gives the strongest reconstructions (of SDEdit, Score-ALD and DPS)",
          "methods table: DPS PSNR minus the better of SDEdit and Score-ALD, per image and task; the classical "
          "baselines and the equal-steps sweeps are reported beside, not in the verdict", _PAIRED_RULE, _fig5),
    Claim("fig7_energy", "Fig. 7",
          "'As t increases it becomes more local' (energy of one pixel's response vs radius)",
          "r50 and r90 of J_D's column with the centre pixel excluded (J_s's give the same fractions) vs t, for "
          "every probed pixel on several images",
          f"r50 and r90 must fall with t; {_TREND_RULE}; both radii must agree", _fig7),
    Claim("fig8_spectrum", "Fig. 8 / conclusion",
          "The spectral radius of the linearised reverse map grows as the sample approaches the clean image (t -> 0)",
          "rho(J_f) of the one-step reverse map (Arnoldi) vs t; also per image of the stability profile; a value "
          "counts when its Ritz residual is under a tenth of |rho(J_f) - 1| (profile timesteps that miss it are "
          "left out and named; an unconverged spectrum-run value makes that series inconclusive)",
          f"rho(J_f) must fall with t; {_TREND_RULE}; spectrum run and profile must agree", _fig8),
    Claim("fig9_singular_vectors", "Fig. 9",
          "Only low-noise timesteps have understandable dominant singular vectors",
          "stand-in for 'understandable': spatial smoothness 1 - E/4 (E = ||grad v||^2/||v||^2, 0 for white noise) and "
          "|correlation| with the image of the top right singular vectors of J_f, mean over them, vs t; a vector "
          f"counts when its residual is under {VECTOR_GAP} of the gap to its neighbours",
          f"both must fall with t; {_TREND_RULE}; both measures must agree", _fig9),
)  # fmt: skip
