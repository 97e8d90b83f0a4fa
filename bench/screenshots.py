"""The README's screenshots, taken by a real browser (Debian's chromium via Playwright) on the embedded model.

    python bench/screenshots.py [--model assets/models/faces64] [--out assets/screenshots] [--steps 100]

Opens the app, clicks a pixel under the left eye in the Sensitivity tab (sensitivity.png), then runs
"Compare all" on the default deblurring problem (compare_all.png). Needs chromium at /usr/bin/chromium and the
playwright package (requirements-dev.txt); a few minutes on two CPU cores.
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


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _wait_done(page, status_id: str, seconds: float) -> str:
    status, deadline = "", time.monotonic() + seconds
    while time.monotonic() < deadline:
        status = page.locator(status_id).inner_text()
        if status.startswith("Done"):
            return status
        page.wait_for_timeout(500)
    raise TimeoutError(f"{status_id} did not finish in {seconds:.0f} s: {status!r}")


def _save_png(png: bytes, path: Path) -> None:
    """A 256-colour PNG of the screenshot: UI pixels lose nothing visible and the file is ~3x smaller."""
    import io

    from PIL import Image

    Image.open(io.BytesIO(png)).convert("RGB").quantize(256).save(path, optimize=True)


def take(model: str, out: Path, steps: int) -> list[Path]:
    from playwright.sync_api import sync_playwright

    os.environ["DIFFDEMO_MODEL"] = model
    import app

    app.warm_engine()  # as `python app.py` does: the default model is open and timed before a page loads
    demo = app.build_app()
    demo.queue(default_concurrency_limit=1)
    _, url, _ = demo.launch(
        server_name="127.0.0.1", server_port=_free_port(), prevent_thread_lock=True, quiet=True, css=app.CSS
    )
    out.mkdir(parents=True, exist_ok=True)
    saved = []
    try:
        with sync_playwright() as p:
            browser = p.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox", "--disable-gpu"])
            page = browser.new_page(viewport={"width": 1400, "height": 1000})
            page.goto(url, wait_until="domcontentloaded")
            page.get_by_text("diffdemo: diffusion models as priors").wait_for(timeout=120_000)
            page.locator(".pixelated img").first.wait_for(state="visible", timeout=120_000)

            page.get_by_role("tab", name="Sensitivity").click()
            image = page.locator("#sens-image img")
            image.wait_for(state="visible", timeout=120_000)
            box = image.bounding_box()
            page.mouse.click(box["x"] + 0.36 * box["width"], box["y"] + 0.45 * box["height"])  # under the left eye
            page.locator("#sens-energy .js-plotly-plot").wait_for(state="visible", timeout=300_000)
            page.wait_for_timeout(1500)
            saved.append(out / "sensitivity.png")
            _save_png(page.screenshot(full_page=True), saved[-1])

            page.get_by_role("tab", name="Inverse problems").click()
            page.get_by_label("Compare all").check()
            field = page.locator("#ip-steps input[type=number]")
            field.fill(str(steps))
            field.press("Enter")
            page.locator("#ip-run").click()
            print(_wait_done(page, "#ip-status", 1200))
            page.wait_for_timeout(1500)
            saved.append(out / "compare_all.png")
            _save_png(page.screenshot(full_page=True), saved[-1])
            browser.close()
    finally:
        demo.close()
    return saved


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--model", default=str(ROOT / "assets" / "models" / "faces64"))
    p.add_argument("--out", default=str(ROOT / "assets" / "screenshots"))
    p.add_argument("--steps", type=int, default=100, help="reverse steps of the Compare-all run")
    args = p.parse_args(argv)
    for path in take(args.model, Path(args.out), args.steps):
        print(path)


if __name__ == "__main__":
    main()
