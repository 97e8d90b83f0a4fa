"""Samplers: the exact Gaussian posterior as oracle, seeded determinism, streaming and cancellation."""

import math

import pytest
import torch

from diffdemo.defaults import SPACING
from diffdemo.experiments import run_restoration
from diffdemo.operators import BoxInpaint, GaussianBlur, as_matrix
from diffdemo.restore import Problem, diffusion_frames, make_problem, matched_timestep, timesteps_for
from diffdemo.samplers import (
    ald_step_size,
    denoise,
    dps,
    last_frame,
    reverse_process,
    sample,
    score_ald,
    sdedit,
    timestep_pairs,
)
from diffdemo.spacing import strided_timesteps


def uni(model, steps: int, start: int | None = None) -> list[int]:
    """The uniform stride of ``steps`` steps from ``start`` (None: T - 1), the list the samplers take."""
    return timesteps_for(model, steps, start, "uniform")


@pytest.fixture(scope="module")
def deblur_problem(gaussian_prior):
    """A Gaussian-prior deblurring problem on 8x8 images with its exact posterior mean."""
    g = torch.Generator().manual_seed(7)
    z = torch.randn(gaussian_prior.basis.shape[1], generator=g, dtype=torch.float64)
    x0 = gaussian_prior.mean + gaussian_prior.basis @ (gaussian_prior.variances.sqrt() * z)
    x0 = x0.float().reshape(1, *gaussian_prior.sample_shape)
    op = GaussianBlur(5, 1.5)
    sigma_y = 0.05
    y = op.measure(x0, sigma_y, torch.Generator().manual_seed(8))
    A = as_matrix(op, gaussian_prior.sample_shape)
    post_mean, _ = gaussian_prior.posterior(A, y, sigma_y)
    return x0, op, sigma_y, y, post_mean.float().reshape(1, *gaussian_prior.sample_shape)


def _mean_of_samples(frames_fn, y, n=16):
    """Average n posterior samples, run as one batch of n copies of the measurement."""
    return last_frame(frames_fn(y.expand(n, -1, -1, -1))).x_t.cpu().mean(0, keepdim=True)


@pytest.mark.parametrize("method", ["dps", "score_ald"])
def test_posterior_methods_land_closer_to_exact_posterior_mean_than_measurement(gaussian_prior, deblur_problem, method):
    x0, op, sigma_y, y, post_mean = deblur_problem
    if method == "dps":
        frames = lambda ys: dps(
            gaussian_prior, op, ys, scale=0.3, timesteps=uni(gaussian_prior, 100), seed=0, every=100
        )
    else:
        frames = lambda ys: score_ald(
            gaussian_prior, op, ys, zeta=1.0, sigma_y=sigma_y, timesteps=uni(gaussian_prior, 100), seed=0, every=100
        )
    estimate = _mean_of_samples(frames, y)
    err_method = (estimate - post_mean).norm().item()
    err_measurement = (y - post_mean).norm().item()
    err_prior_mean = (gaussian_prior.mean.float().reshape(y.shape) - post_mean).norm().item()
    assert err_method < 0.7 * err_measurement, (err_method, err_measurement)
    assert err_method < err_prior_mean


def test_score_ald_step_is_capped_below_the_stability_limit(gaussian_prior, deblur_problem):
    """Few strided steps and a large zeta would make zeta_t exceed 1/||A||^2 (gradient descent on ||y - A x||^2
    then diverges); the cap keeps every step below it and the run near the posterior mean."""
    x0, op, sigma_y, y, post_mean = deblur_problem
    norm_sq = op.norm_sq(y)
    pairs = timestep_pairs(strided_timesteps(1000, 10))
    uncapped = [
        20.0 * (1 - gaussian_prior.schedule.step_alpha(t, s)) / (sigma_y**2 + 1 - gaussian_prior.schedule.abar(t))
        for t, s in pairs
    ]
    assert max(uncapped) > 2 / norm_sq  # the problem is real at these settings
    steps = [ald_step_size(gaussian_prior, t, s, 20.0, sigma_y, norm_sq) for t, s in pairs]
    assert max(steps) == pytest.approx(0.75 / norm_sq)
    x = last_frame(
        score_ald(
            gaussian_prior, op, y, zeta=20.0, sigma_y=sigma_y, timesteps=uni(gaussian_prior, 10), seed=0, every=10
        )
    ).x_t
    assert torch.isfinite(x).all()
    assert (x - post_mean).norm() < (y - post_mean).norm()


