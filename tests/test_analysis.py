"""Sensitivity and spectral analysis against exact oracles: the Gaussian prior (J_s = -C_t^{-1}), planted linear
scores with known spectra, planted energy maps, and the engine's own reverse step on a real (tiny) UNet."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
import torch
from PIL import Image

from diffdemo import analysis as A
from diffdemo import charts, pictures, plots
from diffdemo.analysis.products import exact_autodiff
from diffdemo.cli import main
from diffdemo.models import DiffusionModel, GaussianPrior
from diffdemo.schedule import Schedule
from tests.conftest import strict_loads


def flat_index(shape, pixel, channel):
    c, h, w = shape
    return channel * h * w + pixel[1] * w + pixel[0]


def dense(model, kind, t, J_s):
    a, b = A.affine_coefficients(model, kind, t)
    return a * torch.eye(J_s.shape[0], dtype=torch.float64) + b * J_s


class LinearScore(DiffusionModel):
    """s(x, t) = M x for a planted (possibly non-symmetric) M: J_s = M exactly, at every t."""

    def __init__(self, M: torch.Tensor, shape=(3, 4, 4)):
        self.M = M.double()
        self.sample_shape = shape
        self.schedule = Schedule.linear()
        self.device = torch.device("cpu")

    def score(self, x, t):
        return (x.reshape(x.shape[0], -1).double() @ self.M.T).to(x.dtype).reshape(x.shape)

    def eps(self, x, t):
        return -self.score(x, t) * (1 - self._abar(t, x)).sqrt()


def planted_prior(variances, D=192, floor=1.0, seed=0) -> GaussianPrior:
    """A Gaussian prior on 8x8 RGB with a random orthonormal basis and chosen variances."""
    g = torch.Generator().manual_seed(seed)
    basis = torch.linalg.qr(torch.randn(D, len(variances), generator=g, dtype=torch.float64)).Q
    mean = torch.randn(3, 8, 8, generator=g) * 0.1
    return GaussianPrior(mean, basis, torch.tensor(variances, dtype=torch.float64), floor=floor)


# --- Jacobian columns and rows ---------------------------------------------------------------------
@pytest.mark.parametrize("t", [10, 300, 900])
def test_gaussian_columns_and_rows_match_closed_form(gaussian_prior, faces8, t):
    g = gaussian_prior
    x_t = A.state_at(g, faces8[:1], t, seed=1)
    J_s = g.score_jacobian(t)
    pixel, channel = (5, 3), 1
    i = flat_index(g.sample_shape, pixel, channel)
    cols = A.jacobian_columns(g, x_t, t, pixel, channel)
    rows = A.jacobian_rows(g, x_t, t, pixel, channel)
    for kind in A.KINDS:
        J = dense(g, kind, t, J_s)
        # J_D = (I + (1 - abar) J_s) / sqrt(abar) cancels almost exactly at high noise: float32 J_s loses ~1/abar
        tol = 1e-5 + (3e-7 / g.schedule.abar(t) if kind == "denoiser" else 0.0)
        assert A.relative_error(cols[kind].reshape(-1), J[:, i]) < tol, kind
        assert A.relative_error(rows[kind].reshape(-1), J[i, :]) < tol, kind
    # channel=None probes e_i summed over the input channels
    summed = A.jacobian_column(g, x_t, t, pixel, None, kind="denoiser")
    idx = [flat_index(g.sample_shape, pixel, c) for c in range(3)]
    assert A.relative_error(
        summed.reshape(-1), dense(g, "denoiser", t, J_s)[:, idx].sum(1)
    ) < 1e-5 + 3e-7 / g.schedule.abar(t)
    # central differences are exact up to round-off for a linear score
    fd = A.jacobian_column(g, x_t, t, pixel, channel, method="central", eps=1e-2)
    assert A.relative_error(fd.reshape(-1), J_s[:, i]) < 1e-3


def test_reverse_and_denoiser_columns_equal_the_engines_maps_on_a_unet(tiny_model, face64):
    """J_f e_i from ONE score JVP equals the JVP of the engine's own reverse step (eq. 12 = eq. 17); J_D that of x0_hat."""
    m = tiny_model
    x0 = torch.nn.functional.avg_pool2d(face64, 4)
    t = 400
    x_t = A.state_at(m, x0, t, seed=0)
    sched = m.schedule
    step = lambda z: sched.reverse_mean_posterior(z, m.x0_hat(z, t), t, t - 1)
    for pixel, channel in [((12, 9), None)]:
        cols = A.jacobian_columns(m, x_t, t, pixel, channel)
        e = A.pixel_basis(x_t.shape, pixel, channel)
        with exact_autodiff():
            _, jf = torch.func.jvp(step, (x_t,), (e,))
            _, jd = torch.func.jvp(lambda z: m.x0_hat(z, t), (x_t,), (e,))
        assert A.relative_error(cols["reverse"], jf[0]) < 1e-4
        assert A.relative_error(cols["denoiser"], jd[0]) < 1e-4
        alpha = sched.step_alpha(t, t - 1)
        assert torch.allclose(cols["reverse"], (e[0] + (1 - alpha) * cols["score"]) / alpha**0.5, atol=1e-6)
    # a row (vjp) and a column (jvp) meet at the same matrix entry J[j, i]
    col = A.jacobian_column(m, x_t, t, (3, 4), 0)
    row = A.jacobian_row(m, x_t, t, (7, 2), 2)
    assert col[2, 2, 7].item() == pytest.approx(row[0, 4, 3].item(), rel=1e-4, abs=1e-5)


