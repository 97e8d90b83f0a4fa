"""The Inverse problems tab: one measurement y = A x0 + sigma_y n restored by SDEdit, Score-ALD, DPS, or all of them
with the classical baselines."""

from __future__ import annotations

import gradio as gr

from diffdemo.defaults import DEFAULTS, MEASUREMENT, SIGMA_Y, params_for
from diffdemo.labels import METHOD_TITLES
from diffdemo.ui import landing
from diffdemo.ui.common import (
    check_value,
    clean_image,
    frame_stride,
    guarded,
    lpips_note,
    open_model,
    parse_seed,
    parse_spacing,
    parse_t,
    refuse,
    validated,
    within_budget,
)
from diffdemo.ui.restore_form import (
    METHOD_CHOICES,
    OPERATOR_CHOICES,
    blur_defaults,
    follow_steps,
    full_quality,
    mask_canvas,
    mask_editor,
    method_widgets,
    operator_widgets,
    precision_choice,
    samples_default,
    settings,
    spacing_default,
    steps_default,
    task_defaults,
)
from diffdemo.ui.restore_view import STRIP_JS, RunView
from diffdemo.ui.runs import Run, estimate, on_failure, on_stop
from diffdemo.ui.widgets import (
    EST,
    LIGHT,
    STOPPED,
    full_quality_box,
    heavy_event,
    picker_changes,
    run_row,
    slider,
    tab,
)
from diffdemo.zerogpu import gpu


def _operator(model, operator, blur_std, kernel_size, box, drop, mask_layers, seed):
    from diffdemo.operators import OPERATORS, DrawnMask, hole_from_layers, make_operator

    validated("check_choice", "operator", operator, OPERATORS)
    size = model.size
    try:
        if operator == "box_inpaint" and box == "drawn":
            hole = hole_from_layers((mask_layers or {}).get("layers") or [], size)
            if not hole.any():
                raise refuse("The drawn mask is empty: paint over the region to hide in the mask editor.")
            return DrawnMask(hole)
        if operator == "gaussian_blur":
            std, k = check_value("blur_std", blur_std), check_value("kernel_size", kernel_size)
            if k // 2 >= size:
                raise refuse(f"A {k}x{k} kernel is too large for a {size} px image.")
            return make_operator(operator, size, std=std, kernel_size=k)
        if operator == "random_inpaint":
            return make_operator(operator, size, drop=check_value("drop", drop), mask_seed=seed)
        return make_operator(operator, size, preset=box if box != "drawn" else None)
    except ValueError as exc:
        raise refuse(str(exc)) from None


def methods_for(method: str, operator: str) -> list[str]:
    if method == "compare":
        from diffdemo.experiments import compared

        return compared(operator)
    return [validated("check_choice", "method", method, ("sdedit", "score_ald", "dps", "compare"))]


def _ranking_note(steps: int, operator: str) -> str:
    """Quick settings can reverse the poster's ordering: say so where it happens."""
    tuned = DEFAULTS["dps"]["steps"]
    if steps >= tuned or operator == "noise":
        return ""
    return (
        f" **{steps} steps is fewer than the tuned default ({tuned}):** with so few steps the classical methods (total "
        f"variation, Wiener) can beat the diffusion methods."
    )


def _own_chains(methods: list[str], operator: str) -> dict[str, dict]:
    """Each diffusion method's own tuned number of chains for this operator (diffdemo/defaults.py), by its kind."""
    return {estimate_kind(m): {"samples": int(params_for(m, operator).get("samples", 1))} for m in methods}


def compare_plan(operator: str, steps, t0) -> str:
    """What Compare all runs, in one line: each diffusion method with its steps and chains, the network evaluations
    in all (diffdemo/estimates.py's count), then the classical baselines."""
    from diffdemo.estimates import evaluations, image_evaluations
    from diffdemo.spacing import steps_from

    methods = methods_for("compare", operator)
    parts, total = [], 0
    for m, own in _own_chains(methods, operator).items():
        work = {"steps": int(steps or 1), "t0": int(t0 or 1), **own}
        total += image_evaluations(evaluations(m, **work))
        ran = steps_from(work["steps"], work["t0"]) if m == "sdedit" else work["steps"]
        chains = own["samples"]
        where = f"from t0 = {work['t0']}, " if m == "sdedit" else ""
        title = METHOD_TITLES["denoise" if m == "denoise_restore" else m]
        parts.append(f"{title} ({where}{ran} steps, {chains} chain{'s' if chains > 1 else ''})")
    classical = {"gaussian_blur": "Wiener, Richardson-Lucy, total variation", "noise": "total variation"}
    return (
        f"**Compare all runs** {', '.join(parts)}: {total} image evaluations of the network; then "
        f"{classical.get(operator, 'total variation, biharmonic')} (no network)."
    )


