"""The band above the tabs: the model and image pickers, the working picture and the model's measured cost."""

from __future__ import annotations

import os
import time
from pathlib import Path

import gradio as gr

from diffdemo.defaults import IMAGE, RANGES, SEED
from diffdemo.ui.common import UPLOAD, default_model, model_if_loaded, read_picture, view_file, without_prefix
from diffdemo.ui.texts import INTRO

MACHINE_REFRESH_S = 20  # how often the header's timing line (and, when it changes, every estimate) is refreshed


def populate_pickers():
    """Fill the model list and the gallery once the page is open (keeps the engine import out of start-up)."""
    from diffdemo.hub import HUB_MODELS
    from diffdemo.imaging import bundled_images
    from diffdemo.serving import allowed_models

    models = list(dict.fromkeys([default_model(), *allowed_models(default_model())]))
    online = hub_online()
    labels = [(f"{m} (hub: not reachable here)" if m in HUB_MODELS and not online else m, m) for m in models]
    bundled = bundled_images()
    return (
        gr.Dropdown(choices=labels),
        [(str(path), name) for name, path in bundled.items()],
        gr.Dropdown(choices=[*bundled, UPLOAD]),
    )


def pick_bundled(evt: gr.SelectData):
    from diffdemo.imaging import bundled_images

    return list(bundled_images())[evt.index]


def pick_upload(upload):
    return gr.Dropdown(value=UPLOAD) if upload else gr.skip()


_hub_checked: list = [0.0, False]


def hub_online(max_age_s: float = 300) -> bool:
    """Whether the Hugging Face hub answers (asked at most every five minutes: offline it costs up to 2 s)."""
    from diffdemo.hub import hub_reachable

    if time.monotonic() - _hub_checked[0] > max_age_s:
        _hub_checked[:] = [time.monotonic(), hub_reachable()]
    return _hub_checked[1]


def unreachable(name: str) -> bool:
    """A hub id that is neither local, loaded nor cached, while the hub cannot be reached."""
    from diffdemo.hub import in_hf_cache as _in_hf_cache
    from diffdemo.models import ModelUnavailable, is_local, is_open
    from diffdemo.serving import check_model

    try:  # the allow-list first, as a string: a name not offered never reaches the file system
        name = check_model(name, default_model())
    except ModelUnavailable:
        return False
    if not name or "/" not in name or is_local(name) or is_open(name) or _in_hf_cache(name):
        return False
    return not hub_online()


def model_info(name: str) -> str:
    """The model's size and its measured cost; or, for a hub model not downloaded, an estimate; or why not."""
    from diffdemo.estimates import cost_for, format_seconds
    from diffdemo.models import ModelUnavailable, is_local
    from diffdemo.serving import check_model

    try:  # the allow-list first (as a string), so the name below is an offered one, never the caller's text
        name = check_model(name, default_model())
    except ModelUnavailable as exc:
        return f"**Model unavailable:** {without_prefix(str(exc))}"
    if unreachable(name):
        return (
            f"**{name} is not available here:** it lives on the Hugging Face hub and this machine has no network "
            f"to download it. Use the embedded model ({default_model()}), or run the app where the hub is reachable."
        )
    try:
        cost = cost_for(name, default_model())
    except ModelUnavailable as exc:
        return f"**Model unavailable:** {without_prefix(str(exc))}"
    params = f"{cost['params'] / 1e6:.1f}M parameters" if cost.get("params") else ""
    if cost["estimated"]:
        return (
            f"**{name}** ({cost['size']} px, {params}): not downloaded. *Rough estimate* for this machine, the "
            f"measured {cost['scaled_from']} scaled by parameters x pixels (from a much smaller model this "
            f"overestimates): ~{format_seconds(cost['forward_s'])} per network evaluation, "
            f"~{format_seconds(cost['grad_s'])} per DPS step. Pressing Run downloads it (needs network)."
        )
    where = "embedded" if is_local(name) and "/" not in name else ("local folder" if is_local(name) else "hub")
    return f"**{Path(name).name or name}** ({where}, {cost['size']} px, {params})."


# what each task is called in the header's "latest run" (the estimates' task names)
_RUN_TITLES = {
    "denoise": "Denoise",
    "psnr_curve": "PSNR-vs-t curve",
    "sample": "Generate",
    "denoise_restore": "Inverse problems (denoise)",
    "probe": "Sensitivity",
    "spectrum": "Spectrum",
}


