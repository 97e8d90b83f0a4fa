"""diffdemo's Gradio app: diffusion models as priors for image inverse problems, watched step by step.

UI and wiring only: every number and picture comes from the engine in ``diffdemo/``. The engine (torch,
scikit-image, diffusers) is imported lazily inside the handlers and warmed up in the background after the
server is up, so ``python app.py`` serves within seconds. Run ``python app.py``; environment variables:
DIFFDEMO_MODEL (default model: embedded name, local diffusers folder or hub id), GRADIO_SERVER_NAME,
GRADIO_SERVER_PORT, DIFFDEMO_CONCURRENCY (heavy runs at once, default 1). ``--public`` (automatic on a Hugging
Face Space) applies a public deployment's limits and model allow-list; ``--allow-local-models`` lets the model
field take local folders. The limits and their variables: ``diffdemo/serving.py``.
"""

from __future__ import annotations

import argparse
import functools
import math
import os
import tempfile
import threading
import time
import uuid
from pathlib import Path

import gradio as gr

from diffdemo import imaging  # noqa: F401  (sets Pillow's pixel limit before gradio decodes any upload)
from diffdemo.defaults import MAX_SAMPLES, params_for
from diffdemo.labels import METHOD_TITLES
from diffdemo.zerogpu import ZERO_GPU, gpu

DEFAULT_IMAGE = "london_006_neutral"
UPLOAD = "(uploaded file)"
HEAVY = "network"  # one concurrency group for every event that runs the network: 2 CPU cores, not oversubscribed
HEAVY_LIMIT = max(1, int(os.environ.get("DIFFDEMO_CONCURRENCY", "1")))
RESULTS_DIR = Path(tempfile.gettempdir()) / "diffdemo-results"
VIEWS_DIR = RESULTS_DIR / "views"
OPERATOR_CHOICES = [
    ("Gaussian blur", "gaussian_blur"),
    ("Box inpainting", "box_inpaint"),
    ("Random inpainting", "random_inpaint"),
    ("Noise only (A = I)", "noise"),
]
METHOD_CHOICES = [("SDEdit", "sdedit"), ("Score-ALD", "score_ald"), ("DPS", "dps"), ("Compare all", "compare")]
BOX_CHOICES = [("centre", "center"), ("eyes", "eyes"), ("mouth", "mouth"), ("drawn mask", "drawn")]
SWEEP_TIMESTEPS = (20, 50, 100, 200, 400, 700)
SPECTRUM_TIMESTEPS = ("10", "50", "100", "200", "400", "500", "700", "800", "950")
# Results are shown whole: pictures enlarged by the browser with nearest neighbour (image-rendering: pixelated), no
# fixed-height boxes that scroll, captions in the page's text below each picture. body.presenter (the "Presenter
# view" toggle or ?presenter in the URL) makes pictures and text bigger and folds the advanced settings away.
CSS = """
.pixelated img { image-rendering: pixelated; object-fit: contain; width: 100% !important; height: 100% !important; }
#sens-image img { image-rendering: pixelated; cursor: crosshair; }
.strip { display: flex; flex-wrap: wrap; gap: 10px 14px; align-items: flex-start; }
.strip figure { margin: 0; width: var(--tile, 176px); }
.strip img { width: var(--tile, 176px); height: var(--tile, 176px); image-rendering: pixelated; display: block;
  border: 1px solid #8884; }
.strip figcaption { font-size: 16px; line-height: 1.25; margin-top: 4px; overflow-wrap: anywhere; }
.strip figcaption .name { font-weight: 600; }
.strip figure.best figcaption .name::after { content: " (best PSNR)"; font-weight: 400; }
.lead p { font-size: 17px; margin: 2px 0 6px 0; }
.pixelated label, .pixelated [data-testid="block-label"] { font-size: 15px !important; }
.eta p { font-size: 15px; margin: 0; }
.compact-head h1 { font-size: 21px !important; margin: 0 !important; line-height: 1.3 !important; }
.tight { gap: 6px !important; }
body.presenter { zoom: 1.25; }
body.presenter .strip { --tile: 224px; }
body.presenter .advanced { display: none !important; }
@media (min-width: 1800px) { .strip { --tile: 224px; } }
"""
PRESENTER_JS = """(on) => { document.body.classList.toggle('presenter', !!on); return on; }"""
PRESENTER_ON_LOAD = """() => { const on = new URLSearchParams(window.location.search).has('presenter');
  document.body.classList.toggle('presenter', on); return on; }"""


def default_model() -> str:
    """The model the pickers start on: $DIFFDEMO_MODEL (tests point it at a tiny model) or the embedded faces64."""
    return os.environ.get("DIFFDEMO_MODEL", "faces64")


# --- engine access ---------------------------------------------------------------------------------
def warm_engine() -> None:
    """Import the engine, open the default model and time it, in the background once the server is up: the
    first click then pays for none of it, and the run-time estimates use a timing taken while the machine was
    quiet (timed during a page load, alongside its other handlers, it came out 2-4x too slow)."""
    import diffdemo.analysis  # noqa: F401
    import diffdemo.restore  # noqa: F401
    from diffdemo.estimates import measure_cost
    from diffdemo.models import ModelUnavailable, load_model

    try:
        model = load_model(default_model())
        measure_cost(model)
        # the traced JVP graphs: the first Sensitivity click (batch 1) and the default Spectrum run (two timesteps:
        # 4 Lanczos rows, 2 Arnoldi rows) skip their one-time cost, which the estimates would otherwise learn
        diffdemo.analysis.prepare_probe(model, batches=(1, 2, 4))
    except ModelUnavailable:
        pass  # the page says why when it loads


def _allowed(name: str) -> str:
    """The canonical name of a model this deployment offers, or the one 'no such model' message."""
    from diffdemo.models import ModelUnavailable
    from diffdemo.serving import check_model

    try:
        return check_model(name, default_model())
    except ModelUnavailable as exc:
        raise gr.Error(f"Model unavailable: {exc}", title="Model unavailable") from None


def _model(name: str):
    """Open a model or show why it cannot be opened (not offered here, no network for a hub id...). Only
    events in the HEAVY concurrency group call this: loading a model is counted against that limit."""
    from diffdemo.models import ModelUnavailable, load_model

    canonical = _allowed(name)
    try:
        return load_model(canonical)
    except ModelUnavailable as exc:
        raise gr.Error(f"Model unavailable: {_no_prefix(str(exc))}", title="Model unavailable") from None


def _no_prefix(text: str) -> str:
    """The reason alone: the loader's own message may already begin with 'Model unavailable:'."""
    while text.lower().startswith("model unavailable"):
        text = text[len("model unavailable") :].lstrip(":. ")
    return text


def _loaded(name: str):
    """The model if a heavy event has loaded it already: the light events (previews, clicks) never load one."""
    from diffdemo.models import cached_model

    model = cached_model(_allowed(name))
    if model is None:
        raise gr.Error("The model is loading; this view fills in once it has.", title="Loading")
    return model


def guarded(fn):
    """A heavy event: refused or stopped by this server's limits (diffdemo/serving.py), the engine's own errors
    (bad parameters, over budget, time cap) shown as one-line messages."""

    @functools.wraps(fn)
    def run(*args, **kwargs):
        from diffdemo.errors import DiffdemoError
        from diffdemo.serving import capped

        try:
            yield from capped(fn(*args, **kwargs))
        except DiffdemoError as exc:
            raise gr.Error(str(exc), title="Refused") from None

    return run


def _budget(*works: tuple[str, dict]) -> None:
    """Refuse a request above this server's budget of network evaluations, before any work."""
    from diffdemo.estimates import evaluations, image_evaluations
    from diffdemo.serving import check_budget

    check_budget(sum(image_evaluations(evaluations(task, **params)) for task, params in works))


def _picture(model, image: str | None, upload: str | None):
    """The chosen picture as uint8 (size, size, 3) at the model's resolution, and its label."""
    from diffdemo.imaging import ImageError, bundled_images, load_image

    if image == UPLOAD:
        if not upload:
            raise gr.Error("Upload an image first (or pick one of the bundled images).", title="No image")
        source, label = upload, Path(upload).name  # the upload's own file name, never the server's path
    elif not image:
        raise gr.Error("Choose an image first: click one of the bundled images or upload your own.", title="No image")
    else:
        bundled = bundled_images()
        if image not in bundled:
            raise gr.Error(f"Unknown image '{image}': use one of {', '.join(bundled)} or '{UPLOAD}'.")
        source, label = bundled[image], image
    try:
        return load_image(source, model.size, label="the uploaded file" if image == UPLOAD else label), label
    except ImageError as exc:
        raise gr.Error(f"Cannot use this image: {exc}", title="Bad image") from None


def _x0(model, image, upload):
    from diffdemo.imaging import to_tensor

    arr, label = _picture(model, image, upload)
    return to_tensor(arr), arr, label


def _check(name: str, value):
    """A parameter from the UI or the API by the one rule of diffdemo/validation.py, or a clear error."""
    from diffdemo.errors import InvalidParameter
    from diffdemo.validation import check

    try:
        return check(name, value)
    except InvalidParameter as exc:
        raise gr.Error(f"{str(exc)[0].upper()}{str(exc)[1:]}.", title="Out of range") from None


def _seed(seed) -> int:
    return _check("seed", seed)


def _t(model, t, name: str = "t") -> int:
    from diffdemo.errors import InvalidParameter
    from diffdemo.validation import check_timestep

    try:
        return check_timestep(t, model.schedule.T, name)
    except InvalidParameter as exc:
        raise gr.Error(f"{exc}.", title="Out of range") from None


