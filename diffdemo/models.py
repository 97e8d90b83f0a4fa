"""Models by name: the embedded ones, local diffusers folders and hub ids canonicalised, loaded safely (safetensors,
or a weights-only ``.bin``) and kept in a bounded cache. The contract, the UNet adapter and the Gaussian oracle
live in ``diffdemo.contract``, ``diffdemo.unet`` and ``diffdemo.gaussian_prior`` (their names are re-exported here).
"""

from __future__ import annotations

import os
import re
import threading
from collections import OrderedDict
from pathlib import Path

import torch

from diffdemo.contract import DiffusionModel, default_device
from diffdemo.errors import DiffdemoError
from diffdemo.gaussian_prior import GaussianPrior
from diffdemo.hub import hub_reachable
from diffdemo.unet import UNetModel

__all__ = [
    "DEFAULT_MODEL",
    "MODELS_DIR",
    "DiffusionModel",
    "GaussianPrior",
    "ModelUnavailable",
    "UNetModel",
    "available_models",
    "cached_model",
    "canonical_name",
    "default_device",
    "is_local",
    "is_open",
    "load_model",
    "resolve_model_dir",
]

ROOT = Path(__file__).resolve().parent.parent
MODELS_DIR = ROOT / "assets" / "models"
DEFAULT_MODEL = "faces64"


class ModelUnavailable(DiffdemoError, RuntimeError):
    """A model could not be loaded (missing folder, no network for a hub id, unsafe weights)."""


# --- loading -------------------------------------------------------------------------------------
# Least recently used models beyond this many are dropped (each 64 px model is ~20 MB, a 256 px hub model ~0.5 GB).
MAX_CACHED_MODELS = max(1, int(os.environ.get("DIFFDEMO_MAX_MODELS", "3")))
_cache: OrderedDict[tuple[str, str], DiffusionModel] = OrderedDict()
_cache_lock = threading.Lock()  # held only to read or change _cache and _loading, never through a load
# A lock per model being loaded, with how many callers hold or wait on it: a second caller for the same name waits for
# the first load and reuses it, while callers for other names (and cache hits) go on. Dropped once nobody waits.
_loading: dict[tuple[str, str], list] = {}
HUB_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,95}/[A-Za-z0-9][A-Za-z0-9_.-]{0,95}")
# One message for every name that is not a model, whatever exists on disk under that name.
NO_SUCH_MODEL = (
    "no such model: give an embedded model ({embedded}), a hub id such as google/ddpm-celebahq-256, "
    "or (from the command line) a local diffusers folder"
)


def no_such_model() -> ModelUnavailable:
    return ModelUnavailable(NO_SUCH_MODEL.format(embedded=", ".join(available_models()) or DEFAULT_MODEL))


def canonical_name(name: str) -> str:
    """The one spelling of a model: an embedded model's folder name ("./faces64/" -> "faces64"), a local
    folder's resolved real path, or a hub id "owner/name"; ModelUnavailable (one message) for anything else.

    The cache is keyed on this, so differently spelled names of one model share one copy."""
    name = (name or "").strip()
    if not name or "\x00" in name or len(name) > 4096:
        raise no_such_model()
    embedded_root = MODELS_DIR.resolve()
    path = Path(name).expanduser()
    for candidate in ([MODELS_DIR / name] if not path.is_absolute() else []) + [path]:
        try:
            real = candidate.resolve(strict=True)
        except (OSError, RuntimeError):
            continue
        if real.is_dir():
            return real.name if real.parent == embedded_root else str(real)
    if HUB_ID.fullmatch(name) and ".." not in name:
        return name
    raise no_such_model()


def is_embedded(canonical: str) -> bool:
    return "/" not in canonical and (MODELS_DIR / canonical).is_dir()


def resolve_model_dir(name: str) -> Path | None:
    """A local folder for ``name``: an embedded model under assets/models, or a path; None for a hub id."""
    try:
        canonical = canonical_name(name)
    except ModelUnavailable:
        return None
    if is_embedded(canonical):
        return MODELS_DIR / canonical
    return Path(canonical) if Path(canonical).is_absolute() else None


def cached_model(name: str, device=None) -> DiffusionModel | None:
    """The model if it is loaded already (no loading, no disk access beyond resolving the name), else None."""
    device = torch.device(device) if device is not None else default_device()
    try:
        key = (canonical_name(name), str(device))
    except ModelUnavailable:
        return None
    with _cache_lock:
        return _cache.get(key)


def is_local(name: str) -> bool:
    """An embedded model or a local folder: opening it reads a few MB from disk, no download."""
    return resolve_model_dir(name) is not None


def is_open(name: str) -> bool:
    """Whether the model is loaded already (on the default device), so using it costs no load."""
    return cached_model(name) is not None


def available_models() -> list[str]:
    """Embedded models shipped in assets/models (each loadable offline)."""
    if not MODELS_DIR.is_dir():
        return []
    return sorted(p.name for p in MODELS_DIR.iterdir() if (p / "unet").is_dir() or (p / "config.json").is_file())


UNET_SAFETENSORS = "diffusion_pytorch_model.safetensors"
UNET_BIN = "diffusion_pytorch_model.bin"


def load_weights_only(path: Path) -> dict:
    """A pickled state dict through ``torch.load(weights_only=True)``: tensors and plain containers only, so a
    pickle that would run code is refused before any of it runs."""
    import pickle

    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError:
        raise ModelUnavailable(
            f"refused {Path(path).name}: its pickle holds more than tensors (it could run code), "
            "so it is not loaded; use safetensors weights"
        ) from None
    if not isinstance(state, dict) or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise ModelUnavailable(f"refused {Path(path).name}: it is not a state dict of tensors")
    return state


