"""The adapter: a diffusers ``UNet2DModel`` behind the model contract (``diffdemo.contract``), in fp32 or bf16."""

from __future__ import annotations

import copy
import threading

import torch

from diffdemo.checkpoint import checkpoint
from diffdemo.contract import DiffusionModel, default_device
from diffdemo.schedule import Schedule


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
            # never inference tensors: a copy made inside the first (inference-mode) bf16 call would refuse every
            # later gradient through it (DPS after a Denoise run)
            with torch.inference_mode(False):
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
