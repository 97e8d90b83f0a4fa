"""diffdemo's Gradio app: diffusion models as priors for image inverse problems, watched step by step.

UI and wiring only: every number and picture comes from the engine in ``diffdemo/``. The engine (torch,
scikit-image, diffusers) is imported lazily inside the handlers and warmed up in the background after the
server is up, so ``python app.py`` serves within seconds. Run ``python app.py``; environment variables:
DIFFDEMO_MODEL (default model: embedded name, local diffusers folder or hub id), GRADIO_SERVER_NAME,
GRADIO_SERVER_PORT, DIFFDEMO_CONCURRENCY (heavy runs at once, default 1), DIFFDEMO_THREADS (torch's threads,
default: the rule of ``diffdemo/threads.py``, said at start-up). ``--public`` (automatic on a Hugging Face Space)
applies a public deployment's limits and model allow-list; ``--allow-local-models`` lets the model field take local
folders. The limits and their variables (DIFFDEMO_TRUSTED_PROXY_HOPS: how many proxies in front of the app append
the caller's address to X-Forwarded-For; 1 on a Space, else 0): ``diffdemo/serving/``.
"""

from __future__ import annotations

import argparse
import os
import threading
import time

import gradio as gr

from diffdemo import imaging  # noqa: F401  (sets Pillow's pixel limit before gradio decodes any upload)
from diffdemo.ui import landing
from diffdemo.ui.common import HEAVY_LIMIT, default_model
from diffdemo.ui.denoise import denoise_tab
from diffdemo.ui.generate import generate_tab
from diffdemo.ui.pickers import (
    machine_line,
    model_info,
    page_header,
    pick_bundled,
    pick_upload,
    populate_pickers,
    preview,
)
from diffdemo.ui.restore import restore_tab
from diffdemo.ui.sensitivity import sensitivity_tab
from diffdemo.ui.server import app_kwargs, serve_queue
from diffdemo.ui.spectrum import spectrum_tab
from diffdemo.ui.widgets import EST, LIGHT, heavy_event
from diffdemo.zerogpu import ZERO_GPU

# Results are shown whole: pictures enlarged by the browser with nearest neighbour (image-rendering: pixelated) at
# whole multiples of their 64 px, no fixed-height boxes that scroll, captions in the page's text below each picture.
# Text a room can read: status lines 18 px, notes and slider help 15-17 px. The header is two short rows and each
# tab's maths is folded below its results, so that at 1280x800 the Run button, its Stop and the result sit above
# the fold. body.presenter (the "Presenter view" toggle or ?presenter in the URL) sets larger text and pictures and
# folds the advanced settings away; it changes sizes, not the page's zoom, so the layout keeps its width at 1280.
# Sizes are custom properties set on body and read by the rules: gradio scopes a custom stylesheet by copying each
# rule under its container (with more specificity than a body.presenter rule, and inside @media only that copy),
# so the presenter view overrides the properties, never the rules, and widths use clamp() rather than @media.
CSS = """
.gradio-container { --block-info-text-size: 15px; --block-info-text-color: var(--body-text-color);
  --block-label-text-size: 15px; --block-title-text-size: 15px; --section-header-text-size: 15px; }
body { --dd-tile: clamp(128px, round(down, calc((100vw - 480px) / 4), 64px), 192px); --dd-curve-tile: 128px;
  --dd-lead: 18px; --dd-eta: 17px; --dd-status: 18px; --dd-caption: 16px; }
body.presenter { --dd-tile: clamp(128px, round(down, calc((100vw - 480px) / 4), 64px), 256px);
  --dd-curve-tile: clamp(128px, round(down, calc((100vw - 1280px) / 2), 32px), 160px);
  --dd-lead: 20px; --dd-eta: 19px; --dd-status: 20px; --dd-caption: 18px; }
body.presenter .gradio-container { --text-sm: 16px; --text-md: 18px; --text-lg: 20px; --block-info-text-size: 17px;
  --block-label-text-size: 17px; --block-title-text-size: 17px; --section-header-text-size: 17px; }
body.presenter .advanced, body.presenter .head-notes { display: none !important; }
.pixelated img { image-rendering: pixelated; object-fit: contain; width: 100% !important; height: 100% !important; }
#sens-image img { image-rendering: pixelated; cursor: crosshair; }
.strip { display: flex; flex-wrap: wrap; gap: 8px 12px; align-items: flex-start; --tile: var(--dd-tile); }
#curve-strip .strip { --tile: var(--dd-curve-tile); gap: 8px 8px; }
.strip figure { margin: 0; width: var(--tile); }
.strip img { width: var(--tile); height: var(--tile); image-rendering: pixelated; display: block;
  border: 1px solid #8884; }
.strip figure.best img { outline: 3px solid #16a34a; outline-offset: 1px; }
.strip figcaption { font-size: var(--dd-caption); line-height: 1.25; margin-top: 4px; overflow-wrap: anywhere; }
.strip figcaption .name { font-weight: 600; }
.strip-note { font-size: var(--dd-caption); }
.lead p { font-size: var(--dd-lead); margin: 0 0 2px 0; line-height: 1.35; }
.pixelated label, .pixelated [data-testid="block-label"] { font-size: 15px !important; }
.eta p, .eta li { font-size: var(--dd-eta); margin: 0; line-height: 1.35; }
.note p { font-size: 14px; line-height: 1.3; margin: 0; }
.status p, .status li, .status td, .status th { font-size: var(--dd-status) !important; line-height: 1.35; }
.status td, .status th { padding: 3px 10px !important; }
.landing p { font-size: var(--dd-eta); margin: 0 0 6px 0; }
.compact-head h1 { font-size: 22px !important; margin: 0 !important; line-height: 1.3 !important; }
.head-row { gap: 8px !important; align-items: center; }
.head-notes { gap: 2px !important; }
.tight { gap: 6px !important; }
"""
PRESENTER_JS = """(on) => { document.body.classList.toggle('presenter', !!on); return on; }"""
PRESENTER_ON_LOAD = """() => { const on = new URLSearchParams(window.location.search).has('presenter');
  document.body.classList.toggle('presenter', on); return on; }"""


