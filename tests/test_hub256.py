"""The poster's 256x256 hub model path without a network: google/ddpm-celebahq-256's architecture and folder layout
(random weights, channels shrunk) loads from safetensors and from a weights-only .bin, runs every task, and a .bin
whose pickle would run code is refused before any of it runs."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from diffdemo import models
from diffdemo.cli import main
from diffdemo.hub_layout import CELEBAHQ_256_UNET, celebahq_unet, save_pipeline_folder
from diffdemo.models import ModelUnavailable, load_model
from tests.conftest import strict_loads

pytestmark = pytest.mark.slow
WIDTHS = (8, 8, 16, 16, 32, 32)  # the real model: 128, 128, 256, 256, 512, 512


def _old_attention_names(state: dict) -> dict:
    """The state dict as the 2022 hub .bin files store it: attention projections named query/key/value/proj_attn."""
    renames = {".to_q.": ".query.", ".to_k.": ".key.", ".to_v.": ".value.", ".to_out.0.": ".proj_attn."}
    out = {}
    for key, value in state.items():
        for new, old in renames.items():
            key = key.replace(new, old)
        out[key] = value
    return out


@pytest.fixture(scope="module")
def hub_folders(tmp_path_factory):
    """(unet, safetensors folder, .bin-only folder, 256 px safetensors folder) in the hub repo's layout."""
    root = tmp_path_factory.mktemp("celebahq_layout")
    unet = celebahq_unet(WIDTHS, sample_size=32)
    safe = save_pipeline_folder(unet, root / "safetensors", "safetensors")
    binary = save_pipeline_folder(unet, root / "bin", "bin")
    state = _old_attention_names(unet.state_dict())
    assert any(".query." in k for k in state)
    torch.save(state, binary / "unet" / "diffusion_pytorch_model.bin")
    big = save_pipeline_folder(celebahq_unet(WIDTHS, sample_size=256), root / "s256", "safetensors")
    return unet, safe, binary, big


def test_layout_matches_the_hub_repository(hub_folders):
    _, safe, binary, _ = hub_folders
    for folder, weights in ((safe, "diffusion_pytorch_model.safetensors"), (binary, "diffusion_pytorch_model.bin")):
        assert (folder / "model_index.json").is_file() and (folder / "scheduler" / "scheduler_config.json").is_file()
        assert sorted(p.name for p in (folder / "unet").iterdir()) == sorted(["config.json", weights])
        config = json.loads((folder / "unet" / "config.json").read_text())
        for key in ("down_block_types", "up_block_types", "layers_per_block", "downsample_padding", "freq_shift"):
            assert config[key] == CELEBAHQ_256_UNET[key], key


def test_both_weight_formats_load_the_same_network(hub_folders):
    unet, safe, binary, _ = hub_folders
    x = torch.randn(2, 3, 32, 32, generator=torch.Generator().manual_seed(0))
    t = torch.tensor([10, 700])
    with torch.no_grad():
        expected = unet.eval()(x, t).sample
    outputs = []
    for folder in (safe, binary):
        model = load_model(str(folder), device="cpu")
        assert model.sample_shape == (3, 32, 32)
        assert model.schedule.T == 1000 and model.schedule.abar(999) < 1e-4  # linear 1e-4..0.02
        with torch.no_grad():
            outputs.append(model.eps(x, t))
    assert torch.equal(outputs[0], outputs[1])  # the same weights, bit for bit, from either file
    torch.testing.assert_close(outputs[0], expected, rtol=1e-4, atol=1e-5)  # channels_last reorders sums only


