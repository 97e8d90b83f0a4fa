"""The README's screenshots, taken by a real browser (Debian's chromium via Playwright) on the embedded model.

    python bench/screenshots.py [--model faces64] [--out assets/screenshots] [--steps N]
                                [--jacobian-out /tmp/wt15_shots] [--demos denoise,curve,generate,...]

Runs every tab's first demo as a presenter would (Denoise, its PSNR-vs-t curve, Generate, DPS on the default
deblurring problem, Compare all, a click under the left eye in Sensitivity, Spectrum at its default timesteps) and
after each saves what the audience sees without scrolling, in four views: 1280x800 and 1920x1080, normal and
presenter (`<demo>_1280.png`, `<demo>_1920.png`, `<demo>_presenter_1280.png`, `<demo>_presenter_1920.png`). For
each view it checks that the Run button, its Stop, the result and its caption lie wholly inside the window, and
prints one line per view (`ok` or what is off screen). --steps N runs every demo at N steps instead of its
defaults (quicker on a busy machine; the layout is the same). With --jacobian-out it also saves the three
Jacobian maps at t = 50 and t = 500.
Needs chromium at /usr/bin/chromium and the playwright package (requirements-dev.txt).
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
# Each first demo: its tab, and what must lie wholly inside the window once it has finished (Run, its Stop, the
# result, its caption).
DEMOS = {
    "denoise": ("denoise", ["#dn-run", "#dn-stop", "#dn-xt", "#dn-status table"]),
    "curve": ("denoise", ["#curve-run", "#curve-stop", "#curve-strip figure:last-of-type", "#curve-plot .main-svg"]),
    "generate": ("generate", ["#sm-run", "#sm-stop", "#sm-xt", "#sm-status p"]),
    "restore": ("restore", ["#ip-run", "#ip-stop", "#ip-strip figure:nth-of-type(3)", "#ip-status p"]),
    "compare": ("restore", ["#ip-run", "#ip-stop", "#ip-strip figure.best", "#ip-status p"]),
    "sensitivity": ("sensitivity", ["#sens-run", "#sens-stop", "#sens-image img", "#sens-maps .main-svg"]),
    "spectrum": ("spectrum", ["#sp-run", "#sp-stop", "#sp-sv .main-svg"]),
}
VIEWS = {
    "1280": (SMALL, False),
    "1920": (LARGE, False),
    "presenter_1280": (SMALL, True),
    "presenter_1920": (LARGE, True),
}
OFF_SCREEN = """(sels) => sels.filter((sel) => {
    const el = document.querySelector(sel);
    if (!el) return true;
    const r = el.getBoundingClientRect();
    return !(r.width > 0 && r.height > 0 && r.top >= 0 && r.left >= 0 && r.bottom <= window.innerHeight + 1
             && r.right <= window.innerWidth + 1);
})"""


def off_screen(page, selectors: list[str]) -> list[str]:
    """The selectors whose element is missing or not wholly inside the window (the page scrolled to the top)."""
    return page.evaluate(OFF_SCREEN, selectors)


def set_presenter(page, on: bool) -> None:
    box = page.locator("#presenter input")
    if box.is_checked() != on:
        box.click()
        page.wait_for_timeout(600)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _line(text: str, needle: str) -> str | None:
    return next((line for line in text.splitlines() if needle in line), None)


def wait_text(page, selector: str, needle: str, seconds: float, before: str | None = None) -> str:
    """Poll an element's text until it contains ``needle`` (and, given ``before``, in a line other than the one it
    had there: a new run's "Done in ...", not the last run's under a progress overlay)."""
    text, deadline = "", time.monotonic() + seconds
    old = None if before is None else _line(before, needle)
    while time.monotonic() < deadline:
        loc = page.locator(selector)
        text = loc.inner_text() if loc.count() else ""
        line = _line(text, needle)
        if line is not None and (old is None or line != old):
            return text
        page.wait_for_timeout(400)
    toasts = page.locator(".toast-body").all_inner_texts()
    raise TimeoutError(f"{selector} did not show {needle!r} in {seconds:.0f} s: {text!r} (messages: {toasts})")


# Done when the status's progress display (gradio's status tracker: progress bars, the ETA bar) has come and gone
# and the finished line is there; for the Sensitivity click (no progress display), when the finished line is a new one.
# The landing view's status may already hold a finished line with the very same words (a fast run rounds to the same
# seconds), and during a run the old line stays under the progress overlay, so neither "a new line" nor "any change"
# alone is a finish.
WAIT_JS = """([sel, needle, old, shows, needBusy]) => { const el = document.querySelector(sel); if (!el) return false;
  const host = document.querySelector(shows) || el; const block = host.closest(".block") || host;
  const busy = block.querySelector(".eta-bar, .progress-level, .progress-bar, .meta-text") !== null;
  if (busy) window.__busy = true;
  const line = el.innerText.split("\\n").find((l) => l.includes(needle));
  if (busy || line === undefined) return false;
  return window.__busy === true || (!needBusy && line !== old.line); }"""


def wait_finished(page, selector: str, needle: str, before: str, seconds: float, shows: str | None = None) -> str:
    """After a click on Run: wait until the event's progress display (on ``shows``, else on ``selector``) has come
    and gone and ``selector`` holds a line with ``needle`` (WAIT_JS); the element's text."""
    old = {"text": before, "line": _line(before, needle)}
    page.wait_for_function(WAIT_JS, arg=[selector, needle, old, shows or selector, True], polling=100,
                           timeout=seconds * 1000)  # fmt: skip
    return page.locator(selector).inner_text()


