"""Restoration quality on the six held-out test images at 64x64 (issue 3's acceptance table).

Deblurring: Gaussian blur std 2 px (13x13), sigma_y = 0.05. Inpainting: a box hiding the eyes (or the mouth),
sigma_y = 0.05. Every method sees the same measurement (one seeded draw); the six images run as one batch.
Prints a markdown table of PSNR / SSIM (LPIPS where available) and a last-line JSON.

    python bench/bench_faces.py [--model faces64] [--steps 250] [--set dps.scale=2,3,4 ...] [--denoise]
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # run as a script from anywhere

from diffdemo import defaults, metrics
from diffdemo.experiments import Row, psnr_lpips_vs_t, run_restoration
from diffdemo.imaging import bundled_images, load_image, to_tensor
from diffdemo.models import load_model
from diffdemo.operators import make_operator
from diffdemo.restore import DIFFUSION_METHODS, make_problem
from diffdemo.threads import auto_threads

WIENER_BALANCES = (0.003, 0.01, 0.03, 0.1, 0.3)


def test_batch(size: int) -> tuple[list[str], torch.Tensor]:
    names = sorted(bundled_images())
    return names, torch.cat([to_tensor(load_image(bundled_images()[n], size)) for n in names])


def score(x_hat: torch.Tensor, x0: torch.Tensor) -> dict:
    """Mean ± sd over the images of each score (``metrics.mean_sd``), and each image's PSNR."""
    return summary(metrics.per_image(metrics.all_metrics, x_hat, x0))


def summary(rows: list[dict]) -> dict:
    out = {}
    for key in ("psnr", "ssim", "lpips"):
        vals = [r[key] for r in rows if r[key] is not None]
        out[key] = metrics.mean_sd(vals) if vals else None  # sd with ddof = 1 (metrics.MEAN_SD)
    out["per_image_psnr"] = [round(r["psnr"], 2) for r in rows]
    return out


def restored(model, method: str, problem, precision: str = "fp32", **overrides) -> Row:
    """One method on the batched problem (experiments.run_restoration): its reconstruction, time and params."""
    network = model if method in DIFFUSION_METHODS else None
    (row,) = run_restoration(network, problem, [method], overrides=overrides, precision=precision)
    return row


def denoise_row(model, x0: torch.Tensor, t: int, seed: int) -> dict:
    """Task 2 from t by Figure 1's definition (experiments.psnr_lpips_vs_t: the noisy input scored as
    x_t / sqrt(abar_t)), image i noised with seed + i, 250 strided steps (at most t + 1)."""
    curves = [next(psnr_lpips_vs_t(model, x0[i : i + 1], [t], steps=250, seed=seed + i)) for i in range(len(x0))]
    noisy, denoised = (
        summary([{k: c[f"{k}_{kind}"] for k in ("psnr", "ssim", "lpips")} for c in curves])
        for kind in ("noisy", "denoised")
    )
    gains = [round(b - a, 2) for a, b in zip(noisy["per_image_psnr"], denoised["per_image_psnr"], strict=True)]
    return {"noisy": noisy, "denoised": denoised, "gain_per_image": gains}


def _value(text: str) -> float | bool:
    """'2' -> 2.0, 'false' -> False."""
    if text.lower() in ("true", "false"):
        return text.lower() == "true"
    return float(text)


def parse_sets(items: list[str]) -> dict[str, list[dict]]:
    """'dps.scale=2,3' -> {'dps': [{'scale': 2.0}, {'scale': 3.0}]}; 'dps.normalize=false' -> [{'normalize': False}];
    '+' joins parameters into one run: 'dps.steps=100+samples=4' -> {'dps': [{'steps': 100.0, 'samples': 4.0}]}."""
    out: dict[str, list[dict]] = {}
    for item in items:
        method, rest = item.split(".", 1)
        if "+" in rest:
            joined = dict(part.split("=") for part in rest.split("+"))
            out.setdefault(method, []).append({k: _value(v) for k, v in joined.items()})
            continue
        param, values = rest.split("=")
        out.setdefault(method, []).extend({param: _value(v)} for v in values.split(","))
    return out