def test_unconditional_samples_have_the_prior_moments(gaussian_prior):
    """Ancestral sampling with the exact score reproduces N(mu, Sigma): check mean and total variance."""
    g = torch.Generator().manual_seed(0)
    x_T = torch.randn(400, *gaussian_prior.sample_shape, generator=g)
    frames = reverse_process(gaussian_prior, x_T, list(range(999, -1, -1)), generator=g, clip_x0=False, every=1000)
    x = last_frame(frames).x_t.reshape(400, -1).double()
    mean_err = (x.mean(0) - gaussian_prior.mean).norm() / gaussian_prior.mean.norm()
    assert mean_err < 0.05
    total_var = x.var(0).sum() / gaussian_prior.covariance().diagonal().sum()
    assert 0.93 < total_var.item() < 1.07


def test_denoise_from_small_t_is_close_to_the_tweedie_optimum(gaussian_prior, faces8):
    x0 = faces8[:1]
    t = 100
    x_t = gaussian_prior.schedule.noise_image(x0, t, seed=0, device=gaussian_prior.device)
    out = last_frame(denoise(gaussian_prior, x_t, timesteps=uni(gaussian_prior, 50, t), seed=0)).x_t
    noisy_err = (x_t / gaussian_prior.schedule.abar(t) ** 0.5 - x0).norm()
    assert (out - x0).norm() < noisy_err


def test_seeded_runs_reproduce_bit_for_bit(tiny_model, face64):
    x0 = torch.nn.functional.avg_pool2d(face64, 4)
    op = GaussianBlur(5, 1.0)
    y = op.measure(x0, 0.05, torch.Generator().manual_seed(0))
    kw = dict(scale=1.0, timesteps=timesteps_for(tiny_model, 6, None, "uniform"), normalize=True, every=1)
    runs = [last_frame(dps(tiny_model, op, y, seed=s, **kw)).x_t for s in (3, 3, 4)]
    assert torch.equal(runs[0], runs[1])
    # the seed's whole meaning (module docstring): x_T and every later draw come from one generator seeded with it
    gen = torch.Generator().manual_seed(4)
    x_T = torch.randn(y.shape, generator=gen)
    ts = timesteps_for(tiny_model, 6, None, "uniform")
    by_hand = reverse_process(tiny_model, x_T, ts, generator=gen, guidance="dps", operator=op, y=y, scale=1.0)
    assert torch.equal(runs[2], last_frame(by_hand).x_t)
    five = timesteps_for(tiny_model, 5, None, "uniform")
    a = [f.x_t for f in sample(tiny_model, n=2, timesteps=five, seed=11, every=1)]
    b = [f.x_t for f in sample(tiny_model, n=2, timesteps=five, seed=11, every=1)]
    assert len(a) == len(b) == 5 and all(torch.equal(u, v) for u, v in zip(a, b, strict=True))
    kw = dict(timesteps=timesteps_for(tiny_model, 4, 200, "uniform"), seed=1, every=1)
    s1 = last_frame(sdedit(tiny_model, op, y, **kw)).x_t
    s2 = last_frame(sdedit(tiny_model, op, y, **kw)).x_t
    assert torch.equal(s1, s2)