def _read_unet_dir(unet_dir: Path):
    """The UNet of one folder: safetensors if there, else a weights-only ``.bin`` (how older hub repos ship)."""
    from diffusers import UNet2DModel

    if (unet_dir / UNET_SAFETENSORS).is_file():
        return UNet2DModel.from_pretrained(
            unet_dir, use_safetensors=True, local_files_only=True, low_cpu_mem_usage=False
        )
    if (unet_dir / UNET_BIN).is_file():
        state = load_weights_only(unet_dir / UNET_BIN)
        unet = UNet2DModel.from_config(UNet2DModel.load_config(unet_dir))
        fix = getattr(unet, "_fix_state_dict_keys_on_load", None)  # diffusers' rename of old attention keys
        if fix is not None:
            state = fix(dict(state))
        unet.load_state_dict(state, strict=True)
        return unet
    raise ModelUnavailable(f"no UNet weights ({UNET_SAFETENSORS} or {UNET_BIN}) in the model folder")


def _hub_folder(repo_id: str) -> Path:
    """Download a hub repo's configs and UNet weights (safetensors, else the .bin) into the HF cache."""
    from huggingface_hub import snapshot_download

    folder = Path(snapshot_download(repo_id, allow_patterns=["*.json", f"*{UNET_SAFETENSORS}"]))
    unet_dir = folder / "unet" if (folder / "unet").is_dir() else folder
    if not (unet_dir / UNET_SAFETENSORS).is_file():
        sub = "unet/" if unet_dir != folder else ""
        folder = Path(snapshot_download(repo_id, allow_patterns=["*.json", f"{sub}{UNET_BIN}"]))
    return folder


def _read_unet(location: str | Path, local: bool):
    """Load the UNet and scheduler config from a DDPMPipeline-layout folder/repo or a bare UNet one."""
    from diffusers import DDPMScheduler

    folder = Path(location) if local else _hub_folder(str(location))
    unet_dir = folder / "unet" if (folder / "unet").is_dir() else folder
    unet = _read_unet_dir(unet_dir)
    try:
        config = DDPMScheduler.load_config(folder / "scheduler" if unet_dir != folder else folder)
    except Exception:
        config = {}  # a bare UNet folder: fall back to the DDPM defaults (linear 1e-4..0.02, T=1000)
    return unet, dict(config)


def load_model(name: str = DEFAULT_MODEL, device=None) -> UNetModel:
    """Load (once, then cached) a diffusers UNet by embedded name, local folder or hub id: safetensors, or a .bin
    read with ``torch.load(weights_only=True)`` (never a full unpickle).

    Names are canonicalised first (one cache entry per model however it is spelled) and the cache keeps the
    MAX_CACHED_MODELS most recently used. A load holds a lock of its own name only: callers for the same name wait
    and share it, every other caller (a cache hit, another model) goes on. Failures are ModelUnavailable with a message that names no server path
    and carries no library's exception text (a folder that exists but holds no model reads as a missing one)."""
    device = torch.device(device) if device is not None else default_device()
    canonical = canonical_name(name)
    key = (canonical, str(device))
    with _cache_lock:
        if key in _cache:
            _cache.move_to_end(key)
            return _cache[key]
        entry = _loading.setdefault(key, [threading.Lock(), 0])
        entry[1] += 1
    try:
        with entry[0]:  # one load per name at a time; the cache lock is free meanwhile
            with _cache_lock:
                if key in _cache:  # loaded by the caller this one waited on
                    _cache.move_to_end(key)
                    return _cache[key]
            model = _read_model(canonical, device)
            with _cache_lock:
                _cache[key] = model
                while len(_cache) > MAX_CACHED_MODELS:
                    _cache.popitem(last=False)  # least recently used out (a run still holding it keeps its reference)
            return model
    finally:
        with _cache_lock:
            entry[1] -= 1
            if entry[1] == 0:
                _loading.pop(key, None)


def _read_model(canonical: str, device: torch.device) -> UNetModel:
    """Read one model from its folder or the hub (the slow part of ``load_model``: disk, download, the 2 s
    reachability check), with the one-line failures ``load_model`` promises."""
    local_dir = resolve_model_dir(canonical)
    if local_dir is None and not hub_reachable():
        raise ModelUnavailable(
            f"'{canonical}' needs the Hugging Face hub, which cannot be reached from here "
            "(offline, or HF_HUB_OFFLINE is set); use faces64 or a local diffusers folder"
        )
    try:
        unet, config = _read_unet(local_dir or canonical, local=local_dir is not None)
    except ModelUnavailable as exc:  # our own one-line reasons
        if str(exc).startswith("refused"):  # a .bin that would run code: say so, it names no path
            raise
        if local_dir is not None and not is_embedded(canonical):
            raise no_such_model() from None  # a folder without weights reads as a missing one
        raise
    except Exception:  # offline, missing or broken files: never echo the cause
        if local_dir is not None and not is_embedded(canonical):
            raise no_such_model() from None
        where = f"the embedded model '{canonical}'" if local_dir else f"the hub model '{canonical}'"
        raise ModelUnavailable(
            f"could not load {where} (no safetensors weights, a missing file, or no network)"
        ) from None
    return UNetModel(unet, config, name=canonical, device=device)