def estimate_kind(method: str) -> str:
    """The estimates' name of a method's work (the noise-only comparison's plain denoising is its own kind)."""
    return "denoise_restore" if method == "denoise" else method


def _overrides(model, model_name, steps, t0, zeta, scale, dps_normalize, samples, spacing) -> dict:
    """The run's parameters, each checked by the one rule (diffdemo/validation.py), in the form's order."""
    return {
        "steps": check_value("steps", steps),
        "t0": parse_t(model, t0, "t0"),
        "zeta": check_value("zeta", zeta),
        "scale": check_value("scale", scale),
        "normalize": validated("check_flag", "DPS normalize", dps_normalize),
        "samples": check_value("samples", samples),
        "spacing": parse_spacing(model_name, spacing) if spacing else None,  # None: each method's own list
    }


def _done(run, rows: list[dict], methods: list[str], operator: str, size: int) -> str:
    """The last status line: the time against the estimate, the measurement's PSNR and the best method's."""
    best = max(rows, key=lambda r: r["psnr"])
    return (
        f"Done in {run.took()}. Measurement PSNR {run.base['psnr_measurement']:.2f} dB; "
        f"best: {METHOD_TITLES[best['method']]} {best['psnr']:.2f} dB."
        + (_ranking_note(run.work["steps"], operator) if best["method"] not in methods else "")
        + lpips_note(best["lpips"], size)
    )


@guarded
@gpu
def run_restore(
    model_name,
    image,
    upload,
    seed,
    operator,
    blur_std,
    kernel_size,
    box,
    drop,
    sigma_y,
    method,
    t0,
    zeta,
    scale,
    steps,
    mask_layers=None,
    dps_normalize=True,
    samples=1,
    precision="auto",
    spacing=None,
    progress=gr.Progress(),
    request: gr.Request = None,
):
    """One measurement y = A x0 + sigma_y n; SDEdit, Score-ALD, DPS or all of them plus the classical baselines,
    on the same y, noise draw and seed (diffdemo.experiments.restoration), streaming each method's frames and
    its PSNR / residual per step. This handler only checks the inputs and formats what the engine yields."""
    from diffdemo.experiments import restoration
    from diffdemo.metrics import mean_psnr
    from diffdemo.precision import check_precision
    from diffdemo.restore import make_problem

    model = open_model(model_name)
    seed, sigma_y = parse_seed(seed), check_value("sigma_y", sigma_y)
    params = _overrides(model, model_name, steps, t0, zeta, scale, dps_normalize, samples, spacing)
    methods = methods_for(method, operator)
    if method == "compare":  # each diffusion method at its own tuned number of chains (params_for), not one for all
        params["samples"] = None
    work = {k: params[k] for k in ("steps", "t0", "samples")}
    own = _own_chains(methods, operator) if method == "compare" else {}
    within_budget(*[(estimate_kind(m), {**work, **own.get(estimate_kind(m), {})}) for m in methods])
    x0, _, label = clean_image(model, image, upload)
    op = _operator(model, operator, blur_std, kernel_size, box, drop, mask_layers, seed)
    problem = make_problem(x0, op, sigma_y, seed)
    base = {"image": label, "seed": seed, "operator": op.describe(), "sigma_y": sigma_y,
            "sigma_y_units": f"[-1, 1] image units ({SIGMA_Y:g} = {SIGMA_Y / 2:g} on a [0, 1] scale)", "method": method,
            "params": params, "psnr_measurement": mean_psnr(problem.y, x0)}  # fmt: skip
    if own:
        base["chains"] = {m: own[estimate_kind(m)]["samples"] for m in methods}  # Compare all: each method's own
    kinds = [estimate_kind(m) for m in methods]
    compared = {k: own.get(k, {}) for k in kinds}
    run = Run(request, "restore", model_name, work, base, kind=kinds[0], kinds=None if len(kinds) == 1 else compared)
    shown = RunView(methods, x0, problem.y)
    every = frame_stride(params["steps"], 12 if len(methods) == 1 else 8)
    items = restoration(model, problem, methods, overrides=params, precision=check_precision(precision or "auto"),
                        every=every, baselines=method == "compare")  # fmt: skip
    yield from _stream(items, shown, run, problem, progress)
    record, files = _finish(run, shown, methods, own, problem)
    yield shown.outputs(_done(run, shown.rows, methods, operator, x0.shape[-1]), record, files)


