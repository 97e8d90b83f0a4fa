"""Figures 6 and 7 (the analysis module): columns of the score, reverse-step and denoiser Jacobians at a few
pixels of a noised face, and how far one pixel's nudge reaches (energy vs radius) across timesteps."""

from __future__ import annotations

import numpy as np

from diffdemo.experiments import energy_curves, probing
from diffdemo.imaging import to_uint8
from diffdemo.reproduce.reproduction import Reproduction, units
from diffdemo.reproduce.specs import FIGURES


# --- Fig. 6 -----------------------------------------------------------------------------------------------------
def fig6_sensitivity(run: Reproduction) -> None:
    from diffdemo import analysis, pictures, plots

    b, model, spec = run.budget, run.model, FIGURES["fig6_sensitivity"]
    t = min(b.probe_t, model.schedule.T - 1)
    x_t = analysis.state_at(model, run.images[run.image_names[0]], t, run.seed)
    factor = max(1, 128 // run.size)
    big = np.repeat(np.repeat(to_uint8(x_t), factor, axis=0), factor, axis=1)
    results, rows = [], []
    for name, pixel in run.probe_pixels():
        run.bar.set_postfix_str(f"probe {name} t={t}", refresh=False)
        r = next(probing(model, run.images[run.image_names[0]], t, pixel, seed=run.seed, energy_on="denoiser"))
        run.bar.update(units("probe", sweep=0))
        results.append((name, r))
        cells = [(f"x_t, t={t}", pictures.mark_pixel(big, pixel, factor))]
        cells += [
            (f"{analysis.LABELS[k]} column", pictures.column_image(r.columns[k], pixel, min_side=128))
            for k in analysis.KINDS
        ]
        rows.append((f"{name} {pixel}", cells))
    png = run.figures.image_table(spec.key, f"{spec.chart} (Jacobian columns) at t={t}", rows, html=False)
    html_name = run.figures.html_page(spec.key, spec.chart, [plots.probe_figure(r) for _, r in results])
    errs = [r.fd_vs_jvp_rel_err for _, r in results if r.fd_vs_jvp_rel_err is not None]
    r90 = [r.energy.r90 for _, r in results]
    sentence = (
        f"Columns J e_i of the score Jacobian J_s, the reverse step J_f (eq. 34) and the denoiser J_D at t={t} for "
        f"{len(results)} pixels of a noised face, exact by forward-mode AD (central differences differ by "
        f"{max(errs):.1e} relative at most): a one-pixel nudge moves the denoised image within r90 = "
        + ", ".join(f"{v:.1f}" for v in r90)
        + " px (blue/red: negative/positive response, colour scale set away from the probed pixel)."
    )
    run.figures.add(spec.key, spec.heading, sentence, [{"png": png["png"], "html": html_name}])
    run.metrics[spec.key] = {
        "t": t,
        "image": run.image_names[0],
        "probes": [{"name": name, **r.summary()} for name, r in results],
    }


# --- Fig. 7 -----------------------------------------------------------------------------------------------------
def _energy_curves(run: Reproduction, name: str, pixel: tuple[int, int], ts: list[int]) -> tuple[list, list]:
    """One pixel's energy curves on image ``name``, centre pixel excluded as the claim says: on J_D and on J_s.

    Both come from one central-difference sweep: J_D = a I + b J_s (Tweedie, eq. 11) differs from b J_s only at the
    centre pixel, so with the centre excluded their fractions agree (kept both, the claim text names both).
    """
    from diffdemo import analysis

    jd = energy_curves(run.model, run.images[name], pixel, ts, seed=run.seed, energy_on="denoiser", exclude_centre=True)
    js = []
    for c in jd:
        a, b = analysis.affine_coefficients(run.model, "denoiser", c.t)
        col = (c.column - a * analysis.pixel_basis(c.column.shape, pixel)[0]) / b
        js.append(analysis.energy_vs_radius(col, pixel, True, "J_s", c.t))
    return jd, js


def fig7_energy(run: Reproduction) -> None:
    from diffdemo import plots

    spec, ts = FIGURES["fig7_energy"], run.timesteps("energy_ts")
    per_pixel, js_curves = {}, {}
    for name, pixel in run.probe_pixels():
        run.bar.set_postfix_str(f"energy sweep {name}", refresh=False)
        curves, js_curves[name] = _energy_curves(run, run.image_names[0], pixel, ts)
        per_pixel[name] = (pixel, curves)
        run.bar.update(units("energy", n_t=len(ts)))
    first_name, (first_pixel, curves) = next(iter(per_pixel.items()))
    label = curves[0].label
    title = spec.chart.replace("energy vs radius", f"energy vs radius on {label}")
    chart = run.figures.line_chart(spec.key, title, spec.xlabel, _energy_panels(per_pixel, ts), html=False)
    figs = [plots.energy_figure(curves)] + [plots.energy_summary_figure(cs) for _, cs in per_pixel.values()]
    html_name = run.figures.html_page(spec.key, spec.chart, figs)
    r50 = ", ".join(f"{c.r50:.0f}" for c in curves)
    r90 = ", ".join(f"{c.r90:.0f}" for c in curves)
    sentence = (
        f"Fraction of the squared response of {label} within radius r of the {first_name} pixel {first_pixel}, "
        f"for t = {', '.join(map(str, ts))}: r50 = {r50} px and r90 = {r90} px (J_s with the centre excluded gives "
        "the same fractions: J_D differs from it only at the centre; right panels: every probed pixel)."
    )
    run.figures.add(spec.key, spec.heading, sentence, [{"png": chart["png"], "html": html_name}])
    run.metrics[spec.key] = {
        "on": label,
        "also_on": js_curves[first_name][0].label,
        "image": run.image_names[0],
        "other_images": _energy_other_images(run, ts),
        "timesteps": ts,
        "pixels": {
            n: {
                "pixel": list(p),
                "curves": [{**c.summary(), "fraction": c.fraction.tolist()} for c in cs],
                "curves_Js": [c.summary() for c in js_curves[n]],
            }
            for n, (p, cs) in per_pixel.items()
        },
    }


def _energy_panels(per_pixel: dict, ts: list[int]) -> list[dict]:
    first_name, (_, curves) = next(iter(per_pixel.items()))
    return [
        {
            "ylabel": f"energy fraction within r ({first_name})",
            "xlabel": "radius r (px)",
            "ylim": (0.0, 1.02),
            "series": [{"name": f"t={c.t}", "x": c.radii.tolist(), "y": c.fraction.tolist()} for c in curves],
        },
        {
            "ylabel": "r50 / r90 (px)",
            "xlabel": "timestep t",
            "series": [
                {"name": f"{q} {n}", "x": ts, "y": [getattr(c, q) for c in cs]}
                for n, (_, cs) in per_pixel.items()
                for q in ("r50", "r90")
            ],
        },
        {
            "ylabel": "effective pixels n_eff",
            "xlabel": "timestep t",
            "series": [{"name": n, "x": ts, "y": [c.n_eff for c in cs]} for n, (_, cs) in per_pixel.items()],
        },
    ]


def _energy_other_images(run: Reproduction, ts: list[int]) -> dict:
    """The energy sweeps of the claims table's further faces (the figure shows the first)."""
    others = {}
    for n in run.image_names[1 : max(1, run.budget.claim_images)]:
        run.bar.set_postfix_str(f"energy sweeps {n}", refresh=False)
        others[n] = {}
        for name, pixel in run.probe_pixels():
            jd, js = _energy_curves(run, n, pixel, ts)
            others[n][name] = {"pixel": list(pixel), "curves": [c.summary() for c in jd],
                               "curves_Js": [c.summary() for c in js]}  # fmt: skip
        run.bar.update(units("energy", n_t=len(ts)) * len(run.probe_pixels()))
    return others
