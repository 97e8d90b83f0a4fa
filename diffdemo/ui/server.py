"""The server around the app's Blocks: the fair queue (diffdemo/serving.py) and the cost it weighs each queued heavy job
by, component values refused in one line, and the upload middleware. app.py assembles the Blocks and calls these."""

from __future__ import annotations

import gradio as gr

from diffdemo.ui.common import HEAVY, HEAVY_LIMIT


def queued_evaluations(fn, body) -> int:
    """A queued heavy job's network evaluations, read from its own parameters (by the names its handler gives them)
    with the rule its handler's budget check uses; anything else raises, and the queue counts it at the cap."""
    import inspect

    from diffdemo.estimates import evaluations, image_evaluations

    p = dict(zip(inspect.signature(inspect.unwrap(fn.fn)).parameters, body.data))

    def num(key, default=None) -> int:
        return int(float(p.get(key, default)))

    if fn.api_name == "denoise":
        works = [("denoise", {"t": num("t"), "steps": num("steps")})]
    elif fn.api_name == "sample":
        works = [("sample", {"n": num("n"), "steps": num("steps")})]
    elif fn.api_name == "restore":
        from diffdemo.ui.restore import estimate_kind, methods_for

        work = {"steps": num("steps"), "t0": num("t0"), "samples": num("samples", 1)}
        works = [(estimate_kind(m), work) for m in methods_for(p.get("method"), p.get("operator"))]
    else:
        raise KeyError(fn.api_name)
    return sum(image_evaluations(evaluations(task, **work)) for task, work in works)


WANTS = {"number": "a number", "slider": "a number", "checkbox": "true or false", "dropdown": "one of its choices",
         "radio": "one of its choices", "file": "an uploaded file", "imageeditor": "a drawn mask"}  # fmt: skip


def quiet_components(demo: gr.Blocks) -> gr.Blocks:
    """A value a component cannot take (a dict for a number, 1 MB of text for a choice) is refused in one line that
    names the parameter and what it wants, cut short, with one log line: gradio's own checks would echo the whole
    value and print a traceback."""
    from diffdemo.serving import cut
    from diffdemo.ui.common import refuse

    for block in demo.blocks.values():
        preprocess = getattr(block, "preprocess", None)
        if preprocess is None or getattr(block, "_quiet", False):
            continue
        kind = type(block).__name__.lower()
        label = getattr(block, "label", None) or kind

        def checked(payload, _preprocess=preprocess, _label=label, _kind=kind, block=block):
            try:
                return _preprocess(payload)
            except Exception as exc:  # noqa: BLE001 (any failure to take the value is the caller's input)
                got = f"got {type(payload).__name__} {cut(payload, 40)!r}"
                if isinstance(exc, gr.Error) and _kind not in ("dropdown", "radio"):  # a bound: its own words
                    message = f"{_label}: {cut(exc.message, 120)} ({got})"
                else:  # a choice's own message would echo the whole value
                    choices = [c[1] if isinstance(c, tuple) else c for c in getattr(block, "choices", None) or []]
                    wants = f"one of {cut(', '.join(map(str, choices)), 160)}" if choices else WANTS.get(_kind, "valid")
                    message = f"{_label} must be {wants}, {got}"
                raise refuse(message, title="Out of range") from None

        block.preprocess, block._quiet = checked, True
    return demo


def serve_queue(demo: gr.Blocks, **queue_kw) -> gr.Blocks:
    """Turn on the queue (64 requests in all) and make it fair (diffdemo/serving.py): per-address limits on heavy and
    light events, a bound on queued network evaluations, round-robin between addresses, jobs whose client is not
    listening dropped. A public deployment closes gradio's REST routes (api_open=False): every call goes through the
    queue, gradio_client included."""
    from diffdemo.serving import is_public, limit_queue

    demo.queue(**{"default_concurrency_limit": HEAVY_LIMIT, "max_size": 64, "api_open": not is_public(), **queue_kw})
    limit_queue(demo._queue, HEAVY, cost=queued_evaluations)
    return quiet_components(demo)


def app_kwargs() -> dict:
    """The server's own middleware: every upload recorded as its caller's and held to the disk bound at once
    (diffdemo/serving.py UploadGate; gradio has no hook on its upload route)."""
    from starlette.middleware import Middleware

    from diffdemo.serving import UploadGate
    from diffdemo.ui.common import after_upload

    return {"middleware": [Middleware(UploadGate, on_upload=after_upload)]}
