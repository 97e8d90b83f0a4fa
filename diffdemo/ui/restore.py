"""The Inverse problems tab: one measurement y = A x0 + sigma_y n restored by SDEdit, Score-ALD, DPS, or all of them
with the classical baselines."""

from __future__ import annotations

import functools

import gradio as gr

from diffdemo.defaults import DEFAULTS, FULL_QUALITY, MEASUREMENT, SIGMA_Y, params_for
from diffdemo.labels import METHOD_TITLES
from diffdemo.ui import landing
from diffdemo.ui.common import (
    check_value,
    clean_image,
    enlarged_file,
    frame_stride,
    guarded,
    lpips_note,
    model_if_loaded,
    open_model,
    parse_seed,
    parse_spacing,
    parse_t,
    read_picture,
    refuse,
    scores_line,
    validated,
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
    picker_changes,
    run_row,
    schedule_menu,
    slider,
    tab,
)
from diffdemo.zerogpu import gpu

OPERATOR_CHOICES = [
    ("Gaussian blur", "gaussian_blur"),
    ("Box inpainting", "box_inpaint"),
    ("Random inpainting", "random_inpaint"),
    ("Noise only (A = I)", "noise"),
]
METHOD_CHOICES = [("SDEdit", "sdedit"), ("Score-ALD", "score_ald"), ("DPS", "dps"), ("Compare all", "compare")]
BOX_CHOICES = [("centre", "center"), ("eyes", "eyes"), ("mouth", "mouth"), ("drawn mask", "drawn")]


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


def _gallery(latest: dict, finals: dict, single: bool, rows: list[dict]) -> list:
    """(picture, "Name: detail") per tile, in the order the page shows them after the measurement and the truth:
    each method's result with its scores (or, while it runs, its current x0_hat and, for one method, x_t), the
    chains' spread for a multi-chain run, then the classical baselines. No tile twice: a finished run's x_t is its
    result."""
    scored = {r["method"]: r for r in rows}
    best = max(rows, key=lambda r: r["psnr"])["method"] if len(rows) > 1 else None

    def caption(name: str, title: str) -> str:
        return f"{title}: {scores_line(scored[name])}" + (" (best PSNR)" if name == best else "")

    items = []
    for name, frame in latest.items():
        title = METHOD_TITLES.get(name, name)
        if name in finals:
            items.append((view_file(finals[name], name), caption(name, title)))
        else:
            items.append((view_file(frame.x0_hat, name), f"{title}: x0_hat at step {frame.step}/{frame.total}"))
            if single:
                items.append((view_file(frame.x_t, name), f"{title}: x_t at t = {max(frame.t_prev, 0)}"))
        if single and frame.x_std is not None:
            from diffdemo.pictures import spread_picture

            shown, top = spread_picture(frame.x_std)
            items.append((view_file(shown, f"{name}_std"), f"{title}: spread across the chains (white = {top:.3f})"))
    for name, x in finals.items():
        if name not in latest:
            items.append((view_file(x, name), caption(name, f"{METHOD_TITLES.get(name, name)} (classical)")))
    if best is not None:  # the winner right after the measurement and the truth: on screen at 1280x800
        items.sort(key=lambda item: not item[1].endswith("(best PSNR)"))
    return items


# The page shows /restore's pictures as one strip built in the browser from the measurement, the truth and the
# gallery (kept as outputs so that gradio_client users get the files): whole, enlarged with nearest neighbour,
# each with its caption below it, no scrolling box.
STRIP_JS = """(truth, meas, gallery) => {
  const url = (v) => v ? (v.url || (v.image && v.image.url) || null) : null;
  const esc = (s) => String(s ?? "").replace(/[&<>"]/g, (c) => ({"&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;"}[c]));
  const fig = (src, name, detail) => src ? `<figure${detail.endsWith("(best PSNR)") ? ' class="best"' : ""}>` +
    `<img src="${src}" alt="${esc(name)}"><figcaption>` +
    `<span class="name">${esc(name)}</span><br>${esc(detail)}</figcaption></figure>` : "";
  let html = fig(url(meas), "measurement y", "what the methods see") + fig(url(truth), "truth x0", "the original");
  for (const item of (gallery || [])) {
    const cap = item.caption || "";
    const i = cap.indexOf(": ");
    html += fig(url(item.image || item), i < 0 ? cap : cap.slice(0, i), i < 0 ? "" : cap.slice(i + 2));
  }
  return html ? `<div class="strip">${html}</div>` : "";
}"""


