"""The CLI contract, image input edge cases, metrics and classical baselines."""

import io
import subprocess
import sys

import numpy as np
import pytest
import torch
from PIL import Image

from diffdemo import baselines, metrics
from diffdemo.cli import main
from diffdemo.defaults import SPACING, step_size
from diffdemo.imaging import ImageError, bundled_images, grid, load_image, to_tensor, to_uint8
from diffdemo.models import load_model
from diffdemo.operators import BoxInpaint, GaussianBlur, make_operator
from diffdemo.restore import timesteps_for
from diffdemo.samplers import dps, posterior_mean, sample
from tests.conftest import strict_loads

RESTORE_KEYS = {"method", "operator", "psnr", "ssim", "lpips", "psnr_measurement", "seconds", "nfe"}


def _run(capsys, argv):
    code = main(argv)
    out, err = capsys.readouterr()
    return code, out, err


@pytest.mark.parametrize(
    "method,operator",
    [
        ("dps", "gaussian_blur"),
        ("score_ald", "box_inpaint"),
        ("sdedit", "random_inpaint"),
        ("denoise", "noise"),
        ("wiener", "gaussian_blur"),
        ("biharmonic", "box_inpaint"),
        ("tv", "random_inpaint"),
    ],
)
def test_restore_contract(capsys, tmp_path, tiny_model_dir, method, operator):
    out_dir = tmp_path / "run"
    code, out, err = _run(
        capsys,
        [
            "restore",
            "--model",
            str(tiny_model_dir),
            "--method",
            method,
            "--operator",
            operator,
            "--image",
            "london_017_neutral",
            "--steps",
            "3",
            "--out",
            str(out_dir),
        ],
    )
    assert code == 0, err
    result = strict_loads(out.strip().splitlines()[-1])
    assert RESTORE_KEYS <= set(result)
    assert result["method"] == method and result["operator"] == operator
    assert result["nfe"] == (3 if method in ("dps", "score_ald", "sdedit", "denoise") else 0)
    for name in ("truth.png", "measurement.png", "reconstruction.png"):
        assert np.asarray(Image.open(out_dir / name)).shape == (16, 16, 3)
    assert strict_loads((out_dir / "metrics.json").read_text())["psnr"] == pytest.approx(result["psnr"])
    # the tiny model's 16 px images are below AlexNet's smallest input: no number, and the reason says so
    assert result["lpips"] is None and "at least 32x32" in metrics.lpips_status(size=16)


def test_restore_is_deterministic(capsys, tmp_path, tiny_model_dir):
    args = ["restore", "--model", str(tiny_model_dir), "--method", "dps", "--steps", "4", "--seed", "9"]
    _, out1, _ = _run(capsys, [*args, "--out", str(tmp_path / "a")])
    _, out2, _ = _run(capsys, [*args, "--out", str(tmp_path / "b")])
    a, b = strict_loads(out1.splitlines()[-1]), strict_loads(out2.splitlines()[-1])
    assert a["psnr"] == b["psnr"]
    assert (tmp_path / "a/reconstruction.png").read_bytes() == (tmp_path / "b/reconstruction.png").read_bytes()
    # the CLI's default problem is deblurring: one DPS chain with the normalised step, the few-step list and the step
    # size tuned for the steps asked (defaults.py)
    assert a["params"]["samples"] == 1 and a["params"].get("normalize", True) is True
    assert a["params"]["spacing"] == "logsnr" and a["params"]["scale"] == step_size("dps", "gaussian_blur", 4)


@pytest.mark.parametrize("raw,samples", [(False, 1), (True, 1), (False, 3)])
def test_restore_dps_is_the_samplers_own_run(capsys, tmp_path, tiny_model_dir, raw, samples):
    """--raw-dps-step and --samples reach the sampler: the CLI's PSNR is that of samplers.dps (k chains in one
    batch, their mean) on the same seeded measurement, in fp32."""
    argv = ["restore", "--model", str(tiny_model_dir), "--method", "dps", "--steps", "4", "--seed", "9"]
    argv += ["--scale", "1", "--samples", str(samples), "--precision", "fp32", "--out", str(tmp_path)]
    code, out, err = _run(capsys, argv + (["--raw-dps-step"] if raw else []))
    assert code == 0, err
    line = strict_loads(out.strip().splitlines()[-1])
    assert line["params"]["samples"] == samples and line["params"].get("normalize", True) is not raw

    model = load_model(str(tiny_model_dir)).with_precision("fp32")
    x0 = to_tensor(load_image(bundled_images()["london_006_neutral"], 16))
    op = make_operator("gaussian_blur", 16)
    y = op.measure(x0, 0.05, torch.Generator().manual_seed(9)).repeat_interleave(samples, 0)
    ts = timesteps_for(model, 4, None, "logsnr")  # DPS deblurring's own list (defaults.TASK_DEFAULTS)
    chains = dps(model, op, y, scale=1.0, timesteps=ts, seed=9, normalize=not raw, every=1)
    *_, final = posterior_mean(chains, samples)
    assert line["psnr"] == pytest.approx(metrics.psnr(final.x_t.cpu(), x0), abs=1e-9)
    assert line["nfe"] == final.nfe == 4


