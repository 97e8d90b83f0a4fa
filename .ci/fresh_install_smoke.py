"""Run every command the README shows, briefly, in the environment this interpreter belongs to (CI runs it in a
fresh venv made from requirements.txt only): exit 0 and, where the README promises one, a JSON last line.
Offline (HF_HUB_OFFLINE=1): nothing may need the network. Prints one line per command with its time."""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import re
import shlex
import socket
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
ENV = {**os.environ, "HF_HUB_OFFLINE": "1", "PYTHONUNBUFFERED": "1", "MPLBACKEND": "Agg"}
LPIPS_PATCHES = ROOT / "tests" / "data" / "lpips"


def run(name: str, args: list[str], timeout: int = 600, json_last: bool = True) -> dict | None:
    started = time.perf_counter()
    proc = subprocess.run(
        [sys.executable, *args], cwd=ROOT, env=ENV, capture_output=True, text=True, timeout=timeout, check=False
    )
    seconds = time.perf_counter() - started
    if proc.returncode != 0:
        sys.exit(f"FAIL {name} (exit {proc.returncode}): {' '.join(args)}\n{proc.stderr[-3000:]}")
    result = json.loads(proc.stdout.strip().splitlines()[-1]) if json_last else None
    print(f"ok   {name:<28} {seconds:6.1f} s", flush=True)
    return result


def readme_commands() -> list[list[str]]:
    """The ``python3 -m diffdemo ...`` lines of the README's bash blocks, split as a shell would."""
    text = (ROOT / "README.md").read_text()
    blocks = re.findall(r"```bash\n(.*?)```", text, flags=re.S)
    lines = [ln.strip() for block in blocks for ln in block.replace("\\\n", " ").splitlines()]
    return [shlex.split(ln.split("  #")[0])[1:] for ln in lines if ln.startswith("python3 -m diffdemo ")]


# The same command, briefly: argparse keeps the last value of a repeated option, so these shorten the README's run
# without changing which code it goes through.
BRIEF = {
    "sample": ["--n", "1", "--steps", "3"],
    "probe": ["--t-sweep", "50,800"],
    "spectrum": ["--t", "200", "--k", "2", "--iters", "2"],
}
DIFFUSION = ("denoise", "sdedit", "score_ald", "dps")


def briefly(args: list[str], out: Path) -> list[str]:
    """``args`` (``-m diffdemo COMMAND ...``) with its ``--out`` in ``out`` and its work cut to a smoke run."""
    args = [str(out) if i and args[i - 1] == "--out" else a for i, a in enumerate(args)]
    command = args[2]
    if command == "reproduce":  # the hidden test budget: every figure's code path in seconds
        return [a for a in args if a != "--quick"] + ["--tiny", "--no-progress"]
    if command == "restore" and (args[args.index("--method") + 1] if "--method" in args else "dps") in DIFFUSION:
        return [*args, "--steps", "3", "--samples", "1"]
    return [*args, *BRIEF.get(command, [])]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def serve_and_call() -> None:
    """`python app.py` serves; one gradio_client call (Task 2, denoise) returns a scored result."""
    from gradio_client import Client

    port = free_port()
    started = time.perf_counter()
    env = {**ENV, "GRADIO_SERVER_PORT": str(port), "GRADIO_ANALYTICS_ENABLED": "False"}
    app = subprocess.Popen(
        [sys.executable, "app.py"], cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
    )
    try:
        lines = []
        for line in app.stdout:  # the app prints "diffdemo: serving after ..." once it listens
            lines.append(line)
            if "serving after" in line:
                break
        else:
            sys.exit("FAIL python app.py did not serve:\n" + "".join(lines[-40:]))
        client = Client(f"http://127.0.0.1:{port}/", verbose=False)
        names = [
            p["parameter_name"]
            for p in client.view_api(return_format="dict", print_info=False)["named_endpoints"]["/denoise"][
                "parameters"
            ]
        ]
        values = {
            "model_name": "faces64",
            "image": "london_006_neutral",
            "upload": None,
            "seed": 0,
            "t": 200,
            "steps": 3,
        }
        # by name, so a reordered or extended signature still works (parameters not named keep their defaults)
        out = client.predict(**{n: values[n] for n in names if n in values}, api_name="/denoise")
        record = next(o for o in out if isinstance(o, dict) and "denoised" in o)
        if not isinstance(record["denoised"].get("lpips"), float):
            sys.exit(f"FAIL app denoise result carries no LPIPS number: {record['denoised']}")
        print(f"ok   {'python app.py + client':<28} {time.perf_counter() - started:6.1f} s", flush=True)
    finally:
        app.terminate()
        try:
            app.wait(timeout=30)
        except subprocess.TimeoutExpired:
            app.kill()


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--out", type=Path, required=True)
    out = p.parse_args().out
    for dev_only in ("pytest", "deepinv", "ruff", "playwright"):
        if importlib.util.find_spec(dev_only) is not None:
            sys.exit(f"FAIL {dev_only} is importable: this is not an environment made from requirements.txt alone")
    results = {}
    for i, args in enumerate(readme_commands()):
        results[args[2]] = result = run(f"README: {' '.join(args[2:4])}", briefly(args, out / f"cmd{i}"))
        if args[2] == "restore" and not isinstance(result.get("lpips"), float):
            sys.exit(f"FAIL restore carries no LPIPS number: {result}")
        if args[2] == "reproduce" and not (out / f"cmd{i}" / "report.html").is_file():
            sys.exit(f"FAIL reproduce wrote no report.html: {result}")
    missing = {"restore", "sample", "probe", "spectrum", "reproduce", "lpips"} - set(results)
    if missing:
        sys.exit(f"FAIL the README shows no {sorted(missing)} command any more: keep this check in step with it")
    if abs(results["lpips"]["lpips"] - 0.722) > 1e-3:
        sys.exit(f"FAIL lpips gave {results['lpips']['lpips']}, the reference is 0.722")
    run("restore --help", ["-m", "diffdemo", "restore", "--help"], json_last=False)
    plan = run("study --dry-run", ["-m", "diffdemo", "study", "studies/spacing.toml", "--out", str(out / "study"),
                                   "--dry-run", "--no-progress"])  # fmt: skip
    if plan.get("runs", 0) <= 0:
        sys.exit(f"FAIL study planned no runs: {plan}")
    run("diffdemo.train --help", ["-m", "diffdemo.train", "--help"], json_last=False)
    run("diffdemo.modelcard --help", ["-m", "diffdemo.modelcard", "--help"], json_last=False)
    run("diffdemo.lpips_weights --help", ["-m", "diffdemo.lpips_weights", "--help"], json_last=False)
    serve_and_call()


if __name__ == "__main__":
    main()
