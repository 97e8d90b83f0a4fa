"""Shared state under concurrent handlers: what Stop reads is not kept for failed runs, a model's timing lives and
dies with the model, light events never run the network for a timing, and one server answering two different heavy
requests and the light events at once gives the pictures a sequential run gives."""

from __future__ import annotations

import gc
from types import SimpleNamespace

import pytest
import torch

from diffdemo import estimates, model_timing
from diffdemo.models import UNetModel
from diffdemo.train import scheduler_config
from diffdemo.ui import common
from diffdemo.ui.runs import remember_state, stop_note
from tests.conftest import make_tiny_unet


def _handler(fail: bool):
    @common.guarded
    def handler(request=None):
        remember_state(request, "sample", 1, 3, {"task": "sample"}, {"x_t": torch.zeros(1, 3, 4, 4)})
        yield "step 1"
        if fail:
            raise ValueError("the run broke")
        remember_state(request, "sample", 2, 3, {"task": "sample"}, {"x_t": torch.zeros(1, 3, 4, 4)})
        yield "step 2"

    return handler


def test_a_failed_run_keeps_nothing_a_stopped_one_keeps_its_state_for_stop_only(monkeypatch, tmp_path):
    monkeypatch.setattr(common, "RESULTS_DIR", tmp_path)
    monkeypatch.setattr(common, "LIVE_RUNS", {})
    failing = SimpleNamespace(session_hash="fails")
    run = _handler(fail=True)(request=failing)
    assert next(run) == "step 1" and ("fails", "sample") in common.LIVE_RUNS
    with pytest.raises(ValueError):
        next(run)
    assert common.LIVE_RUNS == {}  # the failed run's tensors went with it

    stopped = SimpleNamespace(session_hash="stops")
    run = _handler(fail=False)(request=stopped)
    assert next(run) == "step 1"
    run.close()  # what cancelling the event does to the handler
    assert common.LIVE_RUNS[("stops", "sample")]["ended"] is not None
    text, record, _ = stop_note("sample", stopped)  # Stop, pressed just after, still writes the partial result
    assert "Stopped at step 1/3" in text and record["partial"] is True
    assert common.LIVE_RUNS == {}

    # a closed run whose Stop never comes is dropped once ENDED_KEEP_S have passed, at the next state kept
    run = _handler(fail=False)(request=stopped)
    next(run)
    run.close()
    monkeypatch.setattr(common, "ENDED_KEEP_S", 0.0)
    remember_state(SimpleNamespace(session_hash="other"), "denoise", 1, 2, {}, {})
    assert list(common.LIVE_RUNS) == [("other", "denoise")]


def test_a_timing_lives_and_dies_with_its_model(monkeypatch):
    monkeypatch.setattr(model_timing, "_costs", type(model_timing._costs)())
    monkeypatch.setattr(model_timing, "TIMING_CALLS", 2)
    model = UNetModel(make_tiny_unet(16), scheduler_config(), name="tiny-weak", device="cpu")
    cost = estimates.measure_cost(model)
    assert cost["forward_s"] > 0 and len(model_timing._costs) == 1
    del model
    gc.collect()
    assert len(model_timing._costs) == 0  # no stale entry for a later model that reuses the address


def test_light_events_read_a_timing_and_never_run_the_network(monkeypatch):
    monkeypatch.setattr(model_timing, "_costs", type(model_timing._costs)())
    monkeypatch.setattr(model_timing, "TIMING_CALLS", 2)
    model = UNetModel(make_tiny_unet(16), scheduler_config(), name="tiny-light", device="cpu")
    calls = []
    eps = model.eps
    monkeypatch.setattr(model, "eps", lambda x, t: calls.append(1) or eps(x, t))
    with estimates.no_timing(), pytest.raises(estimates.NotTimed):
        estimates.measure_cost(model)
    assert calls == []
    first = estimates.measure_cost(model)  # a heavy event takes the timing
    assert calls
    calls.clear()
    with estimates.no_timing():
        assert estimates.measure_cost(model, max_age_s=0.0) == first  # stale, yet only read
    assert calls == []


