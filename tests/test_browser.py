"""A real browser on the app: Debian's chromium driven by Playwright, at the sizes a lecturer projects (1280x800 and
1920x1080), on the tiny test model. Asserts what a script can see: every tab has its time estimate and a Stop next to
its Run; results are whole pictures with visible captions and no scrolling box; the Jacobian maps have colour bars;
a failed run leaves one message and the earlier results; Stop marks the results partial. Skipped when chromium or
playwright is missing, unless DIFFDEMO_REQUIRE_BROWSER=1 (CI) makes it fail. Screenshots go to a temporary folder,
and also to $DIFFDEMO_SCREENSHOTS when set."""

from __future__ import annotations

import os
import shutil
import time
from pathlib import Path

import pytest

from bench.screenshots import (  # one owner of the browser plumbing
    ARGS,
    CHROMIUM,
    choose,
    click_face,
    free_port,
    off_screen,
    set_presenter,
    set_steps,
    wait_text,
)

SMALL = {"width": 1280, "height": 800}
LARGE = {"width": 1920, "height": 1080}
TABS = {  # tab -> (Run button, its Stop, the estimate line)
    "Denoise": ("#dn-run", "#dn-stop", "#dn-eta"),
    "Generate": ("#sm-run", "#sm-stop", "#sm-eta"),
    "Inverse problems": ("#ip-run", "#ip-stop", "#ip-eta"),
    "Sensitivity": ("#sens-run", "#sens-stop", "#sens-eta"),
    "Spectrum": ("#sp-run", "#sp-stop", "#sp-eta"),
}

pytestmark = [pytest.mark.browser, pytest.mark.slow]


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
        page = browser.new_page(viewport=SMALL)
        try:
            yield page
        finally:
            browser.close()


@pytest.fixture(scope="module")
def app_url(tiny_model_dir):
    mp = pytest.MonkeyPatch()
    mp.setenv("DIFFDEMO_MODEL", str(tiny_model_dir))
    import app

    port = free_port()
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


def _open(page, url, size=SMALL):
    page.set_viewport_size(size)
    page.goto(url, wait_until="domcontentloaded")
    page.get_by_text("diffdemo: diffusion models as priors").wait_for(timeout=60_000)
    wait_text(page, "#dn-eta", "Expected run time", 60)  # the engine answered: pickers and estimates are in


def _in_viewport(page, selector: str) -> bool:
    box = page.locator(selector).first.bounding_box()
    size = page.viewport_size
    return bool(box) and box["y"] >= 0 and box["y"] + box["height"] <= size["height"] and box["x"] >= 0


# Elements inside the results (and their ancestors up to the page) that scroll on their own: none may.
INNER_SCROLLERS = """(sel) => {
    const root = document.querySelector(sel);
    const bad = [];
    const check = (el) => {
        const s = getComputedStyle(el);
        const scrollsY = ['auto', 'scroll'].includes(s.overflowY) && el.scrollHeight > el.clientHeight + 1;
        const scrollsX = ['auto', 'scroll'].includes(s.overflowX) && el.scrollWidth > el.clientWidth + 1;
        if ((scrollsY || scrollsX) && el !== document.documentElement && el !== document.body)
            bad.push(el.tagName + '.' + el.className);
    };
    root.querySelectorAll('*').forEach(check);
    for (let el = root; el; el = el.parentElement) check(el);
    return bad;
}"""

# Captions: visible, inside their figure's width, not cut (no text overflow), at least 14 px.
CAPTION_PROBLEMS = """(sel) => Array.from(document.querySelectorAll(sel + ' figure')).map((fig) => {
    const cap = fig.querySelector('figcaption');
    const img = fig.querySelector('img');
    if (!cap || !cap.innerText.trim()) return 'no caption';
    const r = cap.getBoundingClientRect();
    if (r.width === 0 || r.height === 0) return 'hidden caption: ' + cap.innerText;
    if (cap.scrollWidth > cap.clientWidth + 1 || cap.scrollHeight > cap.clientHeight + 1) return 'cut: ' + cap.innerText;
    if (parseFloat(getComputedStyle(cap).fontSize) < 14) return 'small: ' + cap.innerText;
    if (!img || img.naturalWidth === 0) return 'no picture: ' + cap.innerText;
    if (img.getBoundingClientRect().width < 150) return 'picture too small: ' + cap.innerText;
    if (getComputedStyle(img).imageRendering !== 'pixelated') return 'smoothed picture: ' + cap.innerText;
    return null;
}).filter(Boolean)"""


