"""The Spectrum tab: singular values and vectors of J_s and J_f and rho(J_f) across timesteps (Figures 8, 9)."""

from __future__ import annotations

import gradio as gr

from diffdemo.defaults import SPECTRUM_START
from diffdemo.ui import landing
from diffdemo.ui.common import (
    check_value,
    clean_image,
    default_model,
    guarded,
    open_model,
    parse_seed,
    validated,
    within_budget,
)
from diffdemo.ui.runs import Run, estimate, on_failure, on_stop
from diffdemo.ui.widgets import EST, LIGHT, STOPPED, heavy_event, run_row, slider, tab
from diffdemo.zerogpu import gpu

SPECTRUM_TIMESTEPS = ("10", "50", "100", "200", "400", "500", "700", "800", "950")


def claims_panel(model_name) -> str:
    """The poster's claims with the verdicts computed on this model by its last stored reproduce run."""
    from diffdemo.claims import stored_claims_markdown
    from diffdemo.models import ModelUnavailable
    from diffdemo.serving import check_model

    try:
        name = check_model(model_name, default_model())
    except ModelUnavailable:
        return "No claims table: the model is not available here."
    return stored_claims_markdown(name)


@guarded
@gpu
def run_spectrum(
    model_name, image, upload, seed, timesteps, k, iters, progress=gr.Progress(), request: gr.Request = None
):
    """Top singular values / vectors of J_s and J_f and rho(J_f) across timesteps (Figures 8, 9), one t at a time."""
    from diffdemo.analysis import RESIDUAL_TOL
    from diffdemo.experiments import spectra

    model = open_model(model_name)
    seed = parse_seed(seed)
    k, iters = check_value("k", k), check_value("iters", iters)
    ts = validated("check_timesteps", timesteps, model.schedule.T)
    within_budget(("spectrum", {"k": k, "iters": iters, "n_t": len(ts)}))
    x0, _, label = clean_image(model, image, upload)
    run = Run(request, "spectrum", model_name, {"k": k, "iters": iters, "n_t": len(ts)},
              {"image": label, "seed": seed, "k": k, "iters": iters})  # fmt: skip
    results = []

    def report(i, f, msg):
        progress((i + f) / len(ts), desc=f"t = {ts[i]}: {msg}")

    # iters is the cap: the iteration stops once the k values shown meet RESIDUAL_TOL
    for result in spectra(model, x0, ts, k=k, iters=iters, seed=seed, each=True, progress=report, tol=RESIDUAL_TOL):
        results.append(result)
        run.track(len(results), len(ts), {}, timesteps=[r.summary() for r in results])
        views = _spectrum_views(results)
        yield *views, gr.skip(), gr.skip()
    run.done()
    record, files = run.save({}, timesteps=[r.summary() for r in results])
    yield *views, record, files  # the last timestep's views again: three figures cost ~0.3 s to rebuild


def _spectrum_views(results) -> tuple:
    """The tab's three figures and its table, for the timesteps done so far."""
    from diffdemo import plots

    return (
        plots.spectrum_figure(results),
        plots.singular_vectors_figure(results),
        plots.step_limit_figure(results),
        _spectrum_text(results),
    )


def _spectrum_text(results) -> str:
    rows = [
        "| t | sigma_max(J_s) | sigma_max(J_f) | rho(J_f) | Euler step limit h_max | one jump from t may reach | converged |",
        "|---" * 7 + "|",
    ]
    for r in results:
        # max_stride = t + 1: even one jump from t straight to the clean image keeps |1 + h lambda| <= 1
        reach = "t = 0 (any stride)" if r.max_stride >= r.t + 1 else f"t = {r.t - r.max_stride} (stride {r.max_stride})"
        h = "none" if r.h_max == float("inf") else f"{r.h_max:.3g}"
        bad = r.unconverged()
        conv = "yes" if not bad else "**no**: " + ", ".join(bad)
        rows.append(
            f"| {r.t} | {r.sigma_max_Js:.3g} | {r.sigma_max_Jf:.4g} | {r.rho_Jf:.4g} | {h} | {reach} | {conv} |"
        )
    return "\n".join(rows) + _convergence_note(results)