def test_central_differences_converge_to_the_jvp_until_round_off(tiny_model):
    m = tiny_model
    x0 = torch.rand(1, 3, 16, 16, generator=torch.Generator().manual_seed(3)) * 2 - 1
    t, pixel = 20, (5, 9)
    x_t = A.state_at(m, x0, t, seed=0)
    exact = A.jacobian_column(m, x_t, t, pixel)
    err = {
        e: A.relative_error(A.jacobian_column(m, x_t, t, pixel, method="central", eps=e), exact)
        for e in (0.2, 0.1, 0.05, 1e-5)
    }
    assert err[0.2] > err[0.1] > err[0.05]  # truncation error O(eps^2) while eps is large
    assert err[0.2] / err[0.05] > 4
    assert err[1e-5] > err[0.05]  # then float32 round-off (~1e-7 / eps) takes over
    fwd = A.jacobian_column(m, x_t, t, pixel, method="forward", eps=0.05)
    assert A.relative_error(fwd, exact) > err[0.05]  # forward differences are only O(eps)


def test_bad_pixel_channel_timestep_and_method_are_rejected(gaussian_prior, faces8):
    x_t = A.state_at(gaussian_prior, faces8[:1], 100, 0)
    with pytest.raises(ValueError, match="outside"):
        A.jacobian_column(gaussian_prior, x_t, 100, (8, 0))
    with pytest.raises(ValueError, match="channel"):
        A.jacobian_column(gaussian_prior, x_t, 100, (0, 0), channel=3)
    with pytest.raises(ValueError, match="timestep"):
        A.jacobian_column(gaussian_prior, x_t, 1000, (0, 0))
    with pytest.raises(ValueError, match="method"):
        A.jacobian_column(gaussian_prior, x_t, 100, (0, 0), method="backward")
    with pytest.raises(ValueError, match="operator"):
        A.operator_kind("Jx")


# --- energy vs radius -----------------------------------------------------------------------------
def planted_map(h=16, w=16, centre=(6, 7)):
    """Energy 1 at the centre, 4 on the distance-3 cross, 5 spread over the eight distance-5 (3-4-5) pixels."""
    v = np.zeros((2, h, w))
    x, y = centre
    v[0, y, x] = 1.0
    for dx, dy in [(3, 0), (-3, 0), (0, 3), (0, -3)]:
        v[1, y + dy, x + dx] = -1.0  # the sign does not matter; channels add in energy
    for dx, dy in [(3, 4), (-3, 4), (3, -4), (-3, -4), (4, 3), (-4, 3), (4, -3), (-4, -3)]:
        v[0, y + dy, x + dx] = math.sqrt(5 / 8)
    return v