def test_every_tab_has_an_estimate_and_a_stop_next_to_run(browser_page, app_url):
    page = browser_page
    for size in (SMALL, LARGE):
        _open(page, app_url, size)
        for tab, (run, stop, eta) in TABS.items():
            page.get_by_role("tab", name=tab).click()
            page.locator(run).wait_for(state="visible", timeout=120_000)
            assert page.locator(stop).is_visible(), f"{tab}: no Stop"
            assert _in_viewport(page, run) and _in_viewport(page, stop), f"{tab} at {size}: Run/Stop below the fold"
            run_box, stop_box = page.locator(run).bounding_box(), page.locator(stop).bounding_box()
            assert abs(run_box["y"] - stop_box["y"]) < 10, f"{tab}: Stop is not next to Run"
            assert "Expected run time" in wait_text(page, eta, "Expected run time", 60), tab
    page.get_by_role("tab", name="Denoise").click()
    assert page.locator("#curve-stop").is_visible()  # the Figure 1 curve has its own Stop beside its button


def test_restore_results_whole_with_captions_and_partial_after_stop(browser_page, app_url, shots):
    page = browser_page
    _open(page, app_url, SMALL)
    page.get_by_role("tab", name="Inverse problems").click()
    set_steps(page, 12)
    page.locator("#ip-run").click()
    status = wait_text(page, "#ip-status", "Done in", 120)
    assert "estimated" in status
    page.locator("#ip-strip figure").first.wait_for(state="visible", timeout=120_000)
    captions = page.locator("#ip-strip figcaption").all_inner_texts()
    assert any(c.startswith("measurement y") for c in captions) and any(c.startswith("truth x0") for c in captions)
    assert any(c.startswith("DPS") and "dB" in c and "LPIPS" in c for c in captions), captions
    assert len(captions) == len(set(captions)), f"a tile is shown twice: {captions}"
    assert page.evaluate(CAPTION_PROBLEMS, "#ip-strip") == []
    assert page.evaluate(INNER_SCROLLERS, "#ip-strip") == []
    assert _in_viewport(page, "#ip-run") and _in_viewport(page, "#ip-strip figure"), "first result below the fold"
    page.set_viewport_size(LARGE)
    page.wait_for_timeout(500)
    assert page.evaluate(CAPTION_PROBLEMS, "#ip-strip") == []
    assert page.evaluate(INNER_SCROLLERS, "#ip-strip") == []
    shots(page, "restore_1920")

    # Stop part-way: the status and the JSON say where it stopped
    page.set_viewport_size(SMALL)
    set_steps(page, 1000)
    page.locator("#ip-run").click()
    wait_text(page, "#ip-status", "DPS: step", 60)
    page.locator("#ip-stop").click()
    status = wait_text(page, "#ip-status", "Stopped at step", 60)
    assert "partial" in status


def test_failed_run_leaves_one_message_and_the_results(browser_page, app_url):
    page = browser_page
    _open(page, app_url, SMALL)
    page.get_by_role("tab", name="Inverse problems").click()
    set_steps(page, 3)
    page.locator("#ip-run").click()
    wait_text(page, "#ip-status", "Done in", 120)
    before = page.locator("#ip-strip figure").count()
    assert before >= 3
    page.get_by_label("Operator A").first.click()
    page.get_by_role("option", name="Box inpainting").click()
    page.get_by_text("Operator and method settings").click()
    page.get_by_label("drawn mask").check()
    page.wait_for_timeout(800)
    page.locator("#ip-run").click()  # nothing painted: the drawn mask is empty
    wait_text(page, "#ip-status", "failed", 60)
    page.wait_for_timeout(500)
    assert page.locator("#ip-strip figure").count() == before  # the earlier results are kept
    assert "Done in" not in page.locator("#ip-status").inner_text()  # the stale "Done" line is gone
    assert page.get_by_text("drawn mask is empty").count() == 1  # one message, not one per output
    assert page.locator(".toast-body.error").count() == 1
    outside = "() => Array.from(document.querySelectorAll('.error')).filter(e => !e.closest('.toast-body')).length"
    assert page.evaluate(outside) == 0  # no red "Error" box on the outputs


def test_sensitivity_maps_have_colour_bars_and_energy(browser_page, app_url, shots):
    page = browser_page
    _open(page, app_url, SMALL)
    page.get_by_role("tab", name="Sensitivity").click()
    click_face(page, 0.3, 0.6, 60)
    wait_text(page, "#sens-md", "Across t", 120)
    page.locator("#sens-maps .heatmaplayer").first.wait_for(state="attached", timeout=60_000)
    assert page.locator("#sens-maps .colorbar").count() == 3  # one colour bar per map
    titles = page.locator("#sens-maps .annotation-text").all_text_contents()
    assert sum("probed pixel" in t for t in titles) == 3, titles  # its own value, as a number
    assert page.locator("#sens-energy .scatterlayer .trace").count() >= 6  # one curve per timestep (Figure 7)
    text = page.locator("#sens-md").inner_text()
    assert "r50" in text and "effective pixels" in text and "Telling the maps apart" in text
    font = page.evaluate(
        "() => Math.min(...Array.from(document.querySelectorAll('#sens-energy text')).map("
        "t => parseFloat(getComputedStyle(t).fontSize)).filter(Boolean))"
    )
    assert font >= 14, f"plot text is {font} px"
    shots(page, "sensitivity")


