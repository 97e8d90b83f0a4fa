"""Run-time estimates that learn from real runs, the readable-plot helpers, and what Stop leaves behind."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest

from diffdemo import estimates, experiments, plots
from tests.conftest import strict_loads

MODEL = "test-model"
COST = {"forward_s": 0.5, "grad_s": 1.5, "batch_slope": 0.5, "estimated": False}


@pytest.fixture
def fixed_cost(monkeypatch):
    """A start-up timing of 0.5 s a forward, 1.5 s a gradient (deliberately 10x too slow), nothing learnt yet."""
    monkeypatch.setattr(estimates, "cost_for", lambda name, reference=None: dict(COST))
    estimates.forget()
    yield
    estimates.forget()


def test_without_runs_the_estimate_is_the_startup_timing(fixed_cost):
    est = estimates.estimate(MODEL, "denoise", t=100, steps=50)
    assert est.seconds == pytest.approx(50 * 0.5) and est.learned_runs == 0
    assert est.image_evaluations == 50 and "timed" in est.source


def test_one_run_teaches_the_next_estimate_of_its_kind(fixed_cost):
    estimates.record(MODEL, "denoise", {"t": 100, "steps": 50}, 2.5)  # 0.05 s per step, not 0.5
    same = estimates.estimate(MODEL, "denoise", t=100, steps=50)
    assert same.seconds == pytest.approx(2.5) and same.learned_runs == 1
    assert estimates.estimate(MODEL, "denoise", t=999, steps=200).seconds == pytest.approx(10.0)  # per evaluation
    assert estimates.estimate(MODEL, "denoise", t=20, steps=50).seconds == pytest.approx(21 * 0.05)  # t + 1 steps


def test_running_median_shrugs_off_one_slow_run(fixed_cost):
    for seconds in (2.0, 2.2, 30.0, 2.1, 1.9):
        estimates.record(MODEL, "sample", {"n": 1, "steps": 100}, seconds)
    assert estimates.estimate(MODEL, "sample", n=1, steps=100).seconds == pytest.approx(2.1)
    for seconds in (4.0,) * estimates.WINDOW:  # the load changed: the window follows it
        estimates.record(MODEL, "sample", {"n": 1, "steps": 100}, seconds)
    assert estimates.estimate(MODEL, "sample", n=1, steps=100).seconds == pytest.approx(4.0)


def test_other_batch_sizes_and_kinds_use_the_learnt_ratio(fixed_cost):
    # DPS at 1 chain took a tenth of what the timing predicted (100 gradients x 1.5 s = 150 s)
    estimates.record(MODEL, "dps", {"steps": 100, "samples": 1}, 15.0)
    four = estimates.estimate(MODEL, "dps", steps=100, samples=4)
    assert four.seconds == pytest.approx(150 * (1 + 3 * 0.5) / 10)  # batch factor from the slope, ratio 0.1
    assert "another batch size" in four.source
    probe = estimates.estimate(MODEL, "probe", sweep=7)  # also gradient-sized: the same ratio
    assert probe.seconds == pytest.approx((8 * 1.5 + 2 * 0.5) / 10)
    plain = estimates.estimate(MODEL, "sample", n=1, steps=100)  # no forward-only run yet: any run's ratio
    assert plain.seconds == pytest.approx(100 * 0.5 / 10)


def test_compare_all_sums_its_methods(fixed_cost):
    for method, seconds in (("sdedit", 3.0), ("score_ald", 5.0), ("dps", 12.0)):
        estimates.record(MODEL, method, {"steps": 100, "t0": 100, "samples": 4}, seconds)
    est = estimates.compare_estimate(MODEL, ["sdedit", "score_ald", "dps"], steps=100, t0=100, samples=4)
    assert est.seconds == pytest.approx(20.0) and est.learned_runs == 1


def test_a_stale_startup_timing_is_taken_again(monkeypatch):
    class Model:
        sample_shape, device, size, name, n_params = (3, 4, 4), "cpu", 4, "stale", None
        schedule = type("Schedule", (), {"T": 1000})()
        calls = 0

        def eps(self, x, t):
            Model.calls += 1
            return x

        def x0_hat(self, x, t):
            return x * 1.0

    model = Model()
    first = estimates.measure_cost(model)
    calls = Model.calls
    assert estimates.measure_cost(model)["measured_at"] == first["measured_at"] and Model.calls == calls
    again = estimates.measure_cost(model, max_age_s=0.0)
    assert again["measured_at"] > first["measured_at"] and Model.calls > calls


def test_psnr_curve_work_counts_each_timestep():
    ts = experiments.log_timesteps(1000, 4)
    assert estimates.evaluations("psnr_curve", steps=50, points=4) == {"forwards": sum(min(50, t + 1) for t in ts)}


# --- readable plots ----------------------------------------------------------------------------------
def test_log_ticks_label_every_tick_in_full():
    vals, text = plots.log_ticks([0.03, 2.0])  # under two decades: 1-2-5 steps, each labelled
    assert vals == [0.02, 0.05, 0.1, 0.2, 0.5, 1.0, 2.0] and text[0] == "0.02" and text[-1] == "2"
    wide, _ = plots.log_ticks([1e-3, 50.0])  # over two decades: powers of ten only, no "2 5 2 5"
    assert wide == [1e-3, 1e-2, 0.1, 1.0, 10.0]
    narrow, _ = plots.log_ticks([1.63, 1.64])  # a narrow span still gets a tick on either side
    assert narrow == [1.0, 2.0]


def test_off_centre_scale_ignores_the_probed_pixel_and_a_few_neighbours():
    m = np.full((10, 10), 0.01)
    m[5, 4] = 100.0  # the probed pixel (x = 4, y = 5): the identity term
    m[5, 5] = -3.0  # one neighbour, far above the structure further out
    scale = plots.off_centre_scale(m, (4, 5))
    assert scale == pytest.approx(0.01)  # the 99th percentile of the 99 others: the structure sets the scale
    fig = plots.probe_figure(_FakeProbe(m))
    heatmaps = [d for d in fig.data if d.type == "heatmap"]
    assert len(heatmaps) == 3 and all(h.showscale for h in heatmaps)  # a colour bar on every map
    assert all(h.zmax == -h.zmin == pytest.approx(0.01) for h in heatmaps)  # symmetric about zero
    assert all("probed pixel: +100" in a.text for a in fig.layout.annotations)  # its own value, as a number
    assert fig.layout.font.size >= 16


class _FakeProbe:
    def __init__(self, m):
        self.columns = {k: m[None] for k in ("score", "reverse", "denoiser")}
        self.pixel, self.t = (4, 5), 50


def test_one_timestep_axis_shows_just_that_timestep():
    import plotly.graph_objects as go

    fig = go.Figure(go.Scatter(x=[50], y=[1.0]))
    plots._timestep_axis(fig, [50])
    assert list(fig.layout.xaxis.tickvals) == [50] and fig.layout.xaxis.range[1] - fig.layout.xaxis.range[0] > 10


# --- Stop ------------------------------------------------------------------------------------------
def test_stop_writes_the_partial_state_marked_as_such(monkeypatch, tmp_path):
    import torch

    import app
    from diffdemo.ui import common

    monkeypatch.setattr(common, "RESULTS_DIR", tmp_path)
    request = type("Request", (), {"session_hash": "s1"})()
    record = {"task": "sample", "seconds": 1.5, "estimated_seconds": 2.0}
    app._track(request, "sample", 3, 10, record, {"x_t": torch.zeros(1, 3, 8, 8)})
    text, saved, files = app.stop_note("sample", request)
    assert "Stopped at step 3/10" in text and "partial" in text
    assert saved["partial"] is True and saved["stopped_at"] == "step 3/10"
    on_disk = strict_loads(Path([f for f in files if f.endswith(".json")][0]).read_text())
    assert on_disk["stopped_step"] == 3 and on_disk["total"] == 10 and "partial" in Path(files[0]).parent.name
    assert app.stop_note("sample", request)[0] == "**Stopped.**"  # nothing left to mark
    assert app._failed("sample", request) is not None and math.isfinite(saved["seconds"])


def test_unreachable_hub_model_is_named_once_in_plain_words(monkeypatch):
    import app
    from diffdemo.ui import pickers

    monkeypatch.setattr(pickers, "_hub_online", lambda max_age_s=300: False)
    info = app.model_info("google/ddpm-cifar10-32")
    assert "not available here" in info and "no network" in info and "Pressing Run" not in info
    assert "cannot be downloaded" in app.estimate("google/ddpm-cifar10-32", "denoise", t=100, steps=50)
    choices = app.populate_pickers()[0].choices
    assert ("google/ddpm-cifar10-32 (hub: not reachable here)", "google/ddpm-cifar10-32") in choices
    assert app._no_prefix("Model unavailable: Model unavailable: no folder") == "no folder"