def _ranking_note(steps: int, operator: str) -> str:
    """Quick settings can reverse the poster's ordering: say so where it happens."""
    tuned = DEFAULTS["dps"]["steps"]
    if steps >= tuned or operator == "noise":
        return ""
    return (
        f" **{steps} steps is fewer than the tuned default ({tuned}):** with so few steps the classical methods (total "
        f"variation, Wiener) can beat the diffusion methods."
    )


def _table(rows: list[dict]):
    header = ["method", "PSNR (dB)", "SSIM", "LPIPS", "residual", "seconds", "NFE"]
    body = [
        [
            METHOD_TITLES.get(r["method"], r["method"]),
            round(r["psnr"], 2),
            round(r["ssim"], 3),
            "unavailable" if r["lpips"] is None else round(r["lpips"], 3),
            "none" if r["residual"] is None else round(r["residual"], 3),
            round(r["seconds"], 2),
            r["nfe"],
        ]
        for r in rows
    ]
    return {"headers": header, "data": body}


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


def _overrides(model, model_name, steps, t0, zeta, scale, dps_normalize, samples, schedule) -> dict:
    """The run's parameters, each checked by the one rule (diffdemo/validation.py), in the form's order."""
    return {
        "steps": check_value("steps", steps),
        "t0": parse_t(model, t0, "t0"),
        "zeta": check_value("zeta", zeta),
        "scale": check_value("scale", scale),
        "normalize": validated("check_flag", "DPS normalize", dps_normalize),
        "samples": check_value("samples", samples),
        "schedule": parse_spacing(model_name, schedule) if schedule else None,  # None: each method's own list
    }


class _Shown:
    """What the tab shows of a restoration so far, built from what diffdemo.experiments.restoration yields: each
    diffusion method's latest frame and per-step trace, the finished rows and their pictures."""

    def __init__(self, methods: list[str], truth, measurement):
        self.single = len(methods) == 1
        self.latest, self.finals, self.rows = {}, {}, []
        self.traces = {m: {"step": [], "psnr": [], "residual": []} for m in methods}
        self.pictures, self.sent = (view_file(truth, "truth"), view_file(measurement, "measurement")), False
        self.figure = None  # the trace figure, built once and refreshed in place (plots.refresh_restoration_trace)

    def add(self, item) -> None:
        """A Step (a streamed frame, scored by the engine) or a Row (a finished method)."""
        from diffdemo.experiments import Step

        if isinstance(item, Step):
            frame = self.latest[item.method] = item.frame
            trace = self.traces[item.method]
            trace["step"].append(frame.step / frame.total)
            trace["psnr"].append(item.psnr)
            trace["residual"].append(item.residual)
        else:
            self.finals[item.method] = item.reconstruction
            self.rows.append(item.record())

    def progress(self) -> tuple[float, str, int, int]:
        """(fraction done, the progress bar's words, steps done, steps in all) of the diffusion methods."""
        frames = self.latest.values()
        done = sum(f.step / f.total for f in frames) / len(self.traces)
        words = ", ".join(f"{m} {f.step}/{f.total}" for m, f in self.latest.items())
        return done, words, sum(f.step for f in frames), sum(f.total for f in frames)

    def status(self) -> str:
        return " | ".join(f"{METHOD_TITLES[m]}: step {f.step}/{f.total}" for m, f in self.latest.items())

    def outputs(self, status: str, record=None, files=None) -> tuple:
        """/restore's outputs in their API order; the truth and the measurement sent with the first only."""
        from diffdemo import plots

        final = record is not None
        truth, measured = self.pictures if final or not self.sent else (gr.skip(), gr.skip())
        self.sent = True
        gallery = _gallery(self.latest, self.finals, self.single, self.rows)
        if self.figure is None:
            self.figure = plots.restoration_trace_figure(self.traces, METHOD_TITLES)
        trace = plots.refresh_restoration_trace(self.figure, self.traces)
        done = (record, files) if final else (gr.skip(), gr.skip())
        return truth, measured, gallery, _table(self.rows), trace, status, *done


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
    schedule=None,
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
    params = _overrides(model, model_name, steps, t0, zeta, scale, dps_normalize, samples, schedule)
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
    shown = _Shown(methods, x0, problem.y)
    every = frame_stride(params["steps"], 12 if len(methods) == 1 else 8)
    items = restoration(model, problem, methods, overrides=params, precision=check_precision(precision or "auto"),
                        every=every, baselines=method == "compare")  # fmt: skip
    yield from _stream(items, shown, run, problem, progress)
    record, files = _finish(run, shown, methods, own, problem)
    yield shown.outputs(_done(run, shown.rows, methods, operator, x0.shape[-1]), record, files)


