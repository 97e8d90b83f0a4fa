"""Run-time estimates that learn from real runs, the threads rule, the readable-plot helpers, and what Stop leaves
behind."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest

from diffdemo import estimates, experiments, model_timing, pictures, plots, threads
from tests.conftest import strict_loads

MODEL = "test-model"


@pytest.fixture
def cost(monkeypatch):
    """A timing of 0.5 s a forward, 1.5 s a gradient (deliberately 10x too slow), nothing learnt yet, a machine
    whose load is below its cores (no range from the load). The test may change the timing in place."""
    timing = {"forward_s": 0.5, "grad_s": 1.5, "batch_slope": 0.5, "estimated": False}
    monkeypatch.setattr(estimates, "cost_for", lambda name, reference=None: dict(timing))
    monkeypatch.setattr(estimates, "load_average", lambda: 0.0)
    estimates.forget()
    yield timing
    estimates.forget()


def test_without_runs_the_estimate_is_the_timing_times_its_evaluations(cost):
    est = estimates.estimate(MODEL, "denoise", t=100, steps=50)
    assert est.seconds == pytest.approx(50 * 0.5) and est.learned_runs == 0
    assert est.image_evaluations == 50 and "timing" in est.source and est.low is None
    assert est.text() == "~25 s"


def test_one_run_teaches_the_next_estimate_of_its_kind(cost):
    estimates.record(MODEL, "denoise", {"t": 100, "steps": 50}, 2.5)  # 0.05 s per step, not 0.5
    same = estimates.estimate(MODEL, "denoise", t=100, steps=50)
    assert same.seconds == pytest.approx(2.5) and same.learned_runs == 1  # exactly its seconds per evaluation
    assert estimates.estimate(MODEL, "denoise", t=999, steps=200).seconds == pytest.approx(10.0)  # per evaluation
    assert estimates.estimate(MODEL, "denoise", t=20, steps=50).seconds == pytest.approx(21 * 0.05)  # t + 1 steps


def test_the_latest_run_weighs_most_so_a_busy_spell_leaves_at_once(cost):
    work = {"n": 1, "steps": 100}
    for seconds in (2.0, 2.0, 2.0, 20.0):  # a busy spell slowed the fourth run 10x
        estimates.record(MODEL, "sample", work, seconds)
    busy = estimates.estimate(MODEL, "sample", **work).seconds
    assert busy == pytest.approx(0.7 * 20 + 0.3 * 2)  # the latest run weighs most (a median of 5 said 2)
    estimates.record(MODEL, "sample", work, 2.0)  # quiet again: one run brings the estimate back near 2 s
    quiet = estimates.estimate(MODEL, "sample", **work).seconds
    assert quiet == pytest.approx(0.7 * 2 + 0.3 * busy) and quiet < 1.5 * 2 * 2.2
    for _ in range(3):
        estimates.record(MODEL, "sample", work, 2.0)
    assert estimates.estimate(MODEL, "sample", **work).seconds < 1.1 * 2.0  # where a median of 5 would keep 2.0


def test_a_run_that_disagrees_has_the_model_timed_again(cost):
    work = {"n": 1, "steps": 100}
    estimates.record(MODEL, "sample", work, 4.0)  # 12x under the timing's 50 s: timed again at the next chance
    assert MODEL in model_timing._retime
    model_timing._retime.clear()  # (measure_cost does this)
    estimates.record(MODEL, "sample", work, 4.4)  # within 1.5x of its estimate: no new timing needed
    assert MODEL not in model_timing._retime
    estimates.record(MODEL, "sample", work, 12.0)  # ~3x its estimate: the load changed
    assert MODEL in model_timing._retime
    cost["forward_s"] = 0.1  # a fresh timing does not rescale what runs taught (short timings swing under bursts)
    earlier = 0.7 * 4.4 + 0.3 * 4.0
    assert estimates.estimate(MODEL, "sample", **work).seconds == pytest.approx(0.7 * 12 + 0.3 * earlier)


def test_other_batch_sizes_use_their_task_and_never_another_task(cost):
    estimates.record(MODEL, "dps", {"steps": 100, "samples": 1}, 15.0)  # 0.15 s a gradient step, not 1.5
    four = estimates.estimate(MODEL, "dps", steps=100, samples=4)
    assert four.seconds == pytest.approx(15.0 * (1 + 3 * 0.5)) and "another batch size" in four.source
    probe = estimates.estimate(MODEL, "probe", sweep=7)  # never seen: its own evaluations x the timing
    assert probe.seconds == pytest.approx(8 * 1.5 + 2 * 0.5) and probe.learned_runs == 0


def test_spectrum_counts_the_batched_calls_analysis_makes(cost):
    work = estimates.evaluations("spectrum", k=3, iters=20, n_t=2)
    # 20 Lanczos steps (JVP + VJP) on 4 rows, then 20 Arnoldi JVPs on 2 rows
    assert estimates.network_calls(work) == 2 * 20 + 20
    assert estimates.image_evaluations(work) == 2 * (4 * 20 + 20)  # per image, as the budget counts them
    est = estimates.estimate(MODEL, "spectrum", k=3, iters=20, n_t=2)
    assert est.seconds == pytest.approx(40 * 1.5 * (1 + 3 * 0.5) + 20 * 1.5 * (1 + 0.5))
    estimates.record(MODEL, "probe", {"sweep": 7}, 100.0)  # a slow probe says nothing about a spectrum
    assert estimates.estimate(MODEL, "spectrum", k=3, iters=20, n_t=2).seconds == pytest.approx(est.seconds)
    estimates.record(MODEL, "spectrum", {"k": 3, "iters": 20, "n_t": 2}, 6.0)
    assert estimates.estimate(MODEL, "spectrum", k=3, iters=20, n_t=2).seconds == pytest.approx(6.0)


def test_compare_all_sums_its_methods(cost):
    for method, seconds in (("sdedit", 3.0), ("score_ald", 5.0), ("dps", 12.0)):
        estimates.record(MODEL, method, {"steps": 100, "t0": 100, "samples": 4}, seconds)
    est = estimates.compare_estimate(MODEL, ["sdedit", "score_ald", "dps"], steps=100, t0=100, samples=4)
    assert est.seconds == pytest.approx(20.0) and est.learned_runs == 1


def test_a_range_where_recent_runs_spread_or_the_load_exceeds_the_cores(cost, monkeypatch):
    work = {"n": 1, "steps": 100}
    estimates.record(MODEL, "sample", work, 2.0)
    estimates.record(MODEL, "sample", work, 2.2)
    steady = estimates.estimate(MODEL, "sample", **work)
    assert steady.low is None and steady.text() == "~2.1 s"  # close runs: one number is honest
    estimates.record(MODEL, "sample", work, 6.0)
    spread = estimates.estimate(MODEL, "sample", **work)
    assert spread.low == pytest.approx(2.0) and spread.high == pytest.approx(6.0)
    assert spread.text() == "~2.0-6.0 s"
    low, high = estimates._range(10.0, [], load=8.0, cores=2)  # load 4x the cores: 10 s / 2 to 10 s x 2
    assert (low, high) == (pytest.approx(5.0), pytest.approx(20.0))
    assert estimates._range(10.0, [], load=1.9, cores=2) == (None, None)
    assert estimates.format_range(50, 150) == "50 s-2 min" and estimates.format_range(4.2, 7.3) == "4.2-7.3 s"


class _TimedModel:
    """A model whose calls advance a fake clock: 10 ms a call, 1 s for the calls inside a burst of load."""

    sample_shape, device, size, name, n_params = (3, 4, 4), "cpu", 4, "fake-timed", None
    schedule = type("Schedule", (), {"T": 1000})()

    def __init__(self):
        self.now, self.calls, self.burst = 0.0, 0, set()

    def _tick(self):
        self.calls += 1
        self.now += 1.0 if self.calls in self.burst else 0.01

    def eps(self, x, t):
        self._tick()
        return x

    def x0_hat(self, x, t):
        self._tick()
        return x * 1.0


def test_a_burst_of_slow_calls_does_not_inflate_the_timing(monkeypatch):
    model = _TimedModel()
    model.burst = set(range(3, 7))  # the first 4 calls of the timing (of 7) hit a burst 100x slower
    monkeypatch.setattr(model_timing, "_clock", lambda: model.now)
    cost = estimates.measure_cost(model)
    assert cost["forward_s"] == pytest.approx(0.01) and cost["calls"] == estimates.TIMING_CALLS
    assert estimates.quantile([1, 2, 3, 4, 5], 0.25) == 2 and estimates.quantile([4, 1], 0.0) == 1


def test_timing_is_taken_again_when_stale_or_disagreed_but_never_during_a_run(monkeypatch):
    model = _TimedModel()
    monkeypatch.setattr(model_timing, "_clock", lambda: model.now)
    first = estimates.measure_cost(model)
    calls = model.calls
    assert estimates.measure_cost(model)["measured_at"] == first["measured_at"] and model.calls == calls
    run = object()
    estimates.busy(run)  # a run is going: the stale timing stands
    assert estimates.measure_cost(model, max_age_s=0.0)["measured_at"] == first["measured_at"]
    estimates.idle(run)
    again = estimates.measure_cost(model, max_age_s=0.0)
    assert again["measured_at"] > first["measured_at"] and model.calls > calls
    model_timing._retime.add("fake-timed")  # a run disagreed: timed again although fresh
    assert estimates.measure_cost(model)["measured_at"] > again["measured_at"]
    assert "fake-timed" not in model_timing._retime


def test_header_line_shows_the_latest_timing_run_load_and_threads(cost, monkeypatch):
    import diffdemo.models
    import diffdemo.serving
    from diffdemo.ui import pickers

    monkeypatch.setattr(diffdemo.serving, "check_model", lambda name, default=None: name)
    monkeypatch.setattr(diffdemo.models, "cached_model", lambda name, device=None: object())
    timing = {"forward_s": 0.05, "grad_s": 0.12, "measured_clock": 0.0}
    monkeypatch.setattr(estimates, "measure_cost", lambda model, max_age_s=0: dict(timing))
    estimates.record(MODEL, "spectrum", {"k": 3, "iters": 20, "n_t": 2}, 6.0)  # 60 calls: 100 ms each
    line = pickers.machine_line(MODEL)
    assert "50 ms per network evaluation, 120 ms with its gradient" in line
    assert "latest run: Spectrum, 100 ms per network call" in line and " cores" in line
    timing["forward_s"] = 0.08  # a new timing: a new line (its change refreshes every estimate line)
    assert "80 ms per network evaluation" in pickers.machine_line(MODEL)


def test_psnr_curve_work_counts_each_timestep():
    ts = experiments.log_timesteps(1000, 4)
    assert estimates.evaluations("psnr_curve", steps=50, points=4) == {"forwards": sum(min(50, t + 1) for t in ts)}


# --- threads -----------------------------------------------------------------------------------------
def test_threads_rule_uses_cores_and_concurrency_only():
    env: dict = {}
    assert threads.choose_threads(cores=2, env=env)[0] == 1  # one core left to the server and the machine
    assert threads.choose_threads(cores=16, env=env)[0] == 15
    assert threads.choose_threads(cores=16, concurrency=4, env=env)[0] == 3
    assert threads.choose_threads(cores=1, env=env)[0] == 1
    assert threads.choose_threads(cores=2, concurrency=3, env=env)[0] == 1
    n, why = threads.choose_threads(cores=2, env={"DIFFDEMO_THREADS": "2"})
    assert n == 2 and "DIFFDEMO_THREADS" in why
    assert threads.choose_threads(cores=2, env={"DIFFDEMO_THREADS": "zero"})[0] == 1  # nonsense: the rule


def test_a_worker_thread_that_ran_torch_before_the_choice_is_brought_to_it(monkeypatch):
    from concurrent.futures import ThreadPoolExecutor

    import torch

    before = torch.get_num_threads()
    pool = ThreadPoolExecutor(1)
    try:
        torch.set_num_threads(2)
        assert pool.submit(torch.get_num_threads).result() == 2  # the worker's count is now its own
        monkeypatch.setenv("DIFFDEMO_THREADS", "1")
        threads.configure()
        assert pool.submit(torch.get_num_threads).result() == 2  # the choice alone does not reach it ...
        pool.submit(threads.ensure).result()
        assert pool.submit(torch.get_num_threads).result() == 1  # ... ensure, called by every run's steps, does
    finally:
        pool.shutdown()
        torch.set_num_threads(before)


def test_configure_applies_the_choice_and_says_it(monkeypatch):
    import torch

    before = torch.get_num_threads()
    monkeypatch.setenv("DIFFDEMO_THREADS", "1")
    try:
        line = threads.configure(concurrency=1)
        assert torch.get_num_threads() == 1
        assert line.startswith("torch uses 1 thread (") and "DIFFDEMO_THREADS" in line
    finally:
        torch.set_num_threads(before)


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
    scale = pictures.off_centre_scale(m, (4, 5))
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

    from diffdemo.ui import common
    from diffdemo.ui.runs import failed_note, remember_state, stop_note

    monkeypatch.setattr(common, "RESULTS_DIR", tmp_path)
    request = type("Request", (), {"session_hash": "s1"})()
    record = {"task": "sample", "seconds": 1.5, "estimated_seconds": 2.0}
    remember_state(request, "sample", 3, 10, record, {"x_t": torch.zeros(1, 3, 8, 8)})
    text, saved, files = stop_note("sample", request)
    assert "Stopped at step 3/10" in text and "partial" in text
    assert saved["partial"] is True and saved["stopped_at"] == "step 3/10"
    on_disk = strict_loads(Path([f for f in files if f.endswith(".json")][0]).read_text())
    assert on_disk["stopped_step"] == 3 and on_disk["total"] == 10 and "partial" in Path(files[0]).parent.name
    assert stop_note("sample", request)[0] == "**Stopped.**"  # nothing left to mark
    assert failed_note("sample", request) is not None and math.isfinite(saved["seconds"])


def test_unreachable_hub_model_is_named_once_in_plain_words(monkeypatch):
    from diffdemo.ui import pickers
    from diffdemo.ui.common import without_prefix
    from diffdemo.ui.runs import estimate

    monkeypatch.setattr(pickers, "hub_online", lambda max_age_s=300: False)
    info = pickers.model_info("google/ddpm-cifar10-32")
    assert "not available here" in info and "no network" in info and "Pressing Run" not in info
    assert "cannot be downloaded" in estimate("google/ddpm-cifar10-32", "denoise", t=100, steps=50)
    choices = pickers.populate_pickers()[0].choices
    assert ("google/ddpm-cifar10-32 (hub: not reachable here)", "google/ddpm-cifar10-32") in choices
    assert without_prefix("Model unavailable: Model unavailable: no folder") == "no folder"


def test_trace_refreshed_in_place_equals_the_figure_built_afresh():
    """The Restore tab builds its PSNR / residual figure once and refreshes it per frame: after new points (a
    residual that was None, a wider residual range for the log ticks) it is the figure built from scratch."""
    traces = {
        "dps": {"step": [0.1, 0.2], "psnr": [10.0, 12.0], "residual": [5.0, None]},
        "score_ald": {"step": [0.1], "psnr": [9.0], "residual": [3.0]},
    }
    figure = plots.restoration_trace_figure({m: {k: list(v) for k, v in t.items()} for m, t in traces.items()})
    traces["dps"]["step"].append(0.3), traces["dps"]["psnr"].append(14.0), traces["dps"]["residual"].append(0.01)
    refreshed = plots.refresh_restoration_trace(figure, traces)
    assert refreshed is figure
    assert refreshed.to_plotly_json() == plots.restoration_trace_figure(traces).to_plotly_json()
