"""The Generate tab: unconditional samples from pure noise (eq. 25)."""

from __future__ import annotations

import math

import gradio as gr

from diffdemo.defaults import SAMPLE
from diffdemo.ui import landing
from diffdemo.ui.common import (
    check_value,
    frame_stride,
    guarded,
    open_model,
    parse_seed,
    parse_spacing,
    view_file,
    within_budget,
)
from diffdemo.ui.runs import Run, estimate, on_failure, on_stop
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


@guarded
@gpu
def run_sample(
    model_name, seed, n, steps, spacing=SAMPLE["spacing"], progress=gr.Progress(), request: gr.Request = None
):
    """Ancestral DDPM sampling from N(0, I) (eq. 25), a grid of x_t and of x0_hat every few steps."""
    from diffdemo.experiments import Sampled, sampling
    from diffdemo.imaging import grid

    model = open_model(model_name)
    seed, n, steps = parse_seed(seed), check_value("n", n), check_value("steps", steps)
    spacing = parse_spacing(model_name, spacing)
    within_budget(("sample", {"n": n, "steps": steps}))
    run = Run(
        request,
        "sample",
        model_name,
        {"n": n, "steps": steps},
        {"seed": seed, "n": n, "steps": steps, "spacing": spacing},
    )
    nrow = math.ceil(math.sqrt(n))  # a square grid: each face as large as the box allows
    for item in sampling(model, n=n, steps=steps, seed=seed, spacing=spacing, every=frame_stride(steps)):
        if isinstance(item, Sampled):
            frame, precision = item.frame, item.precision
            break
        frame = item
        progress(frame.step / frame.total, desc=f"sampling: step {frame.step}/{frame.total}")
        status = f"Step {frame.step}/{frame.total} (t = {frame.t})"
        x_t, x0_hat = (
            view_file(grid(frame.x_t.cpu(), nrow), "samples"),
            view_file(grid(frame.x0_hat.cpu(), nrow), "x0_hats"),
        )
        run.track(frame.step, frame.total, {"x_t": frame.x_t[:1], "x0_hat": frame.x0_hat[:1]})
        yield x_t, x0_hat, status, gr.skip(), gr.skip()
    run.done()
    record, files = run.save({f"sample_{i:02d}": frame.x_t[i : i + 1].cpu() for i in range(n)}, precision=precision)
    done = f"Done: {n} samples, {steps} steps, {run.took()}."
    yield (
        view_file(grid(frame.x_t.cpu(), nrow), "samples"),
        view_file(grid(frame.x0_hat.cpu(), nrow), "x0_hats"),
        done,
        record,
        files,
    )


def generate_tab(ui) -> None:
    with tab("Generate", "generate"):
        with gr.Row(equal_height=False):
            with gr.Column(scale=1, min_width=300):
                sm_n = slider("sample.n", "samples")
                sm_steps = slider("sample.steps", "reverse steps (strided)")
                sm_full = full_quality_box("sm-full")
                sm_run, sm_stop, sm_eta = run_row("Generate", "sm")
            with gr.Column(scale=3):
                with gr.Row():
                    pictures = {"elem_classes": "pixelated", "format": "png", "height": 384}
                    sm_xt = gr.Image(label="x_t: the samples", elem_id="sm-xt", **pictures)
                    sm_x0 = gr.Image(label="x0_hat: the network's guess", elem_id="sm-x0", **pictures)
                sm_md = gr.Markdown(elem_id="sm-status", elem_classes="status")
        with gr.Accordion("Timestep spacing", open=False, elem_classes="advanced"):
            sm_spacing = spacing_menu("sm-spacing", SAMPLE["spacing"])
        with gr.Row(elem_classes="advanced"):
            sm_files = gr.File(label="Download (PNG + JSON)", file_count="multiple")
            sm_json = gr.JSON(label="Parameters", open=False)

    gr.on([ui["load"], ui["model_md"].change, ui["machine_md"].change, sm_n.change, sm_steps.change],
          lambda m, n, s: estimate(m, "sample", n=n, steps=s), [ui["model"], sm_n, sm_steps], sm_eta, **EST)  # fmt: skip
    sm_evt = sm_run.click(
        run_sample,
        [ui["model"], ui["seed"], sm_n, sm_steps, sm_spacing],
        [sm_xt, sm_x0, sm_md, sm_json, sm_files],
        api_name="sample",
        show_progress_on=[sm_md],
        **heavy_event(),
    )
    sm_evt.failure(on_failure("sample"), None, sm_md, **LIGHT)
    sm_out = [sm_xt, sm_x0, sm_md, sm_json, sm_files]
    sm_in = [ui["model"], ui["seed"], sm_n, sm_steps, sm_spacing]
    landing.register("generate", run_sample, sm_in, sm_out, 2, "Generate")
    sm_full.input(lambda on: quality(on, SAMPLE["steps"]), sm_full, [sm_steps, sm_spacing], **LIGHT)
    ui["landing_runs"]["generate"] = [sm_run]
    sm_evt.success(lambda m, n, s: estimate(m, "sample", n=n, steps=s), [ui["model"], sm_n, sm_steps], sm_eta, **EST)
    sm_stop.click(on_stop("sample"), None, [sm_md, sm_json, sm_files], cancels=[sm_evt], **STOPPED)