def _every(steps: int, frames: int = 20) -> int:
    """Stream about ``frames`` frames per run, whatever its length."""
    return max(1, steps // frames)


def _run_dir(task: str) -> Path:
    _prune()
    return RESULTS_DIR / f"{task}-{time.strftime('%Y%m%d-%H%M%S')}-{uuid.uuid4().hex[:6]}"


def _u8(x):
    from diffdemo.imaging import to_uint8

    return to_uint8(x)


def _file(x, stem: str = "image") -> str:
    """A picture (tensor in [-1, 1] or uint8 array) as a content-addressed PNG, written atomically once.

    Handing Gradio a path rather than an array matters: Gradio 6.31 re-writes an array output's cache file in place
    every time it is returned, so a frame streamed twice, or the same picture sent to two users at once, can be
    read half-written (a truncated download). A path is copied into Gradio's cache atomically, once per content."""
    import hashlib

    import numpy as np
    from PIL import Image

    arr = x if isinstance(x, np.ndarray) else _u8(x)
    digest = hashlib.sha1(arr.tobytes() + str(arr.shape).encode()).hexdigest()[:20]
    path = VIEWS_DIR / f"{stem}-{digest}.png"
    if not path.exists():
        VIEWS_DIR.mkdir(parents=True, exist_ok=True)
        staging = VIEWS_DIR / f".{path.name}.{uuid.uuid4().hex}"
        Image.fromarray(arr).save(staging, format="PNG")
        os.replace(staging, path)
    return str(path)


_last_prune = [0.0]


def _prune() -> None:
    """Keep result folders, pictures and gradio's copies of them (and of uploads) within the age and size limits
    of diffdemo/serving.py, oldest first (checked at most once a minute, before each run writes its results)."""
    from gradio.utils import get_upload_folder

    from diffdemo.serving import prune

    now = time.time()
    if now - _last_prune[0] < 60:
        return
    _last_prune[0] = now
    prune([RESULTS_DIR, VIEWS_DIR, Path(get_upload_folder())])


def _fmt(value, digits: int = 2) -> str:
    return "unavailable" if value is None else f"{value:.{digits}f}"


def _lpips_note(value, size: int) -> str:
    if value is not None:
        return ""
    from diffdemo.metrics import lpips_status

    return f"\n\n<small>{lpips_status(size=size)}</small>"


def _png_uri(x) -> str:
    """A picture (tensor in [-1, 1] or uint8 array) as an inline PNG: tiny at the model's size, enlarged by CSS."""
    import base64
    import io

    import numpy as np
    from PIL import Image

    arr = x if isinstance(x, np.ndarray) else _u8(x)
    buf = io.BytesIO()
    Image.fromarray(arr).save(buf, format="PNG")
    return "data:image/png;base64," + base64.b64encode(buf.getvalue()).decode()


def _strip(tiles: list[tuple], note: str = "") -> str:
    """Pictures side by side, each whole, enlarged with nearest neighbour, its caption always visible below it.

    tiles: (picture, name, detail[, css class]); a None picture is skipped."""
    import html

    parts = []
    for tile in tiles:
        picture, name, detail = tile[:3]
        if picture is None:
            continue
        cls = f' class="{tile[3]}"' if len(tile) > 3 and tile[3] else ""
        parts.append(
            f'<figure{cls}><img src="{_png_uri(picture)}" alt="{html.escape(name)}">'
            f'<figcaption><span class="name">{html.escape(name)}</span><br>{html.escape(detail)}</figcaption></figure>'
        )
    extra = f'<p class="strip-note">{html.escape(note)}</p>' if note else ""
    return f'<div class="strip">{"".join(parts)}</div>{extra}'


def _scores(m: dict) -> str:
    """'25.31 dB, SSIM 0.812, LPIPS 0.123' (LPIPS 'n/a' when it cannot be computed here)."""
    lp = "n/a" if m.get("lpips") is None else f"{m['lpips']:.3f}"
    return f"{m['psnr']:.2f} dB, SSIM {m['ssim']:.3f}, LPIPS {lp}"


def _estimate(model_name: str, task: str, methods: list[str] | None = None, **params):
    """The learning estimate of one run (diffdemo/estimates.py), or None when there is no basis for one."""
    from diffdemo import estimates
    from diffdemo.models import ModelUnavailable

    name = (model_name or "").strip()
    try:
        if methods is not None:
            return estimates.compare_estimate(name, methods, default_model(), **params)
        return estimates.estimate(name, task, default_model(), **params)
    except (ModelUnavailable, KeyError, TypeError, ValueError):
        return None


def _learn(model_name: str, task: str, params: dict, seconds: float) -> None:
    """Tell the estimates what a finished run of this kind cost."""
    from diffdemo import estimates

    estimates.record((model_name or "").strip(), task, params, seconds, default_model())


def _est_seconds(est) -> float | None:
    return None if est is None else round(est.seconds, 2)


# --- runs in progress, for Stop ----------------------------------------------------------------------
# The latest state of each running job, per browser session and task: when Stop cancels a run, its handler cannot
# yield again, so the Stop handler writes the partial results (marked as such) from here.
_live: dict[tuple[str, str], dict] = {}
_stopped: dict[tuple[str, str], float] = {}  # when Stop was pressed, so the failure line does not overwrite it


def _session(request) -> str:
    return getattr(request, "session_hash", None) or "api"


def _track(request, task: str, step: int, total: int, record: dict, images: dict) -> None:
    _live[(_session(request), task)] = {"step": step, "total": total, "record": record, "images": images}


def _untrack(request, task: str) -> None:
    _live.pop((_session(request), task), None)


def _on_stop(task: str):
    """The Stop button's handler for one task (a plain function: Gradio passes the request only to those)."""

    def stop(request: gr.Request):
        return stop_note(task, request)

    return stop


def _on_failure(task: str):
    def failed(request: gr.Request):
        return _failed(task, request)

    return failed


def stop_note(task: str, request: gr.Request = None):
    """After Stop: the shown state, marked partial; the JSON says where the run stopped; downloads to match."""
    from diffdemo.jsonio import write_results

    _stopped[(_session(request), task)] = time.monotonic()
    state = _live.pop((_session(request), task), None)
    if state is None:
        return "**Stopped.**", gr.skip(), gr.skip()
    step, total = state["step"], state["total"]
    record = dict(state["record"], partial=True, stopped_at=f"step {step}/{total}", stopped_step=step, total=total)
    files = write_results(Path(str(_run_dir(task)) + "-partial"), state["images"], record)
    return (
        f"**Stopped at step {step}/{total}: partial result.** The pictures show that step; the downloads and JSON "
        "are marked partial.",
        record,
        files,
    )


# --- pickers ---------------------------------------------------------------------------------------
def populate_pickers():
    """Fill the model list and the gallery once the page is open (keeps the engine import out of start-up)."""
    from diffdemo.hub import HUB_MODELS
    from diffdemo.imaging import bundled_images
    from diffdemo.serving import allowed_models

    models = list(dict.fromkeys([default_model(), *allowed_models(default_model())]))
    online = _hub_online()
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


def _hub_online(max_age_s: float = 300) -> bool:
    """Whether the Hugging Face hub answers (asked at most every five minutes: offline it costs up to 2 s)."""
    from diffdemo.hub import hub_reachable

    if time.monotonic() - _hub_checked[0] > max_age_s:
        _hub_checked[:] = [time.monotonic(), hub_reachable()]
    return _hub_checked[1]


def _unreachable(name: str) -> bool:
    """A hub id that is neither local, loaded nor cached, while the hub cannot be reached."""
    from diffdemo.hub import in_hf_cache
    from diffdemo.models import is_local, is_open

    name = (name or "").strip()
    if not name or "/" not in name or is_local(name) or is_open(name) or in_hf_cache(name):
        return False
    return not _hub_online()


def model_info(name: str) -> str:
    """The model's size and its measured cost; or, for a hub model not downloaded, an estimate; or why not."""
    from diffdemo.estimates import cost_for, format_seconds
    from diffdemo.models import ModelUnavailable, is_local
    from diffdemo.serving import check_model

    name = (name or "").strip()
    if _unreachable(name):
        return (
            f"**{name} is not available here:** it lives on the Hugging Face hub and this machine has no network "
            f"to download it. Use the embedded model ({default_model()}), or run the app where the hub is reachable."
        )
    try:
        name = check_model(name, default_model())
        cost = cost_for(name, default_model())
    except ModelUnavailable as exc:
        return f"**Model unavailable:** {_no_prefix(str(exc))}"
    params = f"{cost['params'] / 1e6:.1f}M parameters" if cost.get("params") else ""
    if cost["estimated"]:
        return (
            f"**{name}** ({cost['size']} px, {params}): not downloaded. *Rough estimate* for this machine, the "
            f"measured {cost['scaled_from']} scaled by parameters x pixels (from a much smaller model this "
            f"overestimates): ~{format_seconds(cost['forward_s'])} per network evaluation, "
            f"~{format_seconds(cost['grad_s'])} per DPS step. Pressing Run downloads it (needs network)."
        )
    where = "embedded" if is_local(name) and "/" not in name else ("local folder" if is_local(name) else "hub")
    return (
        f"**{Path(name).name or name}** ({where}, {cost['size']} px, {params}). Timed at start-up: "
        f"{format_seconds(cost['forward_s'])} per network evaluation, {format_seconds(cost['grad_s'])} with its "
        "gradient; the estimates then learn from real runs."
    )


def preview(model_name: str, image: str, upload):
    """The working image (centre-cropped, resized to the model) and a status line; never raises."""
    try:
        model = _loaded(model_name)
        arr, label = _picture(model, image, upload)
    except gr.Error as exc:
        return None, f"**{exc.title or 'Error'}:** {exc.message}"
    text = f"Working image: **{label}**, {arr.shape[1]}x{arr.shape[0]} px (centre-cropped, resized to the model)."
    if image == UPLOAD and _knows_faces(model_name):
        text += (
            " **Note:** this model only knows aligned, frontal faces (eyes at the same height, face filling the "
            "square); other pictures come out as a face-like smear, which is the prior doing its job."
        )
    return _file(arr, "working"), text


def _knows_faces(model_name: str) -> bool:
    """Models trained on aligned face crops: the embedded faces64 and the CelebA-HQ hub models."""
    name = (model_name or "").lower()
    return "faces" in name or "celeba" in name


def estimate(model_name: str, task: str, **params) -> str:
    """'Expected run time: ~N s' before a run: learnt from earlier runs of the same kind, else from a timing.
    Never loads a model (a light event): before the model has loaded it says so."""
    from diffdemo.estimates import format_seconds
    from diffdemo.models import ModelUnavailable, cached_model, resolve_model_dir
    from diffdemo.serving import check_model

    methods = params.pop("methods", None) if task == "compare" else None
    if _unreachable(model_name):
        return "Expected run time: none (this model cannot be downloaded here)."
    try:
        name = check_model(model_name, default_model())
    except ModelUnavailable:
        return "Expected run time: unknown (the model is not available)."
    if resolve_model_dir(name) is not None and cached_model(name) is None:
        return "Expected run time: shown once the model has loaded."
    est = _estimate(name, task, methods, **params)
    if est is None:
        return "Expected run time: unknown (the model is not available)."
    return (
        f"Expected run time: **~{format_seconds(est.seconds)}** ({est.image_evaluations} image evaluations of the "
        f"network; {est.source})."
    )


# --- Task 2: denoise -------------------------------------------------------------------------------
@guarded
@gpu
def run_denoise(model_name, image, upload, seed, t, steps, progress=gr.Progress(), request: gr.Request = None):
    """Noise the image to x_t (eq. 3), run reverse diffusion back to 0 (eq. 24), streaming x_t and x0_hat."""
    from diffdemo import metrics
    from diffdemo.jsonio import write_results
    from diffdemo.samplers import denoise, noise_image

    model = _model(model_name)
    seed, t = _seed(seed), _t(model, t)
    steps = _check("steps", steps)
    _budget(("denoise", {"t": t, "steps": steps}))
    x0, _, label = _x0(model, image, upload)
    est = _estimate(model_name, "denoise", t=t, steps=steps)
    x_t = noise_image(model, x0, t, seed)
    noisy = _file(x_t, "noised")
    frame = None
    base = {"task": "denoise", "model": model_name, "image": label, "seed": seed, "t": t, "steps": steps}
    started = time.perf_counter()
    for frame in denoise(model, x_t, t, steps=steps, seed=seed, every=_every(steps)):
        progress(frame.step / frame.total, desc=f"denoising: step {frame.step}/{frame.total}")
        status = f"Step {frame.step}/{frame.total} (t = {frame.t} -> {max(frame.t_prev, 0)})"
        partial = {**base, "seconds": time.perf_counter() - started, "estimated_seconds": _est_seconds(est)}
        _track(request, "denoise", frame.step, frame.total, partial, {"clean": x0, "noised": x_t, "x_t": frame.x_t})
        yield noisy, _file(frame.x_t, "x_t"), _file(frame.x0_hat, "x0_hat"), status, gr.skip(), gr.skip()
        noisy = gr.skip()  # sent once
    seconds = time.perf_counter() - started
    _untrack(request, "denoise")
    _learn(model_name, "denoise", {"t": t, "steps": steps}, seconds)
    result = frame.x_t.cpu()
    before, after = metrics.all_metrics(x_t.cpu(), x0), metrics.all_metrics(result, x0)
    record = {
        **base,
        "steps": frame.total,
        "seconds": seconds,
        "estimated_seconds": _est_seconds(est),
        "noisy": before,
        "denoised": after,
    }
    table = (
        "| | PSNR (dB) | SSIM | LPIPS |\n|---|---|---|---|\n"
        f"| noised input x_t (left) | {before['psnr']:.2f} | {before['ssim']:.3f} | {_fmt(before['lpips'], 3)} |\n"
        f"| denoised (middle) | {after['psnr']:.2f} | {after['ssim']:.3f} | {_fmt(after['lpips'], 3)} |"
        + _lpips_note(after["lpips"], x0.shape[-1])
        + f"\n\nDone in {seconds:.1f} s (estimated {_fmt(record['estimated_seconds'], 1)} s)."
    )
    files = write_results(_run_dir("denoise"), {"clean": x0, "noised": x_t, "denoised": result}, record)
    yield _file(x_t, "noised"), _file(result, "x_t"), _file(frame.x0_hat, "x0_hat"), table, record, files


DN_LABELS = ("noised input x_t", "current x_t (result at t = 0)", "x0_hat (Tweedie's guess)")
CURVE_NOTE = (
    "Read the pictures left to right: up to about t = 100-200 the denoised face is still this person; by t = 300-500 "
    "the network has replaced the identity with a plausible face of its own, and PSNR falls with it. The prior takes "
    "over as the noise hides the image (poster Figure 1): denoising is not undoing the noise."
)


@guarded
@gpu
def run_psnr_curve(model_name, image, upload, seed, steps, points, progress=gr.Progress(), request: gr.Request = None):
    """Figure 1: PSNR of the noised input and of its denoising against t, with each denoised picture, streamed."""
    from diffdemo import plots
    from diffdemo.runs import log_timesteps, psnr_vs_t

    model = _model(model_name)
    seed = _seed(seed)
    steps, points = _check("steps", steps), _check("points", points)
    ts = log_timesteps(model.schedule.T, points)
    _budget(*[("denoise", {"t": t, "steps": steps}) for t in ts])
    x0, _, _ = _x0(model, image, upload)
    est = _estimate(model_name, "psnr_curve", steps=steps, points=points, T=model.schedule.T)
    rows = []
    started = time.perf_counter()
    for i, row in enumerate(psnr_vs_t(model, x0, ts, steps=steps, seed=seed)):
        rows.append(row)
        progress((i + 1) / len(ts), desc=f"t = {row['t']}")
        tiles = [(x0, "clean", "the truth")] + [
            (r["denoised"], f"from t = {r['t']}", f"{r['psnr_denoised']:.1f} dB") for r in rows
        ]
        _track(request, "psnr_curve", i + 1, len(ts), {}, {})
        yield plots.psnr_vs_t_figure(rows), _strip(tiles)
    seconds = time.perf_counter() - started
    _untrack(request, "psnr_curve")
    _learn(model_name, "psnr_curve", {"steps": steps, "points": points, "T": model.schedule.T}, seconds)
    took = f" (done in {seconds:.1f} s; estimated {_fmt(_est_seconds(est), 1)} s)"
    yield plots.psnr_vs_t_figure(rows), _strip(tiles, CURVE_NOTE + took)


def curve_stopped(request: gr.Request = None):
    state = _live.pop((_session(request), "psnr_curve"), None)
    where = f" after {state['step']} of {state['total']} timesteps" if state else ""
    return f"**Stopped{where}: the curve and pictures are partial.**"


# --- Task 3: sample --------------------------------------------------------------------------------
@guarded
@gpu
def run_sample(model_name, seed, n, steps, progress=gr.Progress(), request: gr.Request = None):
    """Ancestral DDPM sampling from N(0, I) (eq. 25), a grid of x_t and of x0_hat every few steps."""
    from diffdemo.imaging import grid
    from diffdemo.jsonio import write_results
    from diffdemo.samplers import sample

    model = _model(model_name)
    seed, n, steps = _seed(seed), _check("n", n), _check("steps", steps)
    _budget(("sample", {"n": n, "steps": steps}))
    est = _estimate(model_name, "sample", n=n, steps=steps)
    nrow = math.ceil(math.sqrt(n))  # a square grid: each face as large as the box allows
    base = {"task": "sample", "model": model_name, "seed": seed, "n": n, "steps": steps}
    started = time.perf_counter()
    frame = None
    for frame in sample(model, n=n, steps=steps, seed=seed, every=_every(steps)):
        progress(frame.step / frame.total, desc=f"sampling: step {frame.step}/{frame.total}")
        status = f"Step {frame.step}/{frame.total} (t = {frame.t})"
        x_t, x0_hat = _file(grid(frame.x_t.cpu(), nrow), "samples"), _file(grid(frame.x0_hat.cpu(), nrow), "x0_hats")
        partial = {**base, "seconds": time.perf_counter() - started, "estimated_seconds": _est_seconds(est)}
        _track(request, "sample", frame.step, frame.total, partial, {"x_t": frame.x_t[:1], "x0_hat": frame.x0_hat[:1]})
        yield x_t, x0_hat, status, gr.skip(), gr.skip()
    seconds = time.perf_counter() - started
    _untrack(request, "sample")
    _learn(model_name, "sample", {"n": n, "steps": steps}, seconds)
    record = {**base, "seconds": seconds, "estimated_seconds": _est_seconds(est)}
    images = {f"sample_{i:02d}": frame.x_t[i : i + 1].cpu() for i in range(n)}
    files = write_results(_run_dir("sample"), images, record)
    done = f"Done: {n} samples, {steps} steps, {seconds:.1f} s (estimated {_fmt(record['estimated_seconds'], 1)} s)."
    yield (
        _file(grid(frame.x_t.cpu(), nrow), "samples"),
        _file(grid(frame.x0_hat.cpu(), nrow), "x0_hats"),
        done,
        record,
        files,
    )


# --- Tasks 4-6: inverse problems ------------------------------------------------------------------
def _operator(model, operator, blur_std, kernel_size, box, drop, mask_layers, seed):
    from diffdemo.operators import OPERATORS, DrawnMask, hole_from_layers, make_operator

    if operator not in OPERATORS:
        raise gr.Error(f"Unknown operator '{operator}': choose one of {', '.join(OPERATORS)}.")
    size = model.size
    try:
        if operator == "box_inpaint" and box == "drawn":
            hole = hole_from_layers((mask_layers or {}).get("layers") or [], size)
            if not hole.any():
                raise gr.Error("The drawn mask is empty: paint over the region to hide in the mask editor.")
            return DrawnMask(hole)
        if operator == "gaussian_blur":
            std, k = _check("blur_std", blur_std), _check("kernel_size", kernel_size)
            if k // 2 >= size:
                raise gr.Error(f"A {k}x{k} kernel is too large for a {size} px image.")
            return make_operator(operator, size, std=std, kernel_size=k)
        if operator == "random_inpaint":
            return make_operator(operator, size, drop=_check("drop", drop), mask_seed=seed)
        return make_operator(operator, size, preset=box if box != "drawn" else None)
    except ValueError as exc:
        raise gr.Error(str(exc)) from None


def _methods_for(method: str, operator: str) -> list[str]:
    if method == "compare":
        return ["sdedit", "score_ald", "dps"] + (["denoise"] if operator == "noise" else [])
    if method not in ("sdedit", "score_ald", "dps"):
        raise gr.Error(f"Unknown method '{method}': choose SDEdit, Score-ALD, DPS or Compare all.")
    return [method]


def _gallery(latest: dict, finals: dict, single: bool, rows: list[dict]) -> list:
    """(picture, "Name: detail") per tile, in the order the page shows them after the measurement and the truth:
    each method's result with its scores (or, while it runs, its current x0_hat and, for one method, x_t), the
    chains' spread for a multi-chain run, then the classical baselines. No tile twice: a finished run's x_t is its
    result."""
    scored = {r["method"]: r for r in rows}
    best = max(rows, key=lambda r: r["psnr"])["method"] if len(rows) > 1 else None

    def caption(name: str, title: str) -> str:
        return f"{title}: {_scores(scored[name])}" + (" (best PSNR)" if name == best else "")

    items = []
    for name, frame in latest.items():
        title = METHOD_TITLES.get(name, name)
        if name in finals:
            items.append((_file(finals[name], name), caption(name, title)))
        else:
            items.append((_file(frame.x0_hat, name), f"{title}: x0_hat at step {frame.step}/{frame.total}"))
            if single:
                items.append((_file(frame.x_t, name), f"{title}: x_t at t = {max(frame.t_prev, 0)}"))
        if single and frame.x_std is not None:
            spread = frame.x_std.mean(1, keepdim=True).expand_as(frame.x_std)
            top = float(spread.max())
            shown = spread / max(top, 1e-8) * 2 - 1
            items.append((_file(shown, f"{name}_std"), f"{title}: spread across the chains (white = {top:.3f})"))
    for name, x in finals.items():
        if name not in latest:
            items.append((_file(x, name), caption(name, f"{METHOD_TITLES.get(name, name)} (classical)")))
    return items


# The page shows /restore's pictures as one strip built in the browser from the measurement, the truth and the
# gallery (kept as outputs so that gradio_client users get the files): whole, enlarged with nearest neighbour,
# each with its caption below it, no scrolling box.
STRIP_JS = """(truth, meas, gallery) => {
  const url = (v) => v ? (v.url || (v.image && v.image.url) || null) : null;
  const esc = (s) => String(s ?? "").replace(/[&<>"]/g, (c) => ({"&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;"}[c]));
  const fig = (src, name, detail) => src ? `<figure><img src="${src}" alt="${esc(name)}"><figcaption>` +
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
    if steps >= 250 or operator == "noise":
        return ""
    return (
        f" **{steps} steps is a quick setting:** at 50-100 steps the classical methods (total variation, Wiener) can "
        "beat the diffusion methods; the tuned defaults and the README's table use 250 steps."
    )


def _table(rows: list[dict]):
    header = ["method", "PSNR (dB)", "SSIM", "LPIPS", "residual ||y - A x||", "seconds", "NFE"]
    body = [
        [
            METHOD_TITLES.get(r["method"], r["method"]),
            round(r["psnr"], 2),
            round(r["ssim"], 3),
            "unavailable" if r["lpips"] is None else round(r["lpips"], 3),
            round(r["residual"], 3),
            round(r["seconds"], 2),
            r["nfe"],
        ]
        for r in rows
    ]
    return {"headers": header, "data": body}


def _schedule(model_name, schedule) -> str:
    """A timestep schedule name; the spectral one needs the model's stored stability profile (a bad name or a
    missing profile is the user's error: ``@guarded`` shows it as one line)."""
    from diffdemo.schedule import SCHEDULES
    from diffdemo.stability import load_profile
    from diffdemo.validation import check_choice

    schedule = check_choice("schedule", schedule or "uniform", SCHEDULES)
    if schedule == "spectral":
        load_profile(model_name)  # InvalidParameter naming the command to run when the model has none
    return schedule


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
    schedule="uniform",
    progress=gr.Progress(),
    request: gr.Request = None,
):
    """One measurement y = A x0 + sigma_y n; SDEdit, Score-ALD, DPS or all of them plus the classical baselines,
    on the same y, noise draw and seed, streaming each method's frames and its PSNR / residual per step."""
    from diffdemo import baselines, metrics, plots
    from diffdemo.jsonio import write_results
    from diffdemo.precision import check_precision
    from diffdemo.restore import diffusion_frames, make_problem, model_for, restore
    from diffdemo.runs import interleave

    model = _model(model_name)
    seed = _seed(seed)
    sigma_y = _check("sigma_y", sigma_y)
    steps = _check("steps", steps)
    t0 = _t(model, t0, "t0")
    zeta = _check("zeta", zeta)
    scale = _check("scale", scale)
    samples = _check("samples", samples)
    schedule = _schedule(model_name, schedule)
    methods = _methods_for(method, operator)
    _budget(*[("denoise_restore" if m == "denoise" else m, {"steps": steps, "t0": t0, "samples": samples})
              for m in methods])  # fmt: skip
    x0, _, label = _x0(model, image, upload)
    op = _operator(model, operator, blur_std, kernel_size, box, drop, mask_layers, seed)
    problem = make_problem(x0, op, sigma_y, seed)
    y = problem.y
    overrides = {
        "steps": steps,
        "t0": t0,
        "zeta": zeta,
        "scale": scale,
        "normalize": bool(dps_normalize),
        "samples": samples,
        "schedule": schedule,
    }
    every = _every(steps, 25 if len(methods) == 1 else 12)
    kinds = ["denoise_restore" if m == "denoise" else m for m in methods]
    work = {"steps": steps, "t0": t0, "samples": samples}
    est = _estimate(model_name, kinds[0], None if single_method(methods) else kinds, **work)
    precision = check_precision(precision or "auto")
    used = {m: model_for(model, m, precision).precision for m in methods}
    runs = {m: diffusion_frames(model, m, problem, every=every, precision=used[m], **overrides) for m in methods}
    traces = {m: {"step": [], "psnr": [], "residual": []} for m in methods}
    latest, finals, rows, spent = {}, {}, [], dict.fromkeys(methods, 0.0)
    single = len(methods) == 1
    truth, measured = _file(x0, "truth"), _file(y, "measurement")
    psnr_y = metrics.psnr(y, x0)
    total = len(methods)
    base = {
        "task": "restore",
        "model": model_name,
        "image": label,
        "seed": seed,
        "operator": op.describe(),
        "sigma_y": sigma_y,
        "sigma_y_units": "[-1, 1] image units (0.05 = 0.025 on a [0, 1] scale)",
        "method": method,
        "params": overrides,
        "psnr_measurement": psnr_y,
    }
    started = tick = time.perf_counter()
    frames = interleave(runs)
    try:
        for name, frame in frames:
            now = time.perf_counter()
            spent[name] += now - tick  # wall time since the previous frame: the step and its scoring and display
            tick = now
            latest[name] = frame
            tr = traces[name]
            tr["step"].append(frame.step / frame.total)
            tr["psnr"].append(metrics.psnr(frame.x0_hat.cpu(), x0))
            tr["residual"].append(frame.residual)
            if frame.step == frame.total:
                x_hat = frame.x_t.cpu()
                finals[name] = x_hat
                rows.append(
                    {
                        "method": name,
                        **metrics.all_metrics(x_hat, x0),
                        "residual": float((y - op.A(x_hat)).flatten().norm()),
                        "seconds": spent[name],
                        "nfe": frame.nfe,
                    }
                )
            done = sum(latest[m].step / latest[m].total for m in latest)
            progress(done / total, desc=", ".join(f"{m} {latest[m].step}/{latest[m].total}" for m in latest))
            status = " | ".join(f"{METHOD_TITLES[m]}: step {f.step}/{f.total}" for m, f in latest.items())
            step, of = sum(f.step for f in latest.values()), sum(f.total for f in latest.values())
            partial = {**base, "results": list(rows), "traces": traces, "seconds": time.perf_counter() - started}
            partial["estimated_seconds"] = _est_seconds(est)
            shown = {"truth": x0, "measurement": y, **{f"x0_hat_{m}": f.x0_hat for m, f in latest.items()}}
            _track(request, "restore", step, of, partial, shown)
            yield (
                truth,
                measured,
                _gallery(latest, finals, single, rows),
                _table(rows),
                plots.restoration_trace_figure(traces, METHOD_TITLES),
                status,
                gr.skip(),
                gr.skip(),
            )
            truth = measured = gr.skip()  # sent with the first frame
            tick = time.perf_counter()
    finally:
        frames.close()
    _untrack(request, "restore")
    for m, kind in zip(methods, kinds, strict=True):
        _learn(model_name, kind, work, spent[m])
    if method == "compare":
        for name in baselines.applicable(op):
            progress(1.0, desc=f"classical baseline: {name}")
            try:
                res = restore(None, name, problem)
            except ValueError as exc:  # a baseline that does not apply: say so, keep the rest
                gr.Warning(f"{METHOD_TITLES[name]} skipped: {exc}")
                continue
            finals[name] = res["reconstruction"]
            rows.append(
                {
                    "method": name,
                    "psnr": res["psnr"],
                    "ssim": res["ssim"],
                    "lpips": res["lpips"],
                    "residual": float((y - op.A(res["reconstruction"])).flatten().norm()),
                    "seconds": res["seconds"],
                    "nfe": 0,
                }
            )
    seconds = time.perf_counter() - started
    record = {
        **base,
        "precision": used,
        "results": rows,
        "traces": traces,
        "seconds": seconds,
        "estimated_seconds": _est_seconds(est),
    }
    images = {"truth": x0, "measurement": y, **{f"result_{m}": x for m, x in finals.items()}}
    files = write_results(_run_dir("restore"), images, record)
    best = max(rows, key=lambda r: r["psnr"])
    status = (
        f"Done in {seconds:.1f} s (estimated {_fmt(record['estimated_seconds'], 1)} s). Measurement PSNR "
        f"{psnr_y:.2f} dB; best: {METHOD_TITLES[best['method']]} {best['psnr']:.2f} dB."
        + (_ranking_note(steps, operator) if best["method"] not in methods else "")
        + _lpips_note(best["lpips"], x0.shape[-1])
    )
    yield (
        _file(x0, "truth"),
        _file(y, "measurement"),
        _gallery(latest, finals, single, rows),
        _table(rows),
        plots.restoration_trace_figure(traces, METHOD_TITLES),
        status,
        record,
        files,
    )


