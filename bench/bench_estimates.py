"""Run-time estimates against actual run times, per tab, through the app's HTTP API (gradio_client).

    python bench/bench_estimates.py [--model assets/models/faces64] [--out bench/RESULTS_estimates.md] [--repeats 2]

Launches the app in-process on the embedded model (timed at start-up as `python app.py` does), then runs each
tab's default action ``repeats`` times in a row. Every result's JSON holds ``estimated_seconds`` (what the app
predicted before the run) next to ``seconds`` (what it took): run 1 shows the start-up timing alone (or what other
kinds of run taught it), run 2 onwards what the estimates learnt from the runs before. Writes a markdown table.
"""

from __future__ import annotations

import argparse
import os
import re
import socket
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

IMAGE = "london_006_neutral"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def kinds(model: str) -> dict:
    """Each tab's first demo with its defaults: (api name, arguments, how to read (estimated, actual))."""
    from_json = {
        "denoise": 4,
        "sample": 3,
        "restore": 6,
        "probe": 4,
        "spectrum": 4,
    }

    def json_reader(api):
        return lambda out: (out[from_json[api]]["estimated_seconds"], out[from_json[api]]["seconds"])

    def curve_reader(out):
        m = re.search(r"done in ([0-9.]+) s; estimated ([0-9.]+|unavailable) s", out[1])
        return (float(m.group(2)), float(m.group(1))) if m and m.group(2) != "unavailable" else (None, None)

    restore = [model, IMAGE, None, 0, "gaussian_blur", 2.0, 13, "center", 0.5, 0.05]
    restore_tail = [100, 4.0, 1.0, 100, None, True, 4]  # t0, zeta, scale, steps, mask, normalise, chains
    return {
        "Denoise (t = 100, 50 steps)": ("/denoise", [model, IMAGE, None, 0, 100, 50], json_reader("denoise")),
        "Denoise: PSNR-vs-t curve (6 points, 50 steps)": (
            "/psnr_vs_t",
            [model, IMAGE, None, 0, 50, 6],
            curve_reader,
        ),
        "Generate (4 samples, 100 steps)": ("/sample", [model, 0, 4, 100], json_reader("sample")),
        "Inverse problems: DPS deblurring (100 steps, 4 chains)": (
            "/restore",
            [*restore, "dps", *restore_tail],
            json_reader("restore"),
        ),
        "Inverse problems: Compare all (100 steps, 4 chains)": (
            "/restore",
            [*restore, "compare", *restore_tail],
            json_reader("restore"),
        ),
        "Sensitivity: one click (7-timestep sweep)": (
            "/probe",
            [model, IMAGE, None, 0, 200, 22, 28, "denoiser"],
            json_reader("probe"),
        ),
        "Spectrum (t = 50, 500; k = 3, 12 steps)": (
            "/spectrum",
            [model, IMAGE, None, 0, ["50", "500"], 3, 12],
            json_reader("spectrum"),
        ),
    }


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--model", default=str(ROOT / "assets" / "models" / "faces64"))
    p.add_argument("--out", default=str(ROOT / "bench" / "RESULTS_estimates.md"))
    p.add_argument("--repeats", type=int, default=2)
    p.add_argument("--only", default="", help="run only the kinds whose name contains this text")
    args = p.parse_args(argv)
    os.environ["DIFFDEMO_MODEL"] = args.model
    import gradio_client

    import app

    app.warm_engine()
    from diffdemo.estimates import measure_cost
    from diffdemo.models import load_model

    startup = measure_cost(load_model(args.model))
    demo = app.build_app()
    demo.queue(default_concurrency_limit=1)
    _, url, _ = demo.launch(server_name="127.0.0.1", server_port=_free_port(), prevent_thread_lock=True, quiet=True)
    client = gradio_client.Client(url, verbose=False)
    rows = []
    try:
        for name, (api, inputs, read) in kinds(args.model).items():
            if args.only and args.only not in name:
                continue
            for run in range(1, args.repeats + 1):
                started = time.perf_counter()
                out = client.predict(*inputs, api_name=api)
                wall = time.perf_counter() - started
                est, actual = read(out)
                rows.append((name, run, est, actual, wall))
                ratio = f"{est / actual:.2f}" if est and actual else "n/a"
                print(f"{name} run {run}: estimated {est} s, actual {actual:.2f} s, ratio {ratio}", flush=True)
    finally:
        demo.close()
    load = os.getloadavg()
    lines = [
        "# Run-time estimates against actual run times",
        "",
        f"`python bench/bench_estimates.py` on {Path(args.model).name}, {time.strftime('%Y-%m-%d %H:%M')}, "
        f"{os.cpu_count()} CPU cores. The machine was **shared** (load average {load[0]:.1f} / {load[1]:.1f} / "
        f"{load[2]:.1f} at the end: other jobs were running), so single run times vary.",
        f"Start-up timing: {startup['forward_s'] * 1000:.0f} ms per network evaluation, "
        f"{startup['grad_s'] * 1000:.0f} ms with its gradient.",
        "",
        "Each kind of run was made several times in a row through the HTTP API. *estimated* is the app's estimate "
        "before the run (the JSON's `estimated_seconds`); run 1 has only the start-up timing (or what runs of "
        "other kinds taught it), later runs use what the runs before them took. *ratio* = estimated / actual: the "
        "target is within 1.5x (0.67-1.5) from run 2 on.",
        "",
        "| run | # | estimated (s) | actual (s) | ratio |",
        "|---|---|---|---|---|",
    ]
    for name, run, est, actual, _ in rows:
        ratio = f"{est / actual:.2f}" if est and actual else "n/a"
        lines.append(f"| {name} | {run} | {'n/a' if est is None else f'{est:.1f}'} | {actual:.1f} | {ratio} |")
    Path(args.out).write_text("\n".join(lines) + "\n")
    print(Path(args.out).read_text())


if __name__ == "__main__":
    main()
