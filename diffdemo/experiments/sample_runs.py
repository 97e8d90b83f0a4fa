"""Unconditional samples from N(0, I) at T - 1 (eq. 25)."""

from __future__ import annotations

import time
from collections.abc import Iterator
from dataclasses import dataclass

from diffdemo.experiments.resolve import network
from diffdemo.models import DiffusionModel
from diffdemo.restore import timesteps_for
from diffdemo.samplers import Frame, sample


# --- sampling (eq. 25) -------------------------------------------------------------------------------------------
@dataclass
class Sampled:
    """The end of a sampling run: its last frame, the time its sampler ran, network evaluations, what it ran with."""

    frame: Frame
    seconds: float
    nfe: int
    precision: str
    spacing: str


def sampling(
    model: DiffusionModel,
    *,
    n: int,
    steps: int,
    seed: int,
    spacing: str,
    precision: str = "auto",
    every: int | None = 1,
) -> Iterator[Frame | Sampled]:
    """Ancestral DDPM sampling of ``n`` images from N(0, I) at T - 1 (eq. 25) on the ``spacing`` timestep list: the
    sampler's frames (``every``: as ``samplers.reverse_process``), then a ``Sampled``."""
    net = network(model, "sample", precision)
    tick, spent, frame = time.perf_counter(), 0.0, None
    for frame in sample(net, n=n, timesteps=timesteps_for(net, steps, None, spacing), seed=seed, every=every):
        spent += time.perf_counter() - tick
        yield frame
        tick = time.perf_counter()
    yield Sampled(frame, spent, frame.nfe, net.precision, spacing)


def run_sampling(model: DiffusionModel, **kw) -> Sampled:
    """``sampling`` run to the end (no frames streamed): its ``Sampled``."""
    *_, done = sampling(model, every=None, **kw)
    return done
