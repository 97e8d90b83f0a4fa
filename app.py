"""diffdemo's Gradio app: diffusion models as priors for image inverse problems, watched step by step.

UI and wiring only: every number and picture comes from the engine in ``diffdemo/``. The engine (torch,
scikit-image, diffusers) is imported lazily inside the handlers and warmed up in the background after the
server is up, so ``python app.py`` serves within seconds. Run ``python app.py``; environment variables:
DIFFDEMO_MODEL (default model: embedded name, local diffusers folder or hub id), GRADIO_SERVER_NAME,
GRADIO_SERVER_PORT, DIFFDEMO_CONCURRENCY (heavy runs at once, default 1).
"""

from __future__ import annotations

import os
import tempfile
import threading
import time
import uuid
from pathlib import Path

import gradio as gr

from diffdemo.defaults import MAX_SAMPLES, params_for
from diffdemo.labels import METHOD_TITLES

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
SPECTRUM_TIMESTEPS = ("10", "50", "100", "200", "400", "700", "950")
CSS = """
.pixelated img { image-rendering: pixelated; object-fit: contain; width: 100% !important; height: 100% !important; }
#sens-image img { image-rendering: pixelated; cursor: crosshair; }
#ip-gallery img { image-rendering: pixelated; }
"""


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
    from diffdemo.models import ModelUnavailable
    from diffdemo.ui_helpers import measure_cost, open_model

    try:
        measure_cost(open_model(default_model()))
    except ModelUnavailable:
        pass  # the page says why when it loads


def _model(name: str):
    """Open a model or show why it cannot be opened (no network for a hub id, a missing folder...)."""
    from diffdemo.models import ModelUnavailable
    from diffdemo.ui_helpers import open_model

    try:
        return open_model(name)
    except ModelUnavailable as exc:
        raise gr.Error(f"Model unavailable: {exc}", title="Model unavailable") from None


def _picture(model, image: str | None, upload: str | None):
    """The chosen picture as uint8 (size, size, 3) at the model's resolution, and its label."""
    from diffdemo.imaging import ImageError, bundled_images, load_image

    if image == UPLOAD:
        if not upload:
            raise gr.Error("Upload an image first (or pick one of the bundled images).", title="No image")
        source, label = upload, Path(upload).name
    elif not image:
        raise gr.Error("Choose an image first: click one of the bundled images or upload your own.", title="No image")
    else:
        bundled = bundled_images()
        if image not in bundled:
            raise gr.Error(f"Unknown image '{image}': use one of {', '.join(bundled)} or '{UPLOAD}'.")
        source, label = bundled[image], image
    try:
        return load_image(source, model.size), label
    except ImageError as exc:
        raise gr.Error(f"Cannot use this image: {exc}", title="Bad image") from None


def _x0(model, image, upload):
    from diffdemo.imaging import to_tensor

    arr, label = _picture(model, image, upload)
    return to_tensor(arr), arr, label


def _check(name: str, value, low, high, integer: bool = True):
    """A parameter from the UI or the API, in range, or a clear error."""
    if value is None:
        raise gr.Error(f"{name} is missing.")
    try:
        value = int(value) if integer else float(value)
    except (TypeError, ValueError):
        raise gr.Error(f"{name} must be a number, got {value!r}.") from None
    if not low <= value <= high:
        raise gr.Error(f"{name} must be between {low} and {high}, got {value}.", title="Out of range")
    return value


def _seed(seed) -> int:
    return _check("Seed", seed, 0, 2**31 - 1)


def _t(model, t, name: str = "t") -> int:
    return _check(name, t, 1, model.schedule.T - 1)


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


def _prune(max_age_s: float = 2 * 3600) -> None:
    """Forget result folders and pictures older than two hours (checked at most every ten minutes)."""
    import shutil

    now = time.time()
    if now - _last_prune[0] < 600 or not RESULTS_DIR.is_dir():
        return
    _last_prune[0] = now
    for entry in [*RESULTS_DIR.iterdir(), *(VIEWS_DIR.iterdir() if VIEWS_DIR.is_dir() else [])]:
        try:
            if entry != VIEWS_DIR and now - entry.stat().st_mtime > max_age_s:
                shutil.rmtree(entry) if entry.is_dir() else entry.unlink()
        except OSError:
            pass


def _fmt(value, digits: int = 2) -> str:
    return "unavailable" if value is None else f"{value:.{digits}f}"


def _lpips_note(value) -> str:
    if value is not None:
        return ""
    from diffdemo.metrics import lpips_status

    return f"\n\n<small>LPIPS: {lpips_status()}</small>"


# --- pickers ---------------------------------------------------------------------------------------
def populate_pickers():
    """Fill the model list and the gallery once the page is open (keeps the engine import out of start-up)."""
    from diffdemo.imaging import bundled_images
    from diffdemo.models import HUB_MODELS, available_models

    models = list(dict.fromkeys([default_model(), *available_models(), *HUB_MODELS]))
    bundled = bundled_images()
    return (
        gr.Dropdown(choices=models),
        [(str(path), name) for name, path in bundled.items()],
        gr.Dropdown(choices=[*bundled, UPLOAD]),
    )


def pick_bundled(evt: gr.SelectData):
    from diffdemo.imaging import bundled_images

    return list(bundled_images())[evt.index]


def pick_upload(upload):
    return gr.Dropdown(value=UPLOAD) if upload else gr.skip()


