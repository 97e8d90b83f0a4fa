"""Figure 10, step allocation (poster section 6, future work): DPS deblurring quality against network evaluations
per timestep spacing, and where each spacing puts its steps on the measured stability profile."""

from __future__ import annotations

import numpy as np

from diffdemo import metrics
from diffdemo.experiments import timesteps_for
from diffdemo.reproduce.reproduction import Reproduction
from diffdemo.reproduce.specs import FIGURES
from diffdemo.spacing import profile_stiffness


# --- Fig. 10: step allocation (poster section 6, future work) ---------------------------------------------------
def fig10_spacings(run: Reproduction) -> None:
    """DPS deblurring quality vs network evaluations per timestep spacing, and where each spacing puts its
    steps over the measured stability profile rho(J_s)(t)."""
    b, spec = run.budget, FIGURES["fig10_spacings"]
    if not b.spacing_nfes:
        return
    profile, names = run.profile(), run.image_names[: b.sweep_images]
    data: dict[str, list] = {}
    for spacing, nfe in run.fig10_plan():
        overrides = {"steps": nfe, "spacing": spacing}  # always named: the default list is not uniform (issue 22)
        runs = [run.restoration(spec.method, "deblur", n, **overrides) for n in names]
        psnr, sd = metrics.mean_sd([r.psnr for r in runs])
        ssim = metrics.mean_sd([r.ssim for r in runs])[0]
        data.setdefault(spacing, []).append(
            {"nfe": nfe, "psnr": psnr, "psnr_sd": sd, "ssim": ssim, "psnr_per_image": [r.psnr for r in runs]}
        )
    top = max(b.spacing_nfes)
    positions = {s: timesteps_for(run.model, top, None, s) for s in data}
    chart = run.figures.line_chart(
        spec.key, spec.chart, spec.xlabel, fig10_panels({"DPS deblurring": data}, positions, profile, top),
        log_y=(1,) if profile is not None else (),
    )  # fmt: skip
    best = {s: max(rows, key=lambda r: r["nfe"]) for s, rows in data.items()}
    sentence = (
        f"DPS Gaussian deblurring ({len(names)} image(s)) with {len(data)} timestep lists at equal network evaluations "
        f"{list(b.spacing_nfes)}: at {top} NFE "
        + ", ".join(f"{s} {r['psnr']:.2f} dB" for s, r in best.items())
        + (
            ". Right: each spacing's steps on the model's measured stiffness (spectral: equal h stiff(J_s) per step; "
            "logsnr: the same rule on 1/(1 - abar_t))."
            if profile is not None
            else "; no stability profile for this model, so no spectral spacing "
            f"(python -m diffdemo profile --model {run.model.name})."
        )
    )
    run.figures.add(spec.key, spec.heading, sentence, [chart])
    run.metrics[spec.key] = {
        "task": "deblur",
        "method": spec.method,
        "images": names,
        "nfe": list(b.spacing_nfes),
        "by_spacing": data,
        "timesteps_at_max_nfe": positions,
        "profile": None if profile is None else {"t": profile["t"], "stiff_Js": profile_stiffness(profile)},
    }


def fig10_panels(curves: dict[str, dict[str, list[dict]]], positions: dict, profile: dict | None, top: int) -> list:
    """Fig. 10, the one drawing (``reproduce`` draws it with ``charts.line_chart_png``):
    for each problem (``curves``: its title -> spacing -> rows of nfe, psnr and psnr_sd) PSNR against network
    evaluations, mean ± sd over the images (``metrics.MEAN_SD``); then, with a stability profile, where each
    spacing puts its ``top`` steps (``positions``) on the measured rho(J_s)(t) (log y: the last panel)."""
    panels = []
    for title, data in curves.items():
        series = [
            {"name": s, "x": [r["nfe"] for r in rows], "y": [r["psnr"] for r in rows],
             "err": [r.get("psnr_sd") or 0.0 for r in rows]}
            for s, rows in data.items()
        ]  # fmt: skip
        panels.append({"ylabel": "PSNR (dB), mean ± sd", "xlabel": f"network evaluations: {title}", "series": series})
    if profile is not None:
        stiff = profile_stiffness(profile)
        rho_at = lambda ts: np.exp(np.interp(ts, profile["t"], np.log(stiff))).tolist()  # noqa: E731
        measured = [{"name": "stiff(J_s)(t), measured (largest |lambda|, Re < 0)", "x": profile["t"], "y": stiff}]
        steps = [{"name": f"{s}: its {top} steps", "x": ts, "y": rho_at(ts)} for s, ts in positions.items()]
        panels.append({"ylabel": "stiff(J_s) at each step", "xlabel": "timestep t", "series": measured + steps})
    return panels
