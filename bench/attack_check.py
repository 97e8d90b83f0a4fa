"""Attack replay: the misuse a public Space sees, against a locally started app (loopback only).

Starts the app as a child process on 127.0.0.1 in both public modes: ``python app.py --public`` (no proxy: the
caller's address is the socket's) and a simulated Space (``SPACE_ID`` set: one trusted proxy hop, which this script
plays by writing the X-Forwarded-For entry a Hugging Face proxy would append). It replays the attacks of issues
#16 and #23 with gradio_client, plain HTTP and the CLI, and prints a table: attack -> outcome -> server still
serving -> the honest client's wait -> server memory (resident set and peak, from /proc) -> disk.

The honest client is another address: 127.0.0.2 (a socket bound there) without a proxy, 198.51.100.2 as the
proxy's hop on the simulated Space.

    python bench/attack_check.py                 # about 16 minutes on a loaded 2-core CPU (both modes)
    python bench/attack_check.py --json out.json --markdown table.md

The time cap is set to --time-cap seconds (default 20) for this check, so that the largest request the
budget lets through is seen being stopped; a Space's default is 120 s. The last line is a JSON summary;
exit code 0 when every check passed.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import socket
import subprocess
import sys
import tempfile
import threading
import time
import zlib
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

IMAGE = "london_006_neutral"
MB = 1024 * 1024


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def bomb_png(side: int = 9999) -> bytes:
    """A side x side 1-bit PNG of zeros (a few hundred kB; 100 MB once decoded, 300 MB as RGB)."""
    raw = zlib.compress((b"\x00" + b"\x00" * ((side + 7) // 8)) * side, 9)

    def chunk(kind: bytes, body: bytes) -> bytes:
        return len(body).to_bytes(4, "big") + kind + body + zlib.crc32(kind + body).to_bytes(4, "big")

    ihdr = side.to_bytes(4, "big") * 2 + bytes([1, 0, 0, 0, 0])
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", raw) + chunk(b"IEND", b"")


class Server:
    """``python app.py --public`` in a child process, its memory read from /proc."""

    def __init__(self, env: dict, log: Path, space: bool = False):
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}/"
        self.space = space
        env = {**os.environ, **env, "GRADIO_SERVER_NAME": "127.0.0.1", "GRADIO_SERVER_PORT": str(self.port)}
        env.pop("SPACE_ID", None)
        if space:
            env["SPACE_ID"] = "attack-check/diffdemo"
        self.log_path = log
        self.log = open(log, "w")  # noqa: SIM115 (closed in stop)
        argv = [sys.executable, "app.py"] + ([] if space else ["--public"])
        self.proc = subprocess.Popen(argv, cwd=ROOT, env=env, stdout=self.log, stderr=subprocess.STDOUT)

    def hop(self, address: str) -> dict:
        """The headers a request from ``address`` carries: on the simulated Space the proxy's appended hop."""
        return {"x-forwarded-for": address} if self.space else {}

    def wait_ready(self, timeout: float = 180) -> None:
        import httpx

        deadline = time.time() + timeout
        while time.time() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"the app exited with code {self.proc.returncode}")
            try:
                if httpx.get(self.url + "config", timeout=2).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            time.sleep(1)
        raise RuntimeError("the app did not start in time")

    def wait_quiet(self, timeout: float = 300) -> None:
        """Until the server's memory has settled (the background warm-up done): RSS within 5 MB for 15 s."""
        deadline = time.time() + timeout
        last, since = self.rss(), time.time()
        while time.time() < deadline and time.time() - since < 15:
            time.sleep(3)
            now = self.rss()
            if abs(now - last) > 5:
                last, since = now, time.time()

    def _status(self, key: str) -> float:
        for line in Path(f"/proc/{self.proc.pid}/status").read_text().splitlines():
            if line.startswith(key + ":"):
                return int(line.split()[1]) * 1024 / MB
        return float("nan")

    def rss(self) -> float:
        return self._status("VmRSS")

    def reset_peak(self) -> None:
        Path(f"/proc/{self.proc.pid}/clear_refs").write_text("5")  # VmHWM := VmRSS (Linux)

    def peak(self) -> float:
        return self._status("VmHWM")

    def stop(self) -> None:
        self.proc.terminate()
        try:
            self.proc.wait(20)
        except subprocess.TimeoutExpired:
            self.proc.kill()
        self.log.close()


def restore_args(model="faces64", **kw) -> list:
    args = dict(
        model_name=model, image=IMAGE, upload=None, seed=0, operator="gaussian_blur", blur_std=2.0,
        kernel_size=13, box="center", drop=0.5, sigma_y=0.05, method="dps", t0=100, zeta=1.0, scale=1.0,
        steps=10, mask=None, normalize=True, samples=1, precision="auto", spacing="uniform",
    )  # fmt: skip
    args.update(kw)
    return list(args.values())