def main(argv=None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", default="faces64")
    ap.add_argument("--steps", type=int, default=None, help="override every diffusion method's steps")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--box", default="eyes", choices=["eyes", "mouth", "center"])
    ap.add_argument(
        "--set",
        nargs="*",
        default=[],
        help="parameter sweeps, one run per value, e.g. dps.scale=2,3,4 sdedit.t0=200,300; "
        "'+' joins parameters into one run: dps.steps=100+samples=4",
    )
    ap.add_argument("--fix", nargs="*", default=[], help="a parameter held in every run, e.g. dps.normalize=false")
    ap.add_argument("--methods", default="sdedit,score_ald,dps")
    ap.add_argument("--tasks", default="deblur,inpaint")
    ap.add_argument("--denoise", action="store_true", help="also the Task 2 table: PSNR vs starting t")
    ap.add_argument("--threads", type=int, default=None, help="torch threads (default: the idle cores)")
    ap.add_argument("--out", default=None, help="also write the markdown tables to this file")
    ap.add_argument(
        "--precision",
        default="fp32",
        choices=["auto", "fp32", "bf16"],
        help="the network's (the README's tables: fp32)",
    )
    args = ap.parse_args(argv)
    torch.set_num_threads(args.threads or auto_threads())
    model = load_model(args.model, device="cpu")
    names, x0 = test_batch(model.size)
    sweeps = parse_sets(args.set)
    fixed = {m: {k: v for d in ds for k, v in d.items()} for m, ds in parse_sets(args.fix).items()}
    results: dict = {"model": args.model, "images": names, "tasks": {}}
    tasks = {
        "deblur": make_operator("gaussian_blur", model.size),
        "inpaint": make_operator("box_inpaint", model.size, preset=args.box),
    }
    for task in args.tasks.split(","):
        op = tasks[task]
        problem = make_problem(x0, op, defaults.SIGMA_Y, seed=args.seed)
        rows = {"measurement": score(problem.y, x0)}
        for method in args.methods.split(","):
            for extra in sweeps.get(method, [{}]):
                extra = {**fixed.get(method, {}), **extra}
                row = restored(model, method, problem, args.precision, **extra, steps=args.steps)
                seconds = row.seconds
                label = " ".join(
                    [method] + [f"{k}={v}" if isinstance(v, bool) else f"{k}={v:g}" for k, v in extra.items()]
                )
                rows[label] = {**score(row.reconstruction, x0), "seconds": round(seconds, 1), "params": row.params}
                lp = rows[label]["lpips"]
                print(
                    f"{task:8s} {label:28s} PSNR {rows[label]['psnr'][0]:6.2f}  SSIM {rows[label]['ssim'][0]:.3f}  "
                    f"LPIPS {'n/a' if lp is None else f'{lp[0]:.3f} ± {lp[1]:.3f}'}  ({seconds:.0f} s)",
                    flush=True,
                )
        if task == "deblur":
            best = max(
                ((b, score(restored(None, "wiener", problem, balance=b).reconstruction, x0)) for b in WIENER_BALANCES),
                key=lambda item: item[1]["psnr"][0],
            )
            rows[f"wiener (best balance {best[0]:g})"] = best[1]
        for method in ("richardson_lucy", "tv") if task == "deblur" else ("biharmonic", "tv"):
            rows[method] = score(restored(None, method, problem).reconstruction, x0)
        results["tasks"][task] = rows
    if args.denoise:
        results["denoise"] = {t: denoise_row(model, x0, t, args.seed) for t in (100, 300, 500)}
    results["checks"] = acceptance(results)
    print(markdown(results))
    if args.out:
        header = f"# Restoration on the six held-out faces: {args.model}, {time.strftime('%Y-%m-%d')}\n\n"
        header += f"`python bench/bench_faces.py {' '.join(argv if argv is not None else sys.argv[1:])}`\n"
        Path(args.out).write_text(header + markdown(results) + "\n")
    print(json.dumps(results, default=str))
    return results


def acceptance(results: dict) -> dict:
    """Issue 3's bars: DPS leads the diffusion methods on each task, and Wiener by 2 dB on deblurring;
    denoising beats the noised input on every image at every starting t."""
    checks = {}
    for task, rows in results["tasks"].items():
        diffusion = {k: v["psnr"][0] for k, v in rows.items() if k.split()[0] in ("sdedit", "score_ald", "dps")}
        if not diffusion:
            continue
        best = max(diffusion, key=diffusion.get)
        checks[f"{task}: best diffusion method"] = f"{best} ({diffusion[best]:.2f} dB)"
        single = {k: v for k, v in diffusion.items() if _samples(rows[k]) == 1}
        if single and len(single) < len(diffusion):
            best = max(single, key=single.get)
            checks[f"{task}: best diffusion method, one sample"] = f"{best} ({single[best]:.2f} dB)"
        if task == "deblur":
            wiener = next(v["psnr"][0] for k, v in rows.items() if k.startswith("wiener"))
            best_dps = max((v for k, v in diffusion.items() if k.startswith("dps")), default=None)
            if best_dps is not None:
                checks["deblur: best DPS - best Wiener (dB)"] = round(best_dps - wiener, 2)
                one = [v for k, v in diffusion.items() if k.startswith("dps") and _samples(rows[k]) == 1]
                if one and max(one) != best_dps:
                    checks["deblur: best one-sample DPS - best Wiener (dB)"] = round(max(one) - wiener, 2)
                names = results["images"]
                london = {k: _london_mean(v, names) for k, v in rows.items()}
                dps_london = max(v for k, v in london.items() if k.startswith("dps"))
                wiener_london = next(v for k, v in london.items() if k.startswith("wiener"))
                checks["deblur, London faces only: best DPS - best Wiener (dB)"] = round(dps_london - wiener_london, 2)
    for t, row in results.get("denoise", {}).items():
        checks[f"denoise t={t}: every image improves"] = min(row["gain_per_image"]) > 0
    return checks


def _samples(row: dict) -> int:
    """How many posterior samples a row's estimate averages (1: a single sample)."""
    return int(row.get("params", {}).get("samples", 1))


def _fmt(cell, digits: int = 2) -> str:
    return "n/a" if cell is None else f"{cell[0]:.{digits}f} ± {cell[1]:.{digits}f}"


def _london_mean(row: dict, names: list[str]) -> float:
    """Mean PSNR over the London test faces only (the other two test images are not photos of that set)."""
    return statistics.mean(p for p, n in zip(row["per_image_psnr"], names, strict=True) if n.startswith("london"))


def markdown(results: dict) -> str:
    names = results["images"]
    lpips = any(row.get("lpips") for rows in results["tasks"].values() for row in rows.values())
    lines = []
    for task, rows in results["tasks"].items():
        lines += [
            f"\n**{task}** ({len(names)} test images, 64x64, sigma_y = 0.05)\n",
            "| method | PSNR (dB) | SSIM |" + (" LPIPS |" if lpips else "") + " PSNR, London faces | per image PSNR |",
            "|---|---|---|" + ("---|" if lpips else "") + "---|---|",
        ]
        for label, row in rows.items():
            cells = [label, _fmt(row["psnr"]), _fmt(row["ssim"])] + ([_fmt(row["lpips"], 3)] if lpips else [])
            cells += [f"{_london_mean(row, names):.2f}", ", ".join(f"{p:.1f}" for p in row["per_image_psnr"])]
            lines.append("| " + " | ".join(cells) + " |")
    lines.append(f"\nImages, in order: {', '.join(names)}. ± : {metrics.MEAN_SD}.")
    if "denoise" in results:
        lines += [
            "\n**denoise** (Task 2, PSNR in dB, mean over the 6 images)\n",
            "| t | noised input | denoised | smallest gain on one image | LPIPS noised | LPIPS denoised |",
            "|---|---|---|---|---|---|",
        ]
        for t, row in results["denoise"].items():
            lines.append(
                f"| {t} | {_fmt(row['noisy']['psnr'])} | {_fmt(row['denoised']['psnr'])} | "
                f"{min(row['gain_per_image']):+.2f} | {_fmt(row['noisy']['lpips'], 3)} | {_fmt(row['denoised']['lpips'], 3)} |"
            )
    if results.get("checks"):
        lines += ["\n**checks**\n"] + [f"- {k}: {v}" for k, v in results["checks"].items()]
    return "\n".join(lines)


if __name__ == "__main__":
    main()