def _convergence_note(results) -> str:
    """One plain sentence when some value shown has not converged (its iteration stopped at the cap)."""
    from diffdemo.analysis import RESIDUAL_TOL

    bad = [r for r in results if r.unconverged()]
    if not bad:
        return ""
    steps = max(max(r.singular_Js.iters, r.eig.iters) for r in bad)
    return (
        f"\n\n**Not converged yet** at t = {', '.join(str(r.t) for r in bad)}: the values marked **no** could still "
        f"change (after {steps} steps their error estimate is above {RESIDUAL_TOL:.1%} of the value). Raise "
        "'Lanczos / Arnoldi steps' under Iteration settings to pin them down; the other numbers have converged."
    )


def spectrum_tab(ui) -> None:
    with tab("Spectrum", "spectrum"):
        with gr.Row(equal_height=False):
            with gr.Column(scale=1, min_width=300):
                sp_ts = gr.CheckboxGroup(
                    list(SPECTRUM_TIMESTEPS), value=[str(t) for t in SPECTRUM_START], label="timesteps"
                )
                sp_run, sp_stop, sp_eta = run_row("Compute", "sp")
                with gr.Accordion("Iteration settings", open=False, elem_classes="advanced"):
                    sp_k = slider("spectrum.k", "singular vectors k")
                    sp_iters = slider("spectrum.iters", "Lanczos / Arnoldi steps")
            with gr.Column(scale=3):
                # Figure 8 first (its own title says what it is), its numbers under it: on screen at 1280x800
                sp_sv = gr.Plot(
                    label="singular values and spectral radius (Figure 8)", elem_id="sp-sv", show_label=False
                )
                sp_md = gr.Markdown(elem_id="sp-md", elem_classes="status")
                sp_vectors = gr.Plot(label="dominant right singular vectors of J_f (Figure 9)", elem_id="sp-vectors")
                sp_rho = gr.Plot(label="explicit-Euler step limit vs the strided step", elem_id="sp-rho")
        with gr.Row(elem_classes="advanced"):
            sp_files = gr.File(label="Download (JSON)", file_count="multiple")
            sp_json = gr.JSON(label="Spectra", open=False)
        with gr.Accordion("The poster's claims on this model (computed verdicts)", open=False):
            claims_md = gr.Markdown()

    def spectrum_eta(model_name, ts, k, iters):
        return estimate(model_name, "spectrum", k=k, iters=iters, n_t=len(ts or []))

    gr.on([ui["load"], ui["model_md"].change, ui["machine_md"].change, sp_ts.change, sp_k.change, sp_iters.change],
          spectrum_eta, [ui["model"], sp_ts, sp_k, sp_iters], sp_eta, **EST)  # fmt: skip
    sp_evt = sp_run.click(
        run_spectrum,
        [*ui["picked"], ui["seed"], sp_ts, sp_k, sp_iters],
        [sp_sv, sp_vectors, sp_rho, sp_md, sp_json, sp_files],
        api_name="spectrum",
        show_progress_on=[sp_md],
        **heavy_event(),
    )
    gr.on([ui["load"], ui["model"].change], claims_panel, ui["model"], claims_md, **LIGHT)
    sp_evt.failure(on_failure("spectrum"), None, sp_md, **LIGHT)
    sp_in = [*ui["picked"], ui["seed"], sp_ts, sp_k, sp_iters]
    landing.register(
        "spectrum", run_spectrum, sp_in, [sp_sv, sp_vectors, sp_rho, sp_md, sp_json, sp_files], 3, "Compute"
    )
    ui["landing_runs"]["spectrum"] = [sp_run]
    sp_evt.success(spectrum_eta, [ui["model"], sp_ts, sp_k, sp_iters], sp_eta, **EST)
    sp_stop.click(on_stop("spectrum"), None, [sp_md, sp_json, sp_files], cancels=[sp_evt], **STOPPED)
