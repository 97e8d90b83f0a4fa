"""What the poster's figures show, as data: the two inverse problems (``TASKS``), the probed pixels and, per
figure, its file key, headings, axis and, for a restoration sweep, the method and the swept parameter
(``FIGURES``). The code that makes each figure reads these; nothing here runs anything."""

from __future__ import annotations

from dataclasses import dataclass

TASKS = {  # the poster's two inverse problems, as at 64 px (DESIGN.md section 4)
    "deblur": ("gaussian_blur", {}),
    "inpaint": ("box_inpaint", {"preset": "center"}),
}
TASK_TITLES = {"deblur": "Gaussian deblurring", "inpaint": "box inpainting"}
# (x, y) as fractions of the side on an aligned face crop: nose tip, left eyelid, right cheek
PROBE_PIXELS = (("nose", (0.50, 0.60)), ("left eyelid", (0.36, 0.42)), ("right cheek", (0.68, 0.64)))


# --- what each figure shows -------------------------------------------------------------------------------------
@dataclass(frozen=True)
class FigureSpec:
    """One figure: its key (file stem and metrics.json key), report heading, chart title and x axis; for a
    restoration sweep the method, the parameter swept and the Budget field holding its values."""

    key: str
    heading: str
    chart: str
    xlabel: str = "timestep t"
    method: str | None = None
    param: str | None = None
    values: str | None = None  # a Budget field


FIGURES = {
    spec.key: spec
    for spec in (
        FigureSpec("fig1_denoising", "Fig. 1 - Diffusion denoising quality vs starting t",
                   "Fig. 1 - diffusion denoising quality vs starting t", "starting timestep t (log scale)",
                   values="denoise_ts"),
        FigureSpec("fig2_samples", "Fig. 2 - Unconditional generation", "Fig. 2 - unconditional DDPM samples"),
        FigureSpec("fig3_sdedit", "Fig. 3 - SDEdit vs t0", "Fig. 3 - SDEdit vs t0", "starting timestep t0",
                   "sdedit", "t0", "sdedit_t0s"),
        FigureSpec("fig4_score_ald", "Fig. 4 - Score-ALD vs zeta", "Fig. 4 - Score-ALD vs zeta", "zeta",
                   "score_ald", "zeta", "ald_zetas"),
        FigureSpec("fig5_dps", "Fig. 5 - DPS vs scale", "Fig. 5 - DPS vs scale", "scale lambda", "dps", "scale",
                   "dps_scales"),
        FigureSpec("fig6_sensitivity", "Fig. 6 - Sensitivity analysis", "Fig. 6 - sensitivity maps"),
        FigureSpec("fig7_energy", "Fig. 7 - Radius of effect of one pixel", "Fig. 7 - energy vs radius across t",
                   values="energy_ts"),
        FigureSpec("fig8_spectrum", "Fig. 8 - Spectral radius and top singular value vs t",
                   "Fig. 8 - spectra of J_s and J_f vs t", values="spectrum_ts"),
        FigureSpec("fig9_singular_vectors", "Fig. 9 - Dominant singular vectors over time",
                   "Fig. 9 - dominant right singular vectors of J_f", values="spectrum_ts"),
        FigureSpec("fig10_spacings", "Fig. 10 - Step allocation (section 6)", "Fig. 10 - step allocation at equal NFE",
                   "network evaluations (NFE)", "dps", "steps", "spacing_nfes"),
    )
}  # fmt: skip
SWEEPS = ("fig3_sdedit", "fig4_score_ald", "fig5_dps")
