"""The poster's claims as data, and verdicts computed from measured numbers (never written by hand).

Each ``Claim`` names its figure, the poster's statement, what is measured and the rules that turn the numbers into
a verdict: ``agrees`` / ``disagrees`` (the effect's sign, significant), ``mixed`` (series contradict each other:
some significantly one way, some the other), ``inconclusive`` (too few points, unconverged Krylov values or
vectors, or an effect a permutation test or an interval over images cannot tell from chance) or ``not measured``.
Every rule returns a ``Finding``: the pooled statistic it scores, its 95 % interval and the test behind it
(scipy.stats: spearmanr, permutation_test, bootstrap, the t distribution). ``evaluate_claims`` reads the dict
``reproduce`` writes to metrics.json and returns one row per claim: findings, verdict and the run's budget.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass, replace

import numpy as np
from scipy import stats

from diffdemo.jsonio import plain, write_json

AGREES, DISAGREES, MIXED, INCONCLUSIVE, NOT_MEASURED = "agrees", "disagrees", "mixed", "inconclusive", "not measured"
VERDICTS = (AGREES, DISAGREES, MIXED, INCONCLUSIVE, NOT_MEASURED)
MIN_POINTS = 8  # timesteps a trend needs: with 3, Spearman's rho is +-1 or +-0.5 for half of all random orderings
MIN_SIDE = 3  # points on each side of a peak (itself included) before "rises then falls" is tested
ALPHA = 0.05  # two-sided test level; intervals are 1 - ALPHA
RESAMPLES = 9999
VECTOR_GAP = 0.1  # a singular vector counts when its residual is under this fraction of the gap to its neighbours
SMOKE = "smoke run: quick budget"


def budget_label(name: str | None) -> str:
    """What every verdict row says about the budget behind it."""
    if name in (None, ""):
        return "budget not recorded"
    return SMOKE if name != "full" else "full budget"


@dataclass(frozen=True)
class Finding:
    """One rule's outcome: the verdict, the pooled statistic (effect) with its interval, and why."""

    part: str  # what was scored, e.g. "PSNR vs t"
    verdict: str
    statistic: str  # what ``effect`` is, e.g. "mean Spearman rho(t, PSNR) over 3 images"
    effect: float | None = None
    low: float | None = None
    high: float | None = None
    why: str = ""  # the test and its numbers, or what made it inconclusive

    def text(self) -> str:
        """'PSNR vs t: mean Spearman ... -0.93 [-1.00, -0.86], permutation p = 0.0001 -> agrees'."""
        f = ".4g" if self.statistic.endswith("at t") else "+.3g"  # a timestep has no sign
        eff = "" if self.effect is None else f" {self.effect:{f}}"
        ci = "" if self.low is None or self.high is None else f" [{self.low:{f}}, {self.high:{f}}]"
        why = f"; {self.why}" if self.why else ""
        return f"{self.part}: {self.statistic}{eff}{ci}{why} -> {self.verdict}"


# --- trends over t: Spearman pooled over series, permutation test, interval over images ----------------------------
def _clean(ts, series: Mapping[str, Sequence]) -> tuple[np.ndarray, dict[str, np.ndarray]]:
    ts = np.asarray(ts, dtype=np.float64)
    out = {}
    for k, v in series.items():
        if v is None or len(v) != ts.size or any(x is None for x in v):
            continue
        arr = np.asarray(v, dtype=np.float64)
        if arr.size and np.all(np.isfinite(arr)) and np.ptp(arr) > 0:  # a constant series has no rank correlation
            out[k] = arr
    return ts, out


def _unit_ranks(values: np.ndarray) -> np.ndarray:
    """Centred, unit-norm ranks along the last axis: Spearman's rho is their dot product."""
    r = stats.rankdata(values, axis=-1)
    r = r - r.mean(axis=-1, keepdims=True)
    norm = np.linalg.norm(r, axis=-1, keepdims=True)
    return np.divide(r, norm, out=np.zeros_like(r), where=norm > 0)  # a tied (flat) stretch correlates 0


def _group(key: str) -> str:
    """The image a series belongs to ("image/pixel" keys): intervals resample images, not pixels of one image."""
    return key.split("/")[0]


