"""A real browser on the app: Debian's chromium driven by Playwright clicks a pixel in the Sensitivity tab and runs
a short DPS. Skipped when chromium or playwright is missing, unless DIFFDEMO_REQUIRE_BROWSER=1 (CI) makes it fail.
Screenshots go to a temporary folder, and also to $DIFFDEMO_SCREENSHOTS when set."""

from __future__ import annotations

import os
import shutil
import socket
import time
from pathlib import Path

import pytest

CHROMIUM = "/usr/bin/chromium"
ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]

pytestmark = pytest.mark.browser


def _missing() -> str | None:
    if not Path(CHROMIUM).exists():
        return f"Debian chromium not found at {CHROMIUM} (apt-get install chromium)"
    try:
        import playwright.sync_api  # noqa: F401
    except ImportError:
        return "the playwright Python package is not installed (pip install playwright)"
    return None


@pytest.fixture(scope="module")
def browser_page():
    reason = _missing()
    if reason:
        if os.environ.get("DIFFDEMO_REQUIRE_BROWSER") == "1":
            pytest.fail(f"DIFFDEMO_REQUIRE_BROWSER=1 but {reason}")
        pytest.skip(reason)
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=ARGS)
        page = browser.new_page(viewport={"width": 1400, "height": 1100})
        try:
            yield page
        finally:
            browser.close()


@pytest.fixture(scope="module")
def app_url(tiny_model_dir):
    mp = pytest.MonkeyPatch()
    mp.setenv("DIFFDEMO_MODEL", str(tiny_model_dir))
    import app

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    demo = app.build_app()
    demo.queue(default_concurrency_limit=1)
    _, url, _ = demo.launch(
        server_name="127.0.0.1", server_port=port, prevent_thread_lock=True, quiet=True, css=app.CSS
    )
    try:
        yield url
    finally:
        demo.close()
        mp.undo()


@pytest.fixture(scope="module")
def shots(tmp_path_factory):
    """Save a full-page screenshot to a temporary folder and to $DIFFDEMO_SCREENSHOTS when set."""
    folder = tmp_path_factory.mktemp("screenshots")
    extra = os.environ.get("DIFFDEMO_SCREENSHOTS")

    def save(page, name: str) -> Path:
        path = folder / f"{name}.png"
        page.screenshot(path=str(path), full_page=True)
        if extra:
            Path(extra).mkdir(parents=True, exist_ok=True)
            shutil.copy(path, Path(extra) / path.name)
        return path

    return save


def _open(page, url):
    page.goto(url, wait_until="domcontentloaded")
    page.get_by_text("diffdemo: diffusion models as priors").wait_for(timeout=60_000)
    # the pickers fill in on load: wait for the working image so later events see a chosen image
    page.locator(".pixelated img").first.wait_for(state="visible", timeout=60_000)


def test_sensitivity_click_shows_maps_and_energy(browser_page, app_url, shots):
    page = browser_page
    _open(page, app_url)
    page.get_by_role("tab", name="Sensitivity").click()
    image = page.locator("#sens-image img")
    image.wait_for(state="visible", timeout=60_000)
    box = image.bounding_box()
    assert box and box["width"] > 10
    page.mouse.click(box["x"] + 0.3 * box["width"], box["y"] + 0.6 * box["height"])
    page.locator("#sens-maps .js-plotly-plot").wait_for(state="visible", timeout=90_000)
    page.locator("#sens-energy .js-plotly-plot").wait_for(state="visible", timeout=90_000)
    assert page.locator("#sens-maps .heatmaplayer").count() >= 1 or page.locator("#sens-maps image").count() >= 1
    assert page.locator("#sens-energy .scatterlayer .trace").count() >= 6  # one curve per timestep (Figure 7)
    text = page.locator("#sens-md").inner_text()
    assert "r50" in text and "Pixel" in text
    shots(page, "sensitivity")


def test_short_dps_streams_frames(browser_page, app_url, shots):
    page = browser_page
    _open(page, app_url)
    page.get_by_role("tab", name="Inverse problems").click()
    steps = page.locator("#ip-steps input[type=number]")
    steps.fill("12")
    steps.press("Enter")
    page.locator("#ip-gallery").wait_for(state="attached", timeout=30_000)
    # record every caption the gallery shows while the frames stream in
    page.evaluate(
        """() => {
            window.__captions = new Set();
            const gallery = document.querySelector('#ip-gallery');
            const record = () => gallery.querySelectorAll('.caption-label, figcaption, .caption')
                .forEach(e => window.__captions.add(e.textContent.trim()));
            new MutationObserver(record).observe(gallery, {subtree: true, childList: true, characterData: true});
        }"""
    )
    page.locator("#ip-run").click()
    status, deadline = "", time.monotonic() + 120
    while time.monotonic() < deadline:
        status = page.locator("#ip-status").inner_text()
        if status.startswith("Done"):
            break
        page.wait_for_timeout(200)
    assert status.startswith("Done"), f"DPS did not finish: {status!r}"
    page.wait_for_timeout(500)
    captions = set(page.evaluate("() => Array.from(window.__captions)"))
    frames = {c for c in captions if "step" in c}
    assert len(frames) >= 2, f"expected several streamed frames, saw captions {sorted(captions)}"
    assert any("result" in c for c in captions)
    shots(page, "dps")