def test_sample_contract(capsys, tmp_path, tiny_model_dir):
    """`sample` writes the seeded sampler's own pictures: each PNG is, pixel for pixel, that sample of
    samplers.sample (eq. 25) run on the same timestep list and seed, in fp32."""
    argv = ["sample", "--model", str(tiny_model_dir), "--n", "3", "--steps", "4", "--seed", "1"]
    code, out, err = _run(capsys, argv + ["--precision", "fp32", "--out", str(tmp_path)])
    assert code == 0, err
    result = strict_loads(out.strip().splitlines()[-1])
    assert result["n"] == 3 and result["nfe"] == 4 and result["precision"] == "fp32"
    model = load_model(str(tiny_model_dir)).with_precision("fp32")
    *_, final = sample(model, n=3, timesteps=timesteps_for(model, 4, None, SPACING), seed=1, every=None)
    written = sorted(tmp_path.glob("sample_*.png"))
    assert [p.name for p in written] == ["sample_000.png", "sample_001.png", "sample_002.png"]
    for i, path in enumerate(written):
        assert np.array_equal(np.asarray(Image.open(path)), to_uint8(final.x_t[i : i + 1])), path.name
    assert not np.array_equal(np.asarray(Image.open(written[0])), np.asarray(Image.open(written[1])))


@pytest.mark.parametrize(
    "argv,needle",
    [
        (["restore", "--method", "magic", "--out", "X"], "invalid choice"),
        (["restore", "--image", "/no/such.png", "--out", "X"], "no such image"),
        (["restore", "--image", __file__, "--out", "X"], "not a readable image"),
        (["restore", "--size", "13", "--out", "X"], "--size must be"),
        (["restore", "--steps", "5000", "--out", "X"], "steps"),
        (["restore", "--steps", "-3", "--out", "X"], "must be > 0"),
        (["restore", "--sigma-y", "-1", "--out", "X"], "--sigma-y must be"),
        (["restore", "--operator", "box_inpaint", "--box", "0", "0", "99", "99", "--out", "X"], "does not fit"),
        (["restore", "--method", "wiener", "--operator", "box_inpaint", "--out", "X"], "blurred images only"),
        (["restore", "--model", "nope", "--out", "X"], "no such model"),
        (["sample", "--n", "0", "--out", "X"], "must be > 0"),
        (["teleport"], "invalid choice"),
    ],
)
def test_errors_are_one_line_with_exit_code_2(capsys, tmp_path, tiny_model_dir, argv, needle):
    argv = [a.replace("X", str(tmp_path / "o")) for a in argv]
    if "--model" not in argv and argv[0] in ("restore", "sample"):
        argv += ["--model", str(tiny_model_dir)]
    code, out, err = _run(capsys, argv)
    assert code == 2
    assert err.count("\n") == 1 and err.startswith("error: ") and needle in err, err
    assert "Traceback" not in err and out == ""


