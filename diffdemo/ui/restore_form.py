"""The Inverse problems tab's form: the operator and method settings, each starting at diffdemo/defaults.py's value
and following the operator, the method and the steps; the drawn-mask editor; the precision control."""

from __future__ import annotations

import functools

import gradio as gr

from diffdemo.defaults import FULL_QUALITY, MEASUREMENT, SIGMA_Y, params_for
from diffdemo.ui.common import enlarged_file, model_if_loaded, read_picture, refuse
from diffdemo.ui.widgets import slider, spacing_menu

OPERATOR_CHOICES = [
    ("Gaussian blur", "gaussian_blur"),
    ("Box inpainting", "box_inpaint"),
    ("Random inpainting", "random_inpaint"),
    ("Noise only (A = I)", "noise"),
]
METHOD_CHOICES = [("SDEdit", "sdedit"), ("Score-ALD", "score_ald"), ("DPS", "dps"), ("Compare all", "compare")]
BOX_CHOICES = [("centre", "center"), ("eyes", "eyes"), ("mouth", "mouth"), ("drawn mask", "drawn")]


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


def task_defaults(operator, steps=None, spacing=None):
    """SDEdit t0, Score-ALD zeta and DPS scale tuned for this operator (diffdemo/defaults.py), the step sizes for
    ``steps`` (default: the method's own steps)."""
    at = {"steps": int(steps) if steps else None, "spacing": spacing}
    return (
        params_for("sdedit", operator)["t0"],
        params_for("score_ald", operator, **at)["zeta"],
        params_for("dps", operator, **at)["scale"],
    )


def follow_steps(operator, steps, spacing, by_hand):
    """The steps (or their list) changed: Score-ALD's zeta and DPS's scale move to the step size tuned for that many
    steps, unless the user has set them by hand (``by_hand``: the names moved since the operator or method)."""
    _, zeta, scale = task_defaults(operator, steps, spacing)
    by_hand = set(by_hand or ())
    return (gr.skip() if "zeta" in by_hand else zeta), (gr.skip() if "scale" in by_hand else scale)


def full_quality(on, method, operator):
    """The Full quality box: the poster's steps and list (or back to the method's quick default), with the step
    sizes for them; the sliders set by hand follow again."""
    steps, spacing = steps_default(method, operator, on), spacing_default(method, operator, on)
    _, zeta, scale = task_defaults(operator, steps, spacing)
    return steps, spacing, zeta, scale, []


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
    return FULL_QUALITY["spacing"] if full else _tuned(method, operator, "spacing")


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


def settings() -> dict:
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
    c["spacing"] = spacing_menu("ip-spacing", spacing_default(MEASUREMENT["method"], MEASUREMENT["operator"]))
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


def mask_editor():
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
