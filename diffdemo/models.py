"""The one model contract: eps(x, t), score(x, t), x0_hat(x, t) on batched (N, C, H, W) tensors in [-1, 1].

Implementations: a diffusers ``UNet2DModel`` (the embedded ``faces64``, a local folder or a hub id) and an
analytic Gaussian prior whose score and Jacobian are exact (the test oracle).
"""

from __future__ import annotations

import copy
import os
import re
import threading
from collections import OrderedDict
from pathlib import Path

import torch

from diffdemo.checkpoint import checkpoint
from diffdemo.errors import DiffdemoError
from diffdemo.hub import hub_reachable
from diffdemo.schedule import Schedule

ROOT = Path(__file__).resolve().parent.parent
MODELS_DIR = ROOT / "assets" / "models"
DEFAULT_MODEL = "faces64"


class ModelUnavailable(DiffdemoError, RuntimeError):
    """A model could not be loaded (missing folder, no network for a hub id, unsafe weights)."""


def default_device() -> torch.device:
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


class DiffusionModel:
    """Base class: subclasses implement ``eps``; score (eq. 22) and x0_hat (eq. 19) follow from it.

    ``t`` is an int or a 1-D integer tensor with one timestep per batch element.
    """

    name: str = "model"
    schedule: Schedule
    sample_shape: tuple[int, int, int]
    device: torch.device = torch.device("cpu")
    precision: str = "fp32"  # the network's number format (diffdemo/precision.py); inputs and outputs stay float32
    autodiff: bool = False  # the network's layers carry hand-written JVP / VJP rules (diffdemo/autodiff.py)

    def eps(self, x: torch.Tensor, t) -> torch.Tensor:
        raise NotImplementedError

    def with_precision(self, precision: str) -> DiffusionModel:
        """A view of this model whose network runs in ``precision`` (fp32 or bf16); weights shared, cache untouched."""
        if precision not in ("fp32", "bf16"):
            raise ValueError(f"precision must be fp32 or bf16 here (resolve 'auto' first), got {precision!r}")
        if precision == self.precision:
            return self
        view = copy.copy(self)
        view.precision = precision
        return view

    def for_autodiff(self) -> DiffusionModel:
        """A float32 view for Jacobian products: the same values, with the network's cheaper JVP / VJP rules."""
        view = copy.copy(self.with_precision("fp32"))
        view.autodiff = True
        return view

    def _abar(self, t, x: torch.Tensor) -> torch.Tensor:
        """alpha_bar_t broadcast against x (``Schedule.abar_like``)."""
        return self.schedule.abar_like(t, x)

    def score(self, x: torch.Tensor, t) -> torch.Tensor:
        """s_theta(x_t, t) from eps_theta (eq. 22, ``Schedule.score_from_eps``)."""
        return self.schedule.score_from_eps(self.eps(x, t), t)

    def x0_hat(self, x: torch.Tensor, t) -> torch.Tensor:
        """Tweedie denoiser x0_hat from eps_theta (eq. 19, ``Schedule.x0_from_eps``)."""
        return self.schedule.x0_from_eps(x, self.eps(x, t), t)

    @property
    def size(self) -> int:
        return self.sample_shape[-1]


class UNetModel(DiffusionModel):
    """A diffusers ``UNet2DModel`` with the schedule of its ``DDPMScheduler`` config."""

    def __init__(self, unet, scheduler_config: dict | None = None, name: str = "unet", device=None):
        self.device = torch.device(device) if device is not None else default_device()
        # channels_last: faster convolutions on CPUs (bench/RESULTS_engine.md)
        self.unet = unet.eval().requires_grad_(False).to(self.device, memory_format=torch.channels_last)
        self.scheduler_config = dict(scheduler_config or {})
        self.schedule = Schedule.from_config(self.scheduler_config)
        self.prediction_type = self.scheduler_config.get("prediction_type", "epsilon")
        cfg = unet.config
        size = cfg.sample_size if isinstance(cfg.sample_size, int) else cfg.sample_size[0]
        self.sample_shape = (cfg.in_channels, size, size)
        self.name = name
        self.n_params = sum(p.numel() for p in unet.parameters())
        self._derived: dict = {}  # bf16 / autodiff copies and traced graphs, built on first use, shared by views
        self._derived_lock = threading.RLock()

    def derived(self, key, build):
        """``build()`` once per key (thread-safe), then the cached result: things derived from the weights."""
        with self._derived_lock:
            if key not in self._derived:
                self._derived[key] = build()
            return self._derived[key]

    def _bf16_unet(self):
        """The network with conv / linear weights stored in bf16 (what autocast would cast them to on every call,
        cast once); norms keep float32 parameters, as autocast keeps them."""

        def build():
            net = copy.deepcopy(self.unet)
            for module in net.modules():
                if isinstance(module, (torch.nn.Conv2d, torch.nn.Linear)):
                    module.to(torch.bfloat16)
            return net

        return self.derived("bf16", build)

    def _autodiff_unet(self):
        """The network with conv / group-norm / SiLU layers using diffdemo/autodiff.py's rules; weights shared."""
        from diffdemo.autodiff import autodiff_network

        return self.derived("autodiff", lambda: autodiff_network(self.unet))

    def eps(self, x: torch.Tensor, t) -> torch.Tensor:
        checkpoint()  # a capped or cancelled run stops here, within one network evaluation
        t_in = t.to(x.device) if isinstance(t, torch.Tensor) else torch.full((x.shape[0],), int(t), device=x.device)
        if t_in.ndim == 0:
            t_in = t_in.expand(x.shape[0])
        x_in = x.contiguous(memory_format=torch.channels_last)
        if self.precision == "bf16":
            with torch.autocast(self.device.type, dtype=torch.bfloat16):
                out = self._bf16_unet()(x_in, t_in).sample
            out = out.float().contiguous()  # everything after the network stays float32
        else:
            net = self._autodiff_unet() if self.autodiff else self.unet
            out = net(x_in, t_in).sample.contiguous()
        if self.prediction_type == "epsilon":
            return out
        a = self._abar(t, x)
        if self.prediction_type == "sample":  # network predicts x0: invert eq. 19
            return self.schedule.eps_from_x0(x, out, t)
        if self.prediction_type == "v_prediction":  # v = sqrt(abar) eps - sqrt(1-abar) x0
            return a.sqrt() * out + (1 - a).sqrt() * x
        raise ValueError(f"unsupported prediction_type {self.prediction_type!r}")


