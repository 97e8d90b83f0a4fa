"""Figures 8 and 9 from one spectrum sweep: singular values of J_s, the spectral radius of J_f against t, and the
dominant right singular vectors of J_f over time (with the claims table's measures of their structure)."""

from __future__ import annotations

import numpy as np
import torch

from diffdemo.experiments import spectra as spectrum_results
from diffdemo.reproduce.reproduction import Reproduction, spectrum_units
from diffdemo.reproduce.specs import FIGURES


def _vector_structure(vectors: torch.Tensor, image: torch.Tensor) -> dict:
    """The claims table's stand-in for 'interpretable' singular vectors (Fig. 9): smoothness and image correlation."""
    from diffdemo.claims import image_correlation, smoothness

    img = image[0].numpy()
    sm = [smoothness(v.numpy()) for v in vectors]
    co = [image_correlation(v.numpy(), img) for v in vectors]
    return {"smoothness": sm, "image_correlation": co, "smoothness_mean": float(np.mean(sm)),
            "image_correlation_mean": float(np.mean(co))}  # fmt: skip


def spectra(run: Reproduction) -> None:
    """Figs. 8 and 9 from one spectrum sweep (subspace + Arnoldi iteration on J_s and J_f)."""

    b, ts = run.budget, run.timesteps("spectrum_ts")
    run.bar.set_postfix_str("spectra (subspace + Arnoldi iteration)", refresh=False)
    results = list(spectrum_results(
        run.model, run.images[run.image_names[0]], ts, k=b.spectrum_k, iters=b.spectrum_iters, seed=run.seed,
        steps=b.steps, max_batch=16, tol=b.spectrum_tol,
    ))  # fmt: skip
    run.bar.update(spectrum_units(run))
    fig8_spectrum(run, results, ts)
    fig9_singular_vectors(run, results, ts)


def fig8_spectrum(run: Reproduction, results: list, ts: list[int]) -> None:
    from diffdemo import plots

    b, spec = run.budget, FIGURES["fig8_spectrum"]
    panels = [
        {
            "ylabel": "singular values of J_s",
            "series": [
                {"name": f"sigma_{i + 1}(J_s)", "x": ts, "y": [float(r.singular_Js.values[i]) for r in results]}
                for i in range(b.spectrum_k)
            ],
        },
        {
            "ylabel": "J_f: sigma_max and spectral radius",
            "series": [
                {"name": "sigma_max(J_f)", "x": ts, "y": [r.sigma_max_Jf for r in results]},
                {"name": "rho(J_f)", "x": ts, "y": [r.rho_Jf for r in results]},
            ],
            "hlines": [{"name": "1 (stability boundary)", "y": 1.0}],
        },
    ]
    chart = run.figures.line_chart(spec.key, spec.chart, spec.xlabel, panels, html=False, log_y=(0,))
    figs = [plots.spectrum_figure(results), plots.step_limit_figure(results)]
    html = run.figures.html_page(spec.key, "Fig. 8 - spectra vs t", figs)
    js, rho = [r.sigma_max_Js for r in results], [r.rho_Jf for r in results]
    sentence = (
        f"Top singular value of J_s from {js[0]:.3g} at t={ts[0]} to {js[-1]:.3g} at t={ts[-1]} and spectral "
        f"radius of the one-step reverse map rho(J_f) from {rho[0]:.4g} to {rho[-1]:.4g} ("
        f"{results[0].singular_Js.iters} Lanczos / {results[0].eig.iters} Arnoldi iterations, JVP + VJP only, no "
        f"Jacobian materialised; {sum(r.all_converged for r in results)} of {len(results)} timesteps with every value "
        "shown converged)."
    )
    run.figures.add(spec.key, spec.heading, sentence, [{"png": chart["png"], "html": html}])
    run.metrics[spec.key] = {"timesteps": ts, "results": [r.summary() for r in results]}


def fig9_singular_vectors(run: Reproduction, results: list, ts: list[int]) -> None:
    from diffdemo import pictures, plots

    b, spec = run.budget, FIGURES["fig9_singular_vectors"]
    rows = [
        (
            f"t={r.t}",
            [
                (f"v{i + 1}, sigma={float(sv.values[i]):.3g}", pictures.vector_image(sv.right[i], 64))
                for i in range(len(sv.values))
            ],
        )
        for r in results
        for sv in (r.singular_Jf,)
    ]
    png = run.figures.image_table(spec.key, spec.chart, rows, html=False)
    figs = [plots.singular_vectors_figure(results, "Jf"), plots.singular_vectors_figure(results, "Js")]
    html = run.figures.html_page(spec.key, "Fig. 9 - dominant singular vectors over t", figs)
    res = max(float(r.singular_Jf.residual.max()) for r in results)
    sentence = (
        f"The top {b.spectrum_k} right singular vectors of J_f at each t (RGB, zero = grey), from "
        f"{results[0].singular_Jf.iters} Lanczos iterations (largest residual ||J^T u - sigma v|| / sigma = "
        f"{res:.2g}; more iterations sharpen them)."
    )
    run.figures.add(spec.key, spec.heading, sentence, [{"png": png["png"], "html": html}])
    x0 = run.images[run.image_names[0]]
    run.metrics[spec.key] = {
        "operator": "J_f",
        "timesteps": ts,
        "singular_values": [r.singular_Jf.values.tolist() for r in results],
        "residuals": [r.singular_Jf.residual.tolist() for r in results],
        "iters": [r.singular_Jf.iters for r in results],
        "structure": [_vector_structure(r.singular_Jf.right, x0) for r in results],
    }