def _mean_interval(values: Sequence[float]) -> tuple[float | None, float | None]:
    """Student t interval of a mean (scipy.stats.t); None with fewer than 2 values."""
    v = np.asarray(values, dtype=np.float64)
    if v.size < 2:
        return None, None
    sem = float(v.std(ddof=1) / math.sqrt(v.size))
    if sem == 0:
        return float(v.mean()), float(v.mean())
    lo, hi = stats.t.interval(1 - ALPHA, v.size - 1, loc=float(v.mean()), scale=sem)
    return float(lo), float(hi)


def _rho_interval(rho: float, n: int, groups: dict[str, list[float]]) -> tuple[float | None, float | None]:
    """Interval of the pooled rho: a bootstrap over images (scipy.stats.bootstrap) with >= 3 images, else the
    Fisher z interval of one Spearman coefficient on n points (standard error sqrt(1.06 / (n - 3)), Fieller et al.)."""
    means = [float(np.mean(v)) for v in groups.values()]
    if len(means) >= 3 and np.ptp(means) > 0:
        res = stats.bootstrap((np.asarray(means),), np.mean, confidence_level=1 - ALPHA, method="percentile",
                              n_resamples=RESAMPLES, rng=np.random.default_rng(0))  # fmt: skip
        return float(res.confidence_interval.low), float(res.confidence_interval.high)
    if n <= 3:
        return None, None
    z, half = math.atanh(max(min(rho, 0.999999), -0.999999)), stats.norm.ppf(1 - ALPHA / 2) * math.sqrt(1.06 / (n - 3))
    return math.tanh(z - half), math.tanh(z + half)


def _perm_p(ts: np.ndarray, R: np.ndarray, statistic, alternative: str = "two-sided") -> float:
    """Permutation p-value of ``statistic(ranks of t, R)`` with the timesteps shuffled jointly for every series
    (scipy.stats.permutation_test, 'pairings'; exact when n! <= RESAMPLES)."""
    res = stats.permutation_test((ts,), lambda x, axis=-1: statistic(_unit_ranks(x), R),
                                 permutation_type="pairings", vectorized=True, n_resamples=RESAMPLES,
                                 rng=np.random.default_rng(0), alternative=alternative)  # fmt: skip
    return float(res.pvalue)


def _pooled_rho(rt: np.ndarray, R: np.ndarray) -> np.ndarray:
    return (rt[..., None, :] * R).sum(-1).mean(-1)


def _peak_score(rt: np.ndarray, R: np.ndarray, side: int = 1) -> np.ndarray:
    """max over interior peaks p of min(rho on t <= t_p, -rho on t >= t_p), pooled over series: large only when the
    series rise then fall (side = -1: fall then rise). The permutation test recomputes the max, so choosing the
    peak from the data is accounted for."""
    n = R.shape[-1]
    best = np.full(rt.shape[:-1], -np.inf)
    for p in range(MIN_SIDE - 1, n - MIN_SIDE + 1):
        up = _pooled_rho(_unit_ranks(rt[..., : p + 1]), _unit_ranks(R[:, : p + 1]))
        down = _pooled_rho(_unit_ranks(rt[..., p:]), _unit_ranks(R[:, p:]))
        best = np.maximum(best, np.minimum(side * up, -side * down))
    return best


def _peak(ts: np.ndarray, data: dict[str, np.ndarray], side: int) -> tuple[float, float | None, float | None]:
    """The t of the pooled curve's peak (side -1: trough), with a bootstrap interval over images."""
    groups = sorted({_group(k) for k in data})
    curves = np.stack([np.mean([v / np.mean(np.abs(v)) for k, v in data.items() if _group(k) == g], axis=0)
                       for g in groups])  # fmt: skip

    def peak_t(idx, axis=-1):
        idx = np.atleast_2d(np.asarray(idx, dtype=int))
        return ts[np.argmax(side * curves[idx].mean(axis=-2), axis=-1)]

    at = float(peak_t(np.arange(len(groups)))[0])
    if len(groups) < 3:
        return at, None, None
    res = stats.bootstrap((np.arange(len(groups)),), peak_t, confidence_level=1 - ALPHA, method="percentile",
                          n_resamples=RESAMPLES, rng=np.random.default_rng(0), vectorized=True)  # fmt: skip
    return at, float(res.confidence_interval.low), float(res.confidence_interval.high)


