"""The Sensitivity tab: Jacobian columns at a clicked pixel and their energy vs radius (eqs. 31-34, Figure 7)."""

from __future__ import annotations

import gradio as gr

from diffdemo.ui import landing
from diffdemo.ui.common import (
    clean_image,
    default_model,
    enlarged_file,
    guarded,
    model_if_loaded,
    open_model,
    parse_seed,
    parse_t,
    validated,
    within_budget,
    zoom_for,
)
from diffdemo.ui.runs import Run, estimate, on_failure, on_stop
from diffdemo.ui.widgets import EST, LIGHT, STOPPED, heavy_event, picker_changes, run_row, slider, tab
from diffdemo.zerogpu import gpu

SWEEP_TIMESTEPS = (20, 50, 100, 200, 400, 700)
LANDING_PIXEL = (0.36, 0.45)  # the landing view's probe, as fractions of the side: under the bundled face's left eye


def _landing_pixel(axis: int, model_name: str | None = None) -> int:
    """The landing probe's column (axis 0) or row (1) on the default model, open by the time the landing runs."""
    return int(LANDING_PIXEL[axis] * model_if_loaded(model_name or default_model()).size)


def noised_view(model_name, image, upload, seed, t):
    """The noised image x_t the probe works on (eq. 3, seeded); None (and a note) when there is no image yet."""
    from diffdemo.analysis import state_at

    try:
        model = model_if_loaded(model_name)
        x0, _, _ = clean_image(model, image, upload)
        t = parse_t(model, t)
    except gr.Error as exc:
        return None, f"{exc.message}"
    return enlarged_file(
        state_at(model, x0, t, parse_seed(seed)), "x_t_view"
    ), "Click a pixel of the noised image x_t to probe it."


def first_view(model_name, image, upload, seed, t, shown):
    """The tab opened: x_t to click, unless a picture is shown already (a probe's or the landing view's)."""
    if shown is not None:
        return gr.skip(), gr.skip()
    return noised_view(model_name, image, upload, seed, t)


def pick_pixel(model_name, evt: gr.SelectData):
    """A click at (x, y) in the enlarged picture -> the model pixel under it (and 'a pixel was probed')."""
    f = zoom_for(model_if_loaded(model_name).size)
    x, y = evt.index
    return int(x) // f, int(y) // f, True


@guarded
@gpu
def run_probe(model_name, image, upload, seed, t, x, y, energy_on, progress=gr.Progress(), request: gr.Request = None):
    """Jacobian columns of J_s, J_f and J_D at the clicked pixel (eqs. 31-34), energy vs radius over t (Fig. 7)."""
    from diffdemo import plots
    from diffdemo.experiments import probing

    model = open_model(model_name)
    seed, t = parse_seed(seed), parse_t(model, t)
    x, y = validated("check_pixel", x, y, model.size)
    energy_on = validated("check_choice", "energy on", energy_on, ("denoiser", "score"))
    exclude = energy_on == "score"  # raw J_s: drop the centre pixel, else its identity-like peak dominates
    within_budget(("probe", {"sweep": len(SWEEP_TIMESTEPS) + 1}))
    x0, _, label = clean_image(model, image, upload)
    sweep = sorted({*SWEEP_TIMESTEPS, t})
    sweep = [s for s in sweep if s < model.schedule.T]
    run = Run(request, "probe", model_name, {"sweep": len(sweep)}, {"image": label, "seed": seed})
    progress(0.1, desc="Jacobian column at t")
    found = probing(model, x0, t, (x, y), seed=seed, sweep=sweep, energy_on=energy_on, exclude_centre=exclude)
    result = next(found)
    x_t = result.x_t
    run.track(1, 2, {"x_t": x_t}, **result.summary())
    view = enlarged_file(x_t, "x_t_view")
    yield view, plots.probe_figure(result), gr.skip(), _probe_text(result, None), gr.skip(), gr.skip()
    progress(0.5, desc="energy vs radius across timesteps")
    curves = next(found)
    run.done()
    record, files = run.save({"x_t": x_t}, **result.summary(), sweep=[c.summary() for c in curves])
    yield view, plots.probe_figure(result), plots.energy_figure(curves), _probe_text(result, curves), record, files


def _probe_text(result, curves) -> str:
    e = result.energy
    err = result.fd_vs_jvp_rel_err
    err_text = "unavailable" if err is None else f"{err:.1e}"
    lines = [
        "**Telling the maps apart:** the score map is how the network's pull on the image responds, the reverse-step "
        "map what one sampler step does with the nudge, the denoiser map how the clean-image guess responds. Away "
        "from the probed pixel they are one picture at three scales (eq. 34 adds the identity only at the pixel "
        "itself): compare the colour bars and the probed pixel's own value above each map.",
        f"**Pixel ({result.pixel[0]}, {result.pixel[1]}) at t = {result.t}.** On {e.label}: half of the response's "
        f"energy lies within **r50 = {e.r50:.1f} px** of the pixel and 90% within **r90 = {e.r90:.1f} px**; it is "
        f"spread like **{e.n_eff:.1f} pixels** sharing it equally (effective pixels, (sum v^2)^2 / sum v^4).",
        f"Cheap finite difference (eps = {result.eps:g}) against the exact derivative (JVP): relative error "
        f"{err_text} (small: the cheap estimate of eq. 32 can be trusted).",
    ]
    if curves:
        lines.append(
            "Across t (r50 / r90, px): " + ", ".join(f"t={c.t}: {c.r50:.1f} / {c.r90:.1f}" for c in curves) + "."
        )
    return "\n\n".join(lines)