def click_run(page, button: str) -> None:
    """Click a Run button with the progress memory (``window.__busy``) cleared first."""
    page.evaluate("() => { window.__busy = false; }")
    page.locator(button).click()


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


def set_steps(page, steps: int, slider: str = "#ip-steps") -> None:
    """Type a steps slider's value (default: the inverse-problems tab's reverse steps) and let the page take it."""
    field = page.locator(f"{slider} input[type=number]")
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


def _text(page, selector: str) -> str:
    loc = page.locator(selector)
    return loc.inner_text() if loc.count() else ""


def run_demo(page, demo: str, steps: int | None) -> None:
    """Run one first demo and wait until it has finished (``steps``: every steps slider at that value)."""
    page.get_by_role("tab", name=TABS[DEMOS[demo][0]]).click()
    page.wait_for_timeout(500)
    before = {sel: _text(page, sel) for sel in ("#dn-status", "#curve-strip", "#sm-status", "#ip-status", "#sp-md")}
    if demo == "denoise":
        if steps:
            set_steps(page, steps, "#denoise-steps")
        click_run(page, "#dn-run")
        wait_finished(page, "#dn-status", "Done in", before["#dn-status"], 600)
    elif demo == "curve":
        if steps:
            set_steps(page, steps, "#denoise-steps")
        click_run(page, "#curve-run")
        wait_finished(page, "#curve-strip", "done in", before["#curve-strip"], 900, shows="#curve-plot")
    elif demo == "generate":
        if steps:
            set_steps(page, steps, "#sample-steps")
        click_run(page, "#sm-run")
        wait_finished(page, "#sm-status", "Done", before["#sm-status"], 900)
    elif demo in ("restore", "compare"):
        choose(page, "Method", "Compare all" if demo == "compare" else "DPS")
        page.wait_for_timeout(1500)  # the method's tuned steps arrive from the server: set ours after them
        if steps:
            set_steps(page, steps)
        click_run(page, "#ip-run")
        wait_finished(page, "#ip-status", "Done in", before["#ip-status"], 1800)
    elif demo == "sensitivity":
        click_face(page, 0.36, 0.45, 120)  # under the left eye
        wait_text(page, "#sens-md", "Across t", 600)
    elif demo == "spectrum":
        # the landing view already says "rho(J_f)": only the progress display's coming and going marks the finish
        click_run(page, "#sp-run")
        wait_finished(page, "#sp-md", "rho(J_f)", before["#sp-md"], 900)
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


def take(model: str, out: Path, steps: int | None, demos: list[str], jacobian_out: Path | None) -> list[Path]:
    from playwright.sync_api import sync_playwright

    os.environ["DIFFDEMO_MODEL"] = model
    import app

    app.warm_engine(landing_views=False)  # the model open and timed first, as `python app.py` does; the demos run live
    demo = app.build_app()
    demo.queue(default_concurrency_limit=1)
    _, url, _ = demo.launch(
        server_name="127.0.0.1", server_port=free_port(), prevent_thread_lock=True, quiet=True, css=app.CSS
    )
    out.mkdir(parents=True, exist_ok=True)
    saved, report = [], []
    try:
        with sync_playwright() as p:
            browser = p.chromium.launch(executable_path=CHROMIUM, args=ARGS)
            page = browser.new_page(viewport=SMALL)
            open_app(page, url)
            for name in demos:
                started = time.monotonic()
                page.set_viewport_size(SMALL)
                set_presenter(page, False)
                run_demo(page, name, steps)
                for view, (size, presenter) in VIEWS.items():
                    page.set_viewport_size(size)
                    set_presenter(page, presenter)
                    page.evaluate("window.scrollTo(0, 0)")
                    page.wait_for_timeout(1200)
                    saved.append(out / f"{name}_{view}.png")
                    _save_png(page.screenshot(), saved[-1])
                    missing = off_screen(page, DEMOS[name][1])
                    report.append(
                        f"{name:12s} {view:15s} " + ("ok" if not missing else "OFF SCREEN: " + ", ".join(missing))
                    )
                    print(report[-1], flush=True)
                set_presenter(page, False)
                print(f"{name}: {time.monotonic() - started:.0f} s", flush=True)
            if jacobian_out is not None:
                page.set_viewport_size(LARGE)
                saved += jacobian_shots(page, jacobian_out)
            browser.close()
    finally:
        demo.close()
    print("\n".join(report))
    return saved


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--model", default="faces64")
    p.add_argument("--out", default=str(ROOT / "assets" / "screenshots"))
    p.add_argument("--steps", type=int, default=None, help="every demo at this many steps (default: its defaults)")
    p.add_argument("--demos", default=",".join(DEMOS), help="comma-separated: " + ", ".join(DEMOS))
    p.add_argument("--jacobian-out", default=None, help="also save the Jacobian maps at t = 50 and 500 here")
    args = p.parse_args(argv)
    tabs = [t.strip() for t in args.demos.split(",") if t.strip()]
    unknown = set(tabs) - set(DEMOS)
    if unknown:
        p.error(f"unknown demos {sorted(unknown)}; choose from {', '.join(DEMOS)}")
    jac = Path(args.jacobian_out) if args.jacobian_out else None
    for path in take(args.model, Path(args.out), args.steps, tabs, jac):
        print(path)


if __name__ == "__main__":
    main()
