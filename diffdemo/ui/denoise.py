"""The Denoise tab: noise a picture to x_t and run the reverse diffusion back (Figure 1's PSNR-vs-t curve too)."""

from __future__ import annotations

import gradio as gr

from diffdemo.defaults import SPACING, UI
from diffdemo.ui import landing
from diffdemo.ui.common import (
    check_value,
    clean_image,
    frame_stride,
    guarded,
    lpips_note,
    number_text,
    open_model,
    parse_seed,
    parse_spacing,
    parse_t,
    strip_html,
    take_live,
    view_file,
    within_budget,
)
from diffdemo.ui.runs import (
    Run,
    estimate,
    on_failure,
    on_stop,
    session_of,
)
from diffdemo.ui.texts import CURVE_NOTE
from diffdemo.ui.widgets import (
    EST,
    LIGHT,
    STOPPED,
    full_quality_box,
    heavy_event,
    quality,
    run_row,
    slider,
    spacing_menu,
    tab,
)
from diffdemo.zerogpu import gpu


def _denoise_table(rows: dict, took: str) -> str:
    """The noisy input's and the result's metrics (the engine's, diffdemo.experiments.denoising), and the time."""
    lines = ["| | PSNR (dB) | SSIM | LPIPS |", "|---|---|---|---|"]
    for name, label in (
        ("noisy", "noised input (left), scored as x_t / sqrt(abar_t)"),
        ("denoise", "denoised (middle)"),
    ):
        r = rows[name]
        lines.append(f"| {label} | {r.psnr:.2f} | {r.ssim:.3f} | {number_text(r.lpips, 3)} |")
    size = rows["denoise"].reconstruction.shape[-1]
    return "\n".join(lines) + lpips_note(rows["denoise"].lpips, size) + f"\n\nDone in {took}."


def _metrics(row) -> dict:
    return {k: getattr(row, k) for k in ("psnr", "ssim", "lpips")}


@guarded
@gpu
def run_denoise(
    model_name, image, upload, seed, t, steps, spacing=SPACING, progress=gr.Progress(), request: gr.Request = None
):
    """Noise the image to x_t (eq. 3), run reverse diffusion back to 0 (eq. 24), streaming x_t and x0_hat: the run
    and its metrics are diffdemo.experiments.denoising's; this handler only formats them."""
    from diffdemo.experiments import Row, denoising

    model = open_model(model_name)
    seed, t = parse_seed(seed), parse_t(model, t)
    steps = check_value("steps", steps)
    spacing = parse_spacing(model_name, spacing)
    within_budget(("denoise", {"t": t, "steps": steps}))
    x0, _, label = clean_image(model, image, upload)
    run = Run(request, "denoise", model_name, {"t": t, "steps": steps},
              {"image": label, "seed": seed, "t": t, "spacing": spacing})  # fmt: skip
    rows, frame, noisy = {}, None, gr.skip()
    for item in denoising(model, x0, t, steps=steps, seed=seed, every=frame_stride(steps), spacing=spacing):
        if isinstance(item, Row):  # first the noisy input (its picture: x_t), last the result
            rows[item.method] = item
            noisy = view_file(item.reconstruction, "noised") if item.method == "noisy" else noisy
            continue
        frame = item.frame
        progress(frame.step / frame.total, desc=f"denoising: step {frame.step}/{frame.total}")
        status = f"Step {frame.step}/{frame.total} (t = {frame.t} -> {max(frame.t_prev, 0)})"
        run.track(frame.step, frame.total, {"clean": x0, "noised": rows["noisy"].reconstruction, "x_t": frame.x_t})
        yield noisy, view_file(frame.x_t, "x_t"), view_file(frame.x0_hat, "x0_hat"), status, gr.skip(), gr.skip()
        noisy = gr.skip()  # sent once
    run.done()
    before, after = rows["noisy"], rows["denoise"]
    images = {"clean": x0, "noised": before.reconstruction, "denoised": after.reconstruction}
    record, files = run.save(images, steps=frame.total, noisy=_metrics(before), denoised=_metrics(after),
                             noisy_scored_as="x_t / sqrt(abar_t)", precision=after.precision)  # fmt: skip
    pictures = (
        view_file(before.reconstruction, "noised"),
        view_file(after.reconstruction, "x_t"),
        view_file(frame.x0_hat, "x0_hat"),
    )
    yield *pictures, _denoise_table(rows, run.took()), record, files