def call_raw(url: str, api: str, args: list, read: bool = True, timeout: float = 120) -> tuple[int, str]:
    """POST /gradio_api/call/<api> with the JSON body written as is (NaN / Infinity included), then read the
    event stream when ``read``; (HTTP status of the post, stream text or the refusal's detail)."""
    import httpx

    body = '{"data": [' + ", ".join(json.dumps(a) for a in args) + "]}"
    base = url.rstrip("/") + "/gradio_api/call/" + api
    with httpx.Client(timeout=timeout) as http:
        posted = http.post(base, content=body, headers={"content-type": "application/json"})
        if posted.status_code != 200 or not read:
            return posted.status_code, posted.text
        return 200, http.get(f"{base}/{posted.json()['event_id']}").text


def error_text(stream: str) -> str:
    """The message of the error event in a /call event stream ('' when there is none)."""
    lines = stream.splitlines()
    for i, line in enumerate(lines[:-1]):
        if line.strip() == "event: error" and lines[i + 1].startswith("data:"):
            data = json.loads(lines[i + 1][5:])
            return (data.get("error") if isinstance(data, dict) else data) or "(no message)"
    return ""


def honest_http(server: Server):
    """An httpx client from another address than the attacker's: 127.0.0.2 without a proxy, the proxy's hop
    198.51.100.2 on the simulated Space."""
    import httpx

    if server.space:
        return httpx.Client(timeout=300, headers=server.hop("198.51.100.2"))
    return httpx.Client(timeout=300, transport=httpx.HTTPTransport(local_address="127.0.0.2"))


def honest_denoise(server: Server, seed: int = 1) -> tuple[bool, float]:
    """The honest client's short /denoise through /call: (completed, seconds from post to result)."""
    start = time.perf_counter()
    base = server.url + "gradio_api/call/denoise"
    try:
        with honest_http(server) as http:
            posted = http.post(base, json={"data": ["faces64", IMAGE, None, seed, 50, 2]})
            if posted.status_code != 200:
                return False, time.perf_counter() - start
            text = http.get(f"{base}/{posted.json()['event_id']}").text
        return "event: complete" in text, time.perf_counter() - start
    except Exception:  # noqa: BLE001
        return False, time.perf_counter() - start


def disk_bytes(folder: Path) -> int:
    total = 0
    for f in folder.rglob("*"):
        try:
            total += f.stat().st_size if f.is_file() else 0
        except OSError:
            pass
    return total


class Checks:
    def __init__(self, server: Server, disk: Path):
        self.server, self.disk = server, disk
        self.rows: list[dict] = []
        self.mode = "Space (SPACE_ID, 1 hop)" if server.space else "--public"

    def serving(self) -> tuple[bool, float]:
        """Still serving: the honest client's short denoise completes (and how long it waited)."""
        return honest_denoise(self.server)

    def start(self) -> None:
        """Before an attack: the memory peak is reset, so each row's peak is its own."""
        self.rss0 = self.server.rss()
        try:
            self.server.reset_peak()
        except OSError:
            pass

    def row(self, attack: str, outcome: str, ok: bool, memory: str = "", wait: float | None = None) -> None:
        peak = self.server.peak()
        alive, waited = self.serving()
        wait = waited if wait is None else wait
        row = {"mode": self.mode, "attack": attack, "outcome": outcome, "passed": bool(ok and alive),
               "serving": alive, "honest_wait_s": round(wait, 1), "rss_mb": round(self.server.rss()),
               "peak_mb": round(peak), "disk_mb": round(disk_bytes(self.disk) / 1e6, 1)}  # fmt: skip
        row["memory"] = memory or f"RSS {row['rss_mb']} MB, peak {row['peak_mb']} MB"
        self.rows.append(row)
        mark = "ok" if row["passed"] else "FAIL"
        print(f"[{mark}] {self.mode} | {attack}: {outcome} | serving {alive} ({wait:.1f} s) | {row['memory']} "
              f"| disk {row['disk_mb']} MB", flush=True)  # fmt: skip