class _CountingModel:
    """Wraps a model and counts network evaluations."""

    def __init__(self, model):
        self.inner, self.calls = model, 0
        self.schedule, self.sample_shape, self.device = model.schedule, model.sample_shape, model.device

    def x0_hat(self, x, t):
        self.calls += 1
        return self.inner.x0_hat(x, t)


def test_frames_stream_and_closing_stops_the_work(tiny_model):
    counting = _CountingModel(tiny_model)
    gen = sample(counting, n=1, timesteps=uni(counting, 20), seed=0, every=5)
    first = next(gen)
    assert (first.step, first.total, first.nfe) == (5, 20, 5)
    assert counting.calls == 5
    gen.close()
    assert counting.calls == 5
    frames = list(sample(tiny_model, n=1, timesteps=uni(tiny_model, 7), seed=0, every=3))
    assert [f.step for f in frames] == [3, 6, 7]
    assert frames[-1].t_prev == -1 and frames[-1].t == 0


def test_frames_carry_measurement_residual(tiny_model):
    x0 = torch.zeros(1, 3, 16, 16)
    op = BoxInpaint(16, (4, 4, 8, 8))
    y = op.measure(x0, 0.0)
    for frame in dps(tiny_model, op, y, scale=0.5, timesteps=uni(tiny_model, 3), seed=0):
        expected = (y - op.A(frame.x0_hat)).flatten(1).norm(dim=1).mean().item()
        assert frame.residual == pytest.approx(expected, rel=1e-5)


def test_dps_gradient_pulls_towards_the_measurement(gaussian_prior, deblur_problem):
    """With a large scale DPS ends much closer to consistency with y than with scale 0."""
    x0, op, sigma_y, y, _ = deblur_problem
    free = last_frame(dps(gaussian_prior, op, y, scale=0.0, timesteps=uni(gaussian_prior, 50), seed=0))
    guided = last_frame(dps(gaussian_prior, op, y, scale=0.3, timesteps=uni(gaussian_prior, 50), seed=0))
    assert guided.residual < 0.5 * free.residual


def test_dps_step_is_normalised_by_default_and_raw_on_request(gaussian_prior, deblur_problem):
    """Eq. 29 moves x by exactly lambda along -g/||g||; normalize=False moves by lambda g (Chung et al.'s code)."""
    _, op, _, y, _ = deblur_problem
    y2 = torch.cat([y, 0.5 * y])  # two images: the normalisation is per image

    def one_step(scale, normalize):
        return last_frame(
            dps(gaussian_prior, op, y2, scale=scale, timesteps=uni(gaussian_prior, 1), seed=0, normalize=normalize)
        ).x_t

    free = one_step(0.0, True)
    unit = (one_step(0.2, True) - free).flatten(1)
    assert unit.norm(dim=1).tolist() == pytest.approx([0.2, 0.2], rel=1e-4)
    raw = (one_step(0.2, False) - free).flatten(1)
    raw_double = (one_step(0.4, False) - free).flatten(1)
    assert torch.allclose(raw_double, 2 * raw, rtol=1e-4, atol=1e-6)
    cosine = torch.nn.functional.cosine_similarity(raw, unit, dim=1)
    assert cosine.tolist() == pytest.approx([1.0, 1.0], abs=1e-5)
    assert not torch.allclose(raw.norm(dim=1), unit.norm(dim=1), rtol=1e-2)


def _restored(model, method: str, problem: Problem, **overrides):
    """One method run to the end by the one one-shot path, ``experiments.run_restoration``: its Row."""
    (row,) = run_restoration(model, problem, [method], overrides=overrides)
    return row