VIEWS = [("Result at t = 0", "result"), ("PSNR vs t (Figure 1)", "curve")]
DN_LABELS = ("noised input x_t", "current x_t (result at t = 0)", "x0_hat (Tweedie's guess)")


@guarded
@gpu
def run_psnr_curve(
    model_name, image, upload, seed, steps, points, spacing=SPACING, progress=gr.Progress(), request: gr.Request = None
):
    """Figure 1: PSNR of the noised input and of its denoising against t, with each denoised picture, streamed."""
    from diffdemo import plots
    from diffdemo.experiments import log_timesteps, psnr_lpips_vs_t

    model = open_model(model_name)
    seed = parse_seed(seed)
    steps, points = check_value("steps", steps), check_value("points", points)
    spacing = parse_spacing(model_name, spacing)
    ts = log_timesteps(model.schedule.T, points)
    within_budget(*[("denoise", {"t": t, "steps": steps}) for t in ts])
    x0, _, _ = clean_image(model, image, upload)
    run = Run(request, "psnr_curve", model_name, {"steps": steps, "points": points, "T": model.schedule.T}, {})
    rows = []
    for i, row in enumerate(psnr_lpips_vs_t(model, x0, ts, steps=steps, seed=seed, spacing=spacing)):
        rows.append(row)
        progress((i + 1) / len(ts), desc=f"t = {row['t']}")
        # the pictures four a row beside a shorter plot: both above the fold at 1280x800
        tiles = [(x0, "clean", "the truth")] + [
            (r["denoised"], f"from t = {r['t']}", f"{r['psnr_denoised']:.1f} dB") for r in rows
        ]
        run.track(i + 1, len(ts), {})
        yield _curve_figure(plots, rows), strip_html(tiles)
    run.done()
    took = f" (done in {run.took()})"
    yield _curve_figure(plots, rows), strip_html(tiles, CURVE_NOTE + took)


def _curve_figure(plots, rows):
    return plots.psnr_vs_t_figure(rows).update_layout(height=340)


def curve_stopped(request: gr.Request = None):
    state = take_live((session_of(request), "psnr_curve"))
    where = f" after {state['step']} of {state['total']} timesteps" if state else ""
    return f"**Stopped{where}: the curve and pictures are partial.**"