def test_energy_curve_of_a_planted_radial_map():
    c = A.energy_vs_radius(planted_map(), (6, 7), operator="J_D", t=12)
    assert c.total == pytest.approx(10.0)
    expected = np.where(c.radii < 3, 0.1, np.where(c.radii < 5, 0.5, 1.0))
    np.testing.assert_allclose(c.fraction, expected, atol=1e-12)
    assert c.r50 == pytest.approx(3.0) and c.r90 == pytest.approx(5.0)
    assert c.n_eff == pytest.approx(100 / (1 + 4 + 8 * (5 / 8) ** 2))
    assert c.radii[0] == 0 and c.radii[-1] == math.ceil(math.hypot(15 - 6, 15 - 7))
    assert c.label == "J_D" and c.summary()["t"] == 12
    ex = A.energy_vs_radius(torch.tensor(planted_map()), (6, 7), exclude_centre=True, operator="J_s")
    assert ex.total == pytest.approx(9.0) and ex.fraction[0] == 0.0
    assert ex.r50 == pytest.approx(5.0)  # 4/9 of the energy sits at r = 3
    assert ex.label == "J_s (centre excluded)"
    zero = A.energy_vs_radius(np.zeros((4, 4)), (1, 1))
    assert math.isnan(zero.r50) and zero.n_eff == 0.0
    with pytest.raises(ValueError):
        A.energy_vs_radius(np.zeros((4, 4)), (4, 1))


def test_energy_sweep_batches_timesteps_like_single_probes(tiny_model, face64):
    m = tiny_model
    x0 = torch.nn.functional.avg_pool2d(face64, 4)
    ts, pixel = [30, 800], (10, 6)
    calls = []
    curves = A.energy_sweep(m, x0, pixel, ts, seed=2, progress=lambda f, msg: calls.append(f))
    chunked = A.energy_sweep(m, x0, pixel, ts, seed=2, max_batch=1)
    assert [c.t for c in curves] == ts and calls[-1] == 1.0
    for c, d, t in zip(curves, chunked, ts):
        x_t = A.state_at(m, x0, t, 2)
        single = A.probe(m, x_t, t, pixel, method="central", compare=False)  # the sweep's default method
        # batch composition changes float32 rounding in the convolutions, amplified by 1/(2 eps) = 50
        assert A.relative_error(c.column, single.columns["denoiser"]) < 1e-3
        exact = A.probe(m, x_t, t, pixel, method="jvp", compare=False)
        assert A.relative_error(c.column, exact.columns["denoiser"]) < 1e-2
        assert A.relative_error(d.column, c.column) < 1e-3
        assert c.r50 == pytest.approx(single.energy.r50) and c.n_eff == pytest.approx(single.energy.n_eff, rel=1e-3)
        assert c.label == "J_D"
    sc = A.energy_sweep(m, x0, pixel, ts[:1], seed=2, energy_on="Js", exclude_centre=True)[0]
    assert sc.label == "J_s (centre excluded)" and sc.fraction[0] == 0.0


# --- spectra --------------------------------------------------------------------------------------
def test_subspace_iteration_finds_planted_singular_values_and_vectors():
    # C_t^{-1} has eigenvalues 1 / (abar var + 1 - abar): small planted variances give the top singular values of J_s
    prior = planted_prior([0.002, 0.01, 0.04, 0.3, 3.0], floor=1.0)
    t = 100
    x_t = A.state_at(prior, torch.zeros(1, 3, 8, 8), t, 0)
    J_s = prior.score_jacobian(t)
    U, S, Vh = torch.linalg.svd(J_s)
    r = A.top_singular(prior, x_t, t, k=3, iters=25, operator="Js", seed=4)
    np.testing.assert_allclose(r.values, S[:3].numpy(), rtol=1e-5)
    for i in range(3):
        v = r.right[i].reshape(-1).double()
        assert abs(float(v @ Vh[i])) == pytest.approx(1.0, abs=1e-4)
        assert torch.allclose(J_s @ v, S[i] * r.left[i].reshape(-1).double(), atol=1e-4 * float(S[0]))
        assert r.right[i].reshape(-1).abs().argmax() == r.right[i].reshape(-1).argmax()  # sign convention
    assert r.residual.max() < 1e-4 and r.residual_history[0] > r.residual_history[-1]
    assert r.history[-1] == pytest.approx(S[0].item(), rel=1e-6)


def test_singular_values_of_Jf_on_the_fitted_gaussian(gaussian_prior, faces8):
    g, t = gaussian_prior, 200
    x_t = A.state_at(g, faces8[:1], t, 0)
    S = torch.linalg.svdvals(dense(g, "reverse", t, g.score_jacobian(t)))
    r = A.top_singular(g, x_t, t, k=2, iters=40, operator="Jf")
    np.testing.assert_allclose(r.values, S[:2].numpy(), rtol=1e-6)
    assert r.operator == "J_f"


