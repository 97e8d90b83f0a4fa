"""One study run through the one engine path (``experiments.run_restoration``, or ``experiments.denoising`` for
Figure 1's reverse diffusion): its rows, one per image, each image of a batch scored alone."""

from __future__ import annotations

import hashlib
from collections.abc import Callable

from diffdemo import validation
from diffdemo.study.provenance import code_version, machine
from diffdemo.study.spec import METRICS


def execute(run: dict, model) -> list[dict]:
    """Run one study run (``Run.params``) on ``model`` through the experiments path; its rows (without the study's
    columns), one per image: one, or every image of ``run["batch"]`` run together. A single-image restore run
    makes the problem exactly as ``python -m diffdemo restore`` does, and its row is that command's result."""
    from diffdemo.experiments import Row, denoising, run_restoration
    from diffdemo.imaging import bundled_images, load_image, to_tensor
    from diffdemo.operators import make_operator
    from diffdemo.restore import DIFFUSION_METHODS, make_problem

    p = run
    size = model.size if p.get("size") is None else int(p["size"])
    names = p.get("batch") or [p["image"]]
    x0 = _cat([to_tensor(load_image(bundled_images().get(n, n), size)) for n in names])
    if p["kind"] == "denoise":
        t = validation.check_timestep(int(p["t"]), model.schedule.T, "t")
        steps = int(p["steps"]) if p.get("steps") is not None else None
        run = denoising(model, x0, t, steps=steps, seed=int(p["seed"]), every=None, spacing=p["spacing"],
                        precision=p["precision"])  # fmt: skip
        rows = [r for r in run if isinstance(r, Row)]
        noisy, row = rows
        per = _per_image(row, x0, None, lambda i: noisy_extra(model, noisy, x0, t, i, len(names)))
        method = "denoise"
    else:
        options = dict(box=p["box"], preset=p["box_preset"], drop=p["drop"], std=p["blur_std"])
        op = make_operator(p["operator"], size, kernel_size=p["kernel_size"], mask_seed=p["seed"], **options)
        problem = make_problem(x0, op, p["sigma_y"], p["seed"])
        overrides = {k: p[k] for k in ("steps", "t0", "scale", "zeta", "samples")}
        overrides.update(spacing=p["spacing"], normalize=False if p["raw_dps_step"] else None)
        method = p["method"]
        network = model if method in DIFFUSION_METHODS else None
        (row,) = run_restoration(network, problem, [method], overrides=overrides, precision=p["precision"])
        per = _per_image(row, x0, problem, lambda i: {"psnr_measurement": _psnr(problem.y[i : i + 1], x0[i : i + 1])})
    common = {"method": method, "seconds": row.seconds, "nfe": row.nfe, "precision": row.precision,
              "spacing": row.spacing, "resolved": row.params, "machine": machine(), "code_version": code_version()}  # fmt: skip
    return [{**common, **one, "image": name} for name, one in zip(names, per)]


def _cat(images: list):
    import torch

    return images[0] if len(images) == 1 else torch.cat(images)


def _psnr(x, reference) -> float:
    from diffdemo.metrics import psnr

    return psnr(x, reference)


def noisy_extra(model, noisy, x0, t: int, i: int, n: int) -> dict:
    """Figure 1's metrics of image i's noised input (experiments.noisy_metrics' one definition)."""
    from diffdemo.experiments import noisy_metrics

    if n == 1:
        return {f"{k}_noisy": getattr(noisy, k) for k in METRICS}
    quality = noisy_metrics(model, noisy.reconstruction[i : i + 1], x0[i : i + 1], t)
    return {f"{k}_noisy": quality[k] for k in METRICS}


def _per_image(row, x0, problem, extra: Callable[[int], dict]) -> list[dict]:
    """Each image's metrics: the Row's own for a single image, else each image of the batch scored alone
    (restore.quality_metrics on the image's slice of the problem)."""
    import torch

    from diffdemo.metrics import all_metrics
    from diffdemo.restore import Problem, quality_metrics

    recon = row.reconstruction.detach().cpu().to(torch.float32).contiguous()
    out = []
    for i in range(recon.shape[0]):
        x = recon[i : i + 1]
        if recon.shape[0] == 1:
            quality = {k: getattr(row, k) for k in (*METRICS, "residual")}
        elif problem is None:
            quality = {**all_metrics(x, x0[i : i + 1]), "residual": None}
        else:
            one = Problem(x0[i : i + 1], problem.operator, problem.sigma_y, problem.y[i : i + 1], problem.seed)
            quality = quality_metrics(one, x)
        sha = hashlib.sha256(x.contiguous().numpy().tobytes()).hexdigest()
        out.append({**quality, "extra": extra(i), "recon_sha": sha})
    return out