def machine_line(name: str) -> str:
    """The model's latest timing on this machine, the latest run's figure, the load and torch's threads: the
    figures the estimates stand on, refreshed by a timer (the timing is the 25th percentile of short calls, taken
    again when stale or after a run that missed its estimate, at the start of a heavy run, never during one:
    diffdemo/estimates.py). A light event: it never loads a model; its text changes only when a figure does
    (the load is rounded to halves), and every estimate line refreshes when it changes."""
    from diffdemo import estimates, threads
    from diffdemo.labels import METHOD_TITLES
    from diffdemo.models import ModelUnavailable, cached_model
    from diffdemo.serving import check_model

    try:
        name = check_model(name, default_model())
    except ModelUnavailable:
        return ""
    model = cached_model(name)
    if model is None:
        return ""
    try:
        with estimates.no_timing():  # a light event reads the timing: only the heavy events run the network for one
            cost = estimates.measure_cost(model)
    except estimates.NotTimed:
        return ""
    when = time.strftime("%H:%M:%S", time.localtime(cost.get("measured_clock", time.time())))
    text = (
        f"**This machine now:** {estimates.format_seconds(cost['forward_s'])} per network evaluation, "
        f"{estimates.format_seconds(cost['grad_s'])} with its gradient (timed {when})"
    )
    last = estimates.latest_run(name)
    if last is not None:
        title = _RUN_TITLES.get(last.task) or METHOD_TITLES.get(last.task, last.task)
        text += f"; latest run: {title}, {estimates.format_seconds(last.per_call)} per network call"
    cores = threads.usable_cores()
    try:
        text += f"; load {round(os.getloadavg()[0] * 2) / 2:g} on {cores} cores"
    except OSError:
        text += f"; {cores} cores"
    n = threads.chosen()
    return text + (f"; torch uses {n} thread{'s' if n > 1 else ''}." if n else ".")


def preview(model_name: str, image: str, upload):
    """The working image (centre-cropped, resized to the model) and a status line; never raises."""
    try:
        model = model_if_loaded(model_name)
        arr, label = read_picture(model, image, upload)
    except gr.Error as exc:
        return None, f"**{exc.title or 'Error'}:** {exc.message}"
    text = f"Working image: **{label}**, {arr.shape[1]}x{arr.shape[0]} px (centre-cropped, resized to the model)."
    if image == UPLOAD and _knows_faces(model_name):
        text += (
            " **Note:** this model only knows aligned, frontal faces (eyes at the same height, face filling the "
            "square); other pictures come out as a face-like smear, which is the prior doing its job."
        )
    return view_file(arr, "working"), text


def _knows_faces(model_name: str) -> bool:
    """Models trained on aligned face crops: the embedded faces64 and the CelebA-HQ hub models."""
    name = (model_name or "").lower()
    return "faces" in name or "celeba" in name


def page_header(start_model: str):
    """The title on one line; model, image, seed, the presenter toggle and the model's and image's notes on the
    next; the image picker folded below them. Compact, so that each tab's controls and results start high on the page."""
    ui = {}
    gr.Markdown(INTRO, elem_classes="compact-head")
    with gr.Row(equal_height=False, elem_classes="head-row"):
        ui["model"] = gr.Dropdown(
            [start_model], value=start_model, allow_custom_value=True, label="Model", scale=2, min_width=170
        )
        ui["image"] = gr.Dropdown(
            [IMAGE, UPLOAD], value=IMAGE, allow_custom_value=True, label="Image", scale=2, min_width=190
        )
        ui["seed"] = gr.Number(SEED, minimum=RANGES["seed"][0], label="Seed", scale=1, min_width=80, elem_id="seed")
        ui["presenter"] = gr.Checkbox(False, label="Presenter view", scale=1, min_width=120, elem_id="presenter")
        with gr.Column(scale=5, min_width=320, elem_classes="head-notes"):
            ui["model_md"] = gr.Markdown("Measuring the model on this machine...", elem_classes="eta note")
            ui["machine_md"] = gr.Markdown(elem_classes="eta note", elem_id="machine-md")
            ui["image_md"] = gr.Markdown(elem_classes="eta note")
    ui["machine_timer"] = gr.Timer(MACHINE_REFRESH_S)
    with gr.Accordion("Choose another image, or upload your own", open=False, elem_id="image-chooser"):
        with gr.Row(equal_height=False):
            ui["gallery"] = gr.Gallery(
                label="Bundled test images (held out of training): click one",
                columns=7,
                height=140,
                allow_preview=False,
                object_fit="cover",
                scale=4,
            )
            ui["upload"] = gr.File(label="...or upload any image (PNG, JPEG, WebP...)", type="filepath", scale=2)
            ui["working"] = gr.Image(
                label="Working image", interactive=False, height=140, elem_classes="pixelated", format="png", scale=1
            )
    ui["picked"] = [ui["model"], ui["image"], ui["upload"]]  # what every handler on one picture takes first
    return ui
