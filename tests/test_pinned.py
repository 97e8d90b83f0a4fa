"""Pinned output slices (diffusers-style): every sampler and the Jacobian probe on the tiny seeded UNet.

Each case runs a few steps (fp32, CPU) and compares a fixed 3x3 patch, all channels (27 numbers), of x_t after the
next-to-last step (before the final clamp to [-1, 1] hides small changes) and after the last (the probe: of its
Jacobian column), and the network evaluations, with values recorded from the code. The exact-oracle tests (Gaussian prior) prove the maths; these prove that a
refactor did not change the numbers. A case fails when a sampler's arithmetic, its random draws (order or
generator), its timestep list or the network's input conventions change.

Re-record ONLY for an intentional numerical change (say which in the commit message), never to make a failure
go away: ``python3 -m tests.test_pinned`` prints the PINNED table to paste in place of the one below. The weights come from
``torch.manual_seed(0)`` in tests/conftest.py's make_tiny_unet, so a diffusers release that builds its layers in
another order also moves every number (then all cases fail at once and the table is re-recorded).
"""

from __future__ import annotations

import pytest
import torch

from diffdemo import analysis
from diffdemo.imaging import bundled_images, load_image, to_tensor
from diffdemo.operators import BoxInpaint, GaussianBlur
from diffdemo.restore import timesteps_for
from diffdemo.samplers import denoise as denoise_sampler
from diffdemo.samplers import dps, posterior_mean, reverse_process, sample, score_ald, sdedit

ATOL = 1e-4  # float32 on other CPUs / thread counts moves these by ~1e-6; a real change moves them by >1e-3
SIGMA_Y = 0.05
PIXEL = (6, 6)  # the probe's pixel: inside the pinned patch


def patch(x: torch.Tensor) -> list[float]:
    """The pinned slice: image 0, every channel, rows and columns 5..7, flattened (27 numbers)."""
    if x.dim() == 3:
        x = x[None]
    return [round(float(v), 6) for v in x[0, :, 5:8, 5:8].flatten()]


def ends(frames) -> tuple[list[float], int]:
    """(pinned slices, network evaluations) of a sampler run to the end with a frame per step: the slice of x_t
    after the next-to-last step (no clamp has touched it yet) then after the last step."""
    frames = list(frames)
    return patch(frames[-2].x_t) + patch(frames[-1].x_t), frames[-1].nfe


def problem(op_name: str):
    """The bundled test face at 16 px, and its measurement y = A x0 + 0.05 n (noise seed 0)."""
    x0 = to_tensor(load_image(bundled_images()["london_006_neutral"], 16))
    op = GaussianBlur(5, 1.5) if op_name == "blur" else BoxInpaint(16, (4, 4, 8, 8))
    return x0, op, op.measure(x0, SIGMA_Y, torch.Generator().manual_seed(0))


def uniform(model, steps: int, start: int | None = None) -> list[int]:
    """The uniform stride the samplers ran before they took a list (their pinned values are unchanged)."""
    return timesteps_for(model, steps, start, "uniform")