def test_restore_runs_every_method_on_one_problem(tiny_model, face64):
    from diffdemo.metrics import psnr

    x0 = torch.nn.functional.avg_pool2d(face64, 4)
    problem = make_problem(x0, GaussianBlur(5, 1.0), 0.05, seed=0)
    for method in ["denoise", "sdedit", "score_ald", "dps"]:
        out = _restored(tiny_model, method, problem, steps=3)
        assert out.nfe == 3 and out.reconstruction.shape == x0.shape
        assert out.params["steps"] == 3 and out.seconds >= 0 and math.isfinite(out.psnr)
    for method in ["wiener", "richardson_lucy", "tv"]:
        out = _restored(None, method, problem)
        assert out.nfe == 0 and out.psnr > psnr(problem.y, x0)
    with pytest.raises(ValueError):
        _restored(None, "biharmonic", problem)
    with pytest.raises(ValueError):
        list(diffusion_frames(tiny_model, "dps", problem, steps=0))
    with pytest.raises(ValueError):
        make_problem(x0, GaussianBlur(5, 1.0), -1.0)


def test_task_defaults_sit_between_method_defaults_and_overrides(tiny_model, face64, monkeypatch):
    from diffdemo import defaults

    monkeypatch.setattr(defaults, "TASK_DEFAULTS", {"box_inpaint": {"dps": {"scale": 7.5}}})
    few = defaults.step_size("dps", "gaussian_blur", defaults.FEW_STEPS)
    assert defaults.params_for("dps", "gaussian_blur")["scale"] == few
    assert defaults.params_for("dps", "gaussian_blur", steps=2)["scale"] == defaults.step_size(
        "dps", "gaussian_blur", 2
    )
    assert defaults.params_for("dps", "box_inpaint")["scale"] == 7.5
    assert defaults.params_for("dps", "box_inpaint", scale=None)["scale"] == 7.5  # None means "not given"
    assert defaults.params_for("dps", "box_inpaint", scale=1.0)["scale"] == 1.0
    assert "box_inpaint: scale=7.5" in defaults.describe_defaults()
    x0 = torch.nn.functional.avg_pool2d(face64, 4)
    inpaint = make_problem(x0, BoxInpaint(16, (4, 4, 8, 8)), 0.05, seed=0)
    blur = make_problem(x0, GaussianBlur(5, 1.0), 0.05, seed=0)
    assert _restored(tiny_model, "dps", inpaint, steps=2).params["scale"] == 7.5
    assert _restored(tiny_model, "dps", blur, steps=2).params["scale"] == defaults.step_size("dps", "gaussian_blur", 2)


def test_step_size_follows_the_table_in_log_steps():
    """The guidance step size is the table's value at a measured number of steps, linear in log(steps) between two
    measured ones, held beyond the ends; inpainting's table serves tasks without one of their own."""
    import math

    from diffdemo import defaults

    for method, tables in defaults.STEP_SIZES.items():
        for task, table in tables.items():
            points = sorted(table.items())
            for n, v in points:
                assert defaults.step_size(method, task, n) == v
            assert defaults.step_size(method, task, 1) == points[0][1]
            assert defaults.step_size(method, task, 1000) == points[-1][1]
            (n0, v0), (n1, v1) = points[0], points[1]
            mid = round(math.sqrt(n0 * n1))
            w = (math.log(mid) - math.log(n0)) / (math.log(n1) - math.log(n0))
            assert defaults.step_size(method, task, mid) == pytest.approx(v0 + w * (v1 - v0), abs=1e-3)
        assert defaults.step_size(method, "random_inpaint", 50) == defaults.step_size(method, "box_inpaint", 50)
    full = defaults.params_for("dps", "gaussian_blur", **defaults.FULL_QUALITY)
    assert full["scale"] == defaults.STEP_SIZES["dps"]["gaussian_blur"][250] and full["spacing"] == "uniform"


def test_matched_timestep(tiny_model):
    t = matched_timestep(tiny_model, 0.1)
    abar = tiny_model.schedule.abar(t)
    assert (1 - abar) / abar == pytest.approx(0.01, rel=0.1)


