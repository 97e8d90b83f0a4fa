"""The poster's identities (section 3.1) and agreement with diffusers' DDPMScheduler."""

import pytest
import torch

from diffdemo.schedule import Schedule
from diffdemo.spacing import strided_timesteps, timestep_pairs


@pytest.fixture(scope="module")
def sched():
    return Schedule.linear()


def test_closed_form_marginal_equals_iterated_forward_process_exactly(sched):
    """Eq. (3) vs eq. (1): propagate mean and variance through the recursion, compare with abar."""
    mean, var = torch.tensor(1.0, dtype=torch.float64), torch.tensor(0.0, dtype=torch.float64)
    for t in range(sched.T):
        b = sched.betas[t]
        mean, var = (1 - b).sqrt() * mean, (1 - b) * var + b
        if t in (0, 10, 250, 999):
            assert mean == pytest.approx(sched.alpha_bar[t].sqrt().item(), rel=1e-12)
            assert var == pytest.approx(1 - sched.alpha_bar[t].item(), rel=1e-12)


def test_closed_form_marginal_matches_monte_carlo_forward_process(sched):
    """Eq. (3) vs eq. (1) on samples: iterate 300 forward steps from x0 and compare moments."""
    g = torch.Generator().manual_seed(0)
    x0 = torch.full((200_000,), 0.7, dtype=torch.float64)
    x = x0.clone()
    t_end = 300
    for t in range(t_end):
        x = sched.forward_step(x, t, torch.randn(x.shape, generator=g, dtype=torch.float64))
    abar = sched.abar(t_end - 1)
    se = (1 / x.numel()) ** 0.5
    assert x.mean().item() == pytest.approx(abar**0.5 * 0.7, abs=5 * se)
    assert x.var().item() == pytest.approx(1 - abar, abs=5 * se * 2**0.5)


@pytest.mark.parametrize("t,t_prev", [(1, 0), (500, 499), (999, 998), (999, 749), (400, 0), (3, -1)])
def test_reverse_step_forms_agree(sched, t, t_prev):
    """(12) = (17) = (23): posterior-mean, score and noise forms of the reverse step (also for strided jumps)."""
    g = torch.Generator().manual_seed(t)
    x_t = torch.randn(2, 3, 8, 8, generator=g, dtype=torch.float64)
    eps = torch.randn(2, 3, 8, 8, generator=g, dtype=torch.float64)
    score = sched.score_from_eps(eps, t)
    x0 = sched.x0_from_eps(x_t, eps, t)
    a = sched.reverse_mean_posterior(x_t, x0, t, t_prev)
    b = sched.reverse_mean_score(x_t, score, t, t_prev)
    c = sched.reverse_mean_eps(x_t, eps, t, t_prev)
    torch.testing.assert_close(a, b, rtol=1e-10, atol=1e-10)
    torch.testing.assert_close(b, c, rtol=1e-10, atol=1e-10)


def test_score_eps_x0_conversions(sched):
    """(22) s = -eps/sqrt(1-abar); (19) and (11) give the same x0_hat; each map inverts the other."""
    g = torch.Generator().manual_seed(1)
    x_t, eps = torch.randn(4, 3, 4, 4, generator=g), torch.randn(4, 3, 4, 4, generator=g)
    t = 321
    s = sched.score_from_eps(eps, t)
    torch.testing.assert_close(s, -eps / (1 - sched.alpha_bar[t]).sqrt().float())
    torch.testing.assert_close(sched.eps_from_score(s, t), eps)
    torch.testing.assert_close(sched.x0_from_eps(x_t, eps, t), sched.x0_from_score(x_t, s, t))
    x0 = sched.x0_from_eps(x_t, eps, t)
    torch.testing.assert_close(sched.eps_from_x0(x_t, x0, t), eps, rtol=1e-4, atol=1e-4)
    # x_t = add_noise(x0_hat, eps) closes the loop (eq. 3 with eq. 19)
    torch.testing.assert_close(sched.add_noise(x0, t, eps), x_t, rtol=1e-4, atol=1e-4)


def test_schedule_matches_diffusers_scheduler():
    from diffusers import DDPMScheduler

    for cfg in [{}, {"beta_schedule": "scaled_linear"}, {"beta_schedule": "squaredcos_cap_v2"}]:
        ref = DDPMScheduler(**cfg)
        ours = Schedule.from_config(dict(ref.config))
        torch.testing.assert_close(ours.alpha_bar.float(), ref.alphas_cumprod.float(), rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("timesteps", [[999, 749, 499, 249, 0], list(range(999, -1, -1))[:3]])
def test_reverse_step_matches_diffusers_ddpm_step(sched, timesteps):
    """Our DDPM step (clipped x0, posterior mean + sigma z) equals DDPMScheduler.step for the same noise."""
    from diffusers import DDPMScheduler

    from diffdemo.train import scheduler_config

    ref = DDPMScheduler(**scheduler_config())
    ref.set_timesteps(timesteps=timesteps)
    g = torch.Generator().manual_seed(0)
    x = torch.randn(1, 3, 8, 8, generator=g)
    for t, t_prev in timestep_pairs(timesteps)[:3]:
        eps = torch.randn(1, 3, 8, 8, generator=g)
        gen_ref, gen_ours = torch.Generator().manual_seed(t), torch.Generator().manual_seed(t)
        expected = ref.step(eps, t, x, generator=gen_ref).prev_sample
        x0 = sched.x0_from_eps(x, eps, t).clamp(-1, 1)
        ours = sched.reverse_mean_posterior(x, x0, t, t_prev)
        if t_prev >= 0:
            ours = ours + sched.posterior_std(t, t_prev) * torch.randn(x.shape, generator=gen_ours)
        torch.testing.assert_close(ours.float(), expected, rtol=1e-4, atol=1e-5)
        x = expected


def test_strided_timesteps():
    ts = strided_timesteps(1000, 250)
    assert len(ts) == 250 and ts[0] == 999 and ts[-1] == 0
    assert all(a > b for a, b in zip(ts, ts[1:]))
    assert strided_timesteps(1000, 1000) == list(range(999, -1, -1))
    assert strided_timesteps(1000, 1) == [999]
    assert strided_timesteps(1000, 4, start=300) == [300, 200, 100, 0]
    for steps in range(1, 59):
        ts = strided_timesteps(1000, steps, start=57)
        assert len(ts) == steps and len(set(ts)) == steps and ts[0] == 57
    assert timestep_pairs([5, 2, 0]) == [(5, 2), (2, 0), (0, -1)]
    with pytest.raises(ValueError):
        strided_timesteps(1000, 0)
    with pytest.raises(ValueError):
        strided_timesteps(1000, 10, start=1000)
    with pytest.raises(ValueError):
        strided_timesteps(1000, 10, start=5)


def test_last_step_lands_on_tweedie_estimate(sched):
    """The jump t -> -1 returns x0_hat itself, and the posterior std there is zero."""
    x, x0 = torch.randn(1, 3, 4, 4), torch.randn(1, 3, 4, 4)
    torch.testing.assert_close(sched.reverse_mean_posterior(x, x0, 7, -1), x0.double(), check_dtype=False)
    assert sched.posterior_std(7, -1) == 0.0
