"""Each tab's first demo with its defaults, timed through the HTTP API as a lecturer's laptop or a visitor would.

    python bench/bench_first_demo.py [--app-dir DIR] [--label after] [--settle 60] [--json out.json] [--browser]

Starts ``python app.py`` from ``--app-dir`` (default: this checkout; point it at a checkout of an older commit to
time the defaults before a change on the same machine in the same session) on a free port, waits until it serves
and its start-up work (warm-up, precomputed landing views) has settled, then calls each tab's API once with every
control at its initial value (gradio_client fills the parameters it is not given with the components' defaults)
and the bundled face: Denoise, the PSNR-vs-t curve, Generate, DPS deblurring, Compare all, one Sensitivity click
and Spectrum. Wall seconds are from the call to its last output, including streaming and the server's scoring.
Prints one JSON line per demo and a markdown table; the CPU's flags and the load average go beside it. With
--browser the same demos are clicked in chromium at 1280x800 and timed from the click to the finished status line.
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

TARGET_S = {"Compare all": 20.0}  # issue 22: every first demo within 10 s, Compare all within 20 s
DEMOS = [  # (name, api name, the inputs set by name; every other one at its initial value)
    ("Denoise", "/denoise", {}),
    ("PSNR-vs-t curve", "/psnr_vs_t", {}),
    ("Generate", "/sample", {}),
    ("DPS deblurring", "/restore", {"method": "dps"}),
    ("Compare all", "/restore", {"method": "compare"}),
    ("Sensitivity click", "/probe", {"x": 32, "y": 24}),  # a click on the nose of the bundled face
    ("Spectrum", "/spectrum", {}),
]


def cpu_flags() -> str:
    try:
        text = Path("/proc/cpuinfo").read_text()
    except OSError:
        return "unknown"
    model = next((line.split(":", 1)[1].strip() for line in text.splitlines() if line.startswith("model name")), "?")
    have = [f for f in ("avx2", "avx512f", "avx512_bf16", "amx_bf16") if f" {f}" in text]
    return f"{model}, {os.cpu_count()} cores, flags: {', '.join(have) or 'no avx2'}"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_until_serving(url: str, timeout_s: float = 300) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(url + "gradio_api/info", timeout=5):
                return
        except OSError:
            time.sleep(1)
    raise TimeoutError(f"the app did not serve within {timeout_s:.0f} s")


def settle(pid: int, quiet_s: float, timeout_s: float) -> float:
    """Wait until the app's process has used under 10 % of a core for ``quiet_s`` seconds (its start-up work done)."""
    started = time.monotonic()
    ticks = os.sysconf("SC_CLK_TCK")

    def cpu() -> float:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / ticks

    quiet_since, last, last_t = time.monotonic(), cpu(), time.monotonic()
    while time.monotonic() - started < timeout_s:
        time.sleep(2)
        now, now_t = cpu(), time.monotonic()
        if (now - last) / (now_t - last_t) > 0.1:
            quiet_since = now_t
        last, last_t = now, now_t
        if now_t - quiet_since >= quiet_s:
            break
    return time.monotonic() - started


def inputs_for(client, api: str, named: dict) -> dict:
    """Keyword arguments for ``client.predict``: the named ones that this endpoint has (older apps may lack some),
    and None for an input with no initial value (no upload: the bundled face picked at start is used)."""
    params = client.view_api(return_format="dict", print_info=False)["named_endpoints"][api]["parameters"]
    empty = {p["parameter_name"]: None for p in params if not p.get("parameter_has_default")}
    return {**empty, **{k: v for k, v in named.items() if k in {p["parameter_name"] for p in params}}}


# In the browser: what to wait for after the click (the selector whose text gains the needle), per demo
BROWSER_DONE = {
    "Denoise": ("denoise", "#dn-run", "#dn-status", "Done in"),
    "PSNR-vs-t curve": ("denoise", "#curve-run", "#curve-strip", "done in"),  # its progress shows on #curve-plot
    "Generate": ("generate", "#sm-run", "#sm-status", "Done"),
    "DPS deblurring": ("restore", "#ip-run", "#ip-status", "Done in"),
    "Compare all": ("compare", "#ip-run", "#ip-status", "Done in"),
    "Sensitivity click": ("sensitivity", None, "#sens-md", "Across t"),
    "Spectrum": ("spectrum", "#sp-run", "#sp-md", "rho(J_f)"),
}
PROGRESS_ON = {"PSNR-vs-t curve": "#curve-plot"}  # where the progress shows, if not on the status itself