class GaussianPrior(DiffusionModel):
    """x0 ~ N(mu, Sigma) with Sigma = U diag(lam) U^T + floor (I - U U^T): every quantity is exact.

    C_t = abar Sigma + (1 - abar) I,  s(x) = -C_t^{-1} (x - sqrt(abar) mu),  J_s = -C_t^{-1}  (DESIGN.md section 4).
    """

    def __init__(
        self,
        mean: torch.Tensor,
        basis: torch.Tensor,
        variances: torch.Tensor,
        floor: float = 1e-3,
        schedule: Schedule | None = None,
        name: str = "gaussian",
    ):
        self.sample_shape = tuple(mean.shape[-3:])
        self.mean = mean.reshape(-1).double()
        self.basis = basis.double()  # (D, k), orthonormal columns
        self.variances = variances.double()  # (k,)
        self.floor = float(floor)
        self.schedule = schedule or Schedule.linear()
        self.name = name
        self.device = torch.device("cpu")

    @classmethod
    def fit(cls, images: torch.Tensor, rank: int | None = None, floor: float = 1e-3, **kw) -> GaussianPrior:
        """Fit mean and top-``rank`` principal components (PCA) of (N, C, H, W) images."""
        flat = images.reshape(images.shape[0], -1).double()
        mu = flat.mean(0)
        _, s, vh = torch.linalg.svd(flat - mu, full_matrices=False)
        k = rank or vh.shape[0]
        var = s[:k] ** 2 / max(flat.shape[0] - 1, 1)
        return cls(mu.reshape(images.shape[1:]), vh[:k].T, torch.clamp(var, min=floor), floor, **kw)

    @property
    def dim(self) -> int:
        return self.mean.numel()

    def covariance(self) -> torch.Tensor:
        """Sigma as a dense (D, D) matrix (for small test problems)."""
        U = self.basis
        return U @ torch.diag(self.variances) @ U.T + self.floor * (torch.eye(self.dim, dtype=U.dtype) - U @ U.T)

    def _apply_spectral(self, v: torch.Tensor, fn_lam, fn_floor) -> torch.Tensor:
        """Apply U diag(fn(lam)) U^T + fn(floor) (I - U U^T) to the rows of v (N, D)."""
        coef = v @ self.basis
        inside = (coef * fn_lam(self.variances)) @ self.basis.T
        outside = fn_floor(self.floor) * (v - coef @ self.basis.T)
        return inside + outside

    def cov_t_inverse(self, v: torch.Tensor, t: int) -> torch.Tensor:
        """C_t^{-1} v for flattened rows v."""
        a = self.schedule.abar(t)
        return self._apply_spectral(v, lambda lam: 1.0 / (a * lam + 1 - a), lambda f: 1.0 / (a * f + 1 - a))

    def score(self, x: torch.Tensor, t) -> torch.Tensor:
        """Exact score -C_t^{-1}(x - sqrt(abar_t) mu)."""
        if isinstance(t, torch.Tensor) and t.ndim > 0:
            return torch.cat([self.score(x[i : i + 1], int(ti)) for i, ti in enumerate(t.tolist())])
        t = int(t)
        flat = x.reshape(x.shape[0], -1).double()
        centred = flat - self.schedule.abar(t) ** 0.5 * self.mean
        return (-self.cov_t_inverse(centred, t)).to(x.dtype).reshape(x.shape)

    def eps(self, x: torch.Tensor, t) -> torch.Tensor:
        return self.schedule.eps_from_score(self.score(x, t), t)

    def score_jacobian(self, t: int) -> torch.Tensor:
        """J_s = -C_t^{-1}, dense (D, D)."""
        return -self.cov_t_inverse(torch.eye(self.dim, dtype=torch.float64), t)

    def posterior(self, A: torch.Tensor, y: torch.Tensor, sigma_y: float) -> tuple[torch.Tensor, torch.Tensor]:
        """Exact posterior of x0 given y = A x0 + sigma_y n, A a dense (M, D) matrix: (mean (D,), cov (D, D))."""
        S = self.covariance()
        A = A.double()
        K = A @ S @ A.T + sigma_y**2 * torch.eye(A.shape[0], dtype=torch.float64)
        gain = torch.linalg.solve(K, A @ S).T  # S A^T K^{-1}
        mean = self.mean + gain @ (y.reshape(-1).double() - A @ self.mean)
        return mean, S - gain @ A @ S


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
