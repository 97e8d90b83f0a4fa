"""Model contract (against the exact Gaussian prior and diffusers) and measurement operators (adjointness)."""

import math

import pytest
import torch

from diffdemo.models import (
    DEFAULT_MODEL,
    MODELS_DIR,
    UNET_SAFETENSORS,
    ModelUnavailable,
    UNetModel,
    available_models,
    load_model,
)
from diffdemo.operators import (
    BoxInpaint,
    DrawnMask,
    GaussianBlur,
    Identity,
    RandomInpaint,
    as_matrix,
    default_blur,
    make_operator,
)

# --- Gaussian prior: the oracle ---------------------------------------------------------------------


@pytest.mark.parametrize("t", [0, 50, 400, 999])
def test_gaussian_score_and_jacobian_equal_closed_form(gaussian_prior, t):
    """s(x) = -C_t^{-1}(x - sqrt(abar) mu) with C_t = abar Sigma + (1-abar) I, J_s = -C_t^{-1} (dense algebra)."""
    abar = gaussian_prior.schedule.abar(t)
    D = gaussian_prior.dim
    C = abar * gaussian_prior.covariance() + (1 - abar) * torch.eye(D, dtype=torch.float64)
    g = torch.Generator().manual_seed(t)
    x = torch.randn(3, *gaussian_prior.sample_shape, generator=g, dtype=torch.float64)
    expected = -torch.linalg.solve(C, (x.reshape(3, -1) - abar**0.5 * gaussian_prior.mean).T).T
    torch.testing.assert_close(gaussian_prior.score(x, t).reshape(3, -1), expected, rtol=1e-9, atol=1e-9)
    torch.testing.assert_close(gaussian_prior.score_jacobian(t), -torch.linalg.inv(C), rtol=1e-8, atol=1e-8)


def test_gaussian_tweedie_x0_hat_is_exact_posterior_mean(gaussian_prior):
    """x0_hat (eq. 11/19) equals E[x0 | x_t] = mu + sqrt(abar) Sigma C_t^{-1} (x_t - sqrt(abar) mu)."""
    t = 300
    abar = gaussian_prior.schedule.abar(t)
    S = gaussian_prior.covariance()
    C = abar * S + (1 - abar) * torch.eye(gaussian_prior.dim, dtype=torch.float64)
    x = torch.randn(2, *gaussian_prior.sample_shape, generator=torch.Generator().manual_seed(3), dtype=torch.float64)
    r = x.reshape(2, -1) - abar**0.5 * gaussian_prior.mean
    expected = gaussian_prior.mean + abar**0.5 * (S @ torch.linalg.solve(C, r.T)).T
    torch.testing.assert_close(gaussian_prior.x0_hat(x, t).reshape(2, -1), expected, rtol=1e-8, atol=1e-8)


def test_gaussian_prior_batched_timesteps(gaussian_prior):
    x = torch.randn(3, *gaussian_prior.sample_shape, generator=torch.Generator().manual_seed(0))
    ts = torch.tensor([10, 500, 900])
    batched = gaussian_prior.eps(x, ts)
    for i, t in enumerate(ts.tolist()):
        torch.testing.assert_close(batched[i : i + 1], gaussian_prior.eps(x[i : i + 1], t))


