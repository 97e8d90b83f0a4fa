"""Training: the colour term of the loss, and a real (two-step) run that exports, resumes and records its recipe."""

import pytest
import torch

from diffdemo.modelcard import _reproduce_lines, colour_stats
from diffdemo.models import load_model
from diffdemo.train import STATE_FILE, dc_loss, main
from tests.conftest import strict_loads


def test_dc_loss_is_the_error_of_the_per_channel_means():
    g = torch.Generator().manual_seed(0)
    noise = torch.randn(4, 3, 8, 8, generator=g)
    pred = noise + 0.1 * torch.randn(4, 3, 8, 8, generator=g)
    shift = torch.tensor([0.3, -0.2, 0.5]).view(1, 3, 1, 1)
    # a constant per-channel offset adds exactly its square on top of the zero-mean part
    zero_mean = pred - pred.mean((2, 3), keepdim=True) + noise.mean((2, 3), keepdim=True)
    assert dc_loss(zero_mean, noise).item() == pytest.approx(0.0, abs=1e-12)
    assert dc_loss(zero_mean + shift, noise).item() == pytest.approx(shift.pow(2).mean().item(), rel=1e-5)
    # the plain MSE contains the term once (Jensen): it is never smaller
    assert torch.nn.functional.mse_loss(pred, noise) >= dc_loss(pred, noise)


def test_colour_stats_separate_a_cast_from_a_brightness_change():
    gen = torch.Generator().manual_seed(0)
    faces = torch.rand(8, 3, 16, 16, generator=gen) * 0.5 - 0.25  # varied, roughly neutral images
    darker = (faces + 1) * torch.linspace(0.6, 1.0, 8).view(8, 1, 1, 1) - 1  # brightness only
    tinted = faces + torch.tensor([0.3, 0.0, -0.3]).view(1, 3, 1, 1)  # a red cast
    base, dark, red = colour_stats(faces), colour_stats(darker), colour_stats(tinted)
    assert base["mean_chroma_pct"] == pytest.approx(dark["mean_chroma_pct"], abs=1e-6)
    assert base["std_chroma_pct"] == pytest.approx(dark["std_chroma_pct"], abs=1e-6)
    assert dark["brightness"][1] > 5 * base["brightness"][1]
    assert red["mean_chroma_pct"][0] > base["mean_chroma_pct"][0] + 5
    assert red["mean_chroma_pct"][2] < base["mean_chroma_pct"][2] - 5
    grey = colour_stats(torch.zeros(2, 3, 4, 4))
    assert grey["mean_chroma_pct"] == pytest.approx([100 / 3] * 3, abs=0.01)
    assert grey["brightness"] == pytest.approx([127.5, 0.0])


def test_phases_recorded_before_the_lr_was_tracked_continue_at_the_default_lr():
    from argparse import Namespace

    from diffdemo.train import _record_phase

    state = {"step": 6250, "phases": [{"from_step": 4509, "norm_groups": 8, "dc_weight": 50.0}]}
    _record_phase(state, Namespace(norm_groups=8, dc_weight=50.0, lr=3e-4))
    assert len(state["phases"]) == 1
    _record_phase(state, Namespace(norm_groups=8, dc_weight=50.0, lr=1e-4))
    assert state["phases"][-1] == {"from_step": 6250, "norm_groups": 8, "dc_weight": 50.0, "lr": 1e-4}


def adam_steps(ckpt) -> set[int]:
    """The step counts AdamW holds for the parameters in the checkpoint."""
    opt = torch.load(ckpt / "state.pt", weights_only=True)["opt"]
    return {int(s["step"]) for s in opt["state"].values()}


def test_two_steps_export_resume_and_record_the_recipe(tmp_path):
    out, ckpt = tmp_path / "model", tmp_path / "ckpt"
    common = ["--batch-size", "2", "--threads", "1", "--out", str(out), "--ckpt-dir", str(ckpt), "--warmup", "1"]
    main(["--steps", "2", "--dc-weight", "1", *common])
    state = strict_loads((out / STATE_FILE).read_text())
    assert state["step"] == 2 and state["phases"] == [{"from_step": 0, "norm_groups": 8, "dc_weight": 1.0, "lr": 3e-4}]
    assert adam_steps(ckpt) == {2}

    main(["--steps", "3", "--resume", "--dc-weight", "50", *common])
    state = strict_loads((out / STATE_FILE).read_text())
    assert state["step"] == 3
    assert [p["from_step"] for p in state["phases"]] == [0, 2] and state["phases"][-1]["dc_weight"] == 50.0
    assert adam_steps(ckpt) == {3}  # it trained on from the checkpoint, optimizer included (2 + 1, not 1)

    main(["--steps", "4", "--resume", "--dc-weight", "50", *common])  # same recipe: no new phase
    main(["--steps", "5", "--resume", "--dc-weight", "50", "--lr", "1e-4", *common])
    state = strict_loads((out / STATE_FILE).read_text())
    assert [(p["from_step"], p["lr"]) for p in state["phases"]] == [(0, 3e-4), (2, 3e-4), (4, 1e-4)]
    assert _reproduce_lines(state).splitlines() == [
        "python -m diffdemo.train --steps 2 --resume --norm-groups 8 --dc-weight 1 --lr 0.0003",
        "python -m diffdemo.train --steps 4 --resume --norm-groups 8 --dc-weight 50 --lr 0.0003",
        "python -m diffdemo.train --steps 5 --resume --norm-groups 8 --dc-weight 50 --lr 0.0001",
    ]

    model = load_model(str(out), device="cpu")  # the export is a loadable diffusers folder
    assert model.unet.config.norm_num_groups == 8
    with torch.no_grad():
        eps = model.eps(torch.zeros(1, 3, 64, 64), torch.tensor([500]))
    assert eps.shape == (1, 3, 64, 64) and torch.isfinite(eps).all()
