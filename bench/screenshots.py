"""The README's screenshots, taken by a real browser (Debian's chromium via Playwright) on the embedded model.

    python bench/screenshots.py [--model faces64] [--out assets/screenshots] [--steps 100]
                                [--jacobian-out /tmp/wt15_shots] [--tabs denoise,generate,restore,sensitivity,spectrum]

Runs every tab's first demo as a presenter would (Denoise and its PSNR-vs-t curve, Generate, Compare all on the
default deblurring problem, a click under the left eye in Sensitivity, Spectrum at its default timesteps) and
saves each tab as the audience sees it: the 1280x800 window (`<tab>_1280.png`, no scrolling) and the whole tab at
1920x1080 (`<tab>_1920.png`), and the presenter view of the comparison (`restore_presenter_1920.png`). With
--jacobian-out it also saves the three Jacobian maps at t = 50 and t = 500.
Needs chromium at /usr/bin/chromium and the playwright package (requirements-dev.txt); several minutes on two CPU
cores (Compare all dominates).
"""

from __future__ import annotations

import argparse
import os
import socket
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))  # run as a script from anywhere

CHROMIUM = "/usr/bin/chromium"
# no sandbox as root; no GPU here; no background connections (this machine's closed network refuses them)
ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
SMALL, LARGE = {"width": 1280, "height": 800}, {"width": 1920, "height": 1080}
TABS = {
    "denoise": "Denoise",
    "generate": "Generate",
    "restore": "Inverse problems",
    "sensitivity": "Sensitivity",
    "spectrum": "Spectrum",
}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_text(page, selector: str, needle: str, seconds: float) -> str:
    """Poll an element's text until it contains ``needle``."""
    text, deadline = "", time.monotonic() + seconds
    while time.monotonic() < deadline:
        loc = page.locator(selector)
        text = loc.inner_text() if loc.count() else ""
        if needle in text:
            return text
        page.wait_for_timeout(400)
    raise TimeoutError(f"{selector} did not show {needle!r} in {seconds:.0f} s: {text!r}")


def _save_png(png: bytes, path: Path) -> None:
    """A 256-colour PNG of the screenshot: UI pixels lose nothing visible and the file is ~3x smaller."""
    import io

    from PIL import Image

    Image.open(io.BytesIO(png)).convert("RGB").quantize(256).save(path, optimize=True)


def open_app(page, url: str) -> None:
    page.goto(url, wait_until="domcontentloaded")
    page.get_by_text("diffdemo: diffusion models as priors").wait_for(timeout=120_000)
    wait_text(page, "#dn-eta", "Expected run time", 120)


def choose(page, label: str, option: str) -> None:
    """Pick an option of a gradio Dropdown by its label."""
    page.get_by_label(label).first.click()
    page.get_by_role("option", name=option).click()


def set_steps(page, steps: int) -> None:
    """Type the inverse-problems tab's reverse steps and let the page take them."""
    field = page.locator("#ip-steps input[type=number]")
    field.fill(str(steps))
    field.press("Enter")
    page.wait_for_timeout(800)


def click_face(page, fx: float, fy: float, seconds: float) -> None:
    """On the Sensitivity tab, click the noised image at (fx, fy), fractions of its width and height, once the
    image is shown and its layout has settled (so the click lands where it was measured)."""
    image = page.locator("#sens-image img")
    image.wait_for(state="visible", timeout=seconds * 1000)
    wait_text(page, "#sens-md", "Click a pixel", seconds)
    page.wait_for_timeout(1000)
    image.scroll_into_view_if_needed()
    box = image.bounding_box()
    assert box and box["width"] > 10, f"the image to click has no size: {box}"
    page.mouse.click(box["x"] + fx * box["width"], box["y"] + fy * box["height"])


def run_tab(page, tab: str, steps: int) -> None:
    """Run the tab's first demo and wait until it has finished."""
    page.get_by_role("tab", name=TABS[tab]).click()
    page.wait_for_timeout(500)
    if tab == "denoise":
        page.locator("#dn-run").click()
        wait_text(page, "#dn-status", "Done in", 300)
        page.locator("#curve-run").click()
        wait_text(page, "#curve-strip", "done in", 600)
    elif tab == "generate":
        page.locator("#sm-run").click()
        wait_text(page, "#sm-status", "Done", 600)
    elif tab == "restore":
        choose(page, "Method", "Compare all")
        page.wait_for_timeout(1500)  # the method's tuned steps arrive from the server: set ours after them
        set_steps(page, steps)
        page.locator("#ip-run").click()
        wait_text(page, "#ip-status", "Done in", 1500)
    elif tab == "sensitivity":
        click_face(page, 0.36, 0.45, 120)  # under the left eye
        wait_text(page, "#sens-md", "Across t", 600)
    elif tab == "spectrum":
        page.locator("#sp-run").click()
        wait_text(page, "#sp-md", "rho(J_f)", 900)
        deadline = time.monotonic() + 900
        while page.locator("#sp-md table tbody tr").count() < 2 and time.monotonic() < deadline:
            page.wait_for_timeout(500)
    page.wait_for_timeout(1500)


