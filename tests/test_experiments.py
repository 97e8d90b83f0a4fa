"""The experiments API: streamed comparisons give the one-shot results, stop on close, and Figure 1's definition."""

import copy
import math

import pytest
import torch

from diffdemo import experiments, metrics
from diffdemo.defaults import params_for
from diffdemo.experiments import Row, Skipped, Step, psnr_lpips_vs_t, restoration, run_restoration
from diffdemo.operators import GaussianBlur
from diffdemo.restore import (
    DIFFUSION_METHODS,
    diffusion_frames,
    make_problem,
    resolved_params,
    run_baseline,
)
from diffdemo.restore import (
    quality_metrics as metrics_of,
)
from diffdemo.samplers import last_frame


@pytest.fixture(scope="module")
def problem(face64):
    return make_problem(torch.nn.functional.avg_pool2d(face64, 4), GaussianBlur(5, 1.0), 0.05, seed=3)


def test_streamed_rows_equal_the_one_shot_run_and_each_methods_own_frames(tiny_model, problem):
    """Streaming and interleaving change nothing: each Row of the streamed comparison equals the one-shot
    ``run_restoration`` of that method alone, and its reconstruction is the method's own last frame
    (``restore.diffusion_frames``) or the baseline's own output, scored by ``restore.quality_metrics``."""
    overrides = {"steps": 3, "scale": 0.7, "t0": 300, "samples": 2}
    methods = ["dps", "sdedit", "wiener"]
    rows = run_restoration(tiny_model, problem, methods, overrides=overrides, precision="fp32", every=1)
    assert sorted(r.method for r in rows) == sorted(methods)
    for row in rows:
        (one,) = run_restoration(tiny_model, problem, [row.method], overrides=overrides, precision="fp32")
        assert torch.equal(row.reconstruction, one.reconstruction), row.method
        for key in ("psnr", "ssim", "lpips", "residual", "nfe", "precision", "params", "spacing"):
            assert getattr(row, key) == getattr(one, key), (row.method, key)
        params = resolved_params(row.method, problem, overrides)
        if row.method in DIFFUSION_METHODS:
            own = last_frame(diffusion_frames(tiny_model, row.method, problem, every=None, precision="fp32", **params))
            own_x = own.x_t.cpu()
            assert row.nfe == own.nfe
        else:
            own_x = run_baseline(row.method, problem, params)
        assert torch.equal(row.reconstruction, own_x), row.method
        assert {k: getattr(row, k) for k in ("psnr", "ssim", "lpips", "residual")} == metrics_of(problem, own_x)
        assert row.residual == pytest.approx(float((problem.y - problem.operator.A(row.reconstruction)).norm()))
    tuned = params_for(rows[0].method, problem.operator.name)["spacing"]  # DPS deblurring: logsnr, else SPACING
    assert rows[0].record()["spacing"] == tuned and "reconstruction" not in rows[0].record()
    assert "spacing" not in next(r for r in rows if r.method == "wiener").record()


def test_steps_stream_interleaved_then_rows(tiny_model, problem):
    items = list(restoration(tiny_model, problem, ["dps", "score_ald"], overrides={"steps": 4}, every=2))
    kinds = [(type(i).__name__, i.method, i.frame.step if isinstance(i, Step) else None) for i in items]
    assert kinds == [
        ("Step", "dps", 2),
        ("Step", "score_ald", 2),
        ("Step", "dps", 4),
        ("Row", "dps", None),
        ("Step", "score_ald", 4),
        ("Row", "score_ald", None),
    ]
    step = items[0]
    assert step.psnr == metrics.psnr(step.frame.x0_hat.cpu(), problem.x0)
    assert step.residual == step.frame.residual


def test_closing_the_generator_stops_every_run(tiny_model, problem, monkeypatch):
    counting = copy.copy(tiny_model)
    calls = []
    counting.x0_hat = lambda x, t: calls.append(t) or tiny_model.x0_hat(x, t)
    started = []

    def recorded(*args, **kwargs):
        started.append(frames(*args, **kwargs))
        return started[-1]

    from diffdemo.experiments import restore_runs as restoration_module

    frames = restoration_module.diffusion_frames
    monkeypatch.setattr(restoration_module, "diffusion_frames", recorded)
    run = restoration(counting, problem, ["dps", "sdedit"], overrides={"steps": 10}, precision="fp32", every=1)
    first = [next(run) for _ in range(3)]
    assert [s.method for s in first] == ["dps", "sdedit", "dps"] and len(calls) == 3
    run.close()
    assert len(started) == 2 and all(g.gi_frame is None for g in started)  # both samplers closed
    assert len(calls) == 3


