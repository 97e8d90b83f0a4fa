"""The one PNG chart renderer (matplotlib on Agg, imported on first use: the app never needs it) and the charts
drawn with it. Its interactive twin is ``diffdemo.plots.line_chart_figure`` (same panel format); static plotly
export (kaleido) is not a dependency, so every PNG chart is drawn here."""

from __future__ import annotations

import numpy as np

from diffdemo.pictures import PALETTE


def pyplot():
    """matplotlib's pyplot on the Agg backend (no display), imported on first use (the app never needs it)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _png_panel(ax, panel: dict, xlabel: str, first: bool, log_x: bool, log_y: bool) -> None:
    for k, s in enumerate(panel["series"]):
        c = PALETTE[k % len(PALETTE)]
        marker = panel.get("marker", "o")  # None for long histories (a training loss)
        ax.errorbar(s["x"], s["y"], yerr=s.get("err"), marker=marker, ms=4, capsize=3, color=c, label=s["name"])
    for k, h in enumerate(panel.get("hlines", [])):
        ax.axhline(h["y"], ls="--", lw=1, color=PALETTE[k % len(PALETTE)], label=h["name"])
    ax.set_xlabel(panel.get("xlabel", xlabel))
    ax.set_ylabel(panel["ylabel"])
    if panel.get("ylim"):
        ax.set_ylim(*panel["ylim"])
    if len(panel["series"]) + len(panel.get("hlines", [])) > 1 or first:
        ax.legend(fontsize=7)
    if log_y:
        ax.set_yscale("log")
    if log_x:
        ax.set_xscale("log")
    ax.grid(alpha=0.3)
    if panel.get("note"):
        ax.text(0.02, 0.02, panel["note"], transform=ax.transAxes, fontsize=7, color="0.35")


def line_chart_png(panels: list[dict], title: str, xlabel: str, log_x: bool = False, log_y: tuple[int, ...] = ()):
    """The one PNG chart renderer (matplotlib): panels side by side, each
    {'ylabel', 'series': [{'name', 'x', 'y', 'err'?}], 'hlines'?: [{'name', 'y'}], 'ylim'?, 'note'?, 'xlabel'?,
    'marker'?};
    ``log_y`` names the panels with a log y axis. Returns the matplotlib figure (``png_pixels`` or savefig)."""
    plt = pyplot()
    fig, axes = plt.subplots(1, len(panels), figsize=(4.6 * len(panels), 3.6), squeeze=False)
    for j, (ax, panel) in enumerate(zip(axes[0], panels)):
        _png_panel(ax, panel, xlabel, j == 0, log_x, j in log_y)
    fig.suptitle(title, fontsize=11)
    fig.tight_layout()
    return fig


def png_pixels(fig, dpi: int = 110) -> np.ndarray:
    """A matplotlib figure rendered to a uint8 (H, W, 3) picture (then closed)."""
    plt = pyplot()
    fig.set_dpi(dpi)
    fig.canvas.draw()
    pixels = np.asarray(fig.canvas.buffer_rgba())[..., :3].copy()
    plt.close(fig)
    return pixels


def energy_chart(curves) -> np.ndarray:
    """Energy-vs-radius curves (poster Figure 7) as a uint8 picture."""
    label = curves[0].label if curves else ""
    series = [{"name": f"t={c.t}", "x": np.asarray(c.radii), "y": np.asarray(c.fraction)} for c in curves]
    panel = {"ylabel": "fraction", "series": series, "ylim": (0.0, 1.0)}
    return png_pixels(line_chart_png([panel], f"energy within radius r, on {label}", "radius r (px)"))