def trend(ts, series: Mapping[str, Sequence], sign: int, part: str, unconverged: Sequence[str] = ()) -> Finding:
    """A claimed trend over t of sign ``sign`` (+1 rises, -1 falls), pooled over series ("image/pixel" keys).

    Rules, in order: no usable series -> not measured; < MIN_POINTS timesteps or any unconverged value ->
    inconclusive; series significant (spearmanr p < ALPHA) in opposite directions -> mixed; a rise-then-fall (or
    fall-then-rise) -> disagrees with a monotone claim, the effect being the peak's t and its interval over images;
    the mean Spearman rho over series -> agrees / disagrees by its sign (interval: bootstrap over images, or Fisher z
    for one image); else inconclusive. The three permutation tests share ALPHA (Bonferroni: ALPHA / 3 each).
    """
    ts, data = _clean(ts, series)
    stat = f"mean Spearman rho(t, {part.split(' vs')[0]}) over {len(data)} series"
    if not data:
        return Finding(part, NOT_MEASURED, stat, why="no usable series")
    R = _unit_ranks(np.stack(list(data.values())))
    rho = float(_pooled_rho(_unit_ranks(ts), R))
    per = {k: stats.spearmanr(ts, v) for k, v in data.items()}
    groups: dict[str, list[float]] = {}
    for k, r in per.items():
        groups.setdefault(_group(k), []).append(float(r.statistic))
    low, high = _rho_interval(rho, ts.size, groups)
    base = dict(part=part, statistic=stat, effect=rho, low=low, high=high)
    if ts.size < MIN_POINTS:
        return Finding(**base, verdict=INCONCLUSIVE, why=f"{ts.size} timesteps: a trend needs >= {MIN_POINTS}")
    if unconverged:
        return Finding(**base, verdict=INCONCLUSIVE, why="unconverged Krylov values at t = " + ", ".join(unconverged))
    up = [k for k, r in per.items() if r.statistic > 0 and r.pvalue < ALPHA]
    down = [k for k, r in per.items() if r.statistic < 0 and r.pvalue < ALPHA]
    if up and down:
        return Finding(**base, verdict=MIXED, why=f"{len(up)} series rise and {len(down)} fall (each p < {ALPHA})")
    if ts.size >= 2 * MIN_SIDE - 1:
        for side, shape in ((1, "rises then falls"), (-1, "falls then rises")):
            score = lambda rt, R, side=side: _peak_score(rt, R, side)  # noqa: E731
            if _peak_score(_unit_ranks(ts), R, side) > 0:
                p_shape = _perm_p(ts, R, score, "greater")
                if p_shape < ALPHA / 3:
                    at, lo, hi = _peak(ts, data, side)
                    return Finding(part, DISAGREES, f"{shape}: {'peak' if side > 0 else 'trough'} at t", at, lo, hi,
                                   f"not monotone (permutation p = {p_shape:.2g}); pooled rho {rho:+.2f}")  # fmt: skip
    p = _perm_p(ts, R, _pooled_rho)
    why = f"permutation p = {p:.2g} ({ts.size} t x {len(data)} series)"
    if p < ALPHA / 3:
        return Finding(**base, verdict=AGREES if sign * rho > 0 else DISAGREES, why=why)
    return Finding(**base, verdict=INCONCLUSIVE, why=why + ": not told from chance")


# --- comparisons: paired per-image differences ----------------------------------------------------------------------
def paired(diffs: Mapping[str, Sequence[float]], part: str, min_images: int = 3) -> Finding:
    """A claimed 'A beats B' from per-image differences A - B, one list per series (a task).

    Rules: no differences -> not measured; a series with its t interval above 0 and another below -> mixed; the
    pooled mean over every (series, image) difference with its t interval: above 0 -> agrees, below -> disagrees,
    covering 0 or fewer than ``min_images`` images per series -> inconclusive.
    """
    data = {k: [float(x) for x in v if x is not None and math.isfinite(x)] for k, v in diffs.items()}
    data = {k: v for k, v in data.items() if v}
    pooled = [x for v in data.values() for x in v]
    stat = f"mean difference (dB) over {len(pooled)} (task, image) pairs"
    if not pooled:
        return Finding(part, NOT_MEASURED, stat, why="no paired numbers")
    low, high = _mean_interval(pooled)
    base = dict(part=part, statistic=stat, effect=float(np.mean(pooled)), low=low, high=high)
    per = {k: _mean_interval(v) for k, v in data.items()}
    above = [k for k, (lo, _) in per.items() if lo is not None and lo > 0]
    below = [k for k, (_, hi) in per.items() if hi is not None and hi < 0]
    if above and below:
        return Finding(**base, verdict=MIXED, why=f"above in {', '.join(above)}, below in {', '.join(below)}")
    few = min(len(v) for v in data.values())
    if few < min_images:
        return Finding(**base, verdict=INCONCLUSIVE, why=f"{few} image(s) per task: a comparison needs >= {min_images}")
    if low is not None and low > 0:
        return Finding(**base, verdict=AGREES, why="t interval above 0")
    if high is not None and high < 0:
        return Finding(**base, verdict=DISAGREES, why="t interval below 0")
    return Finding(**base, verdict=INCONCLUSIVE, why="t interval covers 0")