def test_gaussian_posterior_is_exact_for_linear_problem(gaussian_prior):
    """Closed-form posterior mean: residual orthogonality condition Sigma^-1 (m - mu) = A^T (y - A m) / s^2."""
    op = GaussianBlur(3, 1.0)
    A = as_matrix(op, gaussian_prior.sample_shape).double()
    y = torch.randn(gaussian_prior.dim, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    m, cov = gaussian_prior.posterior(A, y, 0.1)
    lhs = torch.linalg.solve(gaussian_prior.covariance(), m - gaussian_prior.mean)
    torch.testing.assert_close(lhs, A.T @ (y - A @ m) / 0.01, rtol=1e-6, atol=1e-6)
    torch.testing.assert_close(cov, cov.T)


# --- UNet model ---------------------------------------------------------------------------------------


def test_unet_contract_matches_formulas(tiny_model):
    x = torch.randn(2, 3, 16, 16, generator=torch.Generator().manual_seed(0))
    t = 600
    eps = tiny_model.eps(x, t)
    torch.testing.assert_close(eps, tiny_model.unet(x, torch.tensor([t, t])).sample)
    abar = tiny_model.schedule.abar(t)
    torch.testing.assert_close(tiny_model.score(x, t), -eps / (1 - abar) ** 0.5)
    torch.testing.assert_close(tiny_model.x0_hat(x, t), (x - (1 - abar) ** 0.5 * eps) / abar**0.5)
    per_sample = tiny_model.eps(x, torch.tensor([t, 10]))  # one timestep per image
    torch.testing.assert_close(per_sample[:1], eps[:1])
    torch.testing.assert_close(per_sample[1:], tiny_model.eps(x[1:], 10))


@pytest.mark.parametrize("prediction_type", ["sample", "v_prediction"])
def test_other_prediction_types_convert_to_eps(prediction_type):
    """A net predicting x0 (or v) that is exactly right for a known eps gives back that eps."""
    from tests.conftest import make_tiny_unet

    model = UNetModel(make_tiny_unet(16), {"prediction_type": prediction_type}, device="cpu")
    x = torch.randn(1, 3, 16, 16)
    t = 250
    out = model.unet(x, torch.tensor([t])).sample
    a = model.schedule.abar(t)
    if prediction_type == "sample":
        expected = (x - a**0.5 * out) / (1 - a) ** 0.5
    else:
        expected = a**0.5 * out + (1 - a) ** 0.5 * x
    torch.testing.assert_close(model.eps(x, t), expected)


def test_load_model_from_local_dir_and_errors(tiny_model_dir, monkeypatch):
    model = load_model(str(tiny_model_dir), device="cpu")
    assert model.sample_shape == (3, 16, 16)
    assert model.schedule.T == 1000 and model.prediction_type == "epsilon"
    assert load_model(str(tiny_model_dir), device="cpu") is model  # cached
    with pytest.raises(ModelUnavailable, match="no such model"):
        load_model("no-such-model")
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(ModelUnavailable, match="cannot be reached"):
        load_model("google/ddpm-cifar10-32")


def test_embedded_faces64_is_the_default_and_loads_offline(monkeypatch):
    """The embedded model ships with the repository: missing, it is a failure (the app's default and the README's
    tables depend on it), not a skip."""
    weights = MODELS_DIR / "faces64" / "unet" / UNET_SAFETENSORS
    assert weights.is_file(), f"{weights} is missing: the embedded model ships with the repository"
    assert not weights.read_bytes()[:200].startswith(b"version https://git-lfs"), (
        f"{weights} is a Git LFS pointer, not the weights: run `git lfs pull`"
    )
    assert DEFAULT_MODEL == "faces64" and "faces64" in available_models()
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")  # embedded: no network needed
    model = load_model("faces64", device="cpu")
    assert model.sample_shape == (3, 64, 64)
    assert model.schedule.T == 1000
    # the architecture its card describes: channels 32-64-128-128, 4.33 M parameters
    assert list(model.unet.config.block_out_channels) == [32, 64, 128, 128] and model.n_params == 4_329_059


# --- operators ------------------------------------------------------------------------------------


def _all_operators(size=16):
    return [
        Identity(),
        GaussianBlur(5, 1.5),
        GaussianBlur(*default_blur(size)) if size > 13 else GaussianBlur(3, 0.8),
        BoxInpaint(size, (2, 3, 5, 7)),
        BoxInpaint(size, preset="eyes"),
        RandomInpaint(size, 0.5, seed=1),
        DrawnMask(torch.arange(size * size).reshape(size, size) % 3 == 0),
    ]


@pytest.mark.parametrize("op", _all_operators(), ids=lambda op: op.describe()["operator"])
def test_adjointness(op):
    """<A x, y> = <x, A^T y> for random x, y (float64)."""
    g = torch.Generator().manual_seed(0)
    x = torch.randn(2, 3, 16, 16, generator=g, dtype=torch.float64)
    y = torch.randn(2, 3, 16, 16, generator=g, dtype=torch.float64)
    lhs = (op.A(x) * y).sum()
    rhs = (x * op.A_adjoint(y)).sum()
    assert lhs.item() == pytest.approx(rhs.item(), rel=1e-10, abs=1e-10)


@pytest.mark.parametrize("op", _all_operators(), ids=lambda op: op.describe()["operator"])
def test_power_iteration_finds_the_operator_norm(op):
    """||A||_2^2 by power iteration (it caps Score-ALD's step) against the exact spectral norm of A's matrix."""
    shape = (3, 16, 16)
    exact = torch.linalg.matrix_norm(as_matrix(op, shape).double(), 2).item() ** 2
    assert op.norm_sq(torch.zeros(1, *shape)) == pytest.approx(exact, rel=0.01)


def test_blur_matrix_and_adjoint_are_transposes():
    op = GaussianBlur(5, 1.0)
    shape = (1, 8, 8)
    M = as_matrix(op, shape)
    y = torch.randn(1, *shape)
    torch.testing.assert_close(op.A_adjoint(y).reshape(-1), M.T @ y.reshape(-1), rtol=1e-5, atol=1e-6)
    assert torch.allclose(M.sum(1), torch.ones(64), atol=1e-5)  # reflect padding keeps constants constant


def test_measure_is_seeded_and_has_the_right_noise_level():
    op = GaussianBlur(13, 2.0)
    x = torch.zeros(1, 3, 64, 64)
    y1 = op.measure(x, 0.05, torch.Generator().manual_seed(5))
    y2 = op.measure(x, 0.05, torch.Generator().manual_seed(5))
    assert torch.equal(y1, y2)
    assert y1.std().item() == pytest.approx(0.05, rel=0.05)
    assert torch.equal(op.measure(x, 0.0), op.A(x))


def test_gaussian_kernel_and_defaults():
    op = GaussianBlur(13, 2.0)
    assert op.kernel.sum().item() == pytest.approx(1.0, abs=1e-6)
    r = torch.arange(13) - 6.0
    var = (op.kernel.sum(0) * r**2).sum().item()
    assert var == pytest.approx(4.0, rel=0.02)  # a 13-tap window truncates little of std 2
    assert default_blur(64) == (13, 2.0)
    assert default_blur(256) == (61, 3.0)


def test_masks_and_errors():
    box = BoxInpaint(64, (10, 20, 8, 16))
    assert box.mask.sum().item() == 64 * 64 - 8 * 16
    rnd = RandomInpaint(64, 0.3, seed=0)
    assert rnd.mask.mean().item() == pytest.approx(0.7, abs=0.03)
    y = box.A(torch.ones(1, 3, 64, 64) * 0.5)
    filled = box.init_estimate(y)
    torch.testing.assert_close(filled, torch.full_like(filled, 0.5))
    with pytest.raises(ValueError):
        BoxInpaint(64, (60, 0, 10, 10))
    with pytest.raises(ValueError):
        RandomInpaint(64, 1.0)
    with pytest.raises(ValueError):
        GaussianBlur(4, 1.0)
    with pytest.raises(ValueError):
        DrawnMask(torch.zeros(8, 8, dtype=torch.bool))
    with pytest.raises(ValueError, match="unknown operator"):
        make_operator("motion_blur", 64)
    with pytest.raises(ValueError, match="too large"):
        GaussianBlur(13, 2.0).A(torch.zeros(1, 3, 6, 6))
    assert math.isclose(make_operator("random_inpaint", 32, drop=0.25).drop, 0.25)