def _stream(items, shown: RunView, run, problem, progress):
    """The tab's outputs after each streamed frame of ``experiments.restoration``'s ``items`` (closed at the end,
    also when the run is stopped); what Stop would save is kept up to date with them."""
    from diffdemo.experiments import Skipped, Step

    try:
        for item in items:
            if isinstance(item, Skipped):  # a baseline that does not apply: say so, keep the rest
                gr.Warning(f"{METHOD_TITLES[item.method]} skipped: {item.reason}")
                continue
            shown.add(item)
            if isinstance(item, Step):
                done, words, step, of = shown.progress()
                progress(done, desc=words)
                latest = {f"x0_hat_{m}": f.x0_hat for m, f in shown.latest.items()}
                pictures = {"truth": problem.x0, "measurement": problem.y, **latest}
                run.track(step, of, pictures, results=list(shown.rows), traces=shown.traces)
                yield shown.outputs(shown.status())
    finally:
        items.close()


def _finish(run, shown: RunView, methods: list[str], own: dict, problem) -> tuple[dict, list[str]]:
    """Teach the estimates and save the finished restoration: (its record, its files).

    One method: the whole run's time (scoring and pictures included) is what its next run will take; a comparison
    teaches each method's own time, so that it also teaches the single-method estimates."""
    run.done(learn=len(methods) == 1)
    for row in shown.rows if len(methods) > 1 else []:
        if row["method"] in methods:
            run.learn_part(estimate_kind(row["method"]), row["seconds"], **own.get(estimate_kind(row["method"]), {}))
    used = {r["method"]: r["precision"] for r in shown.rows if r["method"] in methods}
    images = {"truth": problem.x0, "measurement": problem.y, **{f"result_{m}": x for m, x in shown.finals.items()}}
    return run.save(images, precision=used, results=shown.rows, traces=shown.traces)


def restore_eta(model_name, method, operator, steps, t0, samples):
    methods = methods_for(method, operator) if method in ("compare", "sdedit", "score_ald", "dps") else []
    if len(methods) == 1:
        text = estimate(model_name, estimate_kind(methods[0]), steps=steps, t0=t0, samples=samples)
    else:
        own = _own_chains(methods, operator)
        text = estimate(model_name, "compare", methods=own, steps=steps, t0=t0)
        text = compare_plan(operator, steps, t0) + "\n\n" + text
    return text + _ranking_note(int(steps or 0), operator)