def warm_engine(landing_views: bool = True) -> None:
    """Import the engine, open the default model and time it, in the background once the server is up: the
    first click then pays for none of it, and the run-time estimates use a timing taken while the machine was
    quiet (timed during a page load, alongside its other handlers, it came out 2-4x too slow). Then compute each
    tab's landing view (diffdemo/ui/landing.py), unless ``landing_views`` is False."""
    import diffdemo.analysis  # noqa: F401
    import diffdemo.restore  # noqa: F401
    from diffdemo.estimates import measure_cost
    from diffdemo.models import ModelUnavailable, load_model

    if landing_views:
        landing.expect()
    try:
        model = load_model(default_model())
        measure_cost(model)
        # the traced JVP graphs: the first Sensitivity click (batch 1) and the default Spectrum run (two timesteps:
        # 4 Lanczos rows, 2 Arnoldi rows) skip their one-time cost, which the estimates would otherwise learn
        diffdemo.analysis.prepare_probe(model, batches=(1, 2, 4))
    except ModelUnavailable:
        landing.give_up()
        return  # the page says why when it loads
    if landing_views:
        landing.prepare()  # each tab's first demo with its defaults, run once; they give way to users' runs


def build_app() -> gr.Blocks:
    """The whole UI. No model is loaded and no engine module imported until a user (or client) asks."""
    start_model = default_model()
    # delete_cache: hourly, drop gradio's copies of uploads and outputs older than 2 h (and all of them on exit),
    # so a long-running Space does not fill its disk
    with gr.Blocks(title="diffdemo: diffusion priors for inverse problems", delete_cache=(3600, 7200)) as demo:
        ui = page_header(start_model)
        ui["load"] = demo.load
        ui["landing_runs"] = {}
        with gr.Tabs():
            denoise_tab(ui)
            generate_tab(ui)
            restore_tab(ui)
            sensitivity_tab(ui)
            spectrum_tab(ui)

        # ---- wiring: pickers and the presenter view ----
        picked = ui["picked"]
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
              **heavy_event())  # fmt: skip
        # the timing the estimates stand on, kept current (taken again when stale, never during a run); when this
        # line changes, every tab's estimate line refreshes
        gr.on([ui["machine_timer"].tick, ui["model_md"].change], machine_line, ui["model"], ui["machine_md"], **EST)
        demo.load(None, None, ui["presenter"], js=PRESENTER_ON_LOAD)
        landing.wire(ui, gr.Timer(landing.POLL_S, active=False), ui["landing_runs"])
        ui["presenter"].input(None, ui["presenter"], None, js=PRESENTER_JS)
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
    from diffdemo import threads
    from diffdemo.serving import describe, trust_only_our_hops

    parse_flags()
    trust_only_our_hops()
    # before torch loads and before any server thread runs torch: a thread keeps the count it first ran with
    thread_line = threads.configure(concurrency=HEAVY_LIMIT)
    started = time.perf_counter()
    demo = serve_queue(build_app())
    demo.launch(
        server_name=os.environ.get("GRADIO_SERVER_NAME", "127.0.0.1"),
        server_port=int(os.environ.get("GRADIO_SERVER_PORT", "7860")),
        css=CSS,
        max_file_size="40mb",
        prevent_thread_lock=True,
        app_kwargs=app_kwargs(),
    )
    print(f"diffdemo: serving after {time.perf_counter() - started:.1f} s (plus interpreter start-up)", flush=True)
    print(f"diffdemo: {describe()}", flush=True)
    print(f"diffdemo: {thread_line}", flush=True)
    if not ZERO_GPU:  # on ZeroGPU the GPU exists only inside a run: the first run is timed instead
        threading.Thread(target=warm_engine, daemon=True).start()
    demo.block_thread()


if __name__ == "__main__":
    main()