def reprobe(
    model_name, image, upload, seed, t, x, y, energy_on, probed, progress=gr.Progress(), request: gr.Request = None
):
    """The t slider moved: show the new x_t, and re-probe the same pixel if one was probed already."""
    if not probed or x is None or y is None:
        view, note = noised_view(model_name, image, upload, seed, t)
        yield view, gr.skip(), gr.skip(), note, gr.skip(), gr.skip()
        return
    yield from run_probe(model_name, image, upload, seed, t, x, y, energy_on, progress, request)


def sensitivity_tab(ui) -> None:
    with tab("Sensitivity", "sensitivity") as sens_tab:
        with gr.Row(equal_height=False):
            with gr.Column(scale=1, min_width=280):
                sens_probe, sens_stop, sens_eta = run_row("Probe", "sens", eta_below=False)
                sens_image = gr.Image(
                    label="noised image x_t: click a pixel",
                    interactive=False,
                    elem_id="sens-image",
                    format="png",
                    height=240,
                    buttons=[],
                )
                sens_eta.render()
                sens_t = slider("probe.t", "t (re-probes the same pixel)", elem_id="sens-t")
                with gr.Row():
                    sens_x = gr.Number(None, label="x (column)", minimum=0, elem_id="sens-x")
                    sens_y = gr.Number(None, label="y (row)", minimum=0)
                sens_probed = gr.State(False)
                with gr.Accordion("Energy settings", open=False, elem_classes="advanced"):
                    sens_on = gr.Radio(
                        [("denoiser J_D", "denoiser"), ("score J_s, centre excluded", "score")],
                        value="denoiser",
                        label="energy computed on",
                    )
            with gr.Column(scale=3):
                sens_maps = gr.Plot(label="Jacobian columns", elem_id="sens-maps", show_label=False)
                sens_md = gr.Markdown(elem_id="sens-md", elem_classes="status")
                sens_energy = gr.Plot(label="energy vs radius", elem_id="sens-energy", show_label=False)
        with gr.Row(elem_classes="advanced"):
            sens_files = gr.File(label="Download (PNG + JSON)", file_count="multiple")
            sens_json = gr.JSON(label="Probe", open=False)

    gr.on([ui["load"], ui["model_md"].change, ui["machine_md"].change], eta_probe, ui["model"], sens_eta, **EST)
    probe_out = [sens_image, sens_maps, sens_energy, sens_md, sens_json, sens_files]
    gr.on(
        [*picker_changes(ui), ui["seed"].change],
        noised_view,
        [*ui["picked"], ui["seed"], sens_t],
        [sens_image, sens_md],
        **LIGHT,
    )
    # opening the tab shows x_t to click, unless a picture (a probe's, or the landing view's) is there already
    gr.on(
        [sens_tab.select], first_view, [*ui["picked"], ui["seed"], sens_t, sens_image], [sens_image, sens_md], **LIGHT
    )
    probe_in = [*ui["picked"], ui["seed"], sens_t, sens_x, sens_y, sens_on]
    heavy = dict(heavy_event(), show_progress_on=[sens_maps])
    click_evt = sens_image.select(pick_pixel, ui["model"], [sens_x, sens_y, sens_probed], **LIGHT).then(
        run_probe, probe_in, probe_out, api_name="probe", **heavy
    )
    button_evt = sens_probe.click(lambda: True, None, sens_probed, **LIGHT).then(
        run_probe, probe_in, probe_out, api_visibility="private", **heavy
    )
    reprobe_evt = gr.on(
        [sens_t.release, sens_on.change],
        reprobe,
        [*probe_in, sens_probed],
        probe_out,
        api_visibility="private",
        trigger_mode="always_last",
        **heavy,
    )
    landing.register("sensitivity", run_probe, probe_in, probe_out, 3, "Probe (or click a pixel)",
                     overrides={5: lambda: _landing_pixel(0), 6: lambda: _landing_pixel(1)})  # fmt: skip
    ui["landing_runs"]["sensitivity"] = [sens_probe]
    for evt in (click_evt, button_evt, reprobe_evt):
        evt.failure(on_failure("probe"), None, sens_md, **LIGHT)
        evt.success(eta_probe, ui["model"], sens_eta, **EST)
    sens_stop.click(
        on_stop("probe"),
        None,
        [sens_md, sens_json, sens_files],
        cancels=[click_evt, button_evt, reprobe_evt],
        **STOPPED,
    )


def eta_probe(model_name):
    return estimate(model_name, "probe", sweep=len(SWEEP_TIMESTEPS) + 1)