def test_averaged_chains_are_the_mean_and_spread_of_the_batch(gaussian_prior, deblur_problem):
    """samples=k streams the mean and per-pixel std of k chains run on k copies of y (same seed, one batch)."""
    x0, op, sigma_y, y, _ = deblur_problem
    problem = Problem(x0, op, sigma_y, y, seed=3)
    averaged = last_frame(
        diffusion_frames(gaussian_prior, "dps", problem, scale=0.3, steps=20, samples=4, spacing=SPACING)
    )
    ts = timesteps_for(gaussian_prior, 20, None, SPACING)
    chains = dps(gaussian_prior, op, y.repeat_interleave(4, 0), scale=0.3, timesteps=ts, seed=3)
    chains = last_frame(chains).x_t
    assert torch.allclose(averaged.x_t, chains.mean(0, keepdim=True))
    assert torch.allclose(averaged.x_std, chains.std(0, correction=0, keepdim=True))
    # Jensen: the mean's squared error is the chains' mean squared error minus their spread, never more.
    err_mean = (averaged.x_t - x0).pow(2).sum()
    err_chains = (chains - x0).pow(2).flatten(1).sum(1).mean()
    assert torch.isclose(err_mean, err_chains - averaged.x_std.pow(2).sum(), rtol=1e-4)


def test_more_chains_land_closer_to_the_exact_posterior_mean(gaussian_prior, deblur_problem):
    """With the exact Gaussian prior, Score-ALD's mean of 16 chains is nearer E[x0|y] than one chain is."""
    x0, op, sigma_y, y, post_mean = deblur_problem
    problem = Problem(x0, op, sigma_y, y)

    def error(k):
        frame = last_frame(diffusion_frames(gaussian_prior, "score_ald", problem, zeta=1.0, steps=100, samples=k))
        return (frame.x_t - post_mean).norm().item()

    assert error(16) < 0.6 * error(1)


@pytest.mark.parametrize(("method", "samples"), [("dps", 0), ("dps", 17), ("denoise", 2)])
def test_bad_sample_counts_are_refused(gaussian_prior, deblur_problem, method, samples):
    x0, op, sigma_y, y, _ = deblur_problem
    with pytest.raises(ValueError, match="samples"):
        diffusion_frames(gaussian_prior, method, Problem(x0, op, sigma_y, y), steps=5, samples=samples)


def test_samplers_take_the_list_that_timesteps_for_resolves(tiny_model, monkeypatch):
    """A spacing name becomes a list once, above the samplers: a run from t0 takes at most t0 + 1 steps (None: all
    of them); 'spectral' reads the stored profile there; a sampler refuses a list that is not strictly descending."""
    from diffdemo import restore as restore_module
    from diffdemo.spacing import make_timesteps

    assert timesteps_for(tiny_model, None, 300, "uniform") == list(range(300, -1, -1))
    assert timesteps_for(tiny_model, 500, 300, "quadratic") == make_timesteps(
        tiny_model.schedule, 301, 300, "quadratic"
    )
    assert timesteps_for(tiny_model, 4, None, "karras") == [999, 775, 301, 0]
    read = []
    profile = {"t": [1, 999], "rho_Js": [100.0, 1.0]}
    monkeypatch.setattr(restore_module, "load_profile", lambda name: read.append(name) or profile)
    spectral = timesteps_for(tiny_model, 5, None, "spectral")
    assert read == [tiny_model.name] and spectral == make_timesteps(tiny_model.schedule, 5, None, "spectral", profile)
    with pytest.raises(ValueError, match="unknown spacing"):
        timesteps_for(tiny_model, 5, None, "linear")
    op = GaussianBlur(5, 1.0)
    y = torch.zeros(1, 3, 16, 16)
    for bad in ([], [0, 10], [10, 10, 0], [1000, 0]):
        with pytest.raises(ValueError, match="timestep"):
            sample(tiny_model, n=1, timesteps=bad, seed=0)
        with pytest.raises(ValueError, match="timestep"):
            dps(tiny_model, op, y, scale=1.0, timesteps=bad, seed=0)