def run_case(model, name: str) -> tuple[list[float], int | None]:
    """(pinned slices, network evaluations) of one case."""
    x0, blur, y = problem("blur")
    if name == "reverse_process":
        x = torch.randn(1, 3, 16, 16, generator=torch.Generator().manual_seed(3))
        return ends(reverse_process(model, x, [600, 400, 200, 0], seed=1, every=1))
    elif name == "denoise":
        x_t = analysis.state_at(model, x0, 300, seed=2)
        return ends(denoise_sampler(model, x_t, timesteps=uniform(model, 4, 300), seed=0, stochastic=False, every=1))
    elif name == "sample":
        return ends(sample(model, n=2, timesteps=uniform(model, 5), seed=4, every=1))
    elif name == "sdedit":
        _, box, y_box = problem("box")
        return ends(sdedit(model, box, y_box, timesteps=uniform(model, 4, 300), seed=5, every=1))
    elif name == "score_ald":
        return ends(score_ald(model, blur, y, zeta=1.0, sigma_y=SIGMA_Y, timesteps=uniform(model, 5), seed=6, every=1))
    elif name == "dps":
        return ends(dps(model, blur, y, scale=1.0, timesteps=uniform(model, 5), seed=7, normalize=True, every=1))
    elif name == "dps_raw":
        return ends(dps(model, blur, y, scale=1.0, timesteps=uniform(model, 5), seed=7, normalize=False, every=1))
    elif name == "dps_karras":
        karras = timesteps_for(model, 5, None, "karras")
        return ends(dps(model, blur, y, scale=1.0, timesteps=karras, seed=7, normalize=True, every=1))
    elif name == "posterior_mean":  # 3 chains of DPS in one batch, their mean (diffdemo/samplers.posterior_mean)
        ys = y.repeat_interleave(3, 0)
        chains = dps(model, blur, ys, scale=1.0, timesteps=uniform(model, 4), seed=8, normalize=True, every=1)
        frames = list(posterior_mean(chains, 3))  # the chains' mean after the next-to-last step, their final spread
        return patch(frames[-2].x_t) + patch(frames[-1].x_std), frames[-1].nfe
    elif name == "probe":
        x_t = analysis.state_at(model, x0, 200, seed=0)
        r = analysis.probe(
            model,
            x_t,
            200,
            PIXEL,
            channel=None,
            method="jvp",
            eps=1e-2,
            energy_on="denoiser",
            exclude_centre=False,
            compare=False,
            t_prev=None,
        )
        return patch(r.columns["score"]), None  # no sampler: no evaluation count
    else:
        raise KeyError(name)


