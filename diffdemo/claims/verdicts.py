"""The verdict rules: measured numbers in, a ``Finding`` out (never a verdict written by hand).

``agrees`` / ``disagrees`` (the effect's sign, significant), ``mixed`` (series contradict each other: some
significantly one way, some the other), ``inconclusive`` (too few points, unconverged Krylov values or vectors, or an
effect a permutation test or an interval over images cannot tell from chance) or ``not measured``. Every rule returns
a ``Finding``: the pooled statistic it scores, its 95 % interval and the test behind it (scipy.stats: spearmanr,
permutation_test, bootstrap, the t distribution). ``trend`` scores a claimed trend over t, ``paired`` a claimed
'A beats B', ``combine`` the parts of one claim.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np
from scipy import stats

AGREES, DISAGREES, MIXED, INCONCLUSIVE, NOT_MEASURED = "agrees", "disagrees", "mixed", "inconclusive", "not measured"
VERDICTS = (AGREES, DISAGREES, MIXED, INCONCLUSIVE, NOT_MEASURED)
MIN_POINTS = 8  # timesteps a trend needs: with 3, Spearman's rho is +-1 or +-0.5 for half of all random orderings
MIN_SIDE = 3  # points on each side of a peak (itself included) before "rises then falls" is tested
ALPHA = 0.05  # two-sided test level; intervals are 1 - ALPHA
RESAMPLES = 9999


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
    """Student t interval of a mean at 1 - ALPHA (metrics.mean_interval); None with fewer than 2 values."""
    from diffdemo.metrics import mean_interval  # deferred: metrics brings torch, which the verdicts need not

    return mean_interval(values, 1 - ALPHA)


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