def attack_model_names(c: Checks) -> None:
    from gradio_client import Client

    client = Client(c.server.url, verbose=False)
    client.predict("faces64", IMAGE, None, 0, 50, 2, api_name="/denoise")  # the model is loaded once
    before = c.server.rss()
    spellings = [("./" * (i % 7)) + "faces64" + ("/" * (i // 7)) for i in range(50)]
    spellings[1::7] = [" " + s for s in spellings[1::7]]
    assert len(set(spellings)) == 50
    done = 0
    for name in spellings:
        client.predict(name, IMAGE, None, 0, 50, 2, api_name="/denoise")
        done += 1
    growth = c.server.rss() - before
    c.row(
        "50 spellings of the embedded model's name (faces64/, ./faces64, ./././faces64/ ...) as /denoise",
        f"{done}/50 completed on one cached copy",
        done == 50 and growth < 100,
        f"RSS {before:.0f} -> {c.server.rss():.0f} MB ({growth:+.0f} MB)",
    )


def attack_probe_paths(c: Checks) -> None:
    from gradio_client import Client
    from gradio_client.exceptions import AppError

    client = Client(c.server.url, verbose=False)
    messages = {}
    for name in ("/root", "/nonexistent", "/etc", "../../../../tmp", "~"):
        try:
            client.predict(name, IMAGE, None, 0, 50, 2, api_name="/denoise")
            messages[name] = "(accepted!)"
        except AppError as exc:
            messages[name] = str(exc)
    same = len(set(messages.values())) == 1
    leaks = [n for n, m in messages.items() if "/root" in m or "/etc" in m or "/tmp" in m or "config.json" in m]
    c.row(
        "model field: /root, /nonexistent, /etc, ../../../../tmp, ~",
        f"{'one message for all' if same else 'messages differ'}: {messages['/root'][:70]}...",
        same and not leaks,
        f"RSS {c.server.rss():.0f} MB",
    )
    # a bad upload must not echo the server's temp path
    with tempfile.NamedTemporaryFile("w", suffix=".png", delete=False) as f:
        f.write("not an image")
    from gradio_client import handle_file

    try:
        client.predict("faces64", "(uploaded file)", handle_file(f.name), 0, 50, 2, api_name="/denoise")
        message = "(accepted!)"
    except AppError as exc:
        message = str(exc)
    os.unlink(f.name)
    c.row(
        "upload of a text file named .png",
        message[:90],
        "not a readable image" in message and "/tmp" not in message and "gradio" not in message,
        f"RSS {c.server.rss():.0f} MB",
    )


def attack_queue_flood(c: Checks) -> None:
    from gradio_client import Client

    c.start()
    job = restore_args(steps=60)  # ~5 s of DPS each on a 2-core CPU
    start = time.perf_counter()
    codes = [call_raw(c.server.url, "restore", job, read=False)[0] for _ in range(100)]
    took = time.perf_counter() - start
    accepted, refused = codes.count(200), sum(code == 503 for code in codes)
    served, waited = honest_denoise(c.server)
    # the unread jobs are dropped after the 10 s grace period, which frees their two places: at most two per period
    c.row(
        "100 anonymous POSTs to /gradio_api/call/restore from one address (stream never read), then an honest client",
        f"{accepted} queued over {took:.0f} s (2 places, freed as unread jobs are dropped after 10 s), {refused} "
        f"refused; the honest client finished in {waited:.1f} s",
        accepted <= 2 * (1 + int(took / 10)) and refused == 100 - accepted and served,
        wait=waited,
    )
    time.sleep(1)
    c.start()
    flooder = Client(c.server.url, verbose=False)  # one gradio_client session
    jobs = [flooder.submit(*restore_args(steps=20), api_name="/restore") for _ in range(100)]
    served, waited = honest_denoise(c.server, seed=2)
    ok = refused = 0
    for j in jobs:
        try:
            j.result(timeout=300)
            ok += 1
        except Exception:  # noqa: BLE001
            refused += 1
    c.row(
        "100 /restore jobs submitted from one gradio_client session, then an honest client",
        f"{ok} ran, {refused} refused; the honest client finished in {waited:.1f} s",
        refused >= 90 and served,
        wait=waited,
    )


def attack_forged_sessions(c: Checks, results_dir: Path, cap: float) -> None:
    """A fresh session_hash per /queue/join (the old limit's key), stream never opened."""
    import httpx

    c.start()
    fn_index = fn_id(c.server, "restore")
    before = len(list(results_dir.glob("restore-*")))
    codes = []
    with httpx.Client(timeout=30) as http:
        for i in range(100):
            body = {"data": restore_args(steps=200), "fn_index": fn_index, "session_hash": f"forged{i}x{os.getpid()}"}
            codes.append(http.post(c.server.url + "gradio_api/queue/join", json=body).status_code)
    served, waited = honest_denoise(c.server)
    time.sleep(12)  # past the grace period (10 s): the jobs nobody reads are dropped, never run
    ran = len(list(results_dir.glob("restore-*"))) - before
    c.row(
        "100 /queue/join posts, each with a fresh session_hash, streams never opened; then an honest client",
        f"{codes.count(200)} accepted, {codes.count(503)} refused; {ran} ran; honest client served in {waited:.1f} s",
        codes.count(200) <= 2 and ran == 0 and served and waited < cap + 30,
        wait=waited,
    )


def attack_forged_hops(c: Checks, cap: float) -> None:
    """A made-up first X-Forwarded-For hop per /call post (what the old limit keyed anonymous posts on)."""
    import httpx

    c.start()
    real = ", 203.0.113.66" if c.server.space else ""  # the hop a Space's proxy would append
    codes = []
    with httpx.Client(timeout=30) as http:
        for i in range(100):
            headers = {"x-forwarded-for": f"10.{i}.0.1{real}"}
            body = {"data": restore_args(steps=200)}
            codes.append(http.post(c.server.url + "gradio_api/call/restore", json=body, headers=headers).status_code)
    served, waited = honest_denoise(c.server)
    c.row(
        "100 /call/restore posts, each with a made-up first X-Forwarded-For hop; then an honest client",
        f"{codes.count(200)} accepted, {codes.count(503)} refused; honest client served in {waited:.1f} s",
        codes.count(200) <= 2 and served and waited < cap + 30,
        wait=waited,
    )
    time.sleep(11)  # the unread jobs are dropped


def attack_many_sessions(c: Checks, cap: float) -> None:
    """Twenty gradio_client sessions x 3 jobs from one process: one address, however many sessions."""
    from gradio_client import Client

    c.start()
    clients = [Client(c.server.url, verbose=False, headers=c.server.hop("203.0.113.66")) for _ in range(20)]
    jobs = [cl.submit(*restore_args(steps=100), api_name="/restore") for cl in clients for _ in range(3)]
    time.sleep(1)
    served, waited = honest_denoise(c.server)
    ok = refused = 0
    for j in jobs:
        try:
            j.result(timeout=600)
            ok += 1
        except Exception as exc:  # noqa: BLE001 (a refusal, or a run stopped by the time cap)
            if "Too many" in str(exc) or "queue" in str(exc).lower():
                refused += 1
            else:
                ok += 1
    c.row(
        "20 gradio_client sessions x 3 /restore jobs from one address; an honest client meanwhile",
        f"{ok} ran (finished or stopped by the cap), {refused} refused; the honest client finished in {waited:.1f} s",
        ok <= 4 and refused >= 56 and served and waited < cap + 30,
        wait=waited,
    )


def attack_rest_route(c: Checks) -> None:
    """gradio's REST route around the queue: six 16-chain DPS runs posted at once."""
    import httpx

    c.start()
    body = {"data": restore_args(steps=100, samples=16)}
    results = []

    def post():
        try:
            r = httpx.post(c.server.url + "gradio_api/run/restore", json=body, timeout=300)
            results.append(r.status_code)
        except Exception:  # noqa: BLE001
            results.append(-1)

    threads = [threading.Thread(target=post) for _ in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    c.row(
        "POST /gradio_api/run/restore x 6 at once (16-chain DPS), around the queue",
        f"HTTP {sorted(results)} (404: the route is closed; api_open=False)",
        all(code == 404 for code in results),
    )


def fn_id(server: Server, api: str) -> int:
    import httpx

    config = httpx.get(server.url + "config").json()
    return next(d["id"] for d in config["dependencies"] if d.get("api_name") == api)


def upload(server: Server, path: Path, headers: dict | None = None) -> str:
    import httpx

    with open(path, "rb") as f:
        r = httpx.post(server.url + "gradio_api/upload", files={"files": (path.name, f)}, headers=headers, timeout=120)
    r.raise_for_status()
    return r.json()[0]


def light_event(server: Server, api: str, data: list, session: str, out: list) -> None:
    """One light event through the queue as a browser sends it (join, then read the stream to its end)."""
    import httpx

    base = server.url + "gradio_api/"
    body = {"data": data, "fn_index": fn_id(server, api), "session_hash": session, "event_data": None}
    with httpx.Client(timeout=300) as http:
        joined = http.post(base + "queue/join", json=body)
        if joined.status_code != 200:
            out.append(f"refused {joined.status_code}")
            return
        with http.stream("GET", base + "queue/data", params={"session_hash": session}) as stream:
            for line in stream.iter_lines():
                if "process_completed" in line:
                    out.append("completed")
                    return
    out.append("no result")


def attack_decode_light(c: Checks, folder: Path) -> None:
    """Pictures that are small on disk and huge in memory, through the light views (no heavy-queue limit there
    before): six previews and noised views at once."""
    import numpy as np
    from PIL import Image

    big16 = folder / "gray16_7000.png"
    Image.fromarray(np.full((7000, 7000), 40000, np.uint16)).save(big16)
    tiff = folder / "float32_5000.tif"
    Image.fromarray(np.full((5000, 5000), 0.5, np.float32)).save(tiff, compression="tiff_deflate")
    for what, path in (("7000x7000 16-bit gray PNG", big16), ("5000x5000 32-bit float TIFF", tiff)):
        server_path = upload(c.server, path)
        file = {"path": server_path, "meta": {"_type": "gradio.FileData"}, "orig_name": path.name}
        c.start()
        out: list = []
        calls = [("preview", ["faces64", "(uploaded file)", file])] * 3
        calls += [("noised_view", ["faces64", "(uploaded file)", file, 0, 300])] * 3
        threads = [
            threading.Thread(target=light_event, args=(c.server, api, data, f"dec{i}{os.getpid()}", out))
            for i, (api, data) in enumerate(calls)
        ]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        extra = c.server.peak() - c.rss0
        c.row(
            f"{what} ({path.stat().st_size // 1024} kB) through 3 previews + 3 noised views at once",
            f"{out.count('completed')}/6 answered; peak +{extra:.0f} MB over {c.rss0:.0f} MB",
            extra < DECODE_PEAK_MB,
            f"peak +{extra:.0f} MB over {c.rss0:.0f} MB",
        )


DECODE_PEAK_MB = 600  # the decode budget (512 MB of pixels at once, process-wide) plus the reduced copies


def attack_upload_flood(c: Checks, folder: Path, bound_mb: float) -> None:
    """15 uploads of 38 MB from one address after an honest user's results: the disk bound at every upload, and
    the honest user's downloads still there."""
    import httpx

    c.start()
    with honest_http(c.server) as http:
        base = c.server.url + "gradio_api/call/restore"
        posted = http.post(base, json={"data": restore_args(steps=5)})
        text = http.get(f"{base}/{posted.json()['event_id']}").text
    urls = sorted(set(re.findall(r'"url": "([^"]+results\.json)"', text)))
    blob = folder / "blob.png"
    most = 0.0
    for _ in range(15):
        blob.write_bytes(os.urandom(38_000_000))  # fresh bytes each time: gradio stores equal files once
        try:
            upload(c.server, blob, c.server.hop("203.0.113.66"))
        except Exception:  # noqa: BLE001 (refused: fine)
            pass
        most = max(most, disk_bytes(c.disk) / 1e6)
    links = [httpx.get(u, timeout=30).status_code for u in urls]
    c.row(
        f"15 uploads of 38 MB from one address after an honest run (disk bound {bound_mb:g} MB)",
        f"disk at most {most:.0f} MB after any upload; the honest run's download links: HTTP {links}",
        most <= bound_mb and links and all(code == 200 for code in links),
    )


def attack_model_oracle(c: Checks) -> None:
    """Does the model field tell whether a path exists? An existing and a missing folder through '..' ahead of
    the app's own models path, five names not offered, a 1 MB name to model_info."""
    from diffdemo.models import MODELS_DIR

    c.start()
    own = str(MODELS_DIR / "faces64")
    outcomes = []
    for prefix in ("/etc/passwd/../..", "/etc/nope/../.."):
        _, stream = call_raw(c.server.url, "denoise", [prefix + own, IMAGE, None, 0, 20, 2])
        outcomes.append("complete" if "event: complete" in stream else error_text(stream)[:60])
    timings, messages = [], set()
    for name in ("/etc/passwd", "/etc/nope", "/root", "/nonexistent/x", "../../../../tmp"):
        start = time.perf_counter()
        _, stream = call_raw(c.server.url, "denoise", [name, IMAGE, None, 0, 20, 2])
        timings.append(time.perf_counter() - start)
        messages.add(error_text(stream))
    out: list = []
    light_event(c.server, "model_info", ["/etc/" + "x" * 1_000_000], f"info{os.getpid()}", out)
    c.row(
        "model field: '/etc/passwd/../..' vs '/etc/nope/../..' + the app's models path; 5 names not offered; "
        "a 1 MB name to model_info",
        f"pair: {outcomes}; {len(messages)} message(s) for the 5 names, {min(timings):.2f}-{max(timings):.2f} s",
        outcomes[0] == outcomes[1] and len(messages) == 1 and "etc" not in messages.pop(),
    )


def attack_odd_types(c: Checks) -> None:
    """Types a form never sends: a string for a yes/no, a dict for a number, a 1 MB string; and what it costs
    the server's log."""
    c.start()
    cases = {
        'dps_normalize "no"': restore_args(normalize="no"),
        "dps_normalize {}": restore_args(normalize={}),
        "seed {}": restore_args(seed={}),
        "method (1 MB)": restore_args(method="m" * 1_000_000),
        "image (1 MB)": restore_args(image="i" * 1_000_000),
    }
    lines_before = len(c.server.log_path.read_text(errors="replace").splitlines())
    messages = {}
    for name, args in cases.items():
        _, stream = call_raw(c.server.url, "restore", args)
        messages[name] = error_text(stream)
    time.sleep(1)
    log = c.server.log_path.read_text(errors="replace").splitlines()[lines_before:]
    longest = max(len(m) for m in messages.values())
    c.row(
        "API /restore: " + ", ".join(cases),
        f"{sum(bool(m) for m in messages.values())}/{len(cases)} refused, longest message {longest} chars "
        f"(e.g. '{messages[next(iter(cases))][:60]}'); {len(log)} log lines, "
        f"{sum('Traceback' in x for x in log)} tracebacks",
        all(messages.values())
        and longest < 400
        and len(log) <= 2 * len(cases)
        and not any("Traceback" in x for x in log),
    )


def attack_cli_files(c: Checks, folder: Path) -> None:
    import socket as socketlib

    fifo = folder / "fifo.png"
    os.mkfifo(fifo)
    sock = socketlib.socket(socketlib.AF_UNIX)
    sock.bind(str(folder / "sock.png"))
    cases = [
        ["--image", str(fifo)],
        ["--image", str(folder / "sock.png")],
        ["--image", "/dev/zero"],
        ["--out", "o" * 300],
        ["--out", "/proc/nope/x"],
    ]
    results = []
    try:
        for extra in cases:
            argv = ["restore", "--method", "wiener", *extra]
            if "--out" not in extra:
                argv += ["--out", str(folder / "cli-special")]
            start = time.perf_counter()
            try:
                done = subprocess.run([sys.executable, "-m", "diffdemo", *argv], cwd=ROOT, capture_output=True,
                                      text=True, timeout=120)  # fmt: skip
                results.append((done.returncode, len(done.stderr.strip().splitlines()), time.perf_counter() - start))
            except subprocess.TimeoutExpired:
                results.append((None, 0, 120.0))
    finally:
        sock.close()
    c.row(
        "CLI: a FIFO, a socket and /dev/zero as --image; a 300-character --out; --out /proc/nope/x",
        f"exit codes {[r[0] for r in results]}, stderr lines {[r[1] for r in results]}, "
        f"at most {max(r[2] for r in results):.1f} s",
        all(r[0] == 2 and r[1] == 1 for r in results),
        "(separate processes)",
    )


def attack_gone_client(c: Checks, results_dir: Path) -> None:
    """A queued job whose client disconnects is dropped before it starts (gradio's clean-up on disconnect)."""
    import httpx

    base = c.server.url + "gradio_api/"
    session = "attackgone" + str(os.getpid())
    config = httpx.get(c.server.url + "config").json()
    fn_index = next(d["id"] for d in config["dependencies"] if d.get("api_name") == "sample")
    count = lambda: len(list(results_dir.glob("sample-*")))  # each finished /sample writes one folder

    def join(session: str) -> int:
        body = {"data": ["faces64", 0, 2, 5], "fn_index": fn_index, "session_hash": session, "event_data": None}
        return httpx.post(base + "queue/join", json=body).status_code

    # control: the same job with its client listening to the end runs and writes its results
    before = count()
    control = join(session + "-control")
    with httpx.Client(timeout=120) as http:
        with http.stream("GET", base + "queue/data", params={"session_hash": session + "-control"}) as stream:
            for line in stream.iter_lines():
                if "process_completed" in line:
                    break
    time.sleep(1)
    ran = count() - before
    # a busy job holds the worker ~15 s: gradio notices a closed stream within its 10 s poll
    busy = call_raw(c.server.url, "restore", restore_args(steps=200), read=False)[0]
    before = count()
    joined = join(session)
    with httpx.Client(timeout=5) as http, http.stream("GET", base + "queue/data", params={"session_hash": session}):
        time.sleep(0.5)  # connected, then gone while its job still waits for the worker
    time.sleep(30)  # the busy job finishes; a dropped job never starts
    after = count()
    c.row(
        "a queued /sample whose client closes its stream while waiting (control: the same job, client listening)",
        f"control ran ({ran} result); the abandoned job {'never ran' if after == before else 'ran anyway'}",
        control == busy == joined == 200 and ran == 1 and after == before,
        f"RSS {c.server.rss():.0f} MB",
    )


def attack_largest(c: Checks, cap: float) -> None:
    largest = restore_args(method="compare", operator="noise", steps=1000, samples=16, t0=999)
    start = time.perf_counter()
    _, stream = call_raw(c.server.url, "restore", largest)
    message = error_text(stream)
    c.row(
        "the largest request the UI allows: Compare all, 1000 steps, 16 chains",
        f"refused in {time.perf_counter() - start:.1f} s: '{message[:80]}...'",
        "network evaluations" in message,
        f"RSS {c.server.rss():.0f} MB",
    )
    within = restore_args(method="dps", steps=500, samples=4)  # 2,000 evaluations: within the budget
    start = time.perf_counter()
    _, stream = call_raw(c.server.url, "restore", within, timeout=cap + 300)
    seconds = time.perf_counter() - start
    message = error_text(stream)
    finished = "event: complete" in stream
    c.row(
        f"DPS 500 steps x 4 chains (2,000 evaluations: within the budget, longer than the {cap:g} s cap)",
        "finished" if finished else f"stopped after {seconds:.1f} s: '{message[:48]}...'",
        finished or ("time cap" in message and seconds < cap + 15),
        f"RSS {c.server.rss():.0f} MB",
    )


def attack_bombs(c: Checks, folder: Path) -> None:
    from gradio_client import Client, handle_file
    from gradio_client.exceptions import AppError

    bomb = folder / "bomb.png"
    bomb.write_bytes(bomb_png(9999))
    client = Client(c.server.url, verbose=False)
    cases = {
        "image": lambda: client.predict(
            "faces64", "(uploaded file)", handle_file(str(bomb)), 0, 50, 2, api_name="/denoise"
        ),
        "mask layer": lambda: client.predict(
            *restore_args(operator="box_inpaint", box="drawn", steps=2)[:15],
            {"background": None, "layers": [handle_file(str(bomb))], "composite": None},
            api_name="/restore",
        ),
    }
    for what, call in cases.items():
        before = c.server.rss()
        c.server.reset_peak()
        try:
            call()
            message = "(accepted!)"
        except AppError as exc:
            message = str(exc)
        extra = c.server.peak() - before
        c.row(
            f"9999x9999 PNG bomb ({bomb.stat().st_size // 1024} kB) as the {what}",
            message[:90],
            "megapixels" in message and extra < 100,
            f"peak {extra:+.0f} MB over {before:.0f} MB",
        )


def attack_odd_parameters(c: Checks, folder: Path) -> None:
    api_cases = {
        "scale NaN": restore_args(scale=float("nan")),
        "scale 1e30": restore_args(scale=1e30),
        "zeta NaN": restore_args(method="score_ald", zeta=float("nan")),
        "scale -1": restore_args(scale=-1.0),
        "blur std 0": restore_args(blur_std=0.0),
        "samples 1000": restore_args(samples=1000),
        "seed -1": restore_args(seed=-1),
        "seed NaN": restore_args(seed=float("nan")),
        "steps 2.5": restore_args(steps=2.5),
    }
    refused = {}
    for name, args in api_cases.items():
        _, stream = call_raw(c.server.url, "restore", args)
        refused[name] = error_text(stream)
    bad = [n for n, m in refused.items() if not m or m == "(no message)"]
    c.row(
        "API /restore: " + ", ".join(api_cases),
        f"{len(api_cases) - len(bad)}/{len(api_cases)} refused with a message (e.g. '{refused['scale NaN'][:50]}')",
        not bad,
        f"RSS {c.server.rss():.0f} MB",
    )
    cli_cases = [
        ["restore", "--method", "dps", "--steps", "3", "--scale", "nan"],
        ["restore", "--method", "dps", "--steps", "3", "--scale", "1e30"],
        ["restore", "--method", "score_ald", "--steps", "3", "--zeta", "nan"],
        ["restore", "--method", "dps", "--scale", "-1"],
        ["restore", "--method", "wiener", "--blur-std", "0"],
        ["restore", "--method", "dps", "--samples", "1000"],
        ["restore", "--method", "dps", "--seed", "-1"],
        ["probe", "--pixel", "3", "3", "--t", "10", "--eps", "inf"],
        ["restore", "--method", "dps", "--out", str(folder / "bomb.png")],  # an existing file as --out
    ]
    results = []
    for argv in cli_cases:
        if "--out" not in argv:
            argv = [*argv, "--out", str(folder / "cli")]
        done = subprocess.run([sys.executable, "-m", "diffdemo", *argv], cwd=ROOT, capture_output=True, text=True)
        results.append((done.returncode, done.stderr.strip().splitlines()[-1:] or [""]))
    codes = [r[0] for r in results]
    c.row(
        "CLI: --scale nan, --scale 1e30, --zeta nan, --scale -1, --blur-std 0, --samples 1000, --seed -1, "
        "probe --eps inf, --out an existing file",
        f"exit codes {codes}; e.g. '{results[0][1][0][:60]}'",
        all(code == 2 for code in codes) and not (folder / "cli").exists(),
        "(separate processes)",
    )


def run_mode(space: bool, args, work: Path) -> list[dict]:
    """One server, one public mode: the identity and queue attacks in both, the rest with --public."""
    server_tmp = work / ("space-tmp" if space else "public-tmp")
    server_tmp.mkdir()
    env = {
        "DIFFDEMO_MODEL": "faces64",
        "DIFFDEMO_TIME_CAP_S": str(args.time_cap),
        "TMPDIR": str(server_tmp),  # the app's results and gradio's uploads land here, to be counted
        "GRADIO_TEMP_DIR": str(server_tmp / "gradio"),
        "HF_HUB_OFFLINE": "1",
    }
    server = Server(env, work / f"server-{'space' if space else 'public'}.log", space=space)
    checks = Checks(server, server_tmp)
    results_dir = server_tmp / "diffdemo-results"
    try:
        server.wait_ready()
        server.wait_quiet()  # the engine warms up in the background (model, timings, traced JVP graphs)
        print(f"{checks.mode}: app up at {server.url} (pid {server.proc.pid}), RSS {server.rss():.0f} MB", flush=True)
        attack_model_names(checks)
        first_rss = server.rss()
        attack_forged_sessions(checks, results_dir, args.time_cap)
        attack_forged_hops(checks, args.time_cap)
        attack_many_sessions(checks, args.time_cap)
        attack_rest_route(checks)
        if not space:
            attack_queue_flood(checks)
            attack_probe_paths(checks)
            attack_model_oracle(checks)
            attack_bombs(checks, work)
            attack_decode_light(checks, work)
            attack_odd_parameters(checks, work)
            attack_odd_types(checks)
            attack_cli_files(checks, work)
            attack_upload_flood(checks, work, args.disk_mb)
            attack_gone_client(checks, results_dir)
            attack_largest(checks, args.time_cap)
        time.sleep(3)
        last_rss = server.rss()
        checks.start()
        checks.row(
            f"memory after the whole run against after the first attack (bound +{MEMORY_GROWTH_MB} MB)",
            f"RSS {first_rss:.0f} -> {last_rss:.0f} MB ({last_rss - first_rss:+.0f} MB)",
            last_rss - first_rss < MEMORY_GROWTH_MB,
        )
    finally:
        server.stop()
    return checks.rows


# Memory may grow after the first attack by what the run legitimately keeps: the estimates' timings, traced JVP graphs
# for the probe, gradio's caches, and the allocator's retained arenas after the decode budget's 512 MB was in use.
MEMORY_GROWTH_MB = 700


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--time-cap", type=float, default=20, help="the server's time cap per event for this check")
    ap.add_argument("--disk-mb", type=float, default=500, help="the server's disk bound (DIFFDEMO_RESULTS_MAX_MB)")
    ap.add_argument("--modes", default="public,space", help="which public modes to run (public, space)")
    ap.add_argument("--json", help="also write the rows here")
    ap.add_argument("--markdown", help="also write the table here")
    args = ap.parse_args(argv)
    os.environ["DIFFDEMO_RESULTS_MAX_MB"] = f"{args.disk_mb:g}"

    work = Path(tempfile.mkdtemp(prefix="diffdemo-attack-"))
    started = time.perf_counter()
    rows = []
    for mode in args.modes.split(","):
        rows += run_mode(mode.strip() == "space", args, work)
    table = [
        "| mode | attack | outcome | served | honest wait | memory | disk |",
        "|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        mark = "" if r["passed"] else " **FAILED**"
        table.append(
            f"| {r['mode']} | {r['attack']} | {r['outcome']}{mark} | {'yes' if r['serving'] else 'NO'} | "
            f"{r['honest_wait_s']:.1f} s | {r['memory']} | {r['disk_mb']:.0f} MB |"
        )
    print("\n" + "\n".join(table))
    summary = {
        "all_passed": all(r["passed"] for r in rows),
        "checks": len(rows),
        "passed": sum(r["passed"] for r in rows),
        "seconds": round(time.perf_counter() - started, 1),
        "time_cap_s": args.time_cap,
        "disk_bound_mb": args.disk_mb,
        "cpu_count": os.cpu_count(),
    }
    if args.json:
        Path(args.json).write_text(json.dumps({"summary": summary, "rows": rows}, indent=1, allow_nan=False))
    if args.markdown:
        Path(args.markdown).write_text("\n".join(table) + "\n")
    print(json.dumps(summary, allow_nan=False))
    return 0 if summary["all_passed"] else 1


if __name__ == "__main__":
    threading.excepthook = lambda a: None  # gradio_client's helper threads may complain at shutdown
    sys.exit(main())
