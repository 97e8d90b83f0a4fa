"""How much work a reproduction does, as data: one ``Budget`` per name (tiny for the tests, quick for a smoke run,
full for the poster's figures and the claims table the app ships), written side by side in ``BUDGET_TABLE``."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Budget:
    """How much work a run does; the sweeps use ``steps`` reverse steps (strided), the methods table
    ``table_steps`` (None: each method's tuned default, diffdemo/defaults.py)."""

    name: str
    steps: int  # reverse steps of the Fig. 3-5 sweeps and the spectra (SDEdit: min(steps, t0 + 1))
    table_images: int  # bundled test images in the methods table (0 = all)
    sweep_images: int  # images in the Fig. 3-5 sweeps
    denoise_ts: tuple[int, ...]  # Fig. 1 starting timesteps
    denoise_steps: int
    denoise_images: int
    n_samples: int  # Fig. 2
    sample_steps: int
    sdedit_t0s: tuple[int, ...]  # Fig. 3
    ald_zetas: tuple[float, ...]  # Fig. 4
    dps_scales: tuple[float, ...]  # Fig. 5
    probe_t: int  # Fig. 6: the timestep of the sensitivity maps
    probe_pixels: int  # Figs. 6-7: how many of PROBE_PIXELS
    energy_ts: tuple[int, ...]  # Fig. 7
    spectrum_ts: tuple[int, ...]  # Figs. 8-9
    spectrum_k: int  # singular triplets per timestep
    spectrum_iters: int  # subspace / Arnoldi iterations
    table_steps: int | None = None  # reverse steps in the methods table (None: the methods' default steps)
    claim_images: int = 1  # images probed for the Fig. 7 claim (the figure shows the first)
    spacing_nfes: tuple[int, ...] = ()  # Fig. 10: DPS deblurring at these NFE per timestep spacing
    spectrum_tol: float = 0.0  # Figs. 8-9: iterate until the values shown meet this relative residual (0: run the cap)


# The three budgets side by side, one row per Budget field: (tiny, quick, full). tiny: every code path for the
# test suite on a 16 px model, a handful of network calls each; quick: every figure in a few minutes on a 2-core
# CPU (a smoke run: every verdict says so); full: the poster's figures and the claims table the app ships, every
# trend on >= 8 timesteps (claims.MIN_POINTS), converged spectra, all test images in the table.
BUDGET_TABLE: dict[str, tuple] = {
    "steps": (3, 10, 40),
    "table_images": (2, 2, 0),
    "sweep_images": (1, 1, 2),
    "denoise_ts": ((50, 400), (50, 200, 500), (25, 50, 100, 200, 300, 400, 600, 800)),
    "denoise_steps": (3, 10, 25),
    "denoise_images": (1, 1, 3),
    "n_samples": (2, 4, 6),
    "sample_steps": (3, 10, 40),
    "sdedit_t0s": ((100, 300), (100, 300, 600), (50, 100, 200, 300, 400, 500, 600, 700)),
    "ald_zetas": ((0.5, 1.0), (0.5, 1.0, 2.0), (0.25, 0.5, 1.0, 2.0, 4.0)),
    "dps_scales": ((1.0, 3.0), (1.0, 3.0, 6.0), (0.5, 1.0, 2.0, 3.0, 5.0)),
    "probe_t": (250, 250, 250),
    "probe_pixels": (2, 2, 3),
    "energy_ts": ((50, 500), (50, 250, 500, 900), (10, 50, 100, 200, 300, 500, 700, 900)),
    "spectrum_ts": ((50, 500), (50, 400, 900), (20, 50, 100, 250, 400, 500, 700, 900)),
    "spectrum_k": (2, 2, 3),
    "spectrum_iters": (2, 3, 60),  # full: a cap; the run stops where spectrum_tol is met
    "table_steps": (3, 10, None),
    "claim_images": (2, 2, 3),
    "spacing_nfes": ((2, 3), (10, 20), (20, 50)),
    "spectrum_tol": (0.0, 0.0, 1e-3),  # analysis.RESIDUAL_TOL
}
BUDGETS = {
    name: Budget(name=name, **{field: values[i] for field, values in BUDGET_TABLE.items()})
    for i, name in enumerate(("tiny", "quick", "full"))
}
