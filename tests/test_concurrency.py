"""Shared state under concurrent handlers: what Stop reads is not kept for failed runs, a model's timing lives and
dies with the model, light events never run the network for a timing, and one server answering two different heavy
requests and the light events at once gives the pictures a sequential run gives."""

from __future__ import annotations

import gc
from types import SimpleNamespace

import pytest
import torch

from diffdemo import estimates
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
    monkeypatch.setattr(estimates, "_costs", type(estimates._costs)())
    monkeypatch.setattr(estimates, "TIMING_CALLS", 2)
    model = UNetModel(make_tiny_unet(16), scheduler_config(), name="tiny-weak", device="cpu")
    cost = estimates.measure_cost(model)
    assert cost["forward_s"] > 0 and len(estimates._costs) == 1
    del model
    gc.collect()
    assert len(estimates._costs) == 0  # no stale entry for a later model that reuses the address


def test_light_events_read_a_timing_and_never_run_the_network(monkeypatch):
    monkeypatch.setattr(estimates, "_costs", type(estimates._costs)())
    monkeypatch.setattr(estimates, "TIMING_CALLS", 2)
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