def test_compare_all_winner_and_table_on_screen_at_1280(browser_page, app_url, shots):
    """After Compare all at 1280x800, normal and presenter view: Run, Stop, the winner's picture and caption in the
    window without scrolling; the table keeps its seconds and NFE columns; the line under Run says what runs."""
    page = browser_page
    _open(page, app_url, SMALL)
    page.get_by_role("tab", name="Inverse problems").click()
    choose(page, "Method", "Compare all")
    page.wait_for_timeout(1500)  # the method's tuned steps arrive from the server: set ours after them
    set_steps(page, 4)
    plan = wait_text(page, "#ip-eta", "DPS (4 steps", 120)  # once the page has taken the 4 steps
    assert "Compare all runs" in plan and "image evaluations" in plan and "Wiener" in plan, plan
    before = page.locator("#ip-status").inner_text()
    page.locator("#ip-run").click()
    wait_text(page, "#ip-status", "Done in", 300, before)
    page.locator("#ip-strip figure.best").wait_for(state="visible", timeout=120_000)
    for presenter in (False, True):
        set_presenter(page, presenter)
        page.evaluate("window.scrollTo(0, 0)")
        page.wait_for_timeout(500)
        missing = off_screen(
            page, ["#ip-run", "#ip-stop", "#ip-strip figure.best img", "#ip-strip figure.best figcaption"]
        )
        assert missing == [], f"presenter={presenter}: off screen at 1280x800: {missing}"
        assert "best PSNR" in page.locator("#ip-strip figure.best figcaption").inner_text()
    set_presenter(page, False)
    headers = page.locator("#ip-table th")
    names = [h.inner_text().strip() for h in headers.all()]
    assert any("seconds" in n for n in names) and any("NFE" in n for n in names), names
    width = page.viewport_size["width"]
    for i, name in enumerate(names):
        box = headers.nth(i).bounding_box()
        assert box and box["x"] + box["width"] <= width + 1, f"table column {name!r} runs off the right edge"
    shots(page, "compare_1280")


def test_landing_view_is_labelled_and_the_live_run_one_click_away(browser_page, app_url):
    """A page opened while the server prepares its landing views says so, then fills each tab in: a finished
    result with the defaults, labelled as precomputed, Run and Stop beside it; one click runs it live."""
    import threading

    from diffdemo.ui import landing

    page = browser_page
    landing.reset()
    try:
        landing.expect()  # as app.warm_engine does at start-up, before the model is warm
        _open(page, app_url, SMALL)
        wait_text(page, "#dn-status", "being prepared", 30)
        worker = threading.Thread(target=landing.prepare, daemon=True)
        worker.start()
        status = wait_text(page, "#dn-status", "Precomputed example with the defaults", 600)  # the timer fills it
        assert "press Denoise to run it live" in status and "PSNR" in status
        assert off_screen(page, ["#dn-run", "#dn-stop", "#dn-xt", "#dn-status table"]) == []
        worker.join(timeout=600)
        page.get_by_role("tab", name="Inverse problems").click()
        wait_text(page, "#ip-status", "Precomputed example with the defaults", 60)
        page.locator("#ip-strip figure").nth(2).wait_for(state="visible", timeout=120_000)
        assert any(c.startswith("DPS") for c in page.locator("#ip-strip figcaption").all_inner_texts())
        _open(page, app_url, SMALL)  # a page opened later has them at once
        wait_text(page, "#dn-status", "Precomputed example with the defaults", 120)
        page.get_by_role("tab", name="Generate").click()
        wait_text(page, "#sm-status", "Precomputed example", 120)
        page.get_by_role("tab", name="Denoise").click()
        page.locator("#dn-run").click()  # one click: the live run replaces the precomputed one
        deadline = time.monotonic() + 300
        while time.monotonic() < deadline:
            live = page.locator("#dn-status").inner_text()
            if "Done in" in live and "Precomputed" not in live:
                break
            page.wait_for_timeout(400)
        assert "Done in" in live and "Precomputed" not in live, live
    finally:
        landing.reset()
