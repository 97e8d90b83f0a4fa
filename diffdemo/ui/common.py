"""What every tab shares: the model and picture a handler works on, its parameters checked by the one rule of
diffdemo/validation.py, the heavy-event guard and budget, result folders, and pictures as files or inline strips.
The engine is imported inside the functions: the app serves before torch loads."""

from __future__ import annotations

import contextvars
import functools
import os
import tempfile
import threading
import time
import uuid
from contextlib import contextmanager
from pathlib import Path

import gradio as gr

UPLOAD = "(uploaded file)"
HEAVY = "network"  # one concurrency group for every event that runs the network: 2 CPU cores, not oversubscribed
HEAVY_LIMIT = max(1, int(os.environ.get("DIFFDEMO_CONCURRENCY", "1")))
RESULTS_DIR = Path(tempfile.gettempdir()) / "diffdemo-results"
VIEWS_DIR = RESULTS_DIR / "views"


def refuse(message: str, title: str | None = None) -> gr.Error:
    """A refusal as gradio shows it: the message cut short (a long input is never echoed whole), and one line in
    the server's log instead of a traceback."""
    from diffdemo.serving import cut, log_refusal

    log_refusal(title or "request", message)
    return gr.Error(cut(message, 300), title=title, print_exception=False)


def default_model() -> str:
    """The model the pickers start on: $DIFFDEMO_MODEL (tests point it at a tiny model) or the embedded faces64."""
    return os.environ.get("DIFFDEMO_MODEL", "faces64")


def _allowed(name: str) -> str:
    """The canonical name of a model this deployment offers, or the one 'no such model' message."""
    from diffdemo.models import ModelUnavailable
    from diffdemo.serving import check_model

    try:
        return check_model(name, default_model())
    except ModelUnavailable as exc:
        raise refuse(f"Model unavailable: {exc}", title="Model unavailable") from None


def open_model(name: str):
    """Open a model or show why it cannot be opened (not offered here, no network for a hub id...). Only
    events in the HEAVY concurrency group call this: loading a model is counted against that limit."""
    from diffdemo.models import ModelUnavailable, load_model

    canonical = _allowed(name)
    try:
        return load_model(canonical)
    except ModelUnavailable as exc:
        raise refuse(f"Model unavailable: {without_prefix(str(exc))}", title="Model unavailable") from None


def without_prefix(text: str) -> str:
    """The reason alone: the loader's own message may already begin with 'Model unavailable:'."""
    while text.lower().startswith("model unavailable"):
        text = text[len("model unavailable") :].lstrip(":. ")
    return text


def model_if_loaded(name: str):
    """The model if a heavy event has loaded it already: the light events (previews, clicks) never load one."""
    from diffdemo.models import cached_model

    model = cached_model(_allowed(name))
    if model is None:
        raise refuse("The model is loading; this view fills in once it has.", title="Loading")
    return model


_running = [0]  # heavy runs of real users going on now (the start-up landing runs give way to them)
_running_lock = threading.Lock()
_background = threading.local()  # set on the thread that computes the landing views: its runs are not counted


def users_running() -> int:
    """How many real users' heavy runs are going on now."""
    return _running[0]


@contextmanager
def background_runs():
    """Runs started on this thread inside the block are the server's own (the landing views): not counted as
    users' runs."""
    _background.on = True
    try:
        yield
    finally:
        _background.on = False


# The latest state of each running job, per browser session and task: when Stop cancels a run, its handler cannot
# yield again, so the Stop handler writes the partial results (marked as such) from here (diffdemo/ui/runs.py). Each
# state is marked with the run (``guarded`` call) that tracked it: a run that raises takes its states with it at once;
# a run closed unfinished (Stop, a client gone) leaves them for Stop to read for ``ENDED_KEEP_S``, no longer.
LIVE_RUNS: dict[tuple[str, str], dict] = {}
ENDED_KEEP_S = 60.0
_live_lock = threading.Lock()
_live_owner: contextvars.ContextVar[object | None] = contextvars.ContextVar("diffdemo_live_owner", default=None)


def keep_live(key: tuple[str, str], state: dict) -> None:
    """Hold ``state`` as the latest of the run going on for ``key`` (session, task), marked as the current run's."""
    now = time.monotonic()
    with _live_lock:
        for old in [k for k, v in LIVE_RUNS.items() if v["ended"] is not None and now - v["ended"] > ENDED_KEEP_S]:
            del LIVE_RUNS[old]  # runs closed unfinished whose Stop never came
        LIVE_RUNS[key] = {**state, "owner": _live_owner.get(), "ended": None}


