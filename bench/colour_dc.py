"""Can the network see the image's average colour? The colour-cast diagnostic of issue 3.

For training faces noised to x_t (eq. 3), compares eps_theta's per-channel spatial mean with the true noise's:
R^2 of that "DC" prediction, R^2 of eps overall, and the spread of the resulting error in x0_hat's average colour
(eq. 11, on 0..255). A network that cannot see per-channel means (instance normalisation) has R^2_dc ~ 0 and
samples with global colour casts; the column "from x_t's mean alone" is what a two-parameter predictor reaches.

    python bench/colour_dc.py [--model faces64] [--n 48] [--t 900 700 500 300 100]
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # run as a script from anywhere

from diffdemo.modelcard import colour_dc_report  # noqa: E402
from diffdemo.models import load_model  # noqa: E402
from diffdemo.train import load_faces  # noqa: E402


def main(argv=None) -> list[dict]:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", default="faces64")
    ap.add_argument("--n", type=int, default=48, help="training faces used")
    ap.add_argument("--t", type=int, nargs="+", default=[900, 700, 500, 300, 100])
    ap.add_argument("--threads", type=int, default=1)
    args = ap.parse_args(argv)
    torch.set_num_threads(args.threads)
    model = load_model(args.model, device="cpu")
    rows = colour_dc_report(model, load_faces()[: args.n], args.t)
    print(
        "| t | R^2 of the per-channel noise mean | same, predicted from x_t's mean alone | R^2 of eps |"
        " error of x0_hat's mean colour (std, 0..255) |"
    )
    print("|---|---|---|---|---|")
    for r in rows:
        print(
            f"| {r['t']} | {r['r2_dc']:.3f} | {r['r2_dc_from_mean_only']:.3f} | {r['r2_eps']:.4f} | {r['x0_hat_colour_error_255']:.1f} |"
        )
    print(json.dumps(rows))
    return rows


if __name__ == "__main__":
    main()
