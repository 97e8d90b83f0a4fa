"""The precision setting: which format ``auto`` picks, what a bf16 view changes (the network only), and that every
result names its precision."""

from __future__ import annotations

import pytest
import torch

from diffdemo import precision as P
from diffdemo.cli import main
from diffdemo.experiments import run_restoration
from diffdemo.models import UNetModel
from diffdemo.operators import make_operator
from diffdemo.restore import make_problem
from diffdemo.train import scheduler_config
from tests.conftest import make_tiny_unet, strict_loads


def test_auto_follows_the_device_and_the_per_method_list(monkeypatch):
    monkeypatch.setattr(P, "fast_bf16", lambda device: True)
    assert P.resolve_precision("auto", "cpu", "dps") == "bf16"
    monkeypatch.setattr(P, "AUTO_FP32_METHODS", frozenset({"dps"}))
    assert P.resolve_precision("auto", "cpu", "dps") == "fp32"  # measured unsafe: kept in fp32
    assert P.resolve_precision("auto", "cpu", "sdedit") == "bf16"
    assert P.resolve_precision("bf16", "cpu", "dps") == "bf16"  # an explicit choice is obeyed
    monkeypatch.setattr(P, "fast_bf16", lambda device: False)
    assert P.resolve_precision("auto", "cpu", "sdedit") == "fp32"
    assert P.resolve_precision("FP32", "cpu") == "fp32"
    with pytest.raises(ValueError, match="auto, fp32, bf16"):
        P.resolve_precision("fp16", "cpu")


def test_fast_bf16_reads_the_cpu_flags(monkeypatch):
    monkeypatch.setattr(torch.cpu, "_is_avx512_bf16_supported", lambda: False, raising=False)
    monkeypatch.setattr(torch.cpu, "_is_amx_tile_supported", lambda: False, raising=False)
    assert P.fast_bf16("cpu") is False
    monkeypatch.setattr(torch.cpu, "_is_amx_tile_supported", lambda: True, raising=False)
    assert P.fast_bf16("cpu") is True
    assert P.fast_bf16("meta") is False


def test_a_bf16_view_changes_only_the_network(tiny_model):
    """Same weights and cache entry; eps in float32 within bf16 rounding of fp32; the fp32 model is untouched."""
    bf16 = tiny_model.with_precision("bf16")
    assert bf16.unet is tiny_model.unet and tiny_model.precision == "fp32" and bf16.precision == "bf16"
    assert tiny_model.with_precision("fp32") is tiny_model
    x = torch.randn(3, 3, 16, 16, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        e32, e16 = tiny_model.eps(x, 300), bf16.eps(x, 300)
    assert e16.dtype == torch.float32
    rel = float((e16 - e32).norm() / e32.norm())
    assert 1e-5 < rel < 3e-2  # really bf16 (not fp32), and only bf16's rounding away
    with pytest.raises(ValueError, match="resolve 'auto' first"):
        tiny_model.with_precision("auto")


def test_a_bf16_network_first_called_in_inference_mode_still_takes_gradients():
    # the bf16 copy of the weights is made at the first bf16 call; made inside inference mode (a Denoise run, the
    # study's timing) it refused every later gradient through it (DPS): "Inference tensors cannot be saved"
    fresh = UNetModel(make_tiny_unet(16), scheduler_config(), name="tiny", device="cpu")  # no bf16 copy yet
    bf16 = fresh.with_precision("bf16")
    x = torch.randn(1, *fresh.sample_shape, generator=torch.Generator().manual_seed(0))
    with torch.inference_mode():
        bf16.eps(x, 300)
    x_in = x.clone().requires_grad_(True)
    (grad,) = torch.autograd.grad(bf16.x0_hat(x_in, 300).square().sum(), x_in)
    assert torch.isfinite(grad).all() and grad.abs().sum() > 0


def test_restore_names_its_precision_and_bf16_dps_tracks_fp32(tiny_model, face64):
    x0 = torch.nn.functional.avg_pool2d(face64, 4)
    problem = make_problem(x0, make_operator("gaussian_blur", 16), 0.05, seed=1)
    # the quadratic list, named: the bound below was set on it; on DPS deblurring's default list (logsnr) this tiny
    # 6-step run measured rel 0.12 between bf16 and fp32. This test is about the precision, not the list
    run = {"steps": 6, "spacing": "quadratic"}
    (r32,) = run_restoration(tiny_model, problem, ["dps"], overrides=run, precision="fp32")
    (r16,) = run_restoration(tiny_model, problem, ["dps"], overrides=run, precision="bf16")
    assert (r32.precision, r16.precision) == ("fp32", "bf16")
    assert abs(r16.psnr - r32.psnr) < 0.5
    rel = float((r16.reconstruction - r32.reconstruction).norm() / r32.reconstruction.norm())
    assert 1e-4 < rel < 0.1  # really bf16, not fp32, and only its rounding away
    (wiener,) = run_restoration(None, problem, ["wiener"], overrides={})
    assert wiener.precision is None  # no network, no precision


@pytest.mark.slow
def test_cli_precision_in_the_json_and_refused_for_jacobians(capsys, tmp_path, tiny_model_dir):
    base = ["--model", str(tiny_model_dir), "--image", "london_017_neutral"]
    code = main(["restore", *base, "--method", "sdedit", "--steps", "3", "--precision", "bf16", "--out", str(tmp_path)])
    out, err = capsys.readouterr()
    assert code == 0, err
    assert strict_loads(out.splitlines()[-1])["precision"] == "bf16"
    assert strict_loads((tmp_path / "metrics.json").read_text())["precision"] == "bf16"
    code = main(["sample", "--model", str(tiny_model_dir), "--n", "1", "--steps", "2", "--precision", "fp32",
                 "--out", str(tmp_path / "s")])  # fmt: skip
    out, _ = capsys.readouterr()
    assert code == 0 and strict_loads(out.splitlines()[-1])["precision"] == "fp32"
    probe = ["probe", *base, "--pixel", "3", "4", "--t", "100", "--out", str(tmp_path / "p")]
    assert main([*probe, "--precision", "bf16"]) == 2
    assert "fp32" in capsys.readouterr().err
    assert main([*probe, "--precision", "auto"]) == 0
    assert strict_loads(capsys.readouterr().out.splitlines()[-1])["precision"] == "fp32"