def combine(findings: Sequence[Finding]) -> str:
    """Parts of one claim (both metrics, both comparisons): mixed when any part is mixed or parts disagree with each
    other, agrees / disagrees when every measured part does, inconclusive otherwise."""
    vs = {f.verdict for f in findings} - {NOT_MEASURED}
    if not vs:
        return NOT_MEASURED
    if MIXED in vs or {AGREES, DISAGREES} <= vs:
        return MIXED
    if len(vs) == 1:
        return vs.pop()
    return INCONCLUSIVE


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
    rule: str  # how those numbers give the verdict (the Finding rules above, named)
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


def vectors_converged(values: Sequence[float], residuals: Sequence[float]) -> list[bool]:
    """A singular vector is determined when its residual ||J^T u - sigma v|| = r sigma is under VECTOR_GAP times the
    gap to the nearest other singular value shown (a residual larger than the gap mixes the two vectors)."""
    s, r = np.asarray(values, dtype=np.float64), np.asarray(residuals, dtype=np.float64)
    out = []
    for i in range(s.size):
        gaps = np.abs(np.delete(s, i) - s[i])
        gap = float(gaps.min()) if gaps.size else float(s[i])
        out.append(bool(r[i] * s[i] <= VECTOR_GAP * gap))
    return out


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


def evaluate_claims(metrics: dict, budget: str | None = None) -> list[dict]:
    """One row per claim: figure, statement, measured, rule, numbers, findings (effect, interval, test), the
    verdict and the budget (strict-JSON ready). ``budget`` defaults to the run's recorded budget name."""
    name = budget or (metrics.get("budget") or {}).get("name")
    rows = []
    for c in CLAIMS:
        numbers, found = c.evaluate(metrics)
        rows.append({"key": c.key, "figure": c.figure, "statement": c.statement, "measured": c.measured,
                     "rule": c.rule, "numbers": plain(numbers), "findings": [plain(asdict(f)) for f in found],
                     "verdict": combine(found), "budget": budget_label(name)})  # fmt: skip
    return rows


def summary_line(row: dict) -> str:
    """The findings behind one verdict (effect, interval, test), and its budget, for reports and the app."""
    found = [Finding(**f) for f in row.get("findings", [])]
    if not found:
        return f"not measured in this run ({row.get('budget', '')})"
    return "; ".join(f.text() for f in found) + f" ({row.get('budget', 'budget not recorded')})"


def claims_markdown(rows: list[dict]) -> str:
    """The claims table for report.md / README / the app."""
    lines = ["| figure | poster's claim | measured on this model: effect [95 % interval] | verdict | rule |",
             "|---|---|---|---|---|"]  # fmt: skip
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
    counts = {v: sum(r["verdict"] == v for r in rows) for v in VERDICTS}
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
    budget = data.get("budget", "?")
    head = (
        f"Verdicts computed by `diffdemo/claims.py` from a `reproduce` run: **{budget_label(budget)}**"
        + (" (a smoke run: not the poster's budget)" if budget != "full" else "")
        + f", made {data.get('date', 'on an unrecorded date')} by `{data.get('command', 'python -m diffdemo reproduce')}`"
        + (f" in {data['seconds'] / 60:.0f} min" if data.get("seconds") else "")
        + f" (seed {data.get('seed', '?')}, LPIPS: {data.get('lpips_status', '?')}); each rule is in the last column."
    )
    return head + "\n\n" + claims_markdown(data["claims"])