def restore_tab(ui) -> None:
    with tab("Inverse problems", "restore"):
        with gr.Row(equal_height=False):
            with gr.Column(scale=1, min_width=320):
                with gr.Row():
                    op = gr.Dropdown(OPERATOR_CHOICES, value=MEASUREMENT["operator"], label="Operator A", min_width=140)
                    method = gr.Dropdown(METHOD_CHOICES, value=MEASUREMENT["method"], label="Method", min_width=120)
                run, stop, eta = run_row("Restore", "ip")
                steps = slider(
                    "restore.steps",
                    "reverse steps (strided)",
                    info="starts at the method's few-step default; the step sizes follow it",
                    elem_id="ip-steps",
                )
                full = full_quality_box("ip-full", quick="each method's quick default (about 50 steps, its tuned list)")
                # the step sizes the user has moved since the operator or method last changed (a State made inside
                # the tab: one made beside the tabs becomes a child of gr.Tabs and shifts the other tabs' labels)
                by_hand = gr.State([])
                with gr.Accordion("Operator and method settings", open=False, elem_classes="advanced"):
                    c = settings()
                maskg, mask = mask_editor()
            with gr.Column(scale=3):
                status = gr.Markdown(elem_id="ip-status", elem_classes="status")
                strip = gr.HTML(elem_id="ip-strip")
                # the same pictures as files, for gradio_client users of /restore; the page shows them in the strip
                truth = gr.Image(label="truth x0", format="png", visible="hidden")
                meas = gr.Image(label="measurement y", format="png", visible="hidden")
                gallery = gr.Gallery(label="frames and results", format="png", visible="hidden", elem_id="ip-gallery")
        table = gr.Dataframe(label="metrics against the truth (residual: ||y - A x||)", interactive=False,
                             elem_id="ip-table")  # fmt: skip
        plot = gr.Plot(label="PSNR of x0_hat and residual per step", elem_id="ip-plot")
        with gr.Row(elem_classes="advanced"):
            files = gr.File(label="Download (PNG + JSON)", file_count="multiple")
            record = gr.JSON(label="Parameters and metrics", open=False)

    eta_in = [ui["model"], method, op, steps, c["t0"], c["samples"]]
    gr.on([ui["load"], ui["model_md"].change, ui["machine_md"].change, method.change, op.change, steps.change,
           c["t0"].change, c["samples"].change], restore_eta, eta_in, eta, **EST)  # fmt: skip
    groups = [c["blur"], c["boxg"], c["dropg"], maskg]
    gr.on([op.change, c["box"].change], operator_widgets, [op, c["box"]], groups, **LIGHT)
    method.change(method_widgets, method, [c["t0"], c["zeta"], c["scale"], c["normalize"], c["samples"]], **LIGHT)
    op.change(task_defaults, [op, steps, c["spacing"]], [c["t0"], c["zeta"], c["scale"]], **LIGHT)
    gr.on([op.change, method.change], samples_default, [method, op], c["samples"], **LIGHT)
    gr.on([op.change, method.change], steps_default, [method, op, full], steps, **LIGHT)
    gr.on([op.change, method.change], spacing_default, [method, op, full], c["spacing"], **LIGHT)
    gr.on([op.change, method.change], lambda: [], None, by_hand, **LIGHT)
    c["zeta"].input(lambda h: sorted({*h, "zeta"}), by_hand, by_hand, **LIGHT)
    c["scale"].input(lambda h: sorted({*h, "scale"}), by_hand, by_hand, **LIGHT)
    gr.on([steps.change, c["spacing"].change], follow_steps, [op, steps, c["spacing"], by_hand],
          [c["zeta"], c["scale"]], **LIGHT)  # fmt: skip
    full.input(full_quality, [full, method, op], [steps, c["spacing"], c["zeta"], c["scale"], by_hand], **LIGHT)
    gr.on([ui["load"], ui["model_md"].change], blur_defaults, ui["model"], [c["std"], c["kernel"]], **LIGHT)
    ui["load"](precision_choice, None, c["precision"], **LIGHT)
    gr.on([c["box"].change, *picker_changes(ui)], mask_canvas, ui["picked"], mask, **LIGHT)
    # the API's inputs in this order: gradio_client users of /restore call it positionally
    inputs = [*ui["picked"], ui["seed"], op, c["std"], c["kernel"], c["box"], c["drop"], c["sigma"], method, c["t0"],
              c["zeta"], c["scale"], steps, mask, c["normalize"], c["samples"], c["precision"], c["spacing"]]  # fmt: skip
    evt = run.click(
        run_restore,
        inputs,
        [truth, meas, gallery, table, plot, status, record, files],
        api_name="restore",
        show_progress_on=[status],
        **heavy_event(),
    )
    evt.failure(on_failure("restore"), None, status, **LIGHT)
    landing.register("restore", run_restore, inputs, [truth, meas, gallery, table, plot, status, record, files], 5,
                     "Restore")  # fmt: skip
    ui["landing_runs"]["restore"] = [run]
    gr.on([gallery.change, truth.change], None, [truth, meas, gallery], strip, js=STRIP_JS)
    evt.success(restore_eta, eta_in, eta, **EST)
    stop.click(on_stop("restore"), None, [status, record, files], cancels=[evt], **STOPPED)
