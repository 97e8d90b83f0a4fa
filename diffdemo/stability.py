"""A model's stability profile rho(J_s)(t), the measurement the spectral spacing is built on (poster section 6:
spend steps where the spectral radius is large).

``compute_profile`` measures the spectral radius of the score Jacobian J_s (and of the one-step reverse map J_f,
eq. 34) by Arnoldi on noised test faces over a grid of timesteps, through ``analysis``'s public Krylov functions;
``python -m diffdemo profile --model M`` stores it with ``diffdemo.profiles`` (path, save, load).
"""

from __future__ import annotations

import time

import numpy as np
import torch

from diffdemo import analysis
from diffdemo.models import DiffusionModel

PROFILE_TIMESTEPS = (1, 2, 5, 10, 20, 35, 50, 75, 100, 150, 200, 300, 400, 500, 600, 700, 800, 900, 999)
PROFILE_IMAGES = ("london_006_neutral", "london_081_neutral")


def contracting_stiffness(eigenvalues) -> float:
    """max |lambda| over the Ritz values of J_s with Re(lambda) < 0: the modes that limit an explicit-Euler step
    (``analysis.euler_step_limit``); expanding ones (Re >= 0) set no limit. nan when none was found."""
    lam = np.asarray(eigenvalues, dtype=np.complex128)
    neg = lam[lam.real < 0]
    return float(np.abs(neg).max()) if neg.size else float("nan")


def compute_profile(
    model: DiffusionModel,
    images: list[torch.Tensor],
    timesteps=PROFILE_TIMESTEPS,
    iters: int = 20,
    seed: int = 0,
    max_batch: int = 16,
    progress=None,
) -> dict:
    """rho(J_s) and rho(J_f) (one step t -> t-1) at each timestep, geometric mean and spread over ``images``.

    Arnoldi with ``iters`` steps per (image, t) row, all rows sharing each batched JVP (``analysis`` owns the
    iteration; its accuracy against the dense Jacobian is in bench/RESULTS_dense.md).
    """
    T = model.schedule.T
    ts = sorted({min(max(int(t), 1), T - 1) for t in timesteps})  # clamped into the one rule, 1 <= t <= T - 1
    rows = [(i, t) for i in range(len(images)) for t in ts]
    rho_s = np.zeros((len(images), len(ts)))
    rho_f = np.zeros((len(images), len(ts)))
    stiff = np.zeros((len(images), len(ts)))
    res_f = np.zeros((len(images), len(ts)))  # ||J_f y - theta y|| of the leading J_f Ritz pair (absolute)
    start = time.perf_counter()
    for c in range(0, len(rows), max_batch):
        part = rows[c : c + max_batch]
        states = [analysis.state_at(model, images[i][:1], t, seed) for i, t in part]
        ops = analysis.row_operators(model, states, [t for _, t in part], ["score"] * len(part), [None] * len(part))
        H, steps = analysis.arnoldi(ops, iters, torch.Generator().manual_seed(int(seed)))
        for r, (i, t) in enumerate(part):
            eig = analysis.eig_result(model, H[r], t, t - 1, steps)
            rho_s[i, ts.index(t)], rho_f[i, ts.index(t)] = eig.rho_Js, eig.rho_Jf
            stiff[i, ts.index(t)] = contracting_stiffness(eig.eigenvalues_Js)
            res_f[i, ts.index(t)] = eig.residual_Jf * eig.rho_Jf
        if progress:
            progress(min(1.0, (c + len(part)) / len(rows)), f"Arnoldi rows {c + len(part)}/{len(rows)}")
    log_s = np.log(rho_s)
    # no contracting Ritz value in the Krylov space (not seen on faces64): keep rho(J_s) there rather than a hole
    stiff = np.where(np.isfinite(stiff), stiff, rho_s)
    return {
        "t": ts,
        "rho_Js": np.exp(log_s.mean(0)).tolist(),  # geometric mean over images
        "rho_Js_min": rho_s.min(0).tolist(),
        "rho_Js_max": rho_s.max(0).tolist(),
        "stiff_Js": np.exp(np.log(stiff).mean(0)).tolist(),  # what the spectral list reads (spacing.profile_stiffness)
        "stiff_Js_per_image": stiff.tolist(),
        "rho_Jf": rho_f.mean(0).tolist(),
        "rho_Js_per_image": rho_s.tolist(),
        "rho_Jf_per_image": rho_f.tolist(),
        "residual_Jf_per_image": res_f.tolist(),
        "one_over_1_minus_abar": [1.0 / (1.0 - model.schedule.abar(t)) for t in ts],
        "images": len(images),
        "arnoldi_steps": int(iters),
        "seed": int(seed),
        "seconds": time.perf_counter() - start,
        "rule": "spectral spacing: equal increments of C(t) = sum_{u<=t} beta_u stiff(J_s)(u), stiff = the largest "
        "|lambda| of J_s with Re(lambda) < 0, i.e. the same explicit-Euler stability number h |lambda| for every step",
    }