def take_live(key: tuple[str, str]) -> dict | None:
    """The latest state held for ``key``, removed (None when there is none)."""
    with _live_lock:
        return LIVE_RUNS.pop(key, None)


def _release(owner: object, failed: bool) -> None:
    """The states ``owner`` tracked: dropped after a failure; kept for Stop a little while after a close."""
    with _live_lock:
        for key, state in list(LIVE_RUNS.items()):
            if state["owner"] is owner:
                if failed:
                    del LIVE_RUNS[key]
                else:
                    state["ended"] = time.monotonic()


def guarded(fn):
    """A heavy event: refused or stopped by this server's limits (diffdemo/serving.py), the engine's own errors
    (bad parameters, over budget, time cap) shown as one-line messages; counted while it runs (users_running). The
    run's states kept for Stop (``keep_live``) go when it fails, and soon after it is closed unfinished."""

    @functools.wraps(fn)
    def run(*args, **kwargs):
        from diffdemo.errors import DiffdemoError
        from diffdemo.serving import capped

        counted = not getattr(_background, "on", False)
        if counted:
            with _running_lock:
                _running[0] += 1
        owner = object()  # this run's mark on the states it keeps; set around each step, in whichever thread asks
        frames = capped(fn(*args, **kwargs))
        try:
            while True:
                token = _live_owner.set(owner)
                try:
                    frame = next(frames)
                except StopIteration:
                    return
                finally:
                    _live_owner.reset(token)
                yield frame
        except DiffdemoError as exc:
            _release(owner, failed=True)
            raise refuse(str(exc), title="Refused") from None
        except Exception:
            _release(owner, failed=True)
            raise
        except BaseException:  # GeneratorExit (Stop, a client gone), KeyboardInterrupt: Stop may still read them
            _release(owner, failed=False)
            raise
        finally:
            frames.close()
            if counted:
                with _running_lock:
                    _running[0] -= 1

    return run


def within_budget(*works: tuple[str, dict]) -> None:
    """Refuse a request above this server's budget of network evaluations, before any work."""
    from diffdemo.estimates import evaluations, image_evaluations
    from diffdemo.serving import check_budget

    check_budget(sum(image_evaluations(evaluations(task, **params)) for task, params in works))


def read_picture(model, image: str | None, upload: str | None):
    """The chosen picture as uint8 (size, size, 3) at the model's resolution, and its label."""
    from diffdemo.imaging import ImageError, bundled_images, load_image

    if image == UPLOAD:
        if not upload:
            raise refuse("Upload an image first (or pick one of the bundled images).", title="No image")
        if not isinstance(upload, (str, Path)):
            raise refuse("upload must be a file (the path gradio gives an uploaded file)", title="No image")
        source, label = upload, Path(upload).name  # the upload's own file name, never the server's path
    elif not image:
        raise refuse("Choose an image first: click one of the bundled images or upload your own.", title="No image")
    else:
        bundled = bundled_images()
        if not isinstance(image, str) or image not in bundled:
            shown = str(image)[:40]
            raise refuse(f"Unknown image '{shown}': use one of {', '.join(bundled)} or '{UPLOAD}'.", title="No image")
        source, label = bundled[image], image
    try:
        return load_image(source, model.size, label="the uploaded file" if image == UPLOAD else label), label
    except ImageError as exc:
        raise refuse(f"Cannot use this image: {exc}", title="Bad image") from None


def clean_image(model, image, upload):
    from diffdemo.imaging import to_tensor

    arr, label = read_picture(model, image, upload)
    return to_tensor(arr), arr, label


def validated(rule: str, *args, capital: bool = True):
    """``validation.<rule>(*args)``: a value from the UI or the API by the one rule of diffdemo/validation.py, or
    that rule's message as one sentence ("t" is left lower-case: "T" would read as the noise schedule's length)."""
    from diffdemo import validation
    from diffdemo.errors import InvalidParameter

    try:
        return getattr(validation, rule)(*args)
    except InvalidParameter as exc:
        text = str(exc)
        raise refuse(f"{text[0].upper() if capital else text[0]}{text[1:]}.", title="Out of range") from None


def check_value(name: str, value):
    return validated("check", name, value)


def parse_seed(seed) -> int:
    return check_value("seed", seed)


def parse_t(model, t, name: str = "t") -> int:
    return validated("check_timestep", t, model.schedule.T, name, capital=False)