def model_info(name: str) -> str:
    """The model's size and its measured cost; or, for a hub model not downloaded, an estimate; or why not."""
    from diffdemo.models import ModelUnavailable
    from diffdemo.ui_helpers import cost_for, format_seconds, is_local, is_open

    name = (name or "").strip()
    try:
        cost = cost_for(name, default_model())
    except ModelUnavailable as exc:
        return f"**Model unavailable.** {exc}"
    params = f"{cost['params'] / 1e6:.1f}M parameters" if cost.get("params") else ""
    if cost["estimated"]:
        return (
            f"**{name}** ({cost['size']} px, {params}): not downloaded. *Rough estimate* for this machine, the "
            f"measured {cost['scaled_from']} scaled by parameters x pixels (from a much smaller model this "
            f"overestimates): ~{format_seconds(cost['forward_s'])} per network evaluation, "
            f"~{format_seconds(cost['grad_s'])} per DPS step. Pressing Run downloads it (needs network)."
        )
    where = "embedded" if is_local(name) and "/" not in name else ("local folder" if is_local(name) else "hub")
    state = "loaded" if is_open(name) else ""
    return (
        f"**{name}** ({where}, {state} {cost['size']} px, {params}). Measured here: "
        f"{format_seconds(cost['forward_s'])} per network evaluation, "
        f"{format_seconds(cost['grad_s'])} per evaluation with its gradient (a DPS step)."
    )


def preview(model_name: str, image: str, upload):
    """The working image (centre-cropped, resized to the model) and a status line; never raises."""
    try:
        model = _model(model_name)
        arr, label = _picture(model, image, upload)
    except gr.Error as exc:
        return None, f"**{exc.title or 'Error'}:** {exc.message}"
    return _file(
        arr, "working"
    ), f"Working image: **{label}**, {arr.shape[1]}x{arr.shape[0]} px (centre-cropped, resized to the model)."


def estimate(model_name: str, task: str, **params) -> str:
    """'About N s on this machine' before a run, from the measured (or estimated) cost per evaluation."""
    from diffdemo.models import ModelUnavailable
    from diffdemo.ui_helpers import cost_for, evaluations, format_seconds, image_evaluations, run_seconds

    try:
        cost = cost_for((model_name or "").strip(), default_model())
        if task == "compare":
            methods = params.pop("methods")
            work = [evaluations(m, **params) for m in methods]
            seconds = sum(run_seconds(cost, **w) for w in work)
            n_eval = sum(image_evaluations(w) for w in work)
        else:
            work = evaluations(task, **params)
            seconds = run_seconds(cost, **work)
            n_eval = image_evaluations(work)
    except (ModelUnavailable, KeyError, TypeError, ValueError) as exc:
        return f"Time estimate unavailable: {exc}"
    kind = "estimate (model not loaded yet)" if cost["estimated"] else "from a forward pass timed on this machine"
    return f"Expected run time: **~{format_seconds(seconds)}** ({n_eval} image evaluations of the network; {kind})."


# --- Task 2: denoise -------------------------------------------------------------------------------
def run_denoise(model_name, image, upload, seed, t, steps, progress=gr.Progress()):
    """Noise the image to x_t (eq. 3), run reverse diffusion back to 0 (eq. 24), streaming x_t and x0_hat."""
    from diffdemo import metrics
    from diffdemo.samplers import denoise, noise_image
    from diffdemo.ui_helpers import write_results

    model = _model(model_name)
    seed, t = _seed(seed), _t(model, t)
    steps = _check("Steps", steps, 1, 1000)
    x0, _, label = _x0(model, image, upload)
    x_t = noise_image(model, x0, t, seed)
    noisy = _file(x_t, "noised")
    frame = None
    started = time.perf_counter()
    for frame in denoise(model, x_t, t, steps=steps, seed=seed, every=_every(steps)):
        progress(frame.step / frame.total, desc=f"denoising: step {frame.step}/{frame.total}")
        status = f"Step {frame.step}/{frame.total} (t = {frame.t} -> {max(frame.t_next, 0)})"
        yield noisy, _file(frame.x_t, "x_t"), _file(frame.x0_hat, "x0_hat"), status, gr.skip(), gr.skip()
        noisy = gr.skip()  # sent once
    result = frame.x_t.cpu()
    before, after = metrics.all_metrics(x_t.cpu(), x0), metrics.all_metrics(result, x0)
    record = {
        "task": "denoise",
        "model": model_name,
        "image": label,
        "seed": seed,
        "t": t,
        "steps": frame.total,
        "seconds": time.perf_counter() - started,
        "noisy": before,
        "denoised": after,
    }
    table = (
        "| | PSNR (dB) | SSIM | LPIPS |\n|---|---|---|---|\n"
        f"| noised input x_t | {before['psnr']:.2f} | {before['ssim']:.3f} | {_fmt(before['lpips'], 3)} |\n"
        f"| denoised | {after['psnr']:.2f} | {after['ssim']:.3f} | {_fmt(after['lpips'], 3)} |"
        + _lpips_note(after["lpips"])
    )
    files = write_results(_run_dir("denoise"), {"clean": x0, "noised": x_t, "denoised": result}, record)
    yield _file(x_t, "noised"), _file(result, "x_t"), _file(frame.x0_hat, "x0_hat"), table, record, files


