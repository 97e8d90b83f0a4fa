"""Load check: several users at once on one app. Launches the app on 127.0.0.1, then N client threads
(gradio_client) each run a short DPS and a Jacobian probe; checks every output and prints latencies.

    python bench/load_check.py                  # the default model ($DIFFDEMO_MODEL or faces64)
    python bench/load_check.py --model tiny     # a random 16 px UNet (timing of the machinery only)

Bounded: every call has a timeout and the server is closed at the end. The last line is a JSON summary.
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

IMAGE = "london_006_neutral"


def tiny_model(folder: Path) -> str:
    """A random 2-level UNet at 16 px in diffusers layout (outputs are noise: timing and plumbing only)."""
    import torch

    from diffdemo.train import build_unet, export

    torch.manual_seed(0)
    export(build_unet(sample_size=16, channels=(16, 32)), folder, {"step": 0, "note": "random weights"})
    return str(folder)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def user(url: str, model: str, k: int, steps: int, timeout: float, out: dict) -> None:
    """One user: a short DPS deblur, then a probe at a pixel of its own; records latencies and checks outputs."""
    from gradio_client import Client
    from PIL import Image

    client = Client(url, verbose=False)
    rec = {"user": k, "ok": False}
    try:
        start = time.perf_counter()
        job = client.submit(
            model, IMAGE, None, k, "gaussian_blur", 2.0, 13, "center", 0.5, 0.05, "dps", 300, 1.0, 3.0, steps,
            api_name="/restore",
        )  # fmt: skip
        truth, meas, gallery, table, plot, status, record, files = job.result(timeout=timeout)
        rec["dps_s"] = time.perf_counter() - start
        size = Image.open(meas).size
        assert size[0] == size[1] >= 16, f"measurement image {size}"
        assert record["results"][0]["method"] == "dps" and record["results"][0]["nfe"] == steps, record["results"]
        assert len(record["traces"]["dps"]["psnr"]) >= 2, "no frames streamed"
        assert status.startswith("Done"), status

        start = time.perf_counter()
        pixel = (3 + 2 * k, 5 + k)
        x_t, maps, energy, text, probe, files = client.predict(
            model, IMAGE, None, 0, 200, *pixel, "denoiser", api_name="/probe"
        )
        rec["probe_s"] = time.perf_counter() - start
        assert probe["pixel"] == list(pixel), probe["pixel"]
        heatmaps = [t for t in json.loads(maps["plot"])["data"] if t.get("type") == "heatmap"]
        assert len(heatmaps) == 3, "expected the J_s, J_f, J_D maps"
        assert probe["r50"] is not None and len(probe["sweep"]) >= 6
        rec["ok"] = True
    except Exception as exc:  # report, do not hang the others
        rec["error"] = f"{type(exc).__name__}: {exc}"
    out[k] = rec


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", default=os.environ.get("DIFFDEMO_MODEL", "faces64"), help="model, or 'tiny'")
    ap.add_argument("--users", type=int, default=4)
    ap.add_argument("--steps", type=int, default=10, help="DPS steps per user")
    ap.add_argument("--concurrency", type=int, default=1, help="heavy events at once (the app's default is 1)")
    ap.add_argument("--timeout", type=float, default=600, help="seconds allowed per call")
    args = ap.parse_args(argv)

    tmp = tempfile.TemporaryDirectory(prefix="diffdemo-load-")
    model = tiny_model(Path(tmp.name) / "tiny") if args.model == "tiny" else args.model
    os.environ["DIFFDEMO_MODEL"] = model
    os.environ["DIFFDEMO_CONCURRENCY"] = str(args.concurrency)
    import app
    from diffdemo.ui.server import serve_queue

    demo = app.build_app()
    serve_queue(demo, default_concurrency_limit=args.concurrency)
    _, url, _ = demo.launch(server_name="127.0.0.1", server_port=free_port(), prevent_thread_lock=True, quiet=True)
    results: dict = {}
    wall = time.perf_counter()
    try:
        threads = [
            threading.Thread(target=user, args=(url, model, k, args.steps, args.timeout, results), daemon=True)
            for k in range(args.users)
        ]
        for t in threads:
            t.start()
        for t in threads:
            t.join(timeout=2 * args.timeout + 30)
        wall = time.perf_counter() - wall
    finally:
        demo.close()
        tmp.cleanup()

    rows = [results.get(k, {"user": k, "ok": False, "error": "did not finish in time"}) for k in range(args.users)]
    for r in rows:
        line = f"user {r['user']}: " + (
            f"DPS {r['dps_s']:.1f} s, probe {r['probe_s']:.1f} s" if r["ok"] else f"FAILED {r.get('error')}"
        )
        print(line)
    dps = [r["dps_s"] for r in rows if "dps_s" in r]
    probe = [r["probe_s"] for r in rows if "probe_s" in r]

    def stats(xs):
        return {"median_s": round(statistics.median(xs), 2), "max_s": round(max(xs), 2)} if xs else None

    summary = {
        "model": args.model,
        "users": args.users,
        "dps_steps": args.steps,
        "concurrency": args.concurrency,
        "all_ok": all(r["ok"] for r in rows),
        "wall_s": round(wall, 2),
        "dps": stats(dps),
        "probe": stats(probe),
        "cpu_count": os.cpu_count(),
    }
    print(
        f"DPS latency median {summary['dps'] and summary['dps']['median_s']} s, max "
        f"{summary['dps'] and summary['dps']['max_s']} s; probe median {summary['probe'] and summary['probe']['median_s']}"
        f" s, max {summary['probe'] and summary['probe']['max_s']} s; wall {summary['wall_s']} s"
    )
    print(json.dumps(summary))
    return 0 if summary["all_ok"] else 1


if __name__ == "__main__":
    sys.exit(main())
