"""Each tab's landing view: a finished result of its first demo, there when the page opens.

At start-up, once the model is warm (app.warm_engine), ``prepare`` runs every tab's own handler once with the
values its controls start at (the same handler, engine path and parameters as pressing Run at once), on the
bundled image, and keeps the last outputs in memory. A page shows them on load, each labelled as precomputed with
the live run one click away; before they are ready it says they are being prepared, and a timer fills each tab in
as its result arrives (unless the user has run that tab or changed the model or image meanwhile). The landing
runs give way to users: each waits while a user's heavy run is going on, between frames as well as before it
starts, so a real run never shares the CPU with one.
"""

from __future__ import annotations

import html
import shutil
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

import gradio as gr

from diffdemo.ui.common import background_runs, default_model, users_running

LANDING_DIR = Path(tempfile.gettempdir()) / "diffdemo-landing"  # outside the pruned results folders
LABEL = "Precomputed example with the defaults: press {run} to run it live."
PREPARING = "A precomputed example with the defaults is being prepared in the background; it appears here when "
PREPARING += "ready. Press {run} to run it live now."
POLL_S = 2.0


@dataclass
class Landing:
    """One tab's first demo: its handler and the arguments its Run button would pass at start; where in the
    outputs its status line is (markdown or HTML) and what its Run button is called."""

    name: str
    fn: object
    args: list
    status: int
    run_label: str
    html: bool = False
    result: tuple | None = None
    error: str | None = None
    outputs: list = field(default_factory=list)  # this build's output components (not used by ``prepare``)


_specs: dict[str, Landing] = {}  # name -> the latest build's spec (each build registers its tabs again)
_results: dict[tuple[str, str], tuple] = {}  # (model, name) -> the finished outputs, labelled
_expected = threading.Event()  # the server will compute the landing views (set by ``prepare``'s caller first)
_done = threading.Event()
_lock = threading.Lock()


def expect() -> None:
    """Say that ``prepare`` is coming (start-up, before the model is warm): pages opened meanwhile say the
    landing views are being prepared and fill them in when ready."""
    _expected.set()


def register(name: str, fn, inputs: list, outputs: list, status: int, run_label: str, *, html_status=False,
             overrides: dict | None = None) -> None:  # fmt: skip
    """A tab's landing demo: ``fn`` called with the initial values of ``inputs`` (``overrides``: index -> value
    for inputs that start empty, such as the probed pixel; a callable is called when the demo runs, the model
    open), shown in ``outputs``."""
    args = [getattr(c, "value", None) for c in inputs]
    for i, value in (overrides or {}).items():
        args[i] = value
    with _lock:
        _specs[name] = Landing(name, fn, args, status, run_label, html_status, outputs=list(outputs))


def _quiet(*_args, **_kwargs) -> None:
    """A progress callback that shows nothing (no page is watching)."""


class _Request:
    """Stands in for gr.Request: the landing runs' Stop bookkeeping under a session of their own."""

    session_hash = "landing"


def _wait_for_users() -> None:
    while users_running():
        time.sleep(0.2)


def _is_file(value) -> bool:
    if not isinstance(value, str) or len(value) > 1024 or not Path(value).is_absolute():
        return False
    try:
        return Path(value).is_file()
    except OSError:
        return False


def _keep(value):
    """Copy the result's files out of the pruned results folders, into LANDING_DIR (kept while the server runs)."""
    if _is_file(value) and not value.startswith(str(LANDING_DIR)):
        LANDING_DIR.mkdir(parents=True, exist_ok=True)
        target = LANDING_DIR / f"{Path(value).parent.name}-{Path(value).name}"
        shutil.copyfile(value, target)
        return str(target)
    if isinstance(value, (list, tuple)):
        return type(value)(_keep(v) for v in value)
    if isinstance(value, dict):
        return {k: _keep(v) for k, v in value.items()}
    return value


def _labelled(spec: Landing, outputs: tuple) -> tuple:
    label = LABEL.format(run=spec.run_label)
    outputs = list(outputs)
    status = outputs[spec.status]
    if spec.html:
        outputs[spec.status] = f'<div class="landing"><p><strong>{html.escape(label)}</strong></p></div>{status}'
    else:
        outputs[spec.status] = f"**{label}**\n\n{status}"
    return tuple(outputs)