def _stream(items, shown: _Shown, run, problem, progress):
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


def _finish(run, shown: _Shown, methods: list[str], own: dict, problem) -> tuple[dict, list[str]]:
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


def _bounded_decode(convert):
    """Gradio decodes an image editor's background and layers itself, before any handler runs: check each
    one's size from its header first, so a decompression bomb (as a drawn-mask layer, say) is refused undecoded
    with one message."""

    @functools.wraps(convert)
    def run(file, *args, **kwargs):
        from diffdemo.imaging import MASK_MAX_PIXELS, ImageError, check_header

        if file is not None:
            try:
                check_header(getattr(file, "path", None) or file, "a mask layer", MASK_MAX_PIXELS)
            except ImageError as exc:
                raise refuse(f"Cannot use this mask: {exc}.", title="Bad image") from None
        return convert(file, *args, **kwargs)

    return run


def mask_canvas(model_name, image, upload):
    """The working image, enlarged (nearest neighbour) to about 256 px, as the background of the mask editor."""
    try:
        arr, _ = read_picture(model_if_loaded(model_name), image, upload)
    except gr.Error:
        return gr.skip()
    big = enlarged_file(arr, "mask_canvas")
    return {"background": big, "layers": [], "composite": big}


def operator_widgets(operator, box):
    return (
        gr.Group(visible=operator == "gaussian_blur"),
        gr.Group(visible=operator == "box_inpaint"),
        gr.Group(visible=operator == "random_inpaint"),
        gr.Group(visible=operator == "box_inpaint" and box == "drawn"),
    )


def task_defaults(operator, steps=None, schedule=None):
    """SDEdit t0, Score-ALD zeta and DPS scale tuned for this operator (diffdemo/defaults.py), the step sizes for
    ``steps`` (default: the method's own steps)."""
    at = {"steps": int(steps) if steps else None, "schedule": schedule}
    return (
        params_for("sdedit", operator)["t0"],
        params_for("score_ald", operator, **at)["zeta"],
        params_for("dps", operator, **at)["scale"],
    )


def follow_steps(operator, steps, schedule, by_hand):
    """The steps (or their list) changed: Score-ALD's zeta and DPS's scale move to the step size tuned for that many
    steps, unless the user has set them by hand (``by_hand``: the names moved since the operator or method)."""
    _, zeta, scale = task_defaults(operator, steps, schedule)
    by_hand = set(by_hand or ())
    return (gr.skip() if "zeta" in by_hand else zeta), (gr.skip() if "scale" in by_hand else scale)


def full_quality(on, method, operator):
    """The Full quality box: the poster's steps and list (or back to the method's quick default), with the step
    sizes for them; the sliders set by hand follow again."""
    steps, schedule = steps_default(method, operator, on), spacing_default(method, operator, on)
    _, zeta, scale = task_defaults(operator, steps, schedule)
    return steps, schedule, zeta, scale, []