@pytest.mark.parametrize("which", ["safetensors", "bin"])
def test_every_task_runs_through_the_engine(hub_folders, which, tmp_path, capsys):
    folder = str(hub_folders[1] if which == "safetensors" else hub_folders[2])
    common = ["--model", folder, "--image", "london_006_neutral"]
    runs = {
        f"restore_{m}": ["restore", *common, "--method", m, "--steps", "2", "--out", str(tmp_path / m)]
        for m in ("denoise", "sdedit", "score_ald", "dps")
    }
    runs["sample"] = ["sample", "--model", folder, "--n", "1", "--steps", "2", "--out", str(tmp_path / "s")]
    runs["probe"] = [
        "probe",
        *common,
        "--pixel",
        "10",
        "20",
        "--t",
        "200",
        "--t-sweep",
        "50,500",
        "--out",
        str(tmp_path / "p"),
    ]
    runs["spectrum"] = ["spectrum", *common, "--t", "200", "--k", "1", "--iters", "2", "--out", str(tmp_path / "sp")]
    for name, argv in runs.items():
        code = main(argv)
        out, err = capsys.readouterr()
        assert code == 0, f"{name}: {err}"
        result = strict_loads(out.strip().splitlines()[-1])
        if name.startswith("restore"):
            assert np.isfinite(result["psnr"]) and result["lpips"] is not None  # 32 px: LPIPS is defined
    assert np.asarray(Image.open(tmp_path / "dps" / "reconstruction.png")).shape == (32, 32, 3)


def test_a_256_model_works_at_its_own_size(hub_folders, tmp_path, capsys):
    """Image sizes follow the model: a 256x256 restoration and probe come out at 256x256."""
    folder = str(hub_folders[3])
    code = main(
        [
            "restore",
            "--model",
            folder,
            "--method",
            "dps",
            "--steps",
            "1",
            "--samples",
            "1",
            "--out",
            str(tmp_path / "r"),
        ]
    )
    out, err = capsys.readouterr()
    assert code == 0, err
    assert np.asarray(Image.open(tmp_path / "r" / "reconstruction.png")).shape == (256, 256, 3)
    assert strict_loads(out.strip().splitlines()[-1])["lpips"] is not None
    code = main(["probe", "--model", folder, "--pixel", "200", "100", "--t", "300", "--out", str(tmp_path / "p")])
    _, err = capsys.readouterr()
    assert code == 0, err
    assert np.asarray(Image.open(tmp_path / "p" / "image.png")).shape == (256, 256, 3)


class _WritesMarker:
    """Unpickling this object writes a file: what a malicious .bin would do (run code on load)."""

    def __init__(self, marker: Path):
        self.marker = marker

    def __reduce__(self):
        return (Path.write_text, (self.marker, "code ran"))


def test_a_bin_that_would_run_code_is_refused(hub_folders, tmp_path):
    unet, _, binary, _ = hub_folders
    evil = tmp_path / "evil"
    (evil / "unet").mkdir(parents=True)
    for name in ("model_index.json", "scheduler"):
        src = binary / name
        if src.is_dir():
            (evil / name).mkdir()
            for f in src.iterdir():
                (evil / name / f.name).write_bytes(f.read_bytes())
        else:
            (evil / name).write_bytes(src.read_bytes())
    (evil / "unet" / "config.json").write_bytes((binary / "unet" / "config.json").read_bytes())
    marker = tmp_path / "marker.txt"
    state = dict(unet.state_dict())
    state["conv_in.weight"] = _WritesMarker(marker)
    torch.save(state, evil / "unet" / "diffusion_pytorch_model.bin")
    # the planted file is real: a full unpickle runs its code (on a copy, with its own marker)
    control = tmp_path / "control.bin"
    torch.save({"x": _WritesMarker(tmp_path / "control.txt")}, control)
    torch.load(control, weights_only=False)
    assert (tmp_path / "control.txt").read_text() == "code ran"

    with pytest.raises(ModelUnavailable) as info:
        load_model(str(evil), device="cpu")
    message = str(info.value)
    assert "refused diffusion_pytorch_model.bin" in message and "\n" not in message
    assert not marker.exists()
    assert (str(evil), "cpu") not in models._cache


def test_cli_reports_the_refusal_in_one_line(hub_folders, tmp_path, capsys):
    unet, _, binary, _ = hub_folders
    evil = tmp_path / "evil2"
    save_pipeline_folder(unet, evil, "bin")
    marker = tmp_path / "marker2.txt"
    torch.save({"w": _WritesMarker(marker)}, evil / "unet" / "diffusion_pytorch_model.bin")
    code = main(["sample", "--model", str(evil), "--n", "1", "--steps", "1", "--out", str(tmp_path / "o")])
    out, err = capsys.readouterr()
    assert code == 2 and out == ""
    assert err.startswith("error: refused diffusion_pytorch_model.bin") and err.count("\n") == 1
    assert not marker.exists()