def run_psnr_curve(model_name, image, upload, seed, steps, points, progress=gr.Progress()):
    """Figure 1: PSNR of the noised input and of its denoising against t, streamed point by point."""
    from diffdemo import plots
    from diffdemo.ui_helpers import log_timesteps, psnr_vs_t

    model = _model(model_name)
    seed = _seed(seed)
    steps, points = _check("Steps", steps, 1, 1000), _check("Points", points, 2, 30)
    x0, _, _ = _x0(model, image, upload)
    ts = log_timesteps(model.schedule.T, points)
    rows = []
    for i, row in enumerate(psnr_vs_t(model, x0, ts, steps=steps, seed=seed)):
        rows.append(row)
        progress((i + 1) / len(ts), desc=f"t = {row['t']}")
        yield plots.psnr_vs_t_figure(rows)


# --- Task 3: sample --------------------------------------------------------------------------------
def run_sample(model_name, seed, n, steps, progress=gr.Progress()):
    """Ancestral DDPM sampling from N(0, I) (eq. 25), a grid of x_t and of x0_hat every few steps."""
    from diffdemo.imaging import grid
    from diffdemo.samplers import sample
    from diffdemo.ui_helpers import write_results

    model = _model(model_name)
    seed, n, steps = _seed(seed), _check("Samples", n, 1, 16), _check("Steps", steps, 1, 1000)
    nrow = min(n, 4)
    started = time.perf_counter()
    frame = None
    for frame in sample(model, n, steps, seed, every=_every(steps)):
        progress(frame.step / frame.total, desc=f"sampling: step {frame.step}/{frame.total}")
        status = f"Step {frame.step}/{frame.total} (t = {frame.t})"
        x_t, x0_hat = _file(grid(frame.x_t.cpu(), nrow), "samples"), _file(grid(frame.x0_hat.cpu(), nrow), "x0_hats")
        yield x_t, x0_hat, status, gr.skip(), gr.skip()
    seconds = time.perf_counter() - started
    record = {"task": "sample", "model": model_name, "seed": seed, "n": n, "steps": steps, "seconds": seconds}
    images = {f"sample_{i:02d}": frame.x_t[i : i + 1].cpu() for i in range(n)}
    files = write_results(_run_dir("sample"), images, record)
    done = f"Done: {n} samples, {steps} steps, {seconds:.1f} s."
    yield (
        _file(grid(frame.x_t.cpu(), nrow), "samples"),
        _file(grid(frame.x0_hat.cpu(), nrow), "x0_hats"),
        done,
        record,
        files,
    )


# --- Tasks 4-6: inverse problems ------------------------------------------------------------------
def _operator(model, operator, blur_std, kernel_size, box, drop, mask_layers, seed):
    from diffdemo.operators import OPERATORS, DrawnMask, make_operator
    from diffdemo.ui_helpers import hole_from_layers

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
            std = _check("Blur std", blur_std, 0.3, 10.0, integer=False)
            k = _check("Kernel size", kernel_size, 3, 63)
            if k % 2 == 0:
                raise gr.Error(f"Kernel size must be odd, got {k}.")
            if k // 2 >= size:
                raise gr.Error(f"A {k}x{k} kernel is too large for a {size} px image.")
            return make_operator(operator, size, std=std, kernel_size=k)
        if operator == "random_inpaint":
            return make_operator(operator, size, drop=_check("Drop fraction", drop, 0.0, 0.95, False), mask_seed=seed)
        return make_operator(operator, size, preset=box if box != "drawn" else None)
    except ValueError as exc:
        raise gr.Error(str(exc)) from None


def _methods_for(method: str, operator: str) -> list[str]:
    if method == "compare":
        return ["sdedit", "score_ald", "dps"] + (["denoise"] if operator == "noise" else [])
    if method not in ("sdedit", "score_ald", "dps"):
        raise gr.Error(f"Unknown method '{method}': choose SDEdit, Score-ALD, DPS or Compare all.")
    return [method]


def _gallery(latest: dict, finals: dict, single: bool) -> list:
    items = []
    for name, frame in latest.items():
        title = METHOD_TITLES.get(name, name)
        if name in finals:
            items.append((_file(finals[name], name), f"{title}: result ({frame.total} steps)"))
        else:
            items.append((_file(frame.x0_hat, name), f"{title}: x0_hat, step {frame.step}/{frame.total}"))
        if single:
            items.append((_file(frame.x_t, name), f"{title}: x_t (t = {max(frame.t_next, 0)})"))
        if single and frame.x_std is not None:
            spread = frame.x_std.mean(1, keepdim=True).expand_as(frame.x_std)
            top = float(spread.max())
            shown = spread / max(top, 1e-8) * 2 - 1
            items.append((_file(shown, f"{name}_std"), f"{title}: spread across the chains (white = {top:.3f})"))
    for name, x in finals.items():
        if name not in latest:
            items.append((_file(x, name), f"{METHOD_TITLES.get(name, name)} (classical)"))
    return items


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
    """A timestep schedule name; the spectral one needs the model's stored stability profile."""
    from diffdemo.schedule import SCHEDULES
    from diffdemo.stability import load_profile

    schedule = str(schedule or "uniform")
    if schedule not in SCHEDULES:
        raise gr.Error(f"Schedule must be one of {', '.join(SCHEDULES)}, got {schedule!r}.")
    if schedule == "spectral":
        try:
            load_profile(model_name)
        except ValueError as exc:
            raise gr.Error(str(exc)) from None
    return schedule