def _tuned(method: str, operator: str, name: str):
    """A method's tuned ``name`` for this operator; for "compare", DPS's (the steps and list every diffusion method
    runs at; the chains slider is hidden there: each method runs its own tuned chains)."""
    value = params_for("dps" if method == "compare" else method, operator).get(name, 1)
    return value if isinstance(value, str) else int(value)


def samples_default(method, operator):
    """Posterior samples averaged by default for this method and operator (diffdemo/defaults.py)."""
    return _tuned(method, operator, "samples")


def steps_default(method, operator, full=False):
    """Reverse steps by default for this method and operator (diffdemo/defaults.py); with Full quality on, the
    poster's."""
    return FULL_QUALITY["steps"] if full else _tuned(method, operator, "steps")


def spacing_default(method, operator, full=False):
    """The timestep list by default for this method and operator (diffdemo/defaults.py); with Full quality on, the
    poster's."""
    return FULL_QUALITY["schedule"] if full else _tuned(method, operator, "schedule")


def blur_defaults(model_name):
    """The blur sliders at the operator's default for this model's size (operators.default_blur), once loaded."""
    try:
        size = model_if_loaded(model_name).size
    except gr.Error:
        return gr.skip(), gr.skip()
    from diffdemo.operators import default_blur

    kernel_size, std = default_blur(size)
    return std, kernel_size


def method_widgets(method):
    return (
        gr.Slider(visible=method in ("sdedit", "compare")),
        gr.Slider(visible=method in ("score_ald", "compare")),
        gr.Slider(visible=method in ("dps", "compare")),
        gr.Checkbox(visible=method in ("dps", "compare")),
        gr.Slider(visible=method != "compare"),  # Compare all: each method at its own chains, said under Run
    )


def _settings() -> dict:
    """The folded operator and method settings, each starting at diffdemo/defaults.py's value."""
    c = {}
    with gr.Group(visible=True) as c["blur"]:
        c["std"] = slider("restore.blur_std", "blur std (px)")
        c["kernel"] = slider("restore.kernel_size", "kernel size (odd)")
    with gr.Group(visible=False) as c["boxg"]:
        c["box"] = gr.Radio(BOX_CHOICES, value=MEASUREMENT["box"], label="hole")
    with gr.Group(visible=False) as c["dropg"]:
        c["drop"] = slider("restore.drop", "fraction of pixels dropped")
    c["sigma"] = slider(
        "restore.sigma_y",
        "sigma_y: measurement noise std",
        info=f"in [-1, 1] image units: {SIGMA_Y:g} here = {SIGMA_Y / 2:g} on a [0, 1] scale",
    )
    c["t0"] = slider("restore.t0", "SDEdit t0 (start timestep)", visible=False)
    follows = "follows the operator and the steps (the step size tuned for that many steps) until you move it"
    c["zeta"] = slider("restore.zeta", "Score-ALD zeta", visible=False, info=follows)
    c["scale"] = slider("restore.scale", "DPS scale (step size lambda)", info=follows)
    c["normalize"] = gr.Checkbox(
        True,
        label="DPS: normalised step lambda g/||g|| (eq. 29)",
        info="off: the raw step lambda g of Chung et al.'s code (retune lambda: try 1-5)",
    )
    c["samples"] = slider(
        "restore.samples",
        "chains averaged (k)",
        info="k restorations side by side, shown as their mean: an estimate of E[x0|y], higher PSNR than one, k "
        "times the work",
    )
    c["precision"] = gr.Radio(
        ["auto", "fp32", "bf16"],
        value="auto",
        label="network precision",
        info=PRECISION_INFO,
        elem_id="ip-precision",
    )
    c["schedule"] = schedule_menu("ip-schedule", spacing_default(MEASUREMENT["method"], MEASUREMENT["operator"]))
    return c


PRECISION_INFO = (
    "auto: bf16 where the CPU/GPU has fast bf16 (AVX512_BF16/AMX, CUDA); the sampler's own arithmetic stays fp32"
)