def _bounded_decode(convert):
    """Gradio decodes an image editor's background and layers itself, before any handler runs: check each
    one's size from its header first, so a decompression bomb (as a drawn-mask layer, say) is refused undecoded
    with one message."""

    @functools.wraps(convert)
    def run(file, *args, **kwargs):
        from diffdemo.imaging import ImageError, check_header

        if file is not None:
            try:
                check_header(getattr(file, "path", None) or file, "a mask layer")
            except ImageError as exc:
                raise gr.Error(f"Cannot use this mask: {exc}.", title="Bad image") from None
        return convert(file, *args, **kwargs)

    return run


def single_method(methods: list[str]) -> bool:
    return len(methods) == 1


def mask_canvas(model_name, image, upload):
    """The working image, enlarged (nearest neighbour) to about 256 px, as the background of the mask editor."""
    import numpy as np

    try:
        arr, _ = _picture(_loaded(model_name), image, upload)
    except gr.Error:
        return gr.skip()
    f = _zoom(arr.shape[0])
    big = _file(np.repeat(np.repeat(arr, f, axis=0), f, axis=1), "mask_canvas")
    return {"background": big, "layers": [], "composite": big}


def operator_widgets(operator, box):
    return (
        gr.Group(visible=operator == "gaussian_blur"),
        gr.Group(visible=operator == "box_inpaint"),
        gr.Group(visible=operator == "random_inpaint"),
        gr.Group(visible=operator == "box_inpaint" and box == "drawn"),
    )


