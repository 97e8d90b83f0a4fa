"""bf16 against fp32: every sampler on the six bundled test images at the tuned defaults, same seeds.

    python bench/bench_precision.py [--threads 1] [--partial bench/precision_runs.jsonl] [--summarize]

For each (method, chains) and image, the fp32 and the bf16 run follow each other (their order alternating by
image), so a timing ratio is taken under the same machine load. Runs are appended to ``--partial`` as JSON lines
as they finish; a restart skips those already there. The summary (bench/RESULTS_precision.md) gives each
precision's PSNR / SSIM / LPIPS against the truth (mean and worst image), the mean change, the PSNR of the bf16
reconstruction against the fp32 one, and time: wall seconds, and the process's CPU seconds, which on one torch
thread do not count the time other jobs on a shared machine take from it (the ratio is the median over images of
bf16/fp32 CPU time).
Task: Gaussian deblurring (13x13, std 2 px, sigma_y = 0.05), the default task of the app and the CLI.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from diffdemo import metrics  # noqa: E402
from diffdemo.experiments import run_restoration  # noqa: E402
from diffdemo.imaging import bundled_images, load_image, to_tensor  # noqa: E402
from diffdemo.models import load_model  # noqa: E402
from diffdemo.operators import make_operator  # noqa: E402
from diffdemo.precision import cpu_model, fast_bf16  # noqa: E402
from diffdemo.restore import make_problem  # noqa: E402

# (method, chains): batch 1 for every sampler, and the 4-chain default (DPS's default on deblurring) for the three
# posterior samplers; denoise is deterministic, so it has no chains to average. DPS first (it decides the issue),
# then the cheap batch-1 runs.
CASES = [("dps", 4), ("dps", 1), ("score_ald", 1), ("sdedit", 1), ("denoise", 1), ("score_ald", 4), ("sdedit", 4)]
PRECISIONS = ("fp32", "bf16")
THRESHOLD_DB = 0.1  # a mean PSNR move above this keeps the method in fp32 under ``auto``


def run_all(path: Path, threads: int, seed: int, cases: list[tuple[str, int]] = CASES) -> None:
    torch.set_num_threads(threads)
    done = set()
    if path.exists():
        for line in path.read_text().splitlines():
            r = json.loads(line)
            done.add((r["method"], r["chains"], r["image"], r["precision"]))
    model = load_model("faces64")
    images = list(bundled_images())
    for method, chains in cases:
        for i, image in enumerate(images):
            x0 = to_tensor(load_image(bundled_images()[image], model.size))
            problem = make_problem(x0, make_operator("gaussian_blur", model.size, mask_seed=seed), 0.05, seed)
            order = PRECISIONS if i % 2 == 0 else PRECISIONS[::-1]
            recon = {}
            for precision in order:
                if (method, chains, image, precision) in done:
                    continue
                cpu = time.process_time()
                (res,) = run_restoration(model, problem, [method], overrides={"samples": chains}, precision=precision)
                cpu = time.process_time() - cpu
                recon[precision] = res.reconstruction
                row = dict(
                    method=method,
                    chains=chains,
                    image=image,
                    precision=res.precision,
                    psnr=res.psnr,
                    ssim=res.ssim,
                    lpips=res.lpips,
                    seconds=res.seconds,
                    cpu_seconds=cpu,
                    nfe=res.nfe,
                    threads=threads,
                    finished=time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
                )
                if len(recon) == 2:  # agreement of the pair: bf16 reconstruction scored against the fp32 one
                    row["psnr_bf16_vs_fp32"] = metrics.psnr(recon["bf16"], recon["fp32"])
                with path.open("a") as f:
                    f.write(json.dumps(row, allow_nan=False) + "\n")
                print(json.dumps(row), flush=True)


def _mean(values):
    values = [v for v in values if v is not None]
    return statistics.fmean(values) if values else None


def _cpu_ratio(f: dict, b: dict, images: list[str]) -> dict:
    """CPU seconds per run (mean) and the median bf16/fp32 ratio over the images where both runs recorded them."""
    timed = [i for i in images if "cpu_seconds" in f[i] and "cpu_seconds" in b[i]]
    if not timed:
        return dict(cpu_images=0, cpu_fp32=None, cpu_bf16=None, cpu_ratio_median=None)
    return dict(
        cpu_images=len(timed),
        cpu_fp32=statistics.fmean(f[i]["cpu_seconds"] for i in timed),
        cpu_bf16=statistics.fmean(b[i]["cpu_seconds"] for i in timed),
        cpu_ratio_median=statistics.median(b[i]["cpu_seconds"] / f[i]["cpu_seconds"] for i in timed),
    )


def summarize(path: Path, out: Path) -> dict:
    rows = [json.loads(line) for line in path.read_text().splitlines()]
    table = []
    for method, chains in CASES:
        by = {p: {r["image"]: r for r in rows if (r["method"], r["chains"], r["precision"]) == (method, chains, p)}
              for p in PRECISIONS}  # fmt: skip
        images = sorted(set(by["fp32"]) & set(by["bf16"]))
        if not images:
            continue
        f, b = by["fp32"], by["bf16"]
        d_psnr = [b[i]["psnr"] - f[i]["psnr"] for i in images]
        lp = [(f[i]["lpips"], b[i]["lpips"]) for i in images if f[i]["lpips"] is not None and b[i]["lpips"] is not None]
        agree = [r.get("psnr_bf16_vs_fp32") for i in images for r in (f[i], b[i]) if r.get("psnr_bf16_vs_fp32")]
        table.append(
            dict(
                method=method,
                chains=chains,
                images=len(images),
                psnr_fp32=_mean(f[i]["psnr"] for i in images),
                psnr_bf16=_mean(b[i]["psnr"] for i in images),
                d_psnr_mean=statistics.fmean(d_psnr),
                d_psnr_worst=max(d_psnr, key=abs),
                worst_psnr_fp32=min(f[i]["psnr"] for i in images),
                worst_psnr_bf16=min(b[i]["psnr"] for i in images),
                ssim_fp32=_mean(f[i]["ssim"] for i in images),
                ssim_bf16=_mean(b[i]["ssim"] for i in images),
                lpips_fp32=_mean(p[0] for p in lp),
                lpips_bf16=_mean(p[1] for p in lp),
                psnr_bf16_vs_fp32=_mean(agree),
                seconds_fp32=sum(f[i]["seconds"] for i in images),
                seconds_bf16=sum(b[i]["seconds"] for i in images),
                wall_ratio_median=statistics.median(b[i]["seconds"] / f[i]["seconds"] for i in images),
                **_cpu_ratio(f, b, images),
                keep_fp32=abs(statistics.fmean(d_psnr)) > THRESHOLD_DB,
                threads=sorted({r["threads"] for i in images for r in (f[i], b[i])}),
            )
        )
    lpips_note = metrics.lpips_status()
    lines = [
        "# bf16 against fp32 (bench/bench_precision.py)",
        "",
        f"faces64 on `{cpu_model()}` (fast bf16: {fast_bf16('cpu')}), torch {torch.__version__}, "
        f"{', '.join(map(str, table[0]['threads'])) if table else '?'} torch thread(s). The machine (2 cores) was "
        "shared with four other jobs (load average 12-20 during these runs), so wall seconds are noisy; CPU seconds of the one-thread process are not inflated "
        "by the other jobs, and the time ratio is the median over images of bf16/fp32 CPU seconds for runs made back "
        "to back.",
        "Gaussian deblurring (13x13, std 2 px, sigma_y 0.05), tuned defaults, seed 0, the six bundled test images. "
        "PSNR/SSIM/LPIPS are against the truth (mean over images; worst = the lowest image); "
        "agreement = PSNR of the bf16 reconstruction against the fp32 one.",
        f"LPIPS: {lpips_note if lpips_note != 'available' else 'available'}.",
        "",
        "| method | chains | images | PSNR fp32 | PSNR bf16 | mean dPSNR | largest image dPSNR | worst image fp32 / bf16 "
        "| SSIM fp32 / bf16 | LPIPS fp32 / bf16 | agreement dB | wall s fp32 / bf16 (sum) "
        "| CPU s per run fp32 / bf16 | bf16/fp32 CPU time |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]

    def fmt(v, spec):
        return "n/a" if v is None else format(v, spec)

    for r in table:
        lines.append(
            f"| {r['method']} | {r['chains']} | {r['images']} | {r['psnr_fp32']:.2f} | {r['psnr_bf16']:.2f} | "
            f"{r['d_psnr_mean']:+.3f} | {r['d_psnr_worst']:+.3f} | {r['worst_psnr_fp32']:.2f} / "
            f"{r['worst_psnr_bf16']:.2f} | {r['ssim_fp32']:.4f} / {r['ssim_bf16']:.4f} | "
            f"{fmt(r['lpips_fp32'], '.4f')} / {fmt(r['lpips_bf16'], '.4f')} | {fmt(r['psnr_bf16_vs_fp32'], '.1f')} | "
            f"{r['seconds_fp32']:.0f} / {r['seconds_bf16']:.0f} | {fmt(r['cpu_fp32'], '.1f')} / "
            f"{fmt(r['cpu_bf16'], '.1f')} | {fmt(r['cpu_ratio_median'], '.2f')} (n={r['cpu_images']}) |"
        )
    keep = [f"{r['method']} ({r['chains']} chains)" for r in table if r["keep_fp32"]]
    lines += [
        "",
        f"Rule: a mean PSNR move above {THRESHOLD_DB} dB keeps that method in fp32 under `--precision auto`. "
        + (f"Moved: {', '.join(keep)}." if keep else "No method moved that far: `auto` uses bf16 for all of them."),
        "",
    ]
    out.write_text("\n".join(lines))
    result = dict(rows=table, lpips=lpips_note)
    print(json.dumps(result, allow_nan=False))
    return result


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--threads", type=int, default=1, help="torch threads (1: robust on a shared machine)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--partial", default=str(ROOT / "bench" / "precision_runs.jsonl"), help="JSON lines, resumable")
    p.add_argument("--results", default=str(ROOT / "bench" / "RESULTS_precision.md"))
    p.add_argument("--summarize", action="store_true", help="only write the summary from --partial")
    p.add_argument("--cases", help="a subset, e.g. score_ald:1,sdedit:1 (default: all, DPS first)")
    args = p.parse_args(argv)
    cases = CASES
    if args.cases:
        cases = [(m, int(k)) for m, k in (c.split(":") for c in args.cases.split(","))]
    if not args.summarize:
        run_all(Path(args.partial), args.threads, args.seed, cases)
    summarize(Path(args.partial), Path(args.results))


if __name__ == "__main__":
    main()