def parse_spacing(model_name, spacing) -> str:
    """A timestep spacing name; the spectral one needs the model's stored stability profile (a bad name or a
    missing profile is the user's error: ``@guarded`` shows it as one line)."""
    from diffdemo.defaults import SPACING
    from diffdemo.profiles import load_profile
    from diffdemo.spacing import SPACINGS
    from diffdemo.validation import check_choice

    spacing = check_choice("spacing", spacing or SPACING, SPACINGS)
    if spacing == "spectral":
        load_profile(model_name)  # InvalidParameter naming the command to run when the model has none
    return spacing


def frame_stride(steps: int, frames: int = 12) -> int:
    """Stream about ``frames`` frames per run, whatever its length: each streamed frame costs the server 50-100 ms
    (pictures to the cache, the JSON of the figures) on the 2-core CPU, 10-20 % of a few-step run at 25 frames."""
    return max(1, steps // frames)


def run_dir(task: str, request=None) -> Path:
    """A fresh results folder, recorded as the caller's (the disk bound weighs holders), the bound enforced first."""
    from diffdemo.serving import own, request_address

    _prune()
    path = RESULTS_DIR / f"{task}-{time.strftime('%Y%m%d-%H%M%S')}-{uuid.uuid4().hex[:6]}"
    if request is not None:
        own(path, request_address(request))
    return path


def _u8(x):
    from diffdemo.imaging import to_uint8

    return to_uint8(x)


def view_file(x, stem: str = "image") -> str:
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


def _disk_folders() -> list[Path]:
    from gradio.utils import get_upload_folder

    return [RESULTS_DIR, VIEWS_DIR, Path(get_upload_folder())]


PRUNE_EVERY_S = 10.0  # the disk bound is checked before a save at most this often
_last_prune = [float("-inf")]


def _prune() -> None:
    """Keep result folders, pictures and gradio's copies of them (and uploads) within the age and size limits of
    diffdemo/serving.py before a save: the largest holder's oldest files go first.

    At most once every PRUNE_EVERY_S: a prune walks every file held (0.75-1 s for 4,600 entries and 70 MB on the
    2-core CPU, growing with the files up to the bound), which the end of every run used to wait for. Between two
    prunes the disk can exceed the bound only by what finishes within 10 s, which the queue's per-address cap
    bounds (diffdemo/serving.py); uploads still prune at once (after_upload)."""
    from diffdemo.serving import prune

    now = time.monotonic()
    if now - _last_prune[0] < PRUNE_EVERY_S:
        return
    _last_prune[0] = now
    prune(_disk_folders())


def after_upload(paths: list[str], address: str) -> None:
    """An upload has landed (serving.UploadGate): record it as ``address``'s and enforce the disk bound on the
    uploader's own files only; if they cannot make room, this upload is deleted too (using it then says so)."""
    from diffdemo.serving import delete_entry, limits, own, prune

    folders = _disk_folders()
    upload_root = folders[-1].resolve()
    entries = set()
    for path in paths:
        try:
            relative = Path(path).resolve().relative_to(upload_root)
        except ValueError:
            continue
        entries.add(upload_root / relative.parts[0])
    for entry in entries:
        own(entry, address)
    if prune(folders, writer=address) > limits().results_max_bytes:
        for entry in entries:
            delete_entry(entry)


def number_text(value, digits: int = 2) -> str:
    return "unavailable" if value is None else f"{value:.{digits}f}"


def lpips_note(value, size: int) -> str:
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


def strip_html(tiles: list[tuple], note: str = "") -> str:
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


def metrics_line(m: dict) -> str:
    """'25.31 dB, SSIM 0.812, LPIPS 0.123' (LPIPS 'n/a' when it cannot be computed here)."""
    lp = "n/a" if m.get("lpips") is None else f"{m['lpips']:.3f}"
    return f"{m['psnr']:.2f} dB, SSIM {m['ssim']:.3f}, LPIPS {lp}"


def enlarged_file(x, stem: str) -> str:
    """A picture (tensor in [-1, 1] or uint8 array) enlarged by ``zoom_for`` with nearest neighbour, as a file."""
    import numpy as np

    from diffdemo.imaging import enlarge

    arr = x if isinstance(x, np.ndarray) else _u8(x)
    return view_file(enlarge(arr, zoom_for(arr.shape[0])), stem)


def zoom_for(size: int) -> int:
    """Nearest-neighbour enlargement of the clickable image: Gradio maps clicks to pixels only for images shown
    at or below their natural size, so the picture is served large and clicks are divided back."""
    from diffdemo.imaging import zoom_factor

    return zoom_factor(size, 256)