# --- one server, two different heavy requests and the light events at once ------------------------------------------
IMAGE = "london_006_neutral"


def _free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _light(url: str, fn_index: int, data: list) -> list:
    """A private (light) event called as the browser calls it: join the queue, read its stream to the end."""
    import json
    import uuid

    import httpx

    session = uuid.uuid4().hex
    body = {"data": data, "fn_index": fn_index, "session_hash": session, "event_data": None, "trigger_id": None}
    assert httpx.post(f"{url}gradio_api/queue/join", json=body, timeout=30).status_code == 200
    with httpx.stream("GET", f"{url}gradio_api/queue/data", params={"session_hash": session}, timeout=60) as stream:
        for line in stream.iter_lines():
            if line.startswith("data:"):
                message = json.loads(line[5:])
                if message.get("msg") == "process_completed":
                    assert message.get("success"), message
                    return message["output"]["data"]
    raise AssertionError("the light event's stream ended without a result")


def test_two_heavy_runs_and_light_events_at_once_equal_the_sequential_runs(tiny_model_dir, monkeypatch):
    """Sample and Denoise run together (two heavy slots) while the light events (the header's timing line, the
    Sensitivity estimate) are called again and again: the pictures equal those of the same requests run one after
    the other, the two runs really overlapped, and no light event ran the network for a timing."""
    import threading
    import time

    gradio_client = pytest.importorskip("gradio_client")
    import numpy as np
    from PIL import Image

    from diffdemo.ui import server, widgets

    model = str(tiny_model_dir)
    monkeypatch.setenv("DIFFDEMO_MODEL", model)
    monkeypatch.setattr(widgets, "HEAVY_LIMIT", 2)
    monkeypatch.setattr(server, "HEAVY_LIMIT", 2)
    import app

    demo = server.serve_queue(app.build_app())
    _, url, _ = demo.launch(server_name="127.0.0.1", server_port=_free_port(), prevent_thread_lock=True, quiet=True)
    names = {getattr(fn.fn, "__name__", ""): i for i, fn in demo.fns.items()}
    try:
        client = gradio_client.Client(url, verbose=False)
        requests = {"/sample": (model, 11, 3, 40), "/denoise": (model, IMAGE, None, 5, 400, 40)}

        def pictures(api: str, outputs) -> list:
            files = outputs[:2] if api == "/sample" else outputs[:3]
            return [np.asarray(Image.open(f)) for f in files]

        sequential = {api: pictures(api, client.predict(*args, api_name=api)) for api, args in requests.items()}
        timings_before = {id(k): dict(v) for k, v in model_timing._costs.items()}

        most, done, light_results = [0], threading.Event(), []

        def watch():
            while not done.is_set():
                most[0] = max(most[0], common.users_running())
                time.sleep(0.002)

        def light_events():
            while not done.is_set():
                light_results.append(_light(url, names["machine_line"], [model]))
                light_results.append(_light(url, names["eta_probe"], [model]))

        helpers = [threading.Thread(target=watch), threading.Thread(target=light_events)]
        for thread in helpers:
            thread.start()
        jobs = {api: client.submit(*args, api_name=api) for api, args in requests.items()}
        together = {api: pictures(api, job.result(timeout=300)) for api, job in jobs.items()}
        done.set()
        for thread in helpers:
            thread.join(60)
    finally:
        demo.close()
    for api in requests:
        for ours, theirs in zip(together[api], sequential[api], strict=True):
            assert np.array_equal(ours, theirs), api
    assert most[0] == 2  # both heavy runs were going at the same moment
    assert len(light_results) >= 2 and all(isinstance(r, list) for r in light_results)
    assert any("Expected run time" in str(r) for r in light_results)
    assert {id(k): dict(v) for k, v in model_timing._costs.items()} == timings_before  # no timing taken meanwhile