@pytest.mark.slow
def test_real_process_exit_code_and_last_line_json(tmp_path, tiny_model_dir):
    ok = subprocess.run(
        [
            sys.executable,
            "-m",
            "diffdemo",
            "restore",
            "--model",
            str(tiny_model_dir),
            "--method",
            "wiener",
            "--out",
            str(tmp_path),
        ],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert ok.returncode == 0, ok.stderr
    assert strict_loads(ok.stdout.strip().splitlines()[-1])["method"] == "wiener"
    bad = subprocess.run(
        [sys.executable, "-m", "diffdemo", "restore", "--method", "nope", "--out", str(tmp_path)],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert bad.returncode == 2 and "Traceback" not in bad.stderr


# --- images ---------------------------------------------------------------------------------------


def _png_bytes(img: Image.Image, fmt="PNG") -> bytes:
    buf = io.BytesIO()
    img.save(buf, format=fmt)
    return buf.getvalue()


def test_load_image_handles_modes_and_sizes():
    gray = Image.fromarray(np.full((50, 80), 200, np.uint8), "L")
    out = load_image(_png_bytes(gray), 32)
    assert out.shape == (32, 32, 3) and out.dtype == np.uint8 and (out == 200).all()
    rgba = Image.fromarray(np.dstack([np.zeros((40, 40, 3), np.uint8), np.zeros((40, 40), np.uint8)]), "RGBA")
    assert (load_image(_png_bytes(rgba), 16) == 255).all()  # fully transparent -> white background
    pal = Image.fromarray(np.random.default_rng(0).integers(0, 255, (30, 30, 3), dtype=np.uint8)).convert("P")
    assert load_image(_png_bytes(pal, "GIF"), 16).shape == (16, 16, 3)
    wide = np.zeros((20, 100, 3), np.uint8)
    wide[:, 40:60] = 255  # the centre crop keeps exactly the white band
    assert (load_image(wide, 20) == 255).all()
    assert load_image(np.ones((64, 64, 3)), 64).max() == 255  # float [0, 1] arrays
    with pytest.raises(ImageError, match="at least"):
        load_image(np.zeros((8, 100, 3), np.uint8), 64)
    with pytest.raises(ImageError, match="not a readable image"):
        load_image(b"%PDF-1.4 not an image", 64)
    with pytest.raises(ImageError, match="no such image"):
        load_image("/definitely/missing.png", 64)


def test_tensor_roundtrip_and_grid():
    img = load_image(bundled_images()["cc0_lisa1"], 64)
    x = to_tensor(img)
    assert x.shape == (1, 3, 64, 64) and -1 <= x.min() and x.max() <= 1
    assert np.array_equal(to_uint8(x), img)
    g = grid(torch.cat([x, -x, x]), nrow=2, pad=2)
    assert g.shape == (2 * 66 + 2, 2 * 66 + 2, 3)
    assert np.array_equal(g[2:66, 2:66], img)


def test_bundled_images_are_all_there():
    assert set(bundled_images()) >= {
        "london_006_neutral",
        "london_017_neutral",
        "london_025_neutral",
        "london_081_neutral",
        "cc0_lisa1",
        "pd_astronaut_eileen_collins",
    }


# --- metrics and baselines ------------------------------------------------------------------------


def test_psnr_ssim_known_values():
    x = torch.zeros(1, 3, 32, 32)
    y = x + 0.2  # 0.1 on the [0, 1] scale -> MSE 0.01 -> 20 dB
    assert metrics.psnr(y, x) == pytest.approx(20.0, abs=1e-6)
    assert metrics.ssim(x, x) == pytest.approx(1.0)
    assert metrics.ssim(y, x) < 1.0
    assert metrics.lpips_status(size=32) == "available"  # shipped weights, no network needed
    assert metrics.lpips(x, x) == 0.0 and metrics.lpips(y, x) > 0.0


def test_baselines_beat_the_measurement(face64):
    blur = GaussianBlur(13, 2.0)
    y = blur.measure(face64, 0.05, torch.Generator().manual_seed(0))
    base = metrics.psnr(y, face64)
    for method in baselines.DEBLUR_BASELINES:
        assert metrics.psnr(baselines.restore_baseline(method, y, blur), face64) > base + 1.0, method
    box = BoxInpaint(64, preset="eyes")
    y = box.measure(face64, 0.05, torch.Generator().manual_seed(0))
    filled = baselines.restore_baseline("biharmonic", y, box)
    assert metrics.psnr(filled, face64) > metrics.psnr(box.init_estimate(y), face64)
    # the kept pixels are left as measured by biharmonic inpainting
    assert torch.allclose((filled * box.mask)[..., :10, :], (y.clamp(-1, 1) * box.mask)[..., :10, :], atol=1e-2)


def test_baseline_applicability():
    assert baselines.applicable(make_operator("gaussian_blur", 64)) == baselines.DEBLUR_BASELINES
    assert "biharmonic" in baselines.applicable(make_operator("box_inpaint", 64))
    with pytest.raises(ValueError, match="unknown baseline"):
        baselines.restore_baseline("magic", torch.zeros(1, 3, 8, 8), make_operator("noise", 8))


def test_cli_defaults_are_defaults_py_and_samplers_have_none_of_their_own():
    import inspect

    from diffdemo import defaults, samplers
    from diffdemo.cli import build_parser

    parser = build_parser()
    restore = parser.parse_args(["restore", "--out", "o"])
    assert (restore.sigma_y, restore.seed, restore.image, restore.drop) == (
        defaults.SIGMA_Y,
        defaults.SEED,
        defaults.IMAGE,
        defaults.DROP,
    )
    assert all(getattr(restore, k) is None for k in ("steps", "t0", "scale", "zeta", "samples", "spacing"))
    sample = parser.parse_args(["sample", "--out", "o"])
    assert {"n": sample.n, "steps": sample.steps, "spacing": sample.spacing} == defaults.SAMPLE
    assert sample.seed == defaults.SEED  # restore's None above: each method's own tuned list (params_for)
    assert parser.parse_args(["reproduce", "--out", "o"]).seed == defaults.SEED
    tuned = {"steps", "t0", "scale", "zeta", "sigma_y", "n"}
    for fn in (samplers.denoise, samplers.sample, samplers.sdedit, samplers.score_ald, samplers.dps):
        params = inspect.signature(fn).parameters
        for name in tuned & set(params):
            assert params[name].kind is inspect.Parameter.KEYWORD_ONLY, (fn.__name__, name)
            assert params[name].default is inspect.Parameter.empty, (fn.__name__, name)


def test_schedule_is_a_hidden_alias_of_spacing(capsys):
    """--spacing names the timestep spacing; --schedule, its name before the rename, still sets it but is not shown."""
    from diffdemo.cli import build_parser

    parser = build_parser()
    for command in ("restore", "sample", "denoise"):
        assert parser.parse_args([command, "--out", "o", "--schedule", "karras"]).spacing == "karras"
        assert parser.parse_args([command, "--out", "o", "--spacing", "logsnr"]).spacing == "logsnr"
    assert parser.parse_args(["sample", "--out", "o"]).spacing == SPACING
    with pytest.raises(SystemExit):
        parser.parse_args(["restore", "--help"])
    shown = capsys.readouterr().out
    assert "--spacing" in shown and "--schedule" not in shown


def _special_files(tmp_path):
    """A FIFO, a listening Unix socket and a device: what --image must refuse before opening it."""
    import os
    import socket

    fifo = tmp_path / "fifo.png"
    os.mkfifo(fifo)
    sock_path = tmp_path / "sock.png"
    sock = socket.socket(socket.AF_UNIX)
    sock.bind(str(sock_path))
    return {"FIFO": fifo, "socket": sock_path, "device": "/dev/zero"}, sock


def test_cli_refuses_fifo_socket_and_device_as_image_before_opening(capsys, tmp_path, tiny_model_dir):
    """Reading a FIFO would wait forever and /dev/zero never ends: each is refused at once, exit 2, one line."""
    import time

    files, sock = _special_files(tmp_path)
    try:
        for kind, path in files.items():
            started = time.monotonic()
            argv = ["restore", "--model", str(tiny_model_dir), "--image", str(path), "--method", "wiener"]
            code, out, err = _run(capsys, [*argv, "--out", str(tmp_path / "out")])
            assert code == 2 and len(err.strip().splitlines()) == 1 and "not a regular file" in err, (kind, err)
            assert time.monotonic() - started < 10 and not (tmp_path / "out").exists()
        with pytest.raises(ImageError, match="not a readable image file"):  # the library refuses them too
            load_image(str(files["FIFO"]), 16)
    finally:
        sock.close()


@pytest.mark.parametrize(
    "out, needle",
    [
        ("x" * 300, "name is too long"),
        ("/proc/nope/x", "cannot be written here"),
        ("/proc/nope/" + "y" * 5000, "name is too long"),
    ],
)
def test_cli_refuses_unwritable_or_overlong_out_before_work(capsys, tiny_model_dir, out, needle):
    argv = ["restore", "--model", str(tiny_model_dir), "--method", "dps", "--steps", "2", "--out", out]
    code, _, err = _run(capsys, argv)
    assert code == 2 and len(err.strip().splitlines()) == 1 and needle in err, err
    assert len(err) < 200  # the 5,000-character name is not echoed whole