def run_one(spec: Landing) -> tuple:
    """Run one landing demo to its end through its handler, pausing whenever a user's run is going on."""
    last = None
    _wait_for_users()
    args = [a() if callable(a) else a for a in spec.args]
    gen = spec.fn(*args, progress=_quiet, request=_Request())
    try:
        for last in gen:
            _wait_for_users()
    finally:
        gen.close()
    if last is None:
        raise RuntimeError("the handler yielded nothing")
    return _labelled(spec, _keep(last))


def prepare(order: tuple[str, ...] = ("denoise", "generate", "restore", "sensitivity", "spectrum", "curve")) -> None:
    """Compute every registered landing view (in ``order``, the cheap and first-seen tabs first); a demo that
    fails is left out (its tab opens empty, as before) and the others still run."""
    _expected.set()
    with _lock:
        specs = [_specs[n] for n in order if n in _specs] + [s for n, s in _specs.items() if n not in order]
    model = default_model()
    with background_runs():
        for spec in specs:
            try:
                result = run_one(spec)
            except Exception as exc:  # noqa: BLE001 - a landing view is a courtesy: never take the server down
                print(f"diffdemo: no landing view for {spec.name}: {type(exc).__name__}", flush=True)
                with _lock:
                    _specs[spec.name].error = type(exc).__name__
                continue
            with _lock:
                _results[(model, spec.name)] = result
    _done.set()


def ready(name: str) -> bool:
    return (default_model(), name) in _results


def _at_defaults(model_name, image) -> bool:
    from diffdemo.defaults import IMAGE

    return (model_name or "").strip() == default_model() and image == IMAGE


def wire(ui, timer: gr.Timer, runs: dict[str, list]) -> None:
    """Show every registered tab's landing view on page load, or say it is being prepared and fill it in as it
    arrives (``runs``: name -> the buttons that start that tab's run; pressing one keeps the tab's own results)."""
    with _lock:
        specs = [s for s in _specs.values() if s.outputs]
    names = [s.name for s in specs]
    sent = gr.State([])
    outputs = [timer, sent] + [c for s in specs for c in s.outputs]

    def fill(model_name, image, shown, first):
        shown = list(shown or [])
        values = []
        defaults = _at_defaults(model_name, image)
        preparing = _expected.is_set() and not _done.is_set()
        for spec in specs:
            result = _results.get((default_model(), spec.name))
            blank = [gr.skip()] * len(spec.outputs)
            if spec.name in shown or not defaults:
                values += blank
            elif result is not None:
                values += list(result)
                shown.append(spec.name)
            elif first and preparing and spec.error is None:
                blank[spec.status] = _preparing(spec)
                values += blank
            else:
                values += blank
        waiting = defaults and preparing and any(n not in shown for n in names)
        return [gr.Timer(active=waiting), shown, *values]

    ui["load"](lambda m, i, s: fill(m, i, s, True), [ui["model"], ui["image"], sent], outputs,
               api_visibility="private", concurrency_limit=4, show_progress="hidden")  # fmt: skip
    timer.tick(lambda m, i, s: fill(m, i, s, False), [ui["model"], ui["image"], sent], outputs,
               api_visibility="private", concurrency_limit=4, show_progress="hidden")  # fmt: skip
    for name, buttons in runs.items():
        for button in buttons:  # the user ran this tab: leave its results alone from now on
            button.click(lambda s, n=name: [*(s or []), n], sent, sent, api_visibility="private", queue=False)


def _preparing(spec: Landing) -> str:
    text = PREPARING.format(run=spec.run_label)
    return f'<div class="landing"><p>{html.escape(text)}</p></div>' if spec.html else f"*{text}*"


def give_up() -> None:
    """No landing views after all (the default model cannot be opened): pages stop waiting for them."""
    _done.set()


def reset() -> None:
    """Forget the landing views and their state (tests)."""
    with _lock:
        _results.clear()
    _expected.clear()
    _done.clear()