def precision_choice():
    """The precision control as it applies to this machine, said next to it: where the device lacks fast bf16,
    bf16 is emulated and much slower than fp32 (about 12x on a 2-core AVX2 CPU, issue 22), not a speed-up."""
    from diffdemo.models import default_device
    from diffdemo.precision import fast_bf16

    device = default_device()
    if fast_bf16(device):
        where = "this GPU" if device.type == "cuda" else "this CPU (AVX512_BF16/AMX)"
        return gr.Radio(
            [("auto (bf16 here)", "auto"), "fp32", "bf16"],
            info=f"{where} has fast bf16: auto uses it; the sampler's own arithmetic stays fp32",
        )
    lacks = "this GPU lacks native bf16" if device.type == "cuda" else "this CPU lacks AVX512_BF16/AMX"
    return gr.Radio(
        [("auto (fp32 here)", "auto"), "fp32", ("bf16 (slower here)", "bf16")],
        info=f"bf16 is ~12x slower than fp32 on a CPU like this one: {lacks}, so bf16 is emulated. auto uses fp32.",
    )


def _mask_editor():
    """The mask editor for a drawn hole; Gradio's decoding of its layers bounded like every upload's."""
    with gr.Group(visible=False) as group:
        editor = gr.ImageEditor(
            label="Draw the hole: paint over the pixels to hide",
            type="numpy",
            sources=(),
            transforms=(),
            layers=False,
            brush=gr.Brush(default_size=12, colors=["#ff0000"], color_mode="fixed"),
            height=300,
            canvas_size=(256, 256),
            fixed_canvas=True,
        )
        editor.convert_and_format_image = _bounded_decode(editor.convert_and_format_image)
    return group, editor


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
                full = full_quality_box("ip-full")
                # the step sizes the user has moved since the operator or method last changed (a State made inside
                # the tab: one made beside the tabs becomes a child of gr.Tabs and shifts the other tabs' labels)
                by_hand = gr.State([])
                with gr.Accordion("Operator and method settings", open=False, elem_classes="advanced"):
                    c = _settings()
                maskg, mask = _mask_editor()
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
    op.change(task_defaults, [op, steps, c["schedule"]], [c["t0"], c["zeta"], c["scale"]], **LIGHT)
    gr.on([op.change, method.change], samples_default, [method, op], c["samples"], **LIGHT)
    gr.on([op.change, method.change], steps_default, [method, op, full], steps, **LIGHT)
    gr.on([op.change, method.change], spacing_default, [method, op, full], c["schedule"], **LIGHT)
    gr.on([op.change, method.change], lambda: [], None, by_hand, **LIGHT)
    c["zeta"].input(lambda h: sorted({*h, "zeta"}), by_hand, by_hand, **LIGHT)
    c["scale"].input(lambda h: sorted({*h, "scale"}), by_hand, by_hand, **LIGHT)
    gr.on([steps.change, c["schedule"].change], follow_steps, [op, steps, c["schedule"], by_hand],
          [c["zeta"], c["scale"]], **LIGHT)  # fmt: skip
    full.input(full_quality, [full, method, op], [steps, c["schedule"], c["zeta"], c["scale"], by_hand], **LIGHT)
    gr.on([ui["load"], ui["model_md"].change], blur_defaults, ui["model"], [c["std"], c["kernel"]], **LIGHT)
    ui["load"](precision_choice, None, c["precision"], **LIGHT)
    gr.on([c["box"].change, *picker_changes(ui)], mask_canvas, ui["picked"], mask, **LIGHT)
    # the API's inputs in this order: gradio_client users of /restore call it positionally
    inputs = [*ui["picked"], ui["seed"], op, c["std"], c["kernel"], c["box"], c["drop"], c["sigma"], method, c["t0"],
              c["zeta"], c["scale"], steps, mask, c["normalize"], c["samples"], c["precision"], c["schedule"]]  # fmt: skip
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
