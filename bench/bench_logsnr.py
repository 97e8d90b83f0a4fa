"""Does the measured stability profile add anything over its formula? DPS deblurring at 50 NFE (issue 25).

    python bench/bench_logsnr.py [--report]

Three timestep lists at 50 network evaluations: logsnr (the spectral rule with rho = 1 / (1 - abar_t), nearly
uniform in log-SNR), spectral (the same rule with the measured stiffness of assets/models/faces64/
stability_profile.json) and quadratic (the few-step default). The DPS scale is cross-fitted exactly as in
bench/bench_fewstep.py (its helpers, its folds, its cache format): the value with the best mean PSNR on one fold of
the six test faces is scored on the other. Each image's result is paired with its own result under the other list:
mean paired difference with a 95 % t-interval (scipy.stats.t, via bench_fewstep.paired). The quadratic runs are
read from bench_fewstep's cache when it has them; everything else is cached in bench/results/logsnr.json (a killed
run resumes). The section between the markers in bench/RESULTS_spacing.md is rewritten from the caches.
"""

from __future__ import annotations

import argparse
import json
import platform
import sys
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
import bench_fewstep as fs  # noqa: E402

CACHE = fs.ROOT / "bench" / "results" / "logsnr.json"
RESULTS = fs.ROOT / "bench" / "RESULTS_spacing.md"
TASK, NFE = "dps_deblur", 50
# the same two scales for every list (quadratic's best two of bench_fewstep's eight at 50 NFE): a fair tuning grid
GRID = {"logsnr": [2.5, 3], "spectral": [2.5, 3], "quadratic": [2.5, 3]}
BEGIN, END = "<!-- bench_logsnr: begin -->", "<!-- bench_logsnr: end -->"


def caches() -> dict:
    return {**fs.load_cache(), **(json.loads(CACHE.read_text()) if CACHE.is_file() else {})}


def cross_fitted(cache: dict, spacing: str) -> tuple[list[float], dict] | None:
    """Per-image PSNR, each fold scored at the scale that did best on the other fold."""
    out, picks = [None] * 6, {}
    for fold, other in (("A", "B"), ("B", "A")):
        by_psnr = [
            (float(np.mean([cache[k]["psnr"][i] for i in fs.FOLDS[other]])), v)
            for v in GRID[spacing]
            if (k := fs.key(TASK, spacing, NFE, v)) in cache
        ]
        if not by_psnr:
            return None
        picks[fold] = max(by_psnr)[1]
        for i in fs.FOLDS[fold]:
            out[i] = cache[fs.key(TASK, spacing, NFE, picks[fold])]["psnr"][i]
    return out, picks


def section(cache: dict, machine: str) -> str:
    got = {s: cross_fitted(cache, s) for s in GRID}
    lines = [
        BEGIN,
        "## Does the measured profile add anything over its formula? (bench/bench_logsnr.py)",
        "",
        f"DPS Gaussian deblurring, {NFE} NFE, the six test faces, one chain each, seed 0, fp32; scale cross-fitted "
        "(picked on fold A = faces 1, 3, 5 in name order, scored on fold B, and the other way round) from the same "
        f"grid for every list, {GRID['logsnr']} (quadratic's two best of bench_fewstep's eight). logsnr: the "
        "spectral rule with the formula rho = 1/(1 - abar_t) (equal steps in log-SNR); spectral: the same rule with "
        "the measured stiffness (largest |lambda| of J_s with Re < 0, stability_profile.json); quadratic: the "
        f"few-step default. Δ: paired per-face difference (row minus column), mean [95 % t-interval]. {machine}; "
        "2026-12-06, a shared 2-core AMD EPYC (avx2, no avx512 / amx), about 11 min per run while shared.",
        "",
        "| spacing | scale (fold A / B pick) | PSNR dB, mean ± sd | Δ vs logsnr | Δ vs quadratic |",
        "|---|---|---|---|---|",
    ]
    for s, r in got.items():
        if r is None:
            lines.append(f"| {s} | not run | | | |")
            continue
        psnr, picks = r
        d = [fs.paired(psnr, got[o][0]) if got[o] is not None and o != s else "" for o in ("logsnr", "quadratic")]
        lines.append(f"| {s} | {picks['B']:g} / {picks['A']:g} | {fs.fmt_mean(psnr, 2)} | {d[0]} | {d[1]} |")
    return "\n".join(lines + ["", END])


def write_results(cache: dict, machine: str) -> None:
    text = RESULTS.read_text()
    new = section(cache, machine)
    if BEGIN in text:
        text = text[: text.index(BEGIN)] + new + text[text.index(END) + len(END) :]
    else:
        text = text.rstrip("\n") + "\n\n" + new + "\n"
    RESULTS.write_text(text)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--report", action="store_true", help="only rewrite the results section from the caches")
    args = ap.parse_args()
    cpu = platform.processor() or platform.machine()
    machine = f"{cpu}, torch {torch.__version__}, {torch.get_num_threads()} threads"
    if not args.report:
        model = fs.load_model("faces64")
        _, x0 = fs.faces(model)
        mine = json.loads(CACHE.read_text()) if CACHE.is_file() else {}
        # value by value, both lists at each: a run stopped early still compares them on the same grid
        todo = [(s, vs[i]) for i in range(max(map(len, GRID.values()))) for s, vs in GRID.items() if i < len(vs)]
        for spacing, v in todo:
            k = fs.key(TASK, spacing, NFE, v)
            if k in caches():
                continue
            print(f"running {k}", flush=True)
            mine[k] = fs.run_one(model, x0, TASK, spacing, NFE, v)
            CACHE.parent.mkdir(parents=True, exist_ok=True)
            CACHE.write_text(json.dumps(mine, indent=1))
    write_results(caches(), machine)
    print(section(caches(), machine))


if __name__ == "__main__":
    main()