def jacobian_shots(page, folder: Path) -> list[Path]:
    """The three Jacobian maps at t = 50 and t = 500 for the pixel probed last."""
    folder.mkdir(parents=True, exist_ok=True)
    page.get_by_role("tab", name="Sensitivity").click()
    saved = []
    for t in (50, 500):
        field = page.locator("#sens-t input[type=number]")
        field.fill(str(t))
        field.press("Enter")
        page.wait_for_timeout(500)
        page.locator("#sens-run").click()
        wait_text(page, "#sens-md", f"at t = {t}.", 600)
        wait_text(page, "#sens-md", "Across t", 600)
        page.locator("#sens-maps .heatmaplayer").first.wait_for(state="attached", timeout=60_000)
        page.locator("#sens-maps").scroll_into_view_if_needed()
        page.wait_for_timeout(2500)
        path = folder / f"jacobian_t{t}.png"
        _save_png(page.locator("#sens-maps").screenshot(), path)
        saved.append(path)
    return saved


def take(model: str, out: Path, steps: int, tabs: list[str], jacobian_out: Path | None) -> list[Path]:
    from playwright.sync_api import sync_playwright

    os.environ["DIFFDEMO_MODEL"] = model
    import app

    app.warm_engine()  # as `python app.py` does: the default model is open and timed before a page loads
    demo = app.build_app()
    demo.queue(default_concurrency_limit=1)
    _, url, _ = demo.launch(
        server_name="127.0.0.1", server_port=free_port(), prevent_thread_lock=True, quiet=True, css=app.CSS
    )
    out.mkdir(parents=True, exist_ok=True)
    saved = []
    try:
        with sync_playwright() as p:
            browser = p.chromium.launch(executable_path=CHROMIUM, args=ARGS)
            page = browser.new_page(viewport=SMALL)
            open_app(page, url)
            for tab in tabs:
                started = time.monotonic()
                page.set_viewport_size(SMALL)
                run_tab(page, tab, steps)
                page.evaluate("window.scrollTo(0, 0)")
                saved.append(out / f"{tab}_1280.png")
                _save_png(page.screenshot(), saved[-1])
                page.set_viewport_size(LARGE)
                page.wait_for_timeout(1200)
                saved.append(out / f"{tab}_1920.png")
                _save_png(page.screenshot(full_page=True), saved[-1])
                print(f"{tab}: {time.monotonic() - started:.0f} s", flush=True)
            if "restore" in tabs:  # the presenter view of the last comparison: bigger pictures, settings folded
                page.set_viewport_size(LARGE)
                page.get_by_role("tab", name=TABS["restore"]).click()
                page.locator("#presenter input").check()
                page.wait_for_timeout(1500)
                page.evaluate("window.scrollTo(0, 0)")
                saved.append(out / "restore_presenter_1920.png")
                _save_png(page.screenshot(), saved[-1])
                page.locator("#presenter input").uncheck()
            if jacobian_out is not None:
                page.set_viewport_size(LARGE)
                saved += jacobian_shots(page, jacobian_out)
            browser.close()
    finally:
        demo.close()
    return saved


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--model", default="faces64")
    p.add_argument("--out", default=str(ROOT / "assets" / "screenshots"))
    p.add_argument("--steps", type=int, default=100, help="reverse steps of the Compare-all run")
    p.add_argument("--tabs", default=",".join(TABS), help="comma-separated: " + ", ".join(TABS))
    p.add_argument("--jacobian-out", default=None, help="also save the Jacobian maps at t = 50 and 500 here")
    args = p.parse_args(argv)
    tabs = [t.strip() for t in args.tabs.split(",") if t.strip()]
    unknown = set(tabs) - set(TABS)
    if unknown:
        p.error(f"unknown tabs {sorted(unknown)}; choose from {', '.join(TABS)}")
    jac = Path(args.jacobian_out) if args.jacobian_out else None
    for path in take(args.model, Path(args.out), args.steps, tabs, jac):
        print(path)


if __name__ == "__main__":
    main()