def claims_panel(model_name) -> str:
    """The poster's claims with the verdicts computed on this model by its last stored reproduce run."""
    from diffdemo.claims import stored_claims_markdown

    return stored_claims_markdown(model_name)


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
    schedule="uniform",
    progress=gr.Progress(),
):
    """One measurement y = A x0 + sigma_y n; SDEdit, Score-ALD, DPS or all of them plus the classical baselines,
    on the same y, noise draw and seed, streaming each method's frames and its PSNR / residual per step."""
    from diffdemo import baselines, metrics, plots
    from diffdemo.restore import diffusion_frames, make_problem, restore
    from diffdemo.ui_helpers import interleave, write_results

    model = _model(model_name)
    seed = _seed(seed)
    sigma_y = _check("sigma_y", sigma_y, 0.0, 1.0, integer=False)
    steps = _check("Steps", steps, 1, 1000)
    t0 = _t(model, t0, "t0")
    zeta = _check("zeta", zeta, 0.0, 100.0, integer=False)
    scale = _check("DPS scale", scale, 0.0, 100.0, integer=False)
    samples = _check("posterior samples averaged", samples, 1, MAX_SAMPLES)
    schedule = _schedule(model_name, schedule)
    methods = _methods_for(method, operator)
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
    runs = {m: diffusion_frames(model, m, problem, every=every, **overrides) for m in methods}
    traces = {m: {"step": [], "psnr": [], "residual": []} for m in methods}
    latest, finals, rows, spent = {}, {}, [], dict.fromkeys(methods, 0.0)
    single = len(methods) == 1
    truth, measured = _file(x0, "truth"), _file(y, "measurement")
    total = len(methods)
    tick = time.perf_counter()
    frames = interleave(runs)
    try:
        for name, frame in frames:
            spent[name] += time.perf_counter() - tick
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
            yield (
                truth,
                measured,
                _gallery(latest, finals, single),
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
    record = {
        "task": "restore",
        "model": model_name,
        "image": label,
        "seed": seed,
        "operator": op.describe(),
        "sigma_y": sigma_y,
        "sigma_y_units": "[-1, 1] image units (0.05 = 0.025 on a [0, 1] scale)",
        "method": method,
        "params": overrides,
        "psnr_measurement": metrics.psnr(y, x0),
        "results": rows,
        "traces": traces,
    }
    images = {"truth": x0, "measurement": y, **{f"result_{m}": x for m, x in finals.items()}}
    files = write_results(_run_dir("restore"), images, record)
    best = max(rows, key=lambda r: r["psnr"])
    status = (
        f"Done. Measurement PSNR {record['psnr_measurement']:.2f} dB; best: {METHOD_TITLES[best['method']]} "
        f"{best['psnr']:.2f} dB." + _lpips_note(best["lpips"])
    )
    yield (
        _file(x0, "truth"),
        _file(y, "measurement"),
        _gallery(latest, finals, single),
        _table(rows),
        plots.restoration_trace_figure(traces, METHOD_TITLES),
        status,
        record,
        files,
    )


def mask_canvas(model_name, image, upload):
    """The working image, enlarged (nearest neighbour) to about 256 px, as the background of the mask editor."""
    import numpy as np

    try:
        arr, _ = _picture(_model(model_name), image, upload)
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
        model = _model(model_name)
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
    f = _zoom(_model(model_name).size)
    x, y = evt.index
    return int(x) // f, int(y) // f, True


def run_probe(model_name, image, upload, seed, t, x, y, energy_on, progress=gr.Progress()):
    """Jacobian columns of J_s, J_f and J_D at the clicked pixel (eqs. 31-34), energy vs radius over t (Fig. 7)."""
    from diffdemo import analysis, plots
    from diffdemo.ui_helpers import write_results

    if x is None or y is None or x == "" or y == "":
        raise gr.Error("Click a pixel of the noised image first (or give its x, y).", title="No pixel")
    model = _model(model_name)
    seed, t = _seed(seed), _t(model, t)
    x, y = _check("x", x, 0, model.size - 1), _check("y", y, 0, model.size - 1)
    if energy_on not in ("denoiser", "score"):
        raise gr.Error(f"Energy on 'denoiser' or 'score', got {energy_on!r}.")
    exclude = energy_on == "score"  # raw J_s: drop the centre pixel, else its identity-like peak dominates
    x0, _, label = _x0(model, image, upload)
    started = time.perf_counter()
    progress(0.1, desc="Jacobian column at t")
    x_t = analysis.state_at(model, x0, t, seed)
    result = analysis.probe(model, x_t, t, (x, y), energy_on=energy_on, exclude_centre=exclude, compare=True)
    yield (
        _zoomed(x_t),
        plots.probe_figure(result),
        gr.skip(),
        _probe_text(result, None),
        gr.skip(),
        gr.skip(),
    )
    progress(0.5, desc="energy vs radius across timesteps")
    sweep = sorted({*SWEEP_TIMESTEPS, t})
    sweep = [s for s in sweep if s < model.schedule.T]
    curves = analysis.energy_sweep(model, x0, (x, y), sweep, seed, energy_on=energy_on, exclude_centre=exclude)
    seconds = time.perf_counter() - started
    record = {
        "task": "probe",
        "model": model_name,
        "image": label,
        "seed": seed,
        **result.summary(),
        "sweep": [c.summary() for c in curves],
        "seconds": seconds,
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
    lines = [
        f"**Pixel ({result.pixel[0]}, {result.pixel[1]}) at t = {result.t}.** Energy on {e.label}: "
        f"r50 = {e.r50:.1f} px, r90 = {e.r90:.1f} px, effective pixels {e.n_eff:.1f}.",
        f"Central finite difference (eps = {result.eps:g}) vs exact JVP, relative error of J_s e_i: "
        f"{_fmt(err, 4) if err is None else f'{err:.2e}'}.",
    ]
    if curves:
        lines.append("Across t: " + ", ".join(f"t={c.t}: r50 {c.r50:.1f} / r90 {c.r90:.1f}" for c in curves) + " (px).")
    return "\n\n".join(lines)


def reprobe(model_name, image, upload, seed, t, x, y, energy_on, probed, progress=gr.Progress()):
    """The t slider moved: show the new x_t, and re-probe the same pixel if one was probed already."""
    if not probed or x is None or y is None:
        view, note = noised_view(model_name, image, upload, seed, t)
        yield view, gr.skip(), gr.skip(), note, gr.skip(), gr.skip()
        return
    yield from run_probe(model_name, image, upload, seed, t, x, y, energy_on, progress)


# --- Spectrum --------------------------------------------------------------------------------------
def run_spectrum(model_name, image, upload, seed, timesteps, k, iters, progress=gr.Progress()):
    """Top singular values / vectors of J_s and J_f and rho(J_f) across timesteps (Figures 8, 9), one t at a time."""
    from diffdemo import analysis, plots
    from diffdemo.ui_helpers import write_results

    model = _model(model_name)
    seed = _seed(seed)
    k, iters = _check("k", k, 1, 8), _check("Iterations", iters, 2, 100)
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
    x0, _, label = _x0(model, image, upload)
    results = []
    started = time.perf_counter()
    for i, t in enumerate(ts):

        def report(f, msg, i=i, t=t):
            progress((i + f) / len(ts), desc=f"t = {t}: {msg}")

        results.extend(analysis.spectrum_sweep(model, x0, [t], k=k, iters=iters, seed=seed, progress=report))
        yield (
            plots.spectrum_figure(results),
            plots.singular_vectors_figure(results),
            plots.step_limit_figure(results),
            _spectrum_text(results),
            gr.skip(),
            gr.skip(),
        )
    record = {
        "task": "spectrum",
        "model": model_name,
        "image": label,
        "seed": seed,
        "k": k,
        "iters": iters,
        "seconds": time.perf_counter() - started,
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
        "| t | sigma_max(J_s) | sigma_max(J_f) | rho(J_f) | Euler h limit | largest stable stride |",
        "|---" * 6 + "|",
    ]
    for r in results:
        rows.append(
            f"| {r.t} | {r.sigma_max_Js:.3g} | {r.sigma_max_Jf:.4g} | {r.rho_Jf:.4g} | {r.h_max:.3g} | {r.max_stride} |"
        )
    return "\n".join(rows)


# --- layout ----------------------------------------------------------------------------------------
INTRO = """# diffdemo: diffusion models as priors for inverse problems
Pick a model and an image, then watch each method work step by step. Images are centre-cropped and resized to the
model's resolution. Every run streams its frames and can be stopped; results download as PNG + JSON.
Everything here can be reproduced from the command line (`python -m diffdemo ...`)."""


def build_app() -> gr.Blocks:
    """The whole UI. No model is loaded and no engine module imported until a user (or client) asks."""
    start_model = default_model()
    # delete_cache: hourly, drop gradio's copies of uploads and outputs older than 2 h (and all of them on exit),
    # so a long-running Space does not fill its disk
    with gr.Blocks(title="diffdemo: diffusion priors for inverse problems", delete_cache=(3600, 7200)) as demo:
        gr.Markdown(INTRO)
        with gr.Row(equal_height=False):
            with gr.Column(scale=3):
                model = gr.Dropdown(
                    [start_model],
                    value=start_model,
                    allow_custom_value=True,
                    label="Model",
                    info="embedded model, a local diffusers folder, or a Hugging Face hub id (needs network)",
                )
                model_md = gr.Markdown("Measuring the model on this machine...")
            seed = gr.Number(0, precision=0, minimum=0, label="Seed", info="same seed, same noise and frames", scale=1)
        with gr.Accordion("Image", open=True):
            with gr.Row(equal_height=False):
                gallery = gr.Gallery(
                    label="Bundled test images (held out of training): click one",
                    columns=7,
                    height=150,
                    allow_preview=False,
                    object_fit="cover",
                    scale=4,
                )
                upload = gr.File(label="...or upload any image (PNG, JPEG, WebP...)", type="filepath", scale=2)
                with gr.Column(scale=2, min_width=200):
                    image = gr.Dropdown(
                        [DEFAULT_IMAGE, UPLOAD], value=DEFAULT_IMAGE, allow_custom_value=True, label="Image"
                    )
                    working = gr.Image(
                        label="Working image", interactive=False, height=140, elem_classes="pixelated", format="png"
                    )
            image_md = gr.Markdown()

        with gr.Tabs():
            # ---- Denoise ----
            with gr.Tab("Denoise", id="denoise"):
                gr.Markdown(
                    "Task 2: noise the image to x_t = sqrt(abar_t) x0 + sqrt(1 - abar_t) z, then run reverse diffusion "
                    "to t = 0 with no data term. x0_hat is the network's Tweedie estimate of the clean image."
                )
                with gr.Row():
                    dn_t = gr.Slider(1, 999, value=300, step=1, label="t (noise level: 999 is pure noise)")
                    dn_steps = gr.Slider(1, 1000, value=50, step=1, label="reverse steps (strided)")
                dn_eta = gr.Markdown()
                with gr.Row():
                    dn_run = gr.Button("Denoise", variant="primary")
                    dn_stop = gr.Button("Stop", variant="stop", elem_id="dn-stop")
                with gr.Row():
                    dn_noisy = gr.Image(label="noised input x_t", elem_classes="pixelated", format="png", height=220)
                    dn_xt = gr.Image(label="current x_t", elem_classes="pixelated", format="png", height=220)
                    dn_x0 = gr.Image(label="x0_hat (Tweedie)", elem_classes="pixelated", format="png", height=220)
                dn_md = gr.Markdown()
                with gr.Accordion("PSNR vs t (Figure 1)", open=False):
                    with gr.Row():
                        dn_points = gr.Slider(2, 30, value=8, step=1, label="timesteps (log-spaced)")
                        dn_curve_btn = gr.Button("Compute the curve")
                    dn_curve = gr.Plot(label="PSNR vs t")
                with gr.Row():
                    dn_files = gr.File(label="Download (PNG + JSON)", file_count="multiple")
                    dn_json = gr.JSON(label="Parameters and metrics")

            # ---- Generate ----
            with gr.Tab("Generate", id="generate"):
                gr.Markdown("Task 3: ancestral DDPM sampling from pure noise x_T ~ N(0, I) (eq. 25).")
                with gr.Row():
                    sm_n = gr.Slider(1, 16, value=4, step=1, label="samples")
                    sm_steps = gr.Slider(1, 1000, value=100, step=1, label="reverse steps (strided)")
                sm_eta = gr.Markdown()
                with gr.Row():
                    sm_run = gr.Button("Generate", variant="primary")
                    sm_stop = gr.Button("Stop", variant="stop", elem_id="sm-stop")
                with gr.Row():
                    sm_xt = gr.Image(label="x_t", elem_classes="pixelated", format="png", height=300)
                    sm_x0 = gr.Image(label="x0_hat", elem_classes="pixelated", format="png", height=300)
                sm_md = gr.Markdown()
                with gr.Row():
                    sm_files = gr.File(label="Download (PNG + JSON)", file_count="multiple")
                    sm_json = gr.JSON(label="Parameters")

            # ---- Inverse problems ----
            with gr.Tab("Inverse problems", id="restore"):
                gr.Markdown(
                    "Tasks 4-6: measure y = A x0 + sigma_y n and restore x0 with the diffusion prior. "
                    "**Compare all** sends the same y, noise draw and seed through every diffusion method and the "
                    "classical baselines."
                )
                with gr.Row(equal_height=False):
                    with gr.Column(scale=1):
                        ip_op = gr.Radio(OPERATOR_CHOICES, value="gaussian_blur", label="Operator A")
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
                    with gr.Column(scale=1):
                        ip_method = gr.Radio(METHOD_CHOICES, value="dps", label="Method")
                        t0, zeta, scale = task_defaults("gaussian_blur")
                        ip_t0 = gr.Slider(1, 999, value=t0, step=1, label="SDEdit t0 (start timestep)", visible=False)
                        ip_zeta = gr.Slider(0.0, 10.0, value=zeta, step=0.1, label="Score-ALD zeta", visible=False)
                        ip_scale = gr.Slider(0.0, 20.0, value=scale, step=0.1, label="DPS scale (step size lambda)")
                        ip_normalize = gr.Checkbox(
                            True,
                            label="DPS: normalised step lambda g/||g|| (eq. 29)",
                            info="off: the raw step lambda g of Chung et al.'s code (retune lambda: try 1-5)",
                        )
                        ip_steps = gr.Slider(
                            1, 1000, value=100, step=1, label="reverse steps (strided)", elem_id="ip-steps"
                        )
                        ip_samples = gr.Slider(
                            1,
                            MAX_SAMPLES,
                            value=samples_default("dps", "gaussian_blur"),
                            step=1,
                            label="posterior samples averaged (k)",
                            info="k chains side by side, shown as their mean: an estimate of E[x0|y], higher PSNR "
                            "than one sample, k times the work",
                        )
                        ip_schedule = gr.Dropdown(
                            ["uniform", "quadratic", "karras", "spectral"],
                            value="uniform",
                            label="timestep schedule",
                            info="where the steps go: uniform stride, quadratic (DDIM), Karras rho=7, or spectral "
                            "(equal h rho(J_s) per step, from the model's stability profile)",
                        )
                        ip_eta = gr.Markdown()
                        with gr.Row():
                            ip_run = gr.Button("Restore", variant="primary", elem_id="ip-run")
                            ip_stop = gr.Button("Stop", variant="stop", elem_id="ip-stop")
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
                ip_status = gr.Markdown(elem_id="ip-status")
                with gr.Row(equal_height=False):
                    with gr.Column(scale=1, min_width=160):
                        ip_truth = gr.Image(label="truth x0", elem_classes="pixelated", format="png", height=150)
                        ip_meas = gr.Image(label="measurement y", elem_classes="pixelated", format="png", height=150)
                    ip_gallery = gr.Gallery(
                        label="frames and results",
                        columns=4,
                        height=300,
                        format="png",
                        scale=3,
                        object_fit="contain",
                        elem_id="ip-gallery",
                    )
                ip_table = gr.Dataframe(label="metrics against the truth", interactive=False)
                ip_plot = gr.Plot(label="PSNR of x0_hat and residual per step")
                with gr.Row():
                    ip_files = gr.File(label="Download (PNG + JSON)", file_count="multiple")
                    ip_json = gr.JSON(label="Parameters and metrics")

            # ---- Sensitivity ----
            with gr.Tab("Sensitivity", id="sensitivity") as sens_tab:
                gr.Markdown(
                    "Click a pixel of the noised image: the Jacobian columns J e_i of the score J_s, the reverse "
                    "step J_f and the denoiser J_D show how every output pixel responds to it (exact JVP; red = "
                    "positive, blue = negative, centred on zero). Energy vs radius (Figure 7) across timesteps."
                )
                with gr.Row(equal_height=False):
                    with gr.Column(scale=1, min_width=260):
                        sens_image = gr.Image(
                            label="noised image x_t: click a pixel",
                            interactive=False,
                            elem_id="sens-image",
                            format="png",
                            height=280,
                        )
                        sens_t = gr.Slider(
                            1, 999, value=200, step=1, label="t (re-probes the same pixel)", elem_id="sens-t"
                        )
                        with gr.Row():
                            sens_x = gr.Number(None, precision=0, label="x (column)", minimum=0, elem_id="sens-x")
                            sens_y = gr.Number(None, precision=0, label="y (row)", minimum=0)
                        sens_probe = gr.Button("Probe this pixel", size="sm")
                        sens_probed = gr.State(False)
                        sens_on = gr.Radio(
                            [("denoiser J_D", "denoiser"), ("score J_s, centre excluded", "score")],
                            value="denoiser",
                            label="energy computed on",
                        )
                        sens_eta = gr.Markdown()
                    with gr.Column(scale=3):
                        sens_maps = gr.Plot(label="Jacobian columns", elem_id="sens-maps")
                        sens_energy = gr.Plot(label="energy vs radius", elem_id="sens-energy")
                sens_md = gr.Markdown(elem_id="sens-md")
                with gr.Row():
                    sens_files = gr.File(label="Download (PNG + JSON)", file_count="multiple")
                    sens_json = gr.JSON(label="Probe")

            # ---- Spectrum ----
            with gr.Tab("Spectrum", id="spectrum"):
                gr.Markdown(
                    "Top singular values and vectors of J_s and J_f by Lanczos bidiagonalisation (one JVP + one VJP "
                    "per step), and the spectral radius rho(J_f) by Arnoldi, at each timestep (Figures 8, 9). "
                    "rho(J_f) > 1 means the reverse step expands that direction."
                )
                with gr.Row():
                    sp_ts = gr.CheckboxGroup(list(SPECTRUM_TIMESTEPS), value=["50", "200", "700"], label="timesteps")
                    sp_k = gr.Slider(1, 8, value=3, step=1, label="singular vectors k")
                    sp_iters = gr.Slider(2, 60, value=20, step=1, label="Lanczos / Arnoldi steps")
                sp_eta = gr.Markdown()
                with gr.Row():
                    sp_run = gr.Button("Compute spectra", variant="primary")
                    sp_stop = gr.Button("Stop", variant="stop", elem_id="sp-stop")
                sp_sv = gr.Plot(label="singular values of J_s; sigma_max and spectral radius of J_f (Figure 8)")
                sp_vectors = gr.Plot(label="dominant right singular vectors of J_f (Figure 9)")
                sp_rho = gr.Plot(label="explicit-Euler step limit vs the strided step")
                sp_md = gr.Markdown()
                with gr.Row():
                    sp_files = gr.File(label="Download (JSON)", file_count="multiple")
                    sp_json = gr.JSON(label="Spectra")
                with gr.Accordion("The poster's claims on this model (computed verdicts)", open=False):
                    claims_md = gr.Markdown()

        # ---- wiring: pickers ----
        picked = [model, image, upload]
        light = {"api_visibility": "private", "concurrency_limit": 4}
        demo.load(populate_pickers, None, [model, gallery, image], **light, show_progress="hidden")
        gallery.select(pick_bundled, None, image, **light)
        upload.change(pick_upload, upload, image, **light)
        gr.on(
            [demo.load, model.change, image.change, upload.change],
            preview,
            picked,
            [working, image_md],
            **light,
        )
        gr.on([demo.load, model.change], model_info, model, model_md, **light)
        gr.on([demo.load, model.change], claims_panel, model, claims_md, **light)

        # ---- estimates before each run ----
        def eta(task, *names):
            def fn(model_name, *values):
                return estimate(model_name, task, **dict(zip(names, values, strict=True)))

            return fn

        est = {"api_visibility": "private", "concurrency_limit": 4, "show_progress": "hidden"}
        gr.on([demo.load, model.change, dn_t.change, dn_steps.change], eta("denoise", "t", "steps"),
              [model, dn_t, dn_steps], dn_eta, **est)  # fmt: skip
        gr.on([demo.load, model.change, sm_n.change, sm_steps.change], eta("sample", "n", "steps"),
              [model, sm_n, sm_steps], sm_eta, **est)  # fmt: skip

        def restore_eta(model_name, method, operator, steps, t0, samples):
            methods = _methods_for(method, operator) if method in ("compare", "sdedit", "score_ald", "dps") else []
            methods = ["denoise_restore" if m == "denoise" else m for m in methods]
            if len(methods) == 1:
                return estimate(model_name, methods[0], steps=steps, t0=t0, samples=samples)
            return estimate(model_name, "compare", methods=methods, steps=steps, t0=t0, samples=samples)

        gr.on([demo.load, model.change, ip_method.change, ip_op.change, ip_steps.change, ip_t0.change,
               ip_samples.change], restore_eta,
              [model, ip_method, ip_op, ip_steps, ip_t0, ip_samples], ip_eta, **est)  # fmt: skip
        gr.on([demo.load, model.change], eta("probe", "sweep"), [model, gr.State(len(SWEEP_TIMESTEPS))], sens_eta,
              **est)  # fmt: skip

        def spectrum_eta(model_name, ts, k, iters):
            return estimate(model_name, "spectrum", k=k, iters=iters, n_t=len(ts or []))

        gr.on([demo.load, model.change, sp_ts.change, sp_k.change, sp_iters.change], spectrum_eta,
              [model, sp_ts, sp_k, sp_iters], sp_eta, **est)  # fmt: skip

        heavy = {"concurrency_id": HEAVY, "concurrency_limit": HEAVY_LIMIT}

        # ---- Denoise ----
        dn_evt = dn_run.click(
            run_denoise,
            [*picked, seed, dn_t, dn_steps],
            [dn_noisy, dn_xt, dn_x0, dn_md, dn_json, dn_files],
            api_name="denoise",
            **heavy,
        )
        curve_evt = dn_curve_btn.click(
            run_psnr_curve, [*picked, seed, dn_steps, dn_points], dn_curve, api_name="psnr_vs_t", **heavy
        )
        stopped = {"api_visibility": "private", "queue": False}
        dn_stop.click(lambda: "Stopped.", None, dn_md, cancels=[dn_evt, curve_evt], **stopped)

        # ---- Generate ----
        sm_evt = sm_run.click(
            run_sample,
            [model, seed, sm_n, sm_steps],
            [sm_xt, sm_x0, sm_md, sm_json, sm_files],
            api_name="sample",
            **heavy,
        )
        sm_stop.click(lambda: "Stopped.", None, sm_md, cancels=[sm_evt], **stopped)

        # ---- Inverse problems ----
        ip_op.change(operator_widgets, [ip_op, ip_box], [ip_blur, ip_boxg, ip_dropg, ip_maskg], **light)
        ip_box.change(operator_widgets, [ip_op, ip_box], [ip_blur, ip_boxg, ip_dropg, ip_maskg], **light)
        ip_method.change(method_widgets, ip_method, [ip_t0, ip_zeta, ip_scale, ip_normalize], **light)
        ip_op.change(task_defaults, ip_op, [ip_t0, ip_zeta, ip_scale], **light)
        gr.on([ip_op.change, ip_method.change], samples_default, [ip_method, ip_op], ip_samples, **light)
        gr.on([ip_box.change, working.change], mask_canvas, picked, ip_mask, **light)
        ip_evt = ip_run.click(
            run_restore,
            [
                *picked,
                seed,
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
                ip_schedule,
            ],  # fmt: skip
            [ip_truth, ip_meas, ip_gallery, ip_table, ip_plot, ip_status, ip_json, ip_files],
            api_name="restore",
            **heavy,
        )
        ip_stop.click(lambda: "Stopped.", None, ip_status, cancels=[ip_evt], **stopped)

        # ---- Sensitivity ----
        probe_out = [sens_image, sens_maps, sens_energy, sens_md, sens_json, sens_files]
        gr.on(
            [sens_tab.select, working.change, seed.change],
            noised_view,
            [*picked, seed, sens_t],
            [sens_image, sens_md],
            **light,
        )
        probe_in = [*picked, seed, sens_t, sens_x, sens_y, sens_on]
        sens_image.select(pick_pixel, model, [sens_x, sens_y, sens_probed], **light).then(
            run_probe, probe_in, probe_out, api_name="probe", **heavy
        )
        sens_probe.click(lambda: True, None, sens_probed, **light).then(
            run_probe, probe_in, probe_out, api_visibility="private", **heavy
        )
        gr.on(
            [sens_t.release, sens_on.change],
            reprobe,
            [*probe_in, sens_probed],
            probe_out,
            api_visibility="private",
            trigger_mode="always_last",
            **heavy,
        )

        # ---- Spectrum ----
        sp_evt = sp_run.click(
            run_spectrum,
            [*picked, seed, sp_ts, sp_k, sp_iters],
            [sp_sv, sp_vectors, sp_rho, sp_md, sp_json, sp_files],
            api_name="spectrum",
            show_progress_on=sp_sv,
            **heavy,
        )
        sp_stop.click(lambda: "Stopped.", None, sp_md, cancels=[sp_evt], **stopped)
    return demo


def main() -> None:
    started = time.perf_counter()
    demo = build_app()
    demo.queue(default_concurrency_limit=HEAVY_LIMIT, max_size=64)
    demo.launch(
        server_name=os.environ.get("GRADIO_SERVER_NAME", "127.0.0.1"),
        server_port=int(os.environ.get("GRADIO_SERVER_PORT", "7860")),
        css=CSS,
        max_file_size="40mb",
        prevent_thread_lock=True,
    )
    print(f"diffdemo: serving after {time.perf_counter() - started:.1f} s (plus interpreter start-up)", flush=True)
    threading.Thread(target=warm_engine, daemon=True).start()
    demo.block_thread()


if __name__ == "__main__":
    main()