# recorded by `python3 -m tests.test_pinned` (torch 2.14.1+cu130, diffusers 0.42.1, CPU fp32)
# 9 numbers a line: one channel of the 3x3 patch
# fmt: off
PINNED: dict[str, tuple[list[float], int | None]] = {
    "reverse_process": (
        [
            0.257051, -1.001605, 1.010482, -1.018095, -0.999171, 0.954875, -1.003853, 0.666019, -1.009120,
            -0.225085, -0.808728, -0.998493, -1.002092, 0.875564, -0.987797, 1.015322, 1.002722, -1.014656,
            0.629009, 0.991420, 0.997643, -0.984365, 0.579335, -0.998145, 0.497131, 0.993181, 0.293726,
            0.259358, -1.000000, 1.000000, -1.000000, -0.997669, 0.951214, -1.000000, 0.670566, -1.000000,
            -0.230833, -0.808317, -1.000000, -1.000000, 0.866556, -0.988136, 1.000000, 0.991934, -1.000000,
            0.626113, 0.987771, 0.997747, -0.992265, 0.572731, -1.000000, 0.504426, 0.993154, 0.289332,
        ],
        4,
    ),
    "denoise": (
        [
            -0.999956, -0.178365, 0.999879, -0.968894, -0.472940, 0.999969, 0.892457, -0.592864, 0.650862,
            -0.881731, -0.922693, -1.000038, -0.859975, -1.000058, -0.981706, 0.757597, -0.750028, -0.999962,
            -0.768411, -1.000010, 0.853240, -1.000005, -0.999960, -0.999964, 1.000069, -0.378489, -1.000009,
            -1.000000, -0.181449, 1.000000, -0.966951, -0.474163, 1.000000, 0.887666, -0.593120, 0.647293,
            -0.887416, -0.925333, -1.000000, -0.863967, -1.000000, -0.982626, 0.757053, -0.753230, -1.000000,
            -0.765234, -0.999487, 0.849158, -1.000000, -1.000000, -1.000000, 0.999764, -0.378405, -1.000000,
        ],
        4,
    ),
    "sample": (
        [
            -0.996867, -0.043885, 0.325954, 1.014224, 0.612423, 0.993426, -0.893986, -0.238338, 1.004874,
            -0.210055, -0.999231, -1.006516, -0.965024, 1.001012, 1.007058, 0.438116, 0.983921, -0.989565,
            0.540562, 0.976000, 0.998397, 1.003143, -0.923382, 1.004142, 0.985359, 1.000841, -0.678274,
            -0.999620, -0.040454, 0.331372, 1.000000, 0.611482, 0.991436, -0.898464, -0.234889, 1.000000,
            -0.209578, -1.000000, -1.000000, -0.973034, 1.000000, 1.000000, 0.433174, 0.985328, -0.996280,
            0.545400, 0.977427, 1.000000, 0.999014, -0.921605, 1.000000, 0.986074, 1.000000, -0.681397,
        ],
        5,
    ),
    "sdedit": (
        [
            -0.985276, -0.842073, -1.013112, 0.388044, 0.895637, -0.989809, 0.222596, -0.468591, -0.997174,
            -0.021345, -1.010586, -1.005817, 1.008448, -1.003117, -0.834001, -0.702047, -0.831445, 0.417638,
            -0.986317, 1.000447, -0.877550, 0.918333, 1.007665, -0.058990, 1.006218, 0.618890, -0.333869,
            -0.992870, -0.845067, -1.000000, 0.387991, 0.895175, -0.991289, 0.219007, -0.475451, -0.998692,
            -0.025589, -1.000000, -1.000000, 1.000000, -1.000000, -0.834892, -0.712243, -0.840237, 0.415007,
            -0.985922, 1.000000, -0.885718, 0.924852, 1.000000, -0.062268, 1.000000, 0.614291, -0.333771,
        ],
        4,
    ),
    "score_ald": (
        [
            -0.996326, 0.595065, 0.168405, -0.471100, 0.227911, 1.157504, 0.915668, 0.905363, 0.295055,
            0.349096, 1.405291, 1.319047, -0.386979, -0.485983, -0.689294, -0.448544, -0.561039, -0.695772,
            -0.983045, -0.396070, -0.815848, 0.976232, -0.770393, -0.095339, -0.806815, 0.853195, -0.698073,
            -0.999247, 0.593490, 0.166731, -0.473062, 0.224624, 0.995197, 0.906431, 0.899556, 0.289318,
            0.331839, 0.989215, 0.998766, -0.405407, -0.502632, -0.698818, -0.459354, -0.565397, -0.699990,
            -0.991507, -0.404894, -0.817734, 0.970642, -0.772996, -0.094873, -0.808230, 0.853314, -0.701975,
        ],
        5,
    ),
    "dps": (
        [
            0.191219, -0.646182, 0.844112, -0.171688, 0.413999, 1.003235, 0.474549, -0.805008, 1.000065,
            0.198740, 1.028530, 0.133122, -0.991664, -1.002816, -0.989800, -0.574353, 0.888608, 0.990748,
            -1.011931, -1.010614, -0.074326, 0.994435, 0.121274, -1.008610, 0.999890, 0.992836, 0.609173,
            0.173462, -0.657020, 0.843399, -0.189809, 0.402117, 0.999888, 0.455274, -0.818248, 0.999880,
            0.164961, 1.000227, 0.124124, -1.014807, -0.999725, -0.991591, -0.586710, 0.889774, 0.999299,
            -1.000626, -1.000438, -0.118858, 0.939523, 0.062207, -1.000330, 0.999754, 0.928059, 0.549337,
        ],
        5,
    ),
    "dps_raw": (
        [
            0.249993, -0.637843, 0.738349, -0.334110, 0.393631, 1.009533, 0.483226, -0.803500, 1.000785,
            0.187843, 1.030745, 0.018902, -0.995486, -1.002938, -0.990706, -0.629517, 0.980298, 0.993115,
            -1.004761, -1.004217, -0.369189, 0.996110, 0.175866, -1.008602, 1.000801, 0.991538, 0.653921,
            0.237256, -0.644361, 0.739613, -0.346625, 0.385621, 0.999979, 0.468841, -0.812409, 0.999836,
            0.162247, 1.000165, 0.011832, -1.012325, -0.999930, -0.990880, -0.640066, 0.981273, 1.000012,
            -1.000454, -1.000360, -0.403585, 0.999870, 0.132520, -1.000321, 0.999903, 0.944961, 0.610102,
        ],
        5,
    ),
    "dps_karras": (
        [
            0.405608, -0.753742, 0.280712, -0.930850, 0.688400, 1.005956, 0.649461, -0.878892, 1.010330,
            0.446089, 1.038477, 0.282850, -0.999611, -1.004214, -0.994807, -0.767791, 0.324847, 0.996275,
            -0.936101, -1.003649, 0.724210, 0.998411, -0.235196, -1.005442, 0.770410, 0.993514, 0.518852,
            0.399374, -0.750891, 0.296833, -0.937730, 0.686261, 1.000045, 0.639365, -0.885553, 1.000136,
            0.409030, 1.000326, 0.266861, -1.022018, -0.999884, -1.001822, -0.777501, 0.322686, 1.001259,
            -0.979901, -1.000312, 0.671726, 0.999822, -0.291260, -1.000417, 0.705125, 0.932755, 0.460860,
        ],
        5,
    ),
    "posterior_mean": (
        [
            -0.512419, -0.000066, -0.205253, -0.775286, 0.541224, 0.326953, 0.490461, -0.399739, -0.469084,
            -0.719956, -0.130835, -0.171356, 0.246139, -0.330587, 0.705402, 0.338827, -1.007788, -0.100445,
            -0.922103, -0.024400, -0.229920, 1.009665, -0.467172, 0.002313, -0.330986, -0.189555, -0.265722,
            0.692909, 0.793540, 0.732511, 0.335890, 0.170309, 0.939855, 0.699588, 0.311453, 0.383978,
            0.391921, 0.676567, 0.831073, 0.885216, 0.934835, 0.234409, 0.909906, 0.013980, 0.813823,
            0.108688, 0.800617, 0.852671, 0.025965, 0.730410, 0.791368, 0.950517, 0.862183, 0.545740,
        ],
        4,
    ),
    "probe": (
        [
            -0.034121, 0.024709, 0.391326, 0.093486, 0.261045, 0.344142, 0.197326, 0.310237, -0.011280,
            -0.018414, 0.132368, 0.000296, -0.001044, -0.231123, 0.109112, 0.291404, 0.116710, 0.328275,
            -0.106537, -0.026817, -0.335614, 0.176066, -0.103156, 0.075290, 0.146538, 0.233944, 0.090864,
        ],
        None,
    ),
}
# fmt: on