def test_arnoldi_finds_a_planted_complex_dominant_pair():
    g = torch.Generator().manual_seed(0)
    D = 48
    theta, radius = 0.7, 3.0
    blocks = torch.zeros(D, D, dtype=torch.float64)
    blocks[:2, :2] = radius * torch.tensor([[math.cos(theta), -math.sin(theta)], [math.sin(theta), math.cos(theta)]])
    blocks[2:, 2:] = torch.diag(torch.linspace(-2.0, 1.5, D - 2, dtype=torch.float64))
    P = torch.eye(D, dtype=torch.float64) + 0.2 * torch.randn(D, D, generator=g, dtype=torch.float64)
    M = P @ blocks @ torch.linalg.inv(P)  # non-normal, eigenvalues known
    model = LinearScore(M)
    t = 500
    e = A.spectral_radius(model, torch.zeros(1, 3, 4, 4), t, iters=D, seed=1)
    assert e.rho_Js == pytest.approx(radius, rel=1e-6)  # the score is float32
    top = e.eigenvalues_Js[:2]
    assert sorted(top.imag) == pytest.approx([-radius * math.sin(theta), radius * math.sin(theta)], rel=1e-5)
    assert top.real == pytest.approx([radius * math.cos(theta)] * 2, rel=1e-5)
    a, b = A.affine_coefficients(model, "Jf", t)
    true_f = np.abs(a + b * torch.linalg.eigvals(M).numpy()).max()
    assert e.rho_Jf == pytest.approx(true_f, rel=1e-6)
    assert e.residual_Js < 1e-4


def test_spectral_radius_and_sweep_on_the_gaussian(gaussian_prior, faces8):
    g = gaussian_prior
    ts = [50, 500]
    res = A.spectrum_sweep(g, faces8[:1], ts, k=2, iters=25, seed=0)
    for r, t in zip(res, ts):
        J_s = g.score_jacobian(t)
        eig_s = torch.linalg.eigvalsh(J_s)
        J_f = dense(g, "reverse", t, J_s)
        assert r.rho_Jf == pytest.approx(torch.linalg.eigvals(J_f).abs().max().item(), rel=1e-5)
        assert r.eig.rho_Js == pytest.approx(eig_s.abs().max().item(), rel=1e-5)
        assert r.sigma_max_Jf == pytest.approx(torch.linalg.svdvals(J_f)[0].item(), rel=5e-5)  # clustered near 1
        assert r.sigma_max_Js == pytest.approx(eig_s.abs().max().item(), rel=1e-2)  # degenerate top: slow but close
        # J_s = -C_t^{-1} is symmetric negative definite: the Euler limit is 2 / |lambda_min|, the conservative
        # bound 2 / sigma_max equals it
        assert r.h_max == pytest.approx(2 / eig_s.abs().max().item(), rel=1e-5)
        assert r.h_max_sigma == pytest.approx(r.h_max, rel=1e-2)
        assert r.stride_used == 4 and r.h_used == pytest.approx(1 - g.schedule.step_alpha(t, t - 4))
        assert 1 - g.schedule.step_alpha(t, t - r.max_stride) <= r.h_max
        s = r.summary()
        json.dumps(s)
        assert s["euler_stable_at_used_stride"] == (r.h_used <= r.h_max)
    single = A.spectral_radius(g, A.state_at(g, faces8[:1], 50, 0), 50, iters=25)
    true_rho = torch.linalg.eigvals(dense(g, "reverse", 50, g.score_jacobian(50))).abs().max().item()
    assert single.rho_Jf == pytest.approx(true_rho, rel=1e-5)


def test_residual_tolerance_stops_early_and_flags_what_it_did_not_converge():
    # planted symmetric J_s with well separated top eigenvalues -5, -4, -3 over a bulk in [-1, 0]
    D = 48
    vals = torch.cat([torch.tensor([-5.0, -4.0, -3.0]), torch.linspace(-1.0, 0.0, D - 3)]).double()
    Q = torch.linalg.qr(torch.randn(D, D, generator=torch.Generator().manual_seed(3), dtype=torch.float64)).Q
    model = LinearScore(Q @ torch.diag(vals) @ Q.T)
    x = torch.zeros(1, 3, 4, 4)
    capped = A.spectral_radius(model, x, 500, iters=4, seed=1)  # too few steps: the 3rd value is not there yet
    assert not capped.converged(3).all()
    e = A.spectral_radius(model, x, 500, iters=D, seed=1, tol=1e-6, k=3)
    assert e.iters < D and e.converged(3, 1e-6).all()  # stopped as soon as the 3 values met the tolerance
    np.testing.assert_allclose(e.eigenvalues_Js[:3].real, [-5.0, -4.0, -3.0], rtol=1e-5)
    # the residual bounds a symmetric matrix's Ritz value error: some eigenvalue lies within it (Bauer-Fike)
    for theta, rel in zip(capped.eigenvalues_Js[:3], capped.residuals_Js[:3]):
        assert float((vals - theta.real).abs().min()) <= rel * abs(theta) * 1.001 + 1e-6