def task_defaults(operator):
    """SDEdit t0, Score-ALD zeta and DPS scale tuned for this operator (diffdemo/defaults.py)."""
    return (
        params_for("sdedit", operator)["t0"],
        params_for("score_ald", operator)["zeta"],
        params_for("dps", operator)["scale"],
    )


def samples_default(method, operator):
    """Posterior samples averaged by default for this method and operator (diffdemo/defaults.py); "compare" runs
    every diffusion method with DPS's count, so that they are compared at equal chains."""
    return int(params_for("dps" if method == "compare" else method, operator).get("samples", 1))


def method_widgets(method):
    return (
        gr.Slider(visible=method in ("sdedit", "compare")),
        gr.Slider(visible=method in ("score_ald", "compare")),
        gr.Slider(visible=method in ("dps", "compare")),
        gr.Checkbox(visible=method in ("dps", "compare")),
    )


# --- Sensitivity -----------------------------------------------------------------------------------
def noised_view(model_name, image, upload, seed, t):
    """The noised image x_t the probe works on (eq. 3, seeded); None (and a note) when there is no image yet."""
    from diffdemo.analysis import state_at

    try:
        model = _loaded(model_name)
        x0, _, _ = _x0(model, image, upload)
        t = _t(model, t)
    except gr.Error as exc:
        return None, f"{exc.message}"
    return _zoomed(state_at(model, x0, t, _seed(seed))), "Click a pixel of the noised image x_t to probe it."