@pytest.mark.parametrize("name", list(PINNED))
def test_pinned_slice(tiny_model, name):
    expected, nfe = PINNED[name]
    got, got_nfe = run_case(tiny_model, name)
    assert got_nfe == nfe
    assert got == pytest.approx(expected, abs=ATOL), name


def test_every_sampler_is_pinned():
    """Each public sampler, the chains' mean and the probe has a pinned case (a new one must be added here)."""
    assert set(PINNED) == {
        "reverse_process",
        "denoise",
        "sample",
        "sdedit",
        "score_ald",
        "dps",
        "dps_raw",
        "dps_karras",
        "posterior_mean",
        "probe",
    }


def versions() -> tuple[str, str]:
    import diffusers

    return torch.__version__, diffusers.__version__


if __name__ == "__main__":  # re-record: prints the table to paste above
    from diffdemo.models import UNetModel
    from diffdemo.train import scheduler_config
    from tests.conftest import make_tiny_unet

    model = UNetModel(make_tiny_unet(16), scheduler_config(), name="tiny", device="cpu")
    names = ["reverse_process", "denoise", "sample", "sdedit", "score_ald", "dps", "dps_raw", "dps_karras"]
    torch_version, diffusers_version = versions()
    print(
        f"# recorded by `python3 -m tests.test_pinned` (torch {torch_version}, diffusers {diffusers_version}, CPU fp32)"
    )
    print("# 9 numbers a line: one channel of the 3x3 patch")
    print("# fmt: off")
    print("PINNED: dict[str, tuple[list[float], int | None]] = {")
    for name in [*names, "posterior_mean", "probe"]:
        values, nfe = run_case(model, name)
        rows = [", ".join(f"{v:.6f}" for v in values[i : i + 9]) for i in range(0, len(values), 9)]
        print(
            f'    "{name}": (\n        [\n'
            + "".join(f"            {r},\n" for r in rows)
            + f"        ],\n        {nfe},\n    ),"
        )
    print("}")
    print("# fmt: on")