def denoise_tab(ui) -> None:
    """Both demos' controls on the left (Denoise, then the PSNR-vs-t curve); on the right one view at a time, the
    denoised pictures or the curve, switched to the one whose button was pressed: each result stays above the fold."""
    with tab("Denoise", "denoise"):
        with gr.Row(equal_height=False):
            with gr.Column(scale=1, min_width=300):  # both Run rows first: above the fold in every view
                dn_run, dn_stop, dn_eta = run_row("Denoise", "dn")
                dn_curve_btn, dn_curve_stop, dn_curve_eta = run_row("Compute the curve", "curve")
                dn_t = slider("denoise.t", "t: noise level (999 = pure noise)", elem_id="dn-t")
                dn_steps = slider("denoise.steps", "reverse steps (strided; at most t + 1 run)")
                dn_points = slider("denoise.points", "PSNR vs t: timesteps (log-spaced)")
                dn_full = full_quality_box(
                    "dn-full", " for both runs on this tab", f"the quick {UI['denoise.steps'][2]} steps, {SPACING} list"
                )
                with gr.Accordion("Timestep spacing", open=False, elem_classes="advanced"):
                    dn_spacing = spacing_menu("dn-spacing")
            with gr.Column(scale=3):
                # one view at a time (a radio, not nested tabs: gradio 6 mislabels the outer tabs with nested ones)
                dn_view = gr.Radio(VIEWS, value="result", show_label=False, container=False, elem_id="dn-view")
                with gr.Column(visible=True) as dn_result_view:
                    with gr.Row():
                        size = {"elem_classes": "pixelated", "format": "png", "height": 232, "show_label": True}
                        dn_noisy, dn_xt, dn_x0 = (
                            gr.Image(label=label, elem_id=f"dn-{key}", **size)
                            for key, label in zip(("noisy", "xt", "x0"), DN_LABELS)
                        )
                    dn_md = gr.Markdown(elem_id="dn-status", elem_classes="status")
                with gr.Column(visible=False) as dn_curve_view:
                    with gr.Row(equal_height=False):
                        with gr.Column(scale=3, min_width=560):  # four 128 px pictures a row at 1280 px
                            dn_strip = gr.HTML(elem_id="curve-strip", min_height=0)
                        with gr.Column(scale=2, min_width=300):
                            dn_curve = gr.Plot(label="PSNR vs t", elem_id="curve-plot", show_label=False)
        with gr.Row(elem_classes="advanced"):
            dn_files = gr.File(label="Download (PNG + JSON)", file_count="multiple")
            dn_json = gr.JSON(label="Parameters and metrics", open=False)

    dn_full.input(lambda on: quality(on, UI["denoise.steps"][2]), dn_full, [dn_steps, dn_spacing], **LIGHT)
    est_in = [ui["model"], dn_t, dn_steps]
    gr.on([ui["load"], ui["model_md"].change, ui["machine_md"].change, dn_t.change, dn_steps.change],
          lambda m, t, n: estimate(m, "denoise", t=t, steps=n), est_in, dn_eta, **EST)  # fmt: skip
    gr.on([ui["load"], ui["model_md"].change, ui["machine_md"].change, dn_points.change, dn_steps.change],
          lambda m, n, p: estimate(m, "psnr_curve", steps=n, points=p),
          [ui["model"], dn_steps, dn_points], dn_curve_eta, **EST)  # fmt: skip
    dn_view.change(lambda v: (gr.Column(visible=v == "result"), gr.Column(visible=v == "curve")), dn_view,
                   [dn_result_view, dn_curve_view], **STOPPED)  # fmt: skip
    dn_run.click(lambda: "result", None, dn_view, **STOPPED)
    dn_curve_btn.click(lambda: "curve", None, dn_view, **STOPPED)
    dn_evt = dn_run.click(
        run_denoise,
        [*ui["picked"], ui["seed"], dn_t, dn_steps, dn_spacing],
        [dn_noisy, dn_xt, dn_x0, dn_md, dn_json, dn_files],
        api_name="denoise",
        show_progress_on=[dn_md],
        **heavy_event(),
    )
    dn_evt.failure(on_failure("denoise"), None, dn_md, **LIGHT)
    dn_in = [*ui["picked"], ui["seed"], dn_t, dn_steps, dn_spacing]
    landing.register("denoise", run_denoise, dn_in, [dn_noisy, dn_xt, dn_x0, dn_md, dn_json, dn_files], 3, "Denoise")
    curve_in = [*ui["picked"], ui["seed"], dn_steps, dn_points, dn_spacing]
    landing.register("curve", run_psnr_curve, curve_in, [dn_curve, dn_strip], 1, "Compute the curve", html_status=True)
    ui["landing_runs"].update(denoise=[dn_run], curve=[dn_curve_btn])
    dn_evt.success(lambda m, t, n: estimate(m, "denoise", t=t, steps=n), est_in, dn_eta, **EST)
    curve_evt = dn_curve_btn.click(
        run_psnr_curve,
        [*ui["picked"], ui["seed"], dn_steps, dn_points, dn_spacing],
        [dn_curve, dn_strip],
        api_name="psnr_vs_t",
        show_progress_on=[dn_curve],
        **heavy_event(),
    )
    dn_stop.click(on_stop("denoise"), None, [dn_md, dn_json, dn_files], cancels=[dn_evt], **STOPPED)
    curve_evt.success(lambda m, n, p: estimate(m, "psnr_curve", steps=n, points=p),
                      [ui["model"], dn_steps, dn_points], dn_curve_eta, **EST)  # fmt: skip
    dn_curve_stop.click(curve_stopped, None, dn_curve_eta, cancels=[curve_evt], **STOPPED)