def _zoom(size: int) -> int:
    """Nearest-neighbour enlargement of the clickable image: Gradio maps clicks to pixels only for images shown
    at or below their natural size, so the picture is served large and clicks are divided back."""
    return max(1, -(-256 // size))


def _zoomed(x) -> object:
    import numpy as np

    arr = _u8(x)
    f = _zoom(arr.shape[0])
    return _file(np.repeat(np.repeat(arr, f, axis=0), f, axis=1), "x_t_view")


def pick_pixel(model_name, evt: gr.SelectData):
    """A click at (x, y) in the enlarged picture -> the model pixel under it (and 'a pixel was probed')."""
    f = _zoom(_loaded(model_name).size)
    x, y = evt.index
    return int(x) // f, int(y) // f, True


@guarded
@gpu
def run_probe(model_name, image, upload, seed, t, x, y, energy_on, progress=gr.Progress(), request: gr.Request = None):
    """Jacobian columns of J_s, J_f and J_D at the clicked pixel (eqs. 31-34), energy vs radius over t (Fig. 7)."""
    from diffdemo import analysis, plots
    from diffdemo.jsonio import write_results
    from diffdemo.validation import check_pixel

    if x is None or y is None or x == "" or y == "":
        raise gr.Error("Click a pixel of the noised image first (or give its x, y).", title="No pixel")
    model = _model(model_name)
    seed, t = _seed(seed), _t(model, t)
    x, y = check_pixel(x, y, model.size)
    if energy_on not in ("denoiser", "score"):
        raise gr.Error(f"Energy on 'denoiser' or 'score', got {energy_on!r}.")
    exclude = energy_on == "score"  # raw J_s: drop the centre pixel, else its identity-like peak dominates
    _budget(("probe", {"sweep": len(SWEEP_TIMESTEPS) + 1}))
    x0, _, label = _x0(model, image, upload)
    sweep = sorted({*SWEEP_TIMESTEPS, t})
    sweep = [s for s in sweep if s < model.schedule.T]
    est = _estimate(model_name, "probe", sweep=len(sweep))
    started = time.perf_counter()
    progress(0.1, desc="Jacobian column at t")
    x_t = analysis.state_at(model, x0, t, seed)
    result = analysis.probe(model, x_t, t, (x, y), energy_on=energy_on, exclude_centre=exclude, compare=True)
    base = {"task": "probe", "model": model_name, "image": label, "seed": seed, **result.summary()}
    _track(request, "probe", 1, 2, {**base, "estimated_seconds": _est_seconds(est)}, {"x_t": x_t})
    yield (
        _zoomed(x_t),
        plots.probe_figure(result),
        gr.skip(),
        _probe_text(result, None),
        gr.skip(),
        gr.skip(),
    )
    progress(0.5, desc="energy vs radius across timesteps")
    curves = analysis.energy_sweep(model, x0, (x, y), sweep, seed, energy_on=energy_on, exclude_centre=exclude)
    seconds = time.perf_counter() - started
    _untrack(request, "probe")
    _learn(model_name, "probe", {"sweep": len(sweep)}, seconds)
    record = {
        **base,
        "sweep": [c.summary() for c in curves],
        "seconds": seconds,
        "estimated_seconds": _est_seconds(est),
    }
    files = write_results(_run_dir("probe"), {"x_t": x_t}, record)
    yield (
        _zoomed(x_t),
        plots.probe_figure(result),
        plots.energy_figure(curves),
        _probe_text(result, curves),
        record,
        files,
    )


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


# --- Spectrum --------------------------------------------------------------------------------------
@guarded
@gpu
def run_spectrum(
    model_name, image, upload, seed, timesteps, k, iters, progress=gr.Progress(), request: gr.Request = None
):
    """Top singular values / vectors of J_s and J_f and rho(J_f) across timesteps (Figures 8, 9), one t at a time."""
    from diffdemo import analysis, plots
    from diffdemo.jsonio import write_results

    model = _model(model_name)
    seed = _seed(seed)
    k, iters = _check("k", k), _check("iters", iters)
    if isinstance(timesteps, str):
        timesteps = [s for s in timesteps.replace(",", " ").split() if s]
    try:
        ts = sorted({int(s) for s in timesteps or []})
    except ValueError:
        raise gr.Error(f"Timesteps must be integers, got {timesteps!r}.") from None
    if not ts:
        raise gr.Error("Choose at least one timestep.")
    for s in ts:
        _t(model, s, "timestep")
    _budget(("spectrum", {"k": k, "iters": iters, "n_t": len(ts)}))
    x0, _, label = _x0(model, image, upload)
    est = _estimate(model_name, "spectrum", k=k, iters=iters, n_t=len(ts))
    base = {"task": "spectrum", "model": model_name, "image": label, "seed": seed, "k": k, "iters": iters}
    results = []
    started = time.perf_counter()
    for i, t in enumerate(ts):

        def report(f, msg, i=i, t=t):
            progress((i + f) / len(ts), desc=f"t = {t}: {msg}")

        results.extend(analysis.spectrum_sweep(model, x0, [t], k=k, iters=iters, seed=seed, progress=report))
        partial = {**base, "estimated_seconds": _est_seconds(est), "timesteps": [r.summary() for r in results]}
        _track(request, "spectrum", i + 1, len(ts), partial, {})
        yield (
            plots.spectrum_figure(results),
            plots.singular_vectors_figure(results),
            plots.step_limit_figure(results),
            _spectrum_text(results),
            gr.skip(),
            gr.skip(),
        )
    seconds = time.perf_counter() - started
    _untrack(request, "spectrum")
    _learn(model_name, "spectrum", {"k": k, "iters": iters, "n_t": len(ts)}, seconds)
    record = {
        **base,
        "seconds": seconds,
        "estimated_seconds": _est_seconds(est),
        "timesteps": [r.summary() for r in results],
    }
    files = write_results(_run_dir("spectrum"), {}, record)
    yield (
        plots.spectrum_figure(results),
        plots.singular_vectors_figure(results),
        plots.step_limit_figure(results),
        _spectrum_text(results),
        record,
        files,
    )


def _spectrum_text(results) -> str:
    rows = [
        "| t | sigma_max(J_s) | sigma_max(J_f) | rho(J_f) | Euler step limit h_max | one jump from t may reach |",
        "|---" * 6 + "|",
    ]
    for r in results:
        # max_stride = t + 1: even one jump from t straight to the clean image keeps |1 + h lambda| <= 1
        reach = "t = 0 (any stride)" if r.max_stride >= r.t + 1 else f"t = {r.t - r.max_stride} (stride {r.max_stride})"
        h = "none" if r.h_max == float("inf") else f"{r.h_max:.3g}"
        rows.append(f"| {r.t} | {r.sigma_max_Js:.3g} | {r.sigma_max_Jf:.4g} | {r.rho_Jf:.4g} | {h} | {reach} |")
    return "\n".join(rows)


SPECTRUM_TABLE_NOTE = (
    "**How to read the table.** sigma_max is how much one Jacobian can stretch the image in its worst direction; "
    "**rho(J_f)**, the spectral radius, is the largest growth factor of one reverse step repeated (above 1: that "
    "direction grows). The **Euler step limit** h_max is the largest step h = 1 - abar_t / abar_t' for which the "
    "explicit step stays stable for every eigenvalue found (|1 + h lambda| <= 1); the last column turns it into "
    "how far down one strided jump from t may go. 't = 0 (any stride)' means even one jump straight to the clean "
    "image has h = 1 - abar_t <= h_max: this stability test sets no limit on the stride at that t."
)


# --- layout ----------------------------------------------------------------------------------------
INTRO = "# diffdemo: diffusion models as priors for inverse problems"

# One plain sentence per tab: what to look for. The maths sits folded underneath (equation numbers: the poster's).
LEAD = {
    "denoise": "**What to look for:** from a little noise (t = 100) the reverse run gives back this person. Then "
    "press *Compute the curve*: as t grows the face turns into someone else, because the prior takes over "
    "(poster Figure 1).",
    "generate": "**What to look for:** faces appear out of pure noise. Early on the network's guess x0_hat is a blurry "
    "average face; the details arrive last.",
    "restore": "**What to look for:** one blurred or masked measurement y, restored by each method side by side. "
    "DPS, which pulls every step towards y through the network, is the best diffusion method; *Compare all* adds "
    "the classical ones.",
    "sensitivity": "**What to look for:** click a pixel. The maps show which other pixels the network's answer "
    "depends on: at small t a few neighbours, at larger t structure across the face (eyes, cheekbones; poster "
    "Figures 6 and 7).",
    "spectrum": "**What to look for:** how strongly one reverse step can stretch an image, and along which patterns, "
    "at each timestep (poster Figures 8 and 9); results appear one timestep at a time.",
}

MATHS = {
    "denoise": """The noised image is **x_t = sqrt(abar_t) x0 + sqrt(1 - abar_t) z** (eq. 3; z is Gaussian noise).
**abar_t** ("alpha bar") is the share of the original image left at step t: 1 at t = 0, about 0.0003 at t = 999.
The network predicts the noise eps; the **score** s = -eps / sqrt(1 - abar_t) (eq. 22) points towards likelier
images. **Tweedie's formula** x0_hat = (x_t + (1 - abar_t) s) / sqrt(abar_t) (eq. 11) is the network's one-jump
guess of the clean image, shown on the right; the reverse step x_{t-1} = (x_t + (1 - alpha_t) s) / sqrt(alpha_t)
(eqs. 17, 24) walks there in small steps. There is no data term: once the noise has hidden a detail, nothing
brings back the original, and the prior fills it in.""",
    "generate": """Start from x_T ~ N(0, I) and apply the reverse step with fresh noise,
x_{t-1} = (x_t + (1 - alpha_t) s) / sqrt(alpha_t) + sigma_t z (eq. 25), from t = 999 down to 0. With fewer steps
than 1000 the run is strided (t jumps by 1000 / steps), with alpha_t replaced by abar_t / abar_t' as in diffusers.""",
    "restore": """The measurement is **y = A x0 + sigma_y n**: A blurs or hides pixels, n is Gaussian noise.
**SDEdit** (eq. 26) noises a measurement-consistent start to t0 and runs the reverse steps with no data term.
**Score-ALD** (eqs. 27, 28) adds zeta_t g after each step, g = -grad ||y - A x_t||^2: a cheap pull towards y.
**DPS** (eq. 29) adds lambda g / ||g|| with g = -grad_{x_t} ||y - A x0_hat(x_t)||, the gradient taken through the
network's Tweedie estimate: about 2-3 network evaluations a step, but every step agrees with y.
*k chains averaged* runs k independent restorations and shows their mean, an estimate of E[x0 | y].
**Classical baselines** (Compare all): Wiener filter, Richardson-Lucy and total variation for blur, biharmonic
and total variation for holes. PSNR (higher is better), SSIM (1 is perfect) and LPIPS (learned perceptual
distance, lower is better) compare each result with the truth.""",
    "sensitivity": """A **Jacobian column** J e_i is how every output pixel moves when input pixel i moves a little
(eqs. 31, 32). Three maps, three questions: **score J_s** asks how the network's pull on the image changes;
**one reverse step J_f** = (I + (1 - alpha_t) J_s) / sqrt(alpha_t) (eq. 34) asks what one step of the sampler does
with the nudge (almost only the pixel itself: the step is small); **denoiser J_D** = (I + (1 - abar_t) J_s) /
sqrt(abar_t) asks how Tweedie's clean-image guess changes. Red: that pixel moves the same way, blue: the opposite
way. The colour scale is symmetric about zero and set by the pixels *around* the probed one (its own, much larger
value is written above each map), so the structure away from it is visible; the nearest neighbours may
saturate. **Energy vs radius** (Figure 7): the share of the squared response within r pixels; **r50 / r90**: the
radius holding 50% / 90% of it; **effective pixels**: how many pixels would share it if it were spread evenly.
**FD vs JVP**: the cheap finite difference of eq. 32 against the exact derivative (forward-mode autodiff).""",
    "spectrum": """The **singular values** of a Jacobian are how much it stretches its strongest directions; the
matching **singular vectors** are those directions, shown as pictures (grey = 0). They are found without ever
building the 12,288 x 12,288 matrix: **Lanczos** bidiagonalisation builds them from one Jacobian-vector product
and one vector-Jacobian product per step, and **Arnoldi** iteration does the same for eigenvalues of the
non-symmetric J_f. Their estimates are called **Ritz values**. **rho(J_f)**, the spectral radius (eq. 35), is
the largest |eigenvalue|: above 1, one reverse step repeated makes that pattern grow.""",
}
MATHS["spectrum"] += "\n\n" + SPECTRUM_TABLE_NOTE


def _lead(task: str) -> None:
    gr.Markdown(LEAD[task], elem_classes="lead")
    with gr.Accordion("The maths and the words", open=False, elem_classes="advanced"):
        gr.Markdown(MATHS[task])


def _header(start_model: str):
    """Model, image, seed and the presenter toggle in one compact band; the image picker folded below it."""
    ui = {}
    gr.Markdown(INTRO, elem_classes="compact-head")
    with gr.Row(equal_height=False):
        ui["model"] = gr.Dropdown(
            [start_model], value=start_model, allow_custom_value=True, label="Model", scale=2, min_width=200
        )
        ui["image"] = gr.Dropdown(
            [DEFAULT_IMAGE, UPLOAD], value=DEFAULT_IMAGE, allow_custom_value=True, label="Image", scale=2, min_width=200
        )
        ui["seed"] = gr.Number(0, minimum=0, label="Seed", scale=1, min_width=90)
        ui["presenter"] = gr.Checkbox(False, label="Presenter view", scale=1, min_width=120, elem_id="presenter")
    with gr.Row(equal_height=False):
        ui["model_md"] = gr.Markdown("Measuring the model on this machine...", elem_classes="eta")
        ui["image_md"] = gr.Markdown(elem_classes="eta")
    with gr.Accordion("Choose another image, or upload your own", open=False):
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
    return ui


def _run_row(run_label: str, prefix: str):
    """The Run button, its Stop right next to it, and the time estimate under them."""
    with gr.Row():
        run = gr.Button(run_label, variant="primary", elem_id=f"{prefix}-run", min_width=120)
        stop = gr.Button("Stop", variant="stop", elem_id=f"{prefix}-stop", min_width=80)
    eta = gr.Markdown(elem_classes="eta", elem_id=f"{prefix}-eta")
    return run, stop, eta


def _picker_changes(ui) -> list:
    """Events after which the working picture is different (the folded preview itself may not be mounted)."""
    return [ui["model_md"].change, ui["image"].change, ui["upload"].change]


EST = {"api_visibility": "private", "concurrency_limit": 4, "show_progress": "hidden"}
LIGHT = {"api_visibility": "private", "concurrency_limit": 4}
STOPPED = {"api_visibility": "private", "queue": False}


def _heavy() -> dict:
    return {"concurrency_id": HEAVY, "concurrency_limit": HEAVY_LIMIT}


def _failed(task: str, request: gr.Request = None):
    """After a failed run: one line, the earlier outputs kept (the error itself is in the pop-up). A run ended by
    Stop also counts as failed for Gradio: its "Stopped" line stays."""
    if time.monotonic() - _stopped.pop((_session(request), task), -60.0) < 30:
        return gr.skip()
    return "**The last run failed** (the message says why); the results shown are from the run before."


def denoise_tab(ui) -> None:
    picked = [ui["model"], ui["image"], ui["upload"]]
    with gr.Tab("Denoise", id="denoise"):
        _lead("denoise")
        with gr.Row(equal_height=False):
            with gr.Column(scale=1, min_width=300):
                dn_t = gr.Slider(1, 999, value=100, step=1, label="t: noise level (999 = pure noise)", elem_id="dn-t")
                dn_steps = gr.Slider(1, 1000, value=50, step=1, label="reverse steps (strided)")
                dn_run, dn_stop, dn_eta = _run_row("Denoise", "dn")
            with gr.Column(scale=3):
                with gr.Row():
                    size = {"elem_classes": "pixelated", "format": "png", "height": 240, "show_label": True}
                    dn_noisy, dn_xt, dn_x0 = (gr.Image(label=label, **size) for label in DN_LABELS)
                dn_md = gr.Markdown(elem_id="dn-status")
        with gr.Accordion("PSNR vs t: the identity is lost as t grows (Figure 1)", open=True):
            with gr.Row():
                dn_points = gr.Slider(2, 30, value=6, step=1, label="timesteps (log-spaced)", scale=2)
                dn_curve_btn = gr.Button("Compute the curve", elem_id="curve-run", scale=1)
                dn_curve_stop = gr.Button("Stop", variant="stop", elem_id="curve-stop", scale=1)
            dn_curve_eta = gr.Markdown(elem_classes="eta", elem_id="curve-eta")
            dn_strip = gr.HTML(elem_id="curve-strip")
            dn_curve = gr.Plot(label="PSNR vs t", elem_id="curve-plot", show_label=False)
        with gr.Row(elem_classes="advanced"):
            dn_files = gr.File(label="Download (PNG + JSON)", file_count="multiple")
            dn_json = gr.JSON(label="Parameters and metrics", open=False)

    est_in = [ui["model"], dn_t, dn_steps]
    gr.on([ui["load"], ui["model_md"].change, dn_t.change, dn_steps.change],
          lambda m, t, n: estimate(m, "denoise", t=t, steps=n), est_in, dn_eta, **EST)  # fmt: skip
    gr.on([ui["load"], ui["model_md"].change, dn_points.change, dn_steps.change],
          lambda m, n, p: estimate(m, "psnr_curve", steps=n, points=p),
          [ui["model"], dn_steps, dn_points], dn_curve_eta, **EST)  # fmt: skip
    dn_evt = dn_run.click(
        run_denoise,
        [*picked, ui["seed"], dn_t, dn_steps],
        [dn_noisy, dn_xt, dn_x0, dn_md, dn_json, dn_files],
        api_name="denoise",
        show_progress_on=[dn_md],
        **_heavy(),
    )
    dn_evt.failure(_on_failure("denoise"), None, dn_md, **LIGHT)
    dn_evt.success(lambda m, t, n: estimate(m, "denoise", t=t, steps=n), est_in, dn_eta, **EST)
    curve_evt = dn_curve_btn.click(
        run_psnr_curve,
        [*picked, ui["seed"], dn_steps, dn_points],
        [dn_curve, dn_strip],
        api_name="psnr_vs_t",
        show_progress_on=[dn_curve],
        **_heavy(),
    )
    dn_stop.click(_on_stop("denoise"), None, [dn_md, dn_json, dn_files], cancels=[dn_evt], **STOPPED)
    curve_evt.success(lambda m, n, p: estimate(m, "psnr_curve", steps=n, points=p),
                      [ui["model"], dn_steps, dn_points], dn_curve_eta, **EST)  # fmt: skip
    dn_curve_stop.click(curve_stopped, None, dn_curve_eta, cancels=[curve_evt], **STOPPED)


def generate_tab(ui) -> None:
    with gr.Tab("Generate", id="generate"):
        _lead("generate")
        with gr.Row(equal_height=False):
            with gr.Column(scale=1, min_width=300):
                sm_n = gr.Slider(1, 16, value=4, step=1, label="samples")
                sm_steps = gr.Slider(1, 1000, value=100, step=1, label="reverse steps (strided)")
                sm_run, sm_stop, sm_eta = _run_row("Generate", "sm")
                sm_md = gr.Markdown(elem_id="sm-status")
            with gr.Column(scale=3):
                with gr.Row():
                    sm_xt = gr.Image(label="x_t: the samples", elem_classes="pixelated", format="png", height=400)
                    sm_x0 = gr.Image(label="x0_hat: the network's guess", elem_classes="pixelated", format="png",
                                     height=400)  # fmt: skip
        with gr.Row(elem_classes="advanced"):
            sm_files = gr.File(label="Download (PNG + JSON)", file_count="multiple")
            sm_json = gr.JSON(label="Parameters", open=False)

    gr.on([ui["load"], ui["model_md"].change, sm_n.change, sm_steps.change],
          lambda m, n, s: estimate(m, "sample", n=n, steps=s), [ui["model"], sm_n, sm_steps], sm_eta, **EST)  # fmt: skip
    sm_evt = sm_run.click(
        run_sample,
        [ui["model"], ui["seed"], sm_n, sm_steps],
        [sm_xt, sm_x0, sm_md, sm_json, sm_files],
        api_name="sample",
        show_progress_on=[sm_md],
        **_heavy(),
    )
    sm_evt.failure(_on_failure("sample"), None, sm_md, **LIGHT)
    sm_evt.success(lambda m, n, s: estimate(m, "sample", n=n, steps=s), [ui["model"], sm_n, sm_steps], sm_eta, **EST)
    sm_stop.click(_on_stop("sample"), None, [sm_md, sm_json, sm_files], cancels=[sm_evt], **STOPPED)


def restore_tab(ui) -> None:
    picked = [ui["model"], ui["image"], ui["upload"]]
    with gr.Tab("Inverse problems", id="restore"):
        _lead("restore")
        with gr.Row(equal_height=False):
            with gr.Column(scale=1, min_width=320):
                with gr.Row():
                    ip_op = gr.Dropdown(OPERATOR_CHOICES, value="gaussian_blur", label="Operator A", min_width=140)
                    ip_method = gr.Dropdown(METHOD_CHOICES, value="dps", label="Method", min_width=120)
                ip_run, ip_stop, ip_eta = _run_row("Restore", "ip")
                ip_steps = gr.Slider(
                    1,
                    1000,
                    value=100,
                    step=1,
                    label="reverse steps (strided)",
                    info="the tuned defaults (README table) use 250; at 50-100 the classical methods can win",
                    elem_id="ip-steps",
                )
                with gr.Accordion("Operator and method settings", open=False, elem_classes="advanced"):
                    with gr.Group(visible=True) as ip_blur:
                        ip_std = gr.Slider(0.5, 6.0, value=2.0, step=0.1, label="blur std (px)")
                        ip_kernel = gr.Slider(3, 31, value=13, step=2, label="kernel size (odd)")
                    with gr.Group(visible=False) as ip_boxg:
                        ip_box = gr.Radio(BOX_CHOICES, value="center", label="hole")
                    with gr.Group(visible=False) as ip_dropg:
                        ip_drop = gr.Slider(0.0, 0.95, value=0.5, step=0.05, label="fraction of pixels dropped")
                    ip_sigma = gr.Slider(
                        0.0,
                        0.5,
                        value=0.05,
                        step=0.01,
                        label="sigma_y: measurement noise std",
                        info="in [-1, 1] image units: 0.05 here = 0.025 on a [0, 1] scale",
                    )
                    t0, zeta, scale = task_defaults("gaussian_blur")
                    ip_t0 = gr.Slider(1, 999, value=t0, step=1, label="SDEdit t0 (start timestep)", visible=False)
                    ip_zeta = gr.Slider(0.0, 10.0, value=zeta, step=0.1, label="Score-ALD zeta", visible=False)
                    ip_scale = gr.Slider(0.0, 20.0, value=scale, step=0.1, label="DPS scale (step size lambda)")
                    ip_normalize = gr.Checkbox(
                        True,
                        label="DPS: normalised step lambda g/||g|| (eq. 29)",
                        info="off: the raw step lambda g of Chung et al.'s code (retune lambda: try 1-5)",
                    )
                    ip_samples = gr.Slider(
                        1,
                        MAX_SAMPLES,
                        value=samples_default("dps", "gaussian_blur"),
                        step=1,
                        label="chains averaged (k)",
                        info="k restorations side by side, shown as their mean: an estimate of E[x0|y], higher PSNR "
                        "than one, k times the work",
                    )
                    ip_precision = gr.Radio(
                        ["auto", "fp32", "bf16"],
                        value="auto",
                        label="network precision",
                        info="auto: bf16 where the CPU/GPU has fast bf16 (AVX512_BF16/AMX, CUDA); "
                        "the sampler's own arithmetic stays fp32",
                    )
                    ip_schedule = gr.Dropdown(
                        ["uniform", "quadratic", "karras", "spectral"],
                        value="uniform",
                        label="timestep schedule",
                        info="where the steps go: uniform stride, quadratic (DDIM), Karras rho=7, or spectral "
                        "(equal h rho(J_s) per step, from the model's stability profile)",
                    )
                with gr.Group(visible=False) as ip_maskg:
                    ip_mask = gr.ImageEditor(
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
                    ip_mask.convert_and_format_image = _bounded_decode(ip_mask.convert_and_format_image)
            with gr.Column(scale=3):
                ip_status = gr.Markdown(elem_id="ip-status")
                ip_strip = gr.HTML(elem_id="ip-strip")
                # the same pictures as files, for gradio_client users of /restore; the page shows them in the strip
                ip_truth = gr.Image(label="truth x0", format="png", visible="hidden")
                ip_meas = gr.Image(label="measurement y", format="png", visible="hidden")
                ip_gallery = gr.Gallery(
                    label="frames and results", format="png", visible="hidden", elem_id="ip-gallery"
                )
        with gr.Row(equal_height=False):
            ip_table = gr.Dataframe(label="metrics against the truth", interactive=False, scale=1)
            ip_plot = gr.Plot(label="PSNR of x0_hat and residual per step", scale=1)
        with gr.Row(elem_classes="advanced"):
            ip_files = gr.File(label="Download (PNG + JSON)", file_count="multiple")
            ip_json = gr.JSON(label="Parameters and metrics", open=False)

    def restore_eta(model_name, method, operator, steps, t0, samples):
        methods = _methods_for(method, operator) if method in ("compare", "sdedit", "score_ald", "dps") else []
        methods = ["denoise_restore" if m == "denoise" else m for m in methods]
        if len(methods) == 1:
            text = estimate(model_name, methods[0], steps=steps, t0=t0, samples=samples)
        else:
            text = estimate(model_name, "compare", methods=methods, steps=steps, t0=t0, samples=samples)
        return text + _ranking_note(int(steps or 0), operator)

    gr.on([ui["load"], ui["model_md"].change, ip_method.change, ip_op.change, ip_steps.change, ip_t0.change,
           ip_samples.change], restore_eta,
          [ui["model"], ip_method, ip_op, ip_steps, ip_t0, ip_samples], ip_eta, **EST)  # fmt: skip
    ip_op.change(operator_widgets, [ip_op, ip_box], [ip_blur, ip_boxg, ip_dropg, ip_maskg], **LIGHT)
    ip_box.change(operator_widgets, [ip_op, ip_box], [ip_blur, ip_boxg, ip_dropg, ip_maskg], **LIGHT)
    ip_method.change(method_widgets, ip_method, [ip_t0, ip_zeta, ip_scale, ip_normalize], **LIGHT)
    ip_op.change(task_defaults, ip_op, [ip_t0, ip_zeta, ip_scale], **LIGHT)
    gr.on([ip_op.change, ip_method.change], samples_default, [ip_method, ip_op], ip_samples, **LIGHT)
    gr.on([ip_box.change, *_picker_changes(ui)], mask_canvas, picked, ip_mask, **LIGHT)
    ip_evt = ip_run.click(
        run_restore,
        [
            *picked,
            ui["seed"],
            ip_op,
            ip_std,
            ip_kernel,
            ip_box,
            ip_drop,
            ip_sigma,
            ip_method,
            ip_t0,
            ip_zeta,
            ip_scale,
            ip_steps,
            ip_mask,
            ip_normalize,
            ip_samples,
            ip_precision,
            ip_schedule,
        ],  # fmt: skip
        [ip_truth, ip_meas, ip_gallery, ip_table, ip_plot, ip_status, ip_json, ip_files],
        api_name="restore",
        show_progress_on=[ip_status],
        **_heavy(),
    )
    ip_evt.failure(_on_failure("restore"), None, ip_status, **LIGHT)
    gr.on([ip_gallery.change, ip_truth.change], None, [ip_truth, ip_meas, ip_gallery], ip_strip, js=STRIP_JS)
    ip_evt.success(restore_eta, [ui["model"], ip_method, ip_op, ip_steps, ip_t0, ip_samples], ip_eta, **EST)
    ip_stop.click(_on_stop("restore"), None, [ip_status, ip_json, ip_files], cancels=[ip_evt], **STOPPED)


def sensitivity_tab(ui) -> None:
    picked = [ui["model"], ui["image"], ui["upload"]]
    with gr.Tab("Sensitivity", id="sensitivity") as sens_tab:
        _lead("sensitivity")
        with gr.Row(equal_height=False):
            with gr.Column(scale=1, min_width=280):
                sens_probe, sens_stop, sens_eta = _run_row("Probe", "sens")
                sens_image = gr.Image(
                    label="noised image x_t: click a pixel",
                    interactive=False,
                    elem_id="sens-image",
                    format="png",
                    height=240,
                )
                sens_t = gr.Slider(1, 999, value=200, step=1, label="t (re-probes the same pixel)", elem_id="sens-t")
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
                sens_md = gr.Markdown(elem_id="sens-md")
                sens_energy = gr.Plot(label="energy vs radius", elem_id="sens-energy", show_label=False)
        with gr.Row(elem_classes="advanced"):
            sens_files = gr.File(label="Download (PNG + JSON)", file_count="multiple")
            sens_json = gr.JSON(label="Probe", open=False)

    gr.on([ui["load"], ui["model_md"].change], eta_probe, ui["model"], sens_eta, **EST)
    probe_out = [sens_image, sens_maps, sens_energy, sens_md, sens_json, sens_files]
    gr.on(
        [sens_tab.select, *_picker_changes(ui), ui["seed"].change],
        noised_view,
        [*picked, ui["seed"], sens_t],
        [sens_image, sens_md],
        **LIGHT,
    )
    probe_in = [*picked, ui["seed"], sens_t, sens_x, sens_y, sens_on]
    heavy = dict(_heavy(), show_progress_on=[sens_maps])
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
    for evt in (click_evt, button_evt, reprobe_evt):
        evt.failure(_on_failure("probe"), None, sens_md, **LIGHT)
        evt.success(eta_probe, ui["model"], sens_eta, **EST)
    sens_stop.click(
        _on_stop("probe"),
        None,
        [sens_md, sens_json, sens_files],
        cancels=[click_evt, button_evt, reprobe_evt],
        **STOPPED,
    )


def eta_probe(model_name):
    return estimate(model_name, "probe", sweep=len(SWEEP_TIMESTEPS) + 1)


def spectrum_tab(ui) -> None:
    picked = [ui["model"], ui["image"], ui["upload"]]
    with gr.Tab("Spectrum", id="spectrum"):
        _lead("spectrum")
        with gr.Row(equal_height=False):
            with gr.Column(scale=1, min_width=300):
                sp_ts = gr.CheckboxGroup(list(SPECTRUM_TIMESTEPS), value=["50", "500"], label="timesteps")
                sp_run, sp_stop, sp_eta = _run_row("Compute", "sp")
                with gr.Accordion("Iteration settings", open=False, elem_classes="advanced"):
                    sp_k = gr.Slider(1, 8, value=3, step=1, label="singular vectors k")
                    sp_iters = gr.Slider(2, 60, value=20, step=1, label="Lanczos / Arnoldi steps")
            with gr.Column(scale=3):
                sp_md = gr.Markdown(elem_id="sp-md")
                sp_sv = gr.Plot(label="singular values and spectral radius (Figure 8)", elem_id="sp-sv")
                sp_vectors = gr.Plot(label="dominant right singular vectors of J_f (Figure 9)", elem_id="sp-vectors")
                sp_rho = gr.Plot(label="explicit-Euler step limit vs the strided step", elem_id="sp-rho")
        with gr.Row(elem_classes="advanced"):
            sp_files = gr.File(label="Download (JSON)", file_count="multiple")
            sp_json = gr.JSON(label="Spectra", open=False)
        with gr.Accordion("The poster's claims on this model (computed verdicts)", open=False):
            claims_md = gr.Markdown()

    def spectrum_eta(model_name, ts, k, iters):
        return estimate(model_name, "spectrum", k=k, iters=iters, n_t=len(ts or []))

    gr.on([ui["load"], ui["model_md"].change, sp_ts.change, sp_k.change, sp_iters.change], spectrum_eta,
          [ui["model"], sp_ts, sp_k, sp_iters], sp_eta, **EST)  # fmt: skip
    sp_evt = sp_run.click(
        run_spectrum,
        [*picked, ui["seed"], sp_ts, sp_k, sp_iters],
        [sp_sv, sp_vectors, sp_rho, sp_md, sp_json, sp_files],
        api_name="spectrum",
        show_progress_on=[sp_md],
        **_heavy(),
    )
    gr.on([ui["load"], ui["model"].change], claims_panel, ui["model"], claims_md, **LIGHT)
    sp_evt.failure(_on_failure("spectrum"), None, sp_md, **LIGHT)
    sp_evt.success(spectrum_eta, [ui["model"], sp_ts, sp_k, sp_iters], sp_eta, **EST)
    sp_stop.click(_on_stop("spectrum"), None, [sp_md, sp_json, sp_files], cancels=[sp_evt], **STOPPED)


def build_app() -> gr.Blocks:
    """The whole UI. No model is loaded and no engine module imported until a user (or client) asks."""
    start_model = default_model()
    # delete_cache: hourly, drop gradio's copies of uploads and outputs older than 2 h (and all of them on exit),
    # so a long-running Space does not fill its disk
    with gr.Blocks(title="diffdemo: diffusion priors for inverse problems", delete_cache=(3600, 7200)) as demo:
        ui = _header(start_model)
        ui["load"] = demo.load
        with gr.Tabs():
            denoise_tab(ui)
            generate_tab(ui)
            restore_tab(ui)
            sensitivity_tab(ui)
            spectrum_tab(ui)

        # ---- wiring: pickers and the presenter view ----
        picked = [ui["model"], ui["image"], ui["upload"]]
        demo.load(populate_pickers, None, [ui["model"], ui["gallery"], ui["image"]], **LIGHT, show_progress="hidden")
        ui["gallery"].select(pick_bundled, None, ui["image"], **LIGHT)
        ui["upload"].change(pick_upload, ui["upload"], ui["image"], **LIGHT)
        gr.on(
            [demo.load, ui["model_md"].change, ui["image"].change, ui["upload"].change],
            preview,
            picked,
            [ui["working"], ui["image_md"]],
            **LIGHT,
        )
        # model_info opens (loads) the model, so it counts against the heavy limit; the light views only use a model
        # already loaded, and refresh when model_md changes (the model has loaded)
        gr.on([demo.load, ui["model"].change], model_info, ui["model"], ui["model_md"], api_visibility="private",
              **_heavy())  # fmt: skip
        demo.load(None, None, ui["presenter"], js=PRESENTER_ON_LOAD)
        ui["presenter"].input(None, ui["presenter"], None, js=PRESENTER_JS)
    return demo


def serve_queue(demo: gr.Blocks, **queue_kw) -> gr.Blocks:
    """Turn on the queue (64 requests in all) and its per-client limit on heavy requests (diffdemo/serving.py):
    one client cannot fill the queue and lock every other user out."""
    from diffdemo.serving import limit_queue

    demo.queue(**{"default_concurrency_limit": HEAVY_LIMIT, "max_size": 64, **queue_kw})
    limit_queue(demo._queue, HEAVY)
    return demo


def parse_flags(argv=None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(description="diffdemo's Gradio app")
    ap.add_argument("--public", action="store_true", help="a public deployment's limits (automatic on a Space)")
    ap.add_argument(
        "--allow-local-models", action="store_true", help="let the model field take local folders (not with --public)"
    )
    flags = ap.parse_args(argv)
    if flags.public:
        os.environ["DIFFDEMO_PUBLIC"] = "1"
    if flags.allow_local_models:
        os.environ["DIFFDEMO_ALLOW_LOCAL_MODELS"] = "1"
    return flags


def main() -> None:
    from diffdemo.serving import describe

    parse_flags()
    started = time.perf_counter()
    demo = serve_queue(build_app())
    demo.launch(
        server_name=os.environ.get("GRADIO_SERVER_NAME", "127.0.0.1"),
        server_port=int(os.environ.get("GRADIO_SERVER_PORT", "7860")),
        css=CSS,
        max_file_size="40mb",
        prevent_thread_lock=True,
    )
    print(f"diffdemo: serving after {time.perf_counter() - started:.1f} s (plus interpreter start-up)", flush=True)
    print(f"diffdemo: {describe()}", flush=True)
    if not ZERO_GPU:  # on ZeroGPU the GPU exists only inside a run: the first run is timed instead
        threading.Thread(target=warm_engine, daemon=True).start()
    demo.block_thread()


if __name__ == "__main__":
    main()