def test_baselines_run_after_and_one_that_fails_is_skipped_with_its_reason(problem, monkeypatch):
    from diffdemo import baselines

    monkeypatch.setattr(baselines, "applicable", lambda op: ("wiener", "biharmonic"))
    items = list(restoration(None, problem, ["tv"], overrides={"steps": 5}, baselines=True))
    assert [(type(i), i.method) for i in items] == [(Row, "tv"), (Row, "wiener"), (Skipped, "biharmonic")]
    assert "masked images only" in items[2].reason
    assert items[0].params == resolved_params("tv", problem, {})  # no diffusion parameter leaks in
    with pytest.raises(ValueError, match="need a diffusion model"):
        next(restoration(None, problem, ["dps"], overrides={}))


def test_figure1_scores_the_noisy_input_as_x_t_over_sqrt_abar(tiny_model):
    """x0 flat grey, t = 10: x_t / sqrt(abar_t) - x0 = sigma_t z exactly (no clipping), so on the [0, 1] scale
    PSNR = 10 log10(1 / mean((sigma_t z / 2)^2)) with the seeded z of noise_image."""
    x0, t, seed = torch.full((1, 3, 16, 16), 0.25), 10, 5
    abar = tiny_model.schedule.abar(t)
    sigma = math.sqrt((1 - abar) / abar)
    z = torch.randn(x0.shape, generator=torch.Generator().manual_seed(seed)).double()
    expected = 10 * math.log10(1 / float(((sigma * z / 2) ** 2).mean()))
    (row,) = psnr_lpips_vs_t(tiny_model, x0, [t], steps=2, seed=seed)
    assert row["sigma"] == pytest.approx(sigma)
    assert row["psnr_noisy"] == pytest.approx(expected, abs=1e-4)
    scored_as_x_t = metrics.psnr(row["noisy"], x0)  # the other reading counts the shrinkage by sqrt(abar_t) too
    assert abs(scored_as_x_t - expected) > 100 * 1e-4  # ... and the tolerance above tells the two apart
    assert row["nfe"] == 2 and row["denoised"].shape == x0.shape


def test_denoising_streams_steps_between_the_noisy_and_the_denoised_rows(tiny_model, face64):
    x0 = torch.nn.functional.avg_pool2d(face64, 4)
    items = list(experiments.denoising(tiny_model, x0, 200, steps=4, seed=1, every=2))
    assert [(type(i).__name__, i.method) for i in items] == [
        ("Row", "noisy"),
        ("Step", "denoise"),
        ("Step", "denoise"),
        ("Row", "denoise"),
    ]
    (curve,) = psnr_lpips_vs_t(tiny_model, x0, [200], steps=4, seed=1)
    assert items[0].psnr == curve["psnr_noisy"] and items[-1].psnr == curve["psnr_denoised"]
    assert torch.equal(items[-1].reconstruction, items[-2].frame.x_t.cpu())


def test_scores_and_baselines_refuse_a_batch_and_per_image_scores_each(face64):
    from diffdemo import baselines

    batch = torch.cat([(face64 + 0.1).clamp(-1, 1), (face64 - 0.3).clamp(-1, 1)])
    each = [metrics.psnr(batch[i : i + 1], face64) for i in range(2)]
    assert metrics.per_image(metrics.psnr, batch, face64) == each and each[0] > each[1] + 3
    for score in (metrics.psnr, metrics.ssim, metrics.lpips):
        with pytest.raises(ValueError, match="batch of 2"):
            score(batch, face64)
    blur = GaussianBlur(5, 1.0)
    for method in ("wiener", "tv"):
        with pytest.raises(ValueError, match="batch of 2"):
            baselines.restore_baseline(method, blur.A(batch), blur)