def test_spectrum_sweep_names_the_unconverged_values(gaussian_prior, faces8):
    g = gaussian_prior
    rough = A.spectrum_sweep(g, faces8[:1], [50], k=2, iters=2, seed=0)[0]
    assert rough.unconverged() and not rough.all_converged and rough.summary()["unconverged"] == rough.unconverged()
    good = A.spectrum_sweep(g, faces8[:1], [50], k=2, iters=80, seed=0, tol=A.RESIDUAL_TOL)[0]
    assert good.all_converged and good.singular_Js.iters < 80 and good.summary()["converged_Js"] == [True, True]
    # the Spectrum tab says it in words, and only when it is so
    from diffdemo.ui.spectrum import _spectrum_text

    assert "Not converged yet" in _spectrum_text([rough]) and "**no**" in _spectrum_text([rough])
    assert "Not converged" not in _spectrum_text([good]) and "| yes |" in _spectrum_text([good])


def test_tf32_flags_are_restored_only_when_the_last_analysis_ends():
    matmul = torch.backends.cuda.matmul
    # saved and restored by hand: allow_tf32 is served by cuBLASModule.__getattr__, which pytest >= 9.2's
    # monkeypatch takes for a missing attribute and then fails to delete on undo
    saved = matmul.allow_tf32
    matmul.allow_tf32 = True
    try:
        with exact_autodiff("cuda"):
            assert matmul.allow_tf32 is False
            with exact_autodiff("cuda"):  # a second request overlapping the first (DIFFDEMO_CONCURRENCY > 1)
                pass
            assert matmul.allow_tf32 is False  # the inner one ending does not switch TF32 back on under the outer
        assert matmul.allow_tf32 is True
        with exact_autodiff("cpu"):  # TF32 is CUDA's: the CPU path touches no process-wide flag
            assert matmul.allow_tf32 is True
    finally:
        matmul.allow_tf32 = saved


def test_euler_step_limit_formula_and_stride():
    assert A.euler_step_limit(np.array([-4.0])) == pytest.approx(0.5)
    assert A.euler_step_limit(np.array([-1 + 1j, -1 - 1j, -0.5])) == pytest.approx(1.0)  # -2 Re / |.|^2
    assert A.euler_step_limit(np.array([2.0, 1j])) == math.inf
    lam = -1 + 1j
    assert abs(1 + A.euler_step_limit(np.array([lam])) * lam) == pytest.approx(1.0)  # on the stability circle
    prior = planted_prior([0.5])
    t = 300
    k = A.max_stable_stride(prior, t, 0.05)
    assert 1 - prior.schedule.step_alpha(t, t - k) <= 0.05 < 1 - prior.schedule.step_alpha(t, t - k - 1)


@pytest.mark.slow
def test_spectrum_sweep_on_a_unet_is_consistent_and_reports_progress(tiny_model, face64):
    m = tiny_model
    x0 = torch.nn.functional.avg_pool2d(face64, 4)
    seen = []
    res = A.spectrum_sweep(m, x0, [700], k=2, iters=3, seed=0, progress=lambda f, msg: seen.append(f))
    assert seen[-1] == 1.0 and all(0 <= f <= 1 for f in seen)
    for r in res:
        sv = r.singular_Js
        assert sv.right.shape == (2, 3, 16, 16) and np.all(np.diff(sv.values) <= 0)
        # u_i = J v_i / sigma_i exactly, by construction of the Rayleigh-Ritz step
        Jv = A.score_jvp(m, r.x_t, r.t, sv.right[:1])
        assert A.relative_error(Jv[0], sv.values[0] * sv.left[0]) < 1e-4
        # nested Krylov spaces: the top Ritz singular value never decreases
        assert np.all(np.diff(sv.history) >= -1e-6 * sv.history[-1])
        assert np.isfinite(r.sigma_max_Jf) and r.rho_Jf > 0


