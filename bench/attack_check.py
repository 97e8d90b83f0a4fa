"""Attack replay: the misuse a public Space sees, against a locally started app (loopback only).

Starts ``python app.py --public`` (a Space's limits and model allow-list) as a child process on 127.0.0.1,
replays each attack of issue #16 with gradio_client, plain HTTP and the CLI, and prints a table
input -> outcome -> server still serving -> server memory (its resident set, from /proc).

    python bench/attack_check.py                 # about 3-5 minutes on a 2-core CPU
    python bench/attack_check.py --json out.json --markdown table.md

The time cap is set to --time-cap seconds (default 20) for this check, so that the largest request the
budget lets through is seen being stopped; a Space's default is 300 s. The last line is a JSON summary;
exit code 0 when every check passed.
"""

from __future__ import annotations

import argparse
import json
import os
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

    def __init__(self, env: dict, log: Path):
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}/"
        env = {**os.environ, **env, "GRADIO_SERVER_NAME": "127.0.0.1", "GRADIO_SERVER_PORT": str(self.port)}
        self.log = open(log, "w")  # noqa: SIM115 (closed in stop)
        self.proc = subprocess.Popen(
            [sys.executable, "app.py", "--public"], cwd=ROOT, env=env, stdout=self.log, stderr=subprocess.STDOUT
        )

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
        steps=10, mask=None, normalize=True, samples=1,
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


class Checks:
    def __init__(self, server: Server):
        self.server = server
        self.rows: list[dict] = []

    def serving(self) -> bool:
        """Still serving: a short denoise by a fresh client completes within 120 s."""
        from gradio_client import Client

        try:
            out = Client(self.server.url, verbose=False).predict("faces64", IMAGE, None, 0, 50, 2, api_name="/denoise")
            return bool(out and out[0])
        except Exception:
            return False

    def row(self, attack: str, outcome: str, ok: bool, memory: str) -> None:
        alive = self.serving()
        row = {"attack": attack, "outcome": outcome, "passed": bool(ok and alive), "serving": alive}
        row["memory"] = memory
        self.rows.append(row)
        print(f"[{'ok' if row['passed'] else 'FAIL'}] {attack}: {outcome} | serving: {alive} | {memory}", flush=True)


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

    job = restore_args(steps=60)  # ~5 s of DPS each on a 2-core CPU
    codes = [call_raw(c.server.url, "restore", job, read=False)[0] for _ in range(100)]
    accepted, refused = codes.count(200), sum(code == 503 for code in codes)
    start = time.perf_counter()
    other = Client(c.server.url, verbose=False).predict("faces64", IMAGE, None, 1, 50, 2, api_name="/denoise")
    waited = time.perf_counter() - start
    c.row(
        "100 anonymous POSTs to /gradio_api/call/restore from one address, then a second client's /denoise",
        f"{accepted} queued, {refused} refused ('Too many requests queued'); the second client finished in "
        f"{waited:.1f} s",
        accepted <= 2 and refused == 100 - accepted and bool(other),
        f"RSS {c.server.rss():.0f} MB",
    )
    time.sleep(1)
    # the same from one gradio_client session (/queue/join with a session hash)
    flooder = Client(c.server.url, verbose=False)
    jobs = [flooder.submit(*restore_args(steps=20), api_name="/restore") for _ in range(100)]
    start = time.perf_counter()
    other = Client(c.server.url, verbose=False).predict("faces64", IMAGE, None, 2, 50, 2, api_name="/denoise")
    waited = time.perf_counter() - start
    ok = refused = 0
    for j in jobs:
        try:
            j.result(timeout=300)
            ok += 1
        except Exception:
            refused += 1
    c.row(
        "100 /restore jobs submitted from one gradio_client session, then a second client's /denoise",
        f"{ok} ran, {refused} refused; the second client finished in {waited:.1f} s",
        refused >= 90 and bool(other),
        f"RSS {c.server.rss():.0f} MB",
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
    within = restore_args(method="dps", steps=1000, samples=4)  # 4,000 evaluations: within the budget
    start = time.perf_counter()
    _, stream = call_raw(c.server.url, "restore", within, timeout=cap + 300)
    seconds = time.perf_counter() - start
    message = error_text(stream)
    finished = "event: complete" in stream
    c.row(
        f"DPS 1000 steps x 4 chains (within the budget, longer than the {cap:g} s cap)",
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


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--time-cap", type=float, default=20, help="the server's time cap per event for this check")
    ap.add_argument("--json", help="also write the rows here")
    ap.add_argument("--markdown", help="also write the table here")
    args = ap.parse_args(argv)

    work = Path(tempfile.mkdtemp(prefix="diffdemo-attack-"))
    server_tmp = work / "server-tmp"
    server_tmp.mkdir()
    env = {
        "DIFFDEMO_MODEL": "faces64",
        "DIFFDEMO_TIME_CAP_S": str(args.time_cap),
        "TMPDIR": str(server_tmp),  # the app's results land here, to be counted
        "HF_HUB_OFFLINE": "1",
    }
    env.pop("SPACE_ID", None)
    server = Server(env, work / "server.log")
    checks = Checks(server)
    started = time.perf_counter()
    try:
        server.wait_ready()
        print(f"app up at {server.url} (pid {server.proc.pid}), RSS {server.rss():.0f} MB", flush=True)
        attack_model_names(checks)
        attack_probe_paths(checks)
        attack_bombs(checks, work)
        attack_odd_parameters(checks, work)
        attack_queue_flood(checks)
        attack_gone_client(checks, server_tmp / "diffdemo-results")
        attack_largest(checks, args.time_cap)
    finally:
        server.stop()
    table = ["| attack | outcome | server still serving | server memory |", "|---|---|---|---|"]
    for r in checks.rows:
        mark = "" if r["passed"] else " **FAILED**"
        table.append(f"| {r['attack']} | {r['outcome']}{mark} | {'yes' if r['serving'] else 'NO'} | {r['memory']} |")
    print("\n" + "\n".join(table))
    summary = {
        "all_passed": all(r["passed"] for r in checks.rows),
        "checks": len(checks.rows),
        "seconds": round(time.perf_counter() - started, 1),
        "time_cap_s": args.time_cap,
        "cpu_count": os.cpu_count(),
    }
    if args.json:
        Path(args.json).write_text(json.dumps({"summary": summary, "rows": checks.rows}, indent=1, allow_nan=False))
    if args.markdown:
        Path(args.markdown).write_text("\n".join(table) + "\n")
    print(json.dumps(summary, allow_nan=False))
    return 0 if summary["all_passed"] else 1


if __name__ == "__main__":
    threading.excepthook = lambda a: None  # gradio_client's helper threads may complain at shutdown
    sys.exit(main())
