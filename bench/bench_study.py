"""What the study runner's choices cost: the database, batching images, and the 256x256 network's arithmetic.

    python bench/bench_study.py [--rows 2000] [--steps 10] [--skip-flops] [--results bench/RESULTS_study.md]

1. SQLite (diffdemo/study/database.py's ``Database``): seconds per stored row, each committed on its own as the runner does,
   and the seconds of reading every row back for a report; against the run times that they sit beside.
2. Batching: ``--steps`` DPS steps of faces64 on the six bundled faces, six single-image runs against one batch of
   six, in process CPU seconds (robust on a shared machine; one torch thread), alternated three times.
3. FLOPs of one batch-1 forward of google/ddpm-celebahq-256's architecture and of faces64 (torch's
   ``FlopCounterMode``: convolutions, matmuls, attention), the basis of docs/study-at-scale.md's GPU assumption.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from diffdemo import study  # noqa: E402
from diffdemo.experiments import run_restoration  # noqa: E402
from diffdemo.imaging import bundled_images, load_image, to_tensor  # noqa: E402
from diffdemo.models import UNetModel, load_model  # noqa: E402
from diffdemo.operators import make_operator  # noqa: E402
from diffdemo.restore import make_problem  # noqa: E402


def database(rows: int) -> dict:
    """Seconds per committed row and for reading all rows back."""
    with tempfile.TemporaryDirectory() as tmp:
        db = study.Database(Path(tmp) / study.DB_NAME, "bench")
        row = {"study": "bench", "problem": "p", "image": "i", "kind": "restore", "method": "dps", "seed": 0,
               "params": {"steps": 50, "spacing": "uniform"}, "resolved": {"scale": 1.0}, "psnr": 25.0, "ssim": 0.8,
               "lpips": 0.07, "residual": 5.0, "seconds": 30.0, "nfe": 50, "extra": {}, "machine": "m"}  # fmt: skip
        start = time.perf_counter()
        for i in range(rows):
            db.add([{**row, "key": f"{i:064d}"}])
        write = (time.perf_counter() - start) / rows
        start = time.perf_counter()
        n = len(db.rows())
        read = time.perf_counter() - start
        db.close()
    return {"rows": n, "write_s_per_row": write, "read_all_s": read}


def cpu_seconds(fn) -> float:
    start = time.process_time()
    fn()
    return time.process_time() - start


def batching(steps: int) -> dict:
    """Process CPU seconds of six single-image DPS runs and of one batch of six, alternated."""
    torch.set_num_threads(1)
    model = load_model("faces64")
    names = sorted(bundled_images())
    faces = [to_tensor(load_image(bundled_images()[n], model.size)) for n in names]
    op = make_operator("gaussian_blur", model.size)
    overrides = {"steps": steps, "spacing": "uniform"}

    def run(x0):
        run_restoration(model, make_problem(x0, op, 0.05, 0), ["dps"], overrides=overrides, precision="fp32")

    run(faces[0])  # warm-up
    single, batch = [], []
    for _ in range(3):
        single.append(cpu_seconds(lambda: [run(x) for x in faces]))
        batch.append(cpu_seconds(lambda: run(torch.cat(faces))))
    return {"steps": steps, "images": len(faces), "single_cpu_s": single, "batch_cpu_s": batch,
            "ratio": statistics.median(single) / statistics.median(batch)}  # fmt: skip


def forward_flops(model) -> float:
    from torch.utils.flop_counter import FlopCounterMode

    x = torch.zeros(1, *model.sample_shape)
    with torch.inference_mode(), FlopCounterMode(display=False) as counter:
        model.eps(x, 500)
    return float(counter.get_total_flops())


def flops() -> dict:
    from diffdemo.hub_layout import CELEBAHQ_256_SCHEDULER, celebahq_unet

    big = UNetModel(celebahq_unet(), CELEBAHQ_256_SCHEDULER, name="celebahq-256-random", device="cpu")
    small = load_model("faces64")
    return {
        "celebahq256_gflops": forward_flops(big) / 1e9,
        "celebahq256_params": sum(p.numel() for p in big.unet.parameters()),
        "faces64_gflops": forward_flops(small) / 1e9,
        "faces64_params": sum(p.numel() for p in small.unet.parameters()),
    }


def main(argv=None) -> dict:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--rows", type=int, default=2000)
    p.add_argument("--steps", type=int, default=10)
    p.add_argument("--skip-flops", action="store_true")
    args = p.parse_args(argv)
    out = {"machine": study.machine(), "date": time.strftime("%Y-%m-%d %H:%M")}
    out["database"] = database(args.rows)
    print(json.dumps(out["database"]), flush=True)
    if not args.skip_flops:
        out["flops"] = flops()
        print(json.dumps(out["flops"]), flush=True)
    out["batching"] = batching(args.steps)
    print(json.dumps(out))
    return out


if __name__ == "__main__":
    main()