def browser_rows(url: str, label: str, only: str) -> list[dict]:
    """Each first demo in a real browser (Debian's chromium, 1280x800): the tab opened and its controls at their
    initial values (Compare all and DPS picked in the Method list, as a presenter does), then the time from the
    click on Run (or on the face) to the finished status line on screen, polled every 50 ms."""
    from playwright.sync_api import sync_playwright

    from bench.screenshots import ARGS, CHROMIUM, SMALL, TABS, WAIT_JS, choose, open_app
    from bench.screenshots import DEMOS as SHOTS

    rows = []
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=ARGS)
        page = browser.new_page(viewport=SMALL)
        open_app(page, url)
        for name, (demo, button, selector, needle) in BROWSER_DONE.items():
            if only and only not in name:
                continue
            page.get_by_role("tab", name=TABS[SHOTS[demo][0]]).click()
            page.wait_for_timeout(800)
            if demo in ("restore", "compare"):
                choose(page, "Method", "Compare all" if demo == "compare" else "DPS")
                page.wait_for_timeout(1500)  # the method's tuned steps arrive from the server first
            text = page.locator(selector).inner_text() if page.locator(selector).count() else ""
            old = {"text": text, "line": next((line for line in text.splitlines() if needle in line), None)}
            page.evaluate("() => { window.__busy = false; }")
            load = os.getloadavg()[0]
            if button is None:  # Sensitivity: a click on the noised face, under the left eye
                image = page.locator("#sens-image img")
                image.wait_for(state="visible", timeout=120_000)
                page.wait_for_timeout(1000)
                image.scroll_into_view_if_needed()
                box = image.bounding_box()
                started = time.perf_counter()
                page.mouse.click(box["x"] + 0.36 * box["width"], box["y"] + 0.45 * box["height"])
            else:
                started = time.perf_counter()
                page.locator(button).click()
            shows = PROGRESS_ON.get(name, selector)  # where the event's progress display is
            page.wait_for_function(
                WAIT_JS, arg=[selector, needle, old, shows, button is not None], polling=50, timeout=900_000
            )
            wall = time.perf_counter() - started
            row = {"label": label, "demo": name, "client": "browser", "seconds": round(wall, 2)}
            rows.append({**row, "load_before": round(load, 2), "target_s": TARGET_S.get(name, 10.0)})
            print(json.dumps(rows[-1]), flush=True)
            page.wait_for_timeout(1000)
        browser.close()
    return rows


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--app-dir", default=str(ROOT))
    ap.add_argument("--label", default="after")
    ap.add_argument("--settle", type=float, default=20.0, help="seconds of a quiet app process before timing")
    ap.add_argument("--only", default="", help="run only the demos whose name contains this text")
    ap.add_argument("--json", help="append the rows to this JSON-lines file")
    ap.add_argument("--browser", action="store_true", help="time the demos in chromium instead of the HTTP API")
    args = ap.parse_args(argv)

    import gradio_client

    port = free_port()
    env = dict(os.environ, GRADIO_SERVER_PORT=str(port), GRADIO_ANALYTICS_ENABLED="False", PYTHONUNBUFFERED="1")
    env.pop("PYTHONPATH", None)
    log = open(Path(os.environ.get("TMPDIR", "/tmp")) / f"first_demo_{args.label}.log", "w")
    proc = subprocess.Popen([sys.executable, "app.py"], cwd=args.app_dir, env=env, stdout=log, stderr=log)
    url = f"http://127.0.0.1:{port}/"
    rows = []
    try:
        wait_until_serving(url)
        settled = settle(proc.pid, args.settle, timeout_s=600)
        if args.browser:
            rows = browser_rows(url, args.label, args.only)
        client = None if args.browser else gradio_client.Client(url, verbose=False)
        for name, api, named in [] if args.browser else DEMOS:
            if args.only and args.only not in name:
                continue
            load = os.getloadavg()[0]
            started = time.perf_counter()
            client.predict(api_name=api, **inputs_for(client, api, named))
            wall = time.perf_counter() - started
            row = {"label": args.label, "demo": name, "seconds": round(wall, 2), "load_before": round(load, 2)}
            row["target_s"] = TARGET_S.get(name, 10.0)
            rows.append(row)
            print(json.dumps(row), flush=True)
    finally:
        proc.terminate()
        proc.wait(timeout=30)
        log.close()
    if args.json:
        with open(args.json, "a") as f:
            for row in rows:
                f.write(json.dumps({**row, "cpu": cpu_flags(), "settled_s": round(settled, 1)}) + "\n")
    print(f"\n{args.label}: {cpu_flags()}; load average at the end {os.getloadavg()[0]:.2f}\n")
    print("| demo | seconds | target | load before |\n|---|---:|---:|---:|")
    for r in rows:
        print(f"| {r['demo']} | {r['seconds']:.1f} | {r['target_s']:.0f} | {r['load_before']:.1f} |")


if __name__ == "__main__":
    main()