# --- figures ------------------------------------------------------------------------------------
def test_colour_maps_and_figures(gaussian_prior, faces8):
    assert tuple(pictures.diverging_rgb(np.zeros((1, 1)))[0, 0]) == (247, 247, 247)
    rgb = pictures.diverging_rgb(np.array([[-1.0, 1.0]]))
    assert rgb[0, 0, 2] > rgb[0, 0, 0] and rgb[0, 1, 0] > rgb[0, 1, 2]  # negative blue, positive red
    img = pictures.column_image(torch.tensor(planted_map()), (6, 7), min_side=64)
    f = 4
    assert img.shape == (64, 64, 3)
    assert tuple(img[7 * f - 2, 6 * f + 1]) == pictures.MARK_RGB  # outline above the probed pixel
    g, t = gaussian_prior, 100
    x_t = A.state_at(g, faces8[:1], t, 0)
    result = A.probe(g, x_t, t, (2, 3))
    curves = A.energy_sweep(g, faces8[:1], (2, 3), [10, 100])
    for fig in (plots.probe_figure(result), plots.energy_figure(curves), plots.energy_summary_figure(curves)):
        assert len(fig.data) >= 2
    assert charts.energy_chart(curves).dtype == np.uint8


# --- command line -------------------------------------------------------------------------------
def run_cli(argv, capsys):
    code = main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return code, out, err


def test_cli_probe_end_to_end(tiny_model_dir, tmp_path, capsys):
    out = tmp_path / "probe"
    argv = ["probe", "--model", tiny_model_dir, "--pixel", 4, 11, "--t", 300, "--t-sweep", "50,500,900", "--out", out]
    code, stdout, err = run_cli(argv, capsys)
    assert code == 0, err
    result = strict_loads(stdout.strip().splitlines()[-1])
    assert [p["t"] for p in result["per_t"]] == [300, 50, 500, 900]
    assert all({"r50", "r90", "n_eff"} <= set(p) for p in result["per_t"])
    assert result["energy_on"] == "J_D" and result["per_t"][0]["on"] == "J_D"
    assert 0 < result["fd_vs_jvp_rel_err"] < 0.05
    for kind in A.KINDS:
        assert Image.open(out / f"column_{kind}_t0300.png").size == (256, 256)
    for name in ("energy.png", "energy.html", "columns.html", "sweep_columns_denoiser.png", "probe.json"):
        assert (out / name).stat().st_size > 0


def test_cli_spectrum_end_to_end(tiny_model_dir, tmp_path, capsys):
    out = tmp_path / "spectrum"
    argv = ["spectrum", "--model", tiny_model_dir, "--t", "100,600", "--k", 2, "--iters", 2, "--out", out]
    code, stdout, err = run_cli(argv, capsys)
    assert code == 0, err
    result = strict_loads(stdout.strip().splitlines()[-1])
    assert [p["t"] for p in result["per_t"]] == [100, 600]
    for p in result["per_t"]:
        assert len(p["singular_values_Js"]) == 2 and len(p["residual_Js"]) == 2
        assert p["sigma_max_Js"] > 0 and p["sigma_max_Jf"] > 0 and p["rho_Jf"] > 0 and p["stride_used"] == 4
    assert Image.open(out / "singular_vectors_t0100.png").size[0] > 2 * 128
    assert (out / "spectrum.html").stat().st_size > 0 and (out / "spectrum.json").is_file()
    # two iterations cannot converge k = 2 values: listed in the JSON and said on stderr
    assert result["unconverged"] and all(f"not converged at t={t}" in err for t in result["unconverged"])


@pytest.mark.parametrize(
    "argv, message",
    [
        (["probe", "--pixel", 16, 3, "--t", 10], "outside"),
        (["probe", "--pixel", 3, -1, "--t", 10], "outside"),
        (["probe", "--pixel", 3, 3, "--t", 1000], "--t"),
        (["probe", "--pixel", 3, 3, "--t", 10, "--t-sweep", "5,x"], "--t-sweep"),
        (["probe", "--pixel", 3, 3, "--t", 10, "--eps", 0], "eps"),
        (["probe", "--pixel", 3, "--t", 10], "pixel"),
        (["spectrum", "--t", "100,5000"], "--t"),
        (["spectrum", "--t", "100", "--k", 0], "k"),
        (["spectrum", "--t", "100", "--tol", -1], "--tol"),
    ],
)
def test_cli_bad_input_exits_2_with_one_line(argv, message, tiny_model_dir, tmp_path, capsys):
    code, stdout, err = run_cli([*argv, "--model", tiny_model_dir, "--out", tmp_path / "o"], capsys)
    assert code == 2
    assert err.count("\n") == 1 and err.startswith("error:") and message in err
