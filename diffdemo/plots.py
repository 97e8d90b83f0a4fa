"""Interactive figures (plotly) for the app and the HTML reports: Jacobian maps, energy vs radius, spectra, singular
vectors, the Euler step limit, PSNR vs t and a restoration's trace. The uint8 pictures they show come from
``diffdemo.pictures``; PNG charts from ``diffdemo.charts``."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import plotly.graph_objects as go
from plotly.subplots import make_subplots

from diffdemo.pictures import LINE_COLOURS, PALETTE, column_map, off_centre_scale, vector_image

# --- plotly figures ----------------------------------------------------------------------------------
_RDBU = "RdBu_r"
FONT_PX = 16  # readable from the back of a room: every text of a figure at least this size


def _readable(fig: go.Figure, height: int | None = None) -> go.Figure:
    """Large text everywhere (ticks, titles, legend, subplot titles, hover) and a white background."""
    fig.update_layout(
        font=dict(size=FONT_PX),
        title_font=dict(size=FONT_PX + 2),
        legend=dict(font=dict(size=FONT_PX)),
        hoverlabel=dict(font_size=FONT_PX),
        template="plotly_white",
    )
    fig.update_annotations(font_size=FONT_PX)  # subplot titles are annotations
    fig.update_xaxes(tickfont=dict(size=FONT_PX), title_font=dict(size=FONT_PX))
    fig.update_yaxes(tickfont=dict(size=FONT_PX), title_font=dict(size=FONT_PX))
    if height:
        fig.update_layout(height=height)
    return fig


def log_ticks(values) -> tuple[list[float], list[str]]:
    """Tick positions and labels for a log axis: powers of ten, or 1-2-5 steps when the data span less than two
    decades, each labelled with its full value (plotly's own minor labels read '2 5 2 5')."""
    v = np.asarray([x for x in np.asarray(values, dtype=np.float64).ravel() if np.isfinite(x) and x > 0])
    if v.size == 0:
        return [], []
    lo, hi = float(v.min()), float(v.max())
    first, last = int(np.floor(np.log10(lo))), int(np.ceil(np.log10(hi)))
    mantissas = (1.0,) if hi / lo >= 100 else (1.0, 2.0, 5.0)
    ticks = [m * 10.0**e for e in range(first, last + 1) for m in mantissas]
    inside = [x for x in ticks if lo / 1.5 <= x <= hi * 1.5]
    if len(inside) < 2:  # a narrow span: one tick below and one above
        inside = [
            max([x for x in ticks if x <= lo], default=ticks[0]),
            min([x for x in ticks if x >= hi], default=ticks[-1]),
        ]
    return inside, [f"{x:g}" for x in inside]


def _log_axis(fig: go.Figure, values, axis: str = "y", **where) -> None:
    tickvals, ticktext = log_ticks(values)
    update = fig.update_yaxes if axis == "y" else fig.update_xaxes
    update(type="log", tickvals=tickvals, ticktext=ticktext, minor=dict(showgrid=False), **where)


def _timestep_axis(fig: go.Figure, ts: Sequence[int], **where) -> None:
    """Only the timesteps that were computed are ticks (one timestep no longer draws an axis from 49 to 51)."""
    ts = sorted({int(t) for t in ts})
    if not ts:
        return
    pad = max(1.0, 0.08 * (ts[-1] - ts[0])) if len(ts) > 1 else max(1.0, 0.25 * ts[0])
    fig.update_xaxes(tickvals=ts, ticktext=[str(t) for t in ts], range=[ts[0] - pad, ts[-1] + pad], **where)


def _plotly_panel(fig: go.Figure, panel: dict, xlabel: str, col: int, log_x: bool, log_y: bool) -> None:
    for k, s in enumerate(panel["series"]):
        err = s.get("err")
        fig.add_trace(
            go.Scatter(
                x=list(s["x"]),
                y=list(s["y"]),
                error_y=dict(type="data", array=list(err)) if err is not None else None,
                mode="lines+markers",
                name=s["name"],
                legendgroup=s["name"],
                showlegend=col == 1,
                line=dict(color=PALETTE[k % len(PALETTE)]),
            ),
            row=1,
            col=col,
        )
    for k, h in enumerate(panel.get("hlines", [])):
        c = PALETTE[k % len(PALETTE)]
        fig.add_hline(y=h["y"], line_dash="dash", line_color=c, row=1, col=col)
        xs = panel["series"][0]["x"]
        fig.add_trace(
            go.Scatter(
                x=[min(xs), max(xs)],
                y=[h["y"], h["y"]],
                mode="lines",
                line=dict(dash="dash", color=c),
                name=h["name"],
                showlegend=col == 1,
                hoverinfo="name+y",
            ),
            row=1,
            col=col,
        )
    if panel.get("ylim"):
        fig.update_yaxes(range=list(panel["ylim"]), row=1, col=col)
    if log_y:
        fig.update_yaxes(type="log", row=1, col=col)
    if log_x:
        fig.update_xaxes(type="log", row=1, col=col)
    fig.update_xaxes(title_text=panel.get("xlabel", xlabel), row=1, col=col)


def line_chart_figure(
    panels: list[dict], title: str, xlabel: str, log_x: bool = False, log_y: tuple[int, ...] = ()
) -> go.Figure:
    """The interactive twin of ``line_chart_png``: the same panels as one plotly figure."""
    fig = make_subplots(rows=1, cols=len(panels), subplot_titles=[p["ylabel"] for p in panels])
    for j, panel in enumerate(panels):
        _plotly_panel(fig, panel, xlabel, j + 1, log_x, j in log_y)
    fig.update_layout(title=title, height=420, width=max(520, 460 * len(panels)))
    return fig


MAP_NAMES = {"score": "score J_s", "reverse": "one reverse step J_f", "denoiser": "denoiser J_D"}


def probe_figure(result) -> go.Figure:
    """The three columns of a ProbeResult (J_s, J_f, J_D) side by side, each on its own symmetric scale set by the
    pixels around the probed one (``off_centre_scale``), with a colour bar; the probed pixel's value in the title."""
    from diffdemo.analysis import KINDS

    maps = {kind: column_map(result.columns[kind]) for kind in KINDS}
    px, py = int(result.pixel[0]), int(result.pixel[1])
    titles = [f"{MAP_NAMES.get(k, k)}<br>probed pixel: {maps[k][py, px]:+.3g}" for k in KINDS]
    gap = 0.09
    fig = make_subplots(1, 3, subplot_titles=titles, horizontal_spacing=gap)
    for i, kind in enumerate(KINDS, start=1):
        m = maps[kind]
        scale = off_centre_scale(m, result.pixel)
        domain = fig.layout[f"xaxis{i if i > 1 else ''}"].domain
        fig.add_trace(
            go.Heatmap(
                z=m,
                colorscale=_RDBU,
                zmid=0,
                zmin=-scale,
                zmax=scale,
                showscale=True,
                colorbar=dict(
                    x=domain[1] + 0.005,
                    xanchor="left",
                    thickness=12,
                    len=0.8,
                    tickfont=dict(size=FONT_PX - 2),
                    exponentformat="e",
                    nticks=5,
                ),
                hovertemplate="x=%{x} y=%{y}<br>%{z:.4g}<extra></extra>",
            ),
            1,
            i,
        )
        fig.add_trace(
            go.Scatter(
                x=[result.pixel[0]],
                y=[result.pixel[1]],
                mode="markers",
                marker=dict(symbol="square-open", size=12, color="rgb(0,200,0)", line=dict(width=2)),
                showlegend=False,
            ),
            1,
            i,
        )
        fig.update_yaxes(autorange="reversed", scaleanchor=f"x{i if i > 1 else ''}", row=1, col=i)
    fig = _readable(fig)
    fig.update_xaxes(showticklabels=False, showgrid=False, zeroline=False)
    fig.update_yaxes(showticklabels=False, showgrid=False, zeroline=False)
    fig.update_layout(
        title=f"How each pixel responds to pixel ({px}, {py}) at t = {result.t}",
        margin=dict(l=10, r=40, t=110, b=10),
        height=380,
    )
    return fig


def energy_figure(curves) -> go.Figure:
    """Energy within radius r of the probed pixel, one line per timestep (poster Figure 7)."""
    fig = go.Figure()
    for c in curves:
        fig.add_trace(
            go.Scatter(
                x=c.radii,
                y=c.fraction,
                mode="lines",
                name=f"t={c.t}",
                hovertemplate=f"t={c.t}<br>r=%{{x}}<br>%{{y:.3f}}<br>r50={c.r50:.2f} r90={c.r90:.2f} n_eff={c.n_eff:.1f}<extra></extra>",
            )
        )
    label = curves[0].label if curves else ""
    fig.update_layout(
        title=f"Share of the response within r pixels, on {label}",
        xaxis_title="radius r (pixels)",
        yaxis_title="share within r",
        yaxis_range=[0, 1.02],
        margin=dict(l=70, r=20, t=60, b=60),
    )
    return _readable(fig, height=380)


def energy_summary_figure(curves) -> go.Figure:
    """r50, r90 and the effective number of pixels against the timestep."""
    ts = [c.t for c in curves]
    fig = make_subplots(1, 2, subplot_titles=["r50 / r90 (pixels)", "effective number of pixels n_eff"])
    fig.add_trace(go.Scatter(x=ts, y=[c.r50 for c in curves], mode="lines+markers", name="r50"), 1, 1)
    fig.add_trace(go.Scatter(x=ts, y=[c.r90 for c in curves], mode="lines+markers", name="r90"), 1, 1)
    fig.add_trace(go.Scatter(x=ts, y=[c.n_eff for c in curves], mode="lines+markers", name="n_eff"), 1, 2)
    fig.update_xaxes(title_text="timestep t")
    _timestep_axis(fig, ts)
    label = curves[0].label if curves else ""
    fig.update_layout(title=f"Receptive field across timesteps, on {label}")
    return _readable(fig)


def spectrum_figure(results) -> go.Figure:
    """Top singular values of J_s, and sigma_max / spectral radius of J_f, against the timestep (Figure 8)."""
    ts = [r.t for r in results]
    fig = make_subplots(1, 2, subplot_titles=["singular values of J_s", "J_f: sigma_max and spectral radius"])
    k = len(results[0].singular_Js.values) if results else 0
    for i in range(k):
        fig.add_trace(
            go.Scatter(
                x=ts,
                y=[float(r.singular_Js.values[i]) for r in results],
                mode="lines+markers",
                name=f"sigma_{i + 1}(J_s)",
            ),
            1,
            1,
        )
    fig.add_trace(
        go.Scatter(x=ts, y=[r.sigma_max_Jf for r in results], mode="lines+markers", name="sigma_max(J_f)"), 1, 2
    )
    fig.add_trace(go.Scatter(x=ts, y=[r.rho_Jf for r in results], mode="lines+markers", name="rho(J_f)"), 1, 2)
    fig.add_hline(y=1.0, line_dash="dot", line_color="gray", row=1, col=2)
    _log_axis(fig, [float(v) for r in results for v in r.singular_Js.values[:k]], row=1, col=1)
    fig.update_xaxes(title_text="timestep t")
    _timestep_axis(fig, ts)
    fig.update_layout(
        title="How far one Jacobian can stretch an image", legend=dict(orientation="h", y=-0.3), height=420
    )
    return _readable(fig)


def singular_vectors_figure(results, which: str = "Jf", k: int | None = None) -> go.Figure:
    """Right singular vectors (rows: timesteps, columns: index i) as RGB pictures (Figure 9)."""
    rows = [r.singular_Jf if which.lower() in ("jf", "j_f", "reverse") else r.singular_Js for r in results]
    k = min(len(r.values) for r in rows) if k is None else k
    titles = [f"t={res.t} sigma_{i + 1}={float(r.values[i]):.3g}" for res, r in zip(results, rows) for i in range(k)]
    fig = make_subplots(len(rows), k, subplot_titles=titles, horizontal_spacing=0.02, vertical_spacing=0.06)
    for j, r in enumerate(rows, start=1):
        for i in range(k):
            fig.add_trace(go.Image(z=vector_image(r.right[i], min_side=1)), j, i + 1)
    fig.update_xaxes(visible=False)
    fig.update_yaxes(visible=False)
    fig.update_layout(
        title=f"Strongest directions of {rows[0].operator if rows else which} (grey = 0)",
        height=220 * max(1, len(rows)) + 90,
        margin=dict(l=10, r=10, t=90, b=10),
    )
    return _readable(fig)


def step_limit_figure(results) -> go.Figure:
    """Explicit-Euler step-size limit from the spectrum of J_s against the step h of the strided run."""
    ts = [r.t for r in results]
    fig = go.Figure()
    fig.add_trace(go.Scatter(x=ts, y=[r.h_max for r in results], mode="lines+markers", name="h_max (Ritz values)"))
    fig.add_trace(go.Scatter(x=ts, y=[r.h_max_sigma for r in results], mode="lines+markers", name="2 / sigma_max(J_s)"))
    fig.add_trace(
        go.Scatter(
            x=ts, y=[r.h_used for r in results], mode="lines+markers", name="h used (stride)", line=dict(dash="dash")
        )
    )
    fig.update_layout(
        title="Largest stable step h_max vs the step h a strided run takes",
        xaxis_title="timestep t",
        yaxis_title="step h",
        legend=dict(orientation="h", y=-0.3),
        height=420,
    )
    values = [v for r in results for v in (r.h_max, r.h_max_sigma, r.h_used)]
    _log_axis(fig, values)
    _timestep_axis(fig, ts)
    return _readable(fig)


# --- app figures (Denoise and Inverse-problems tabs) -------------------------------------------------
def psnr_vs_t_figure(rows: Sequence[dict]) -> go.Figure:
    """PSNR (left axis) and LPIPS (right axis, dashed, where available) of the noised input x_t and of its
    reverse-diffusion denoising against t (poster Figure 1)."""
    ts = [r["t"] for r in rows]
    fig = go.Figure()
    fig.add_trace(
        go.Scatter(
            x=ts, y=[r["psnr_noisy"] for r in rows], mode="lines+markers", name="noised input, x_t / sqrt(abar_t)"
        )
    )
    fig.add_trace(go.Scatter(x=ts, y=[r["psnr_denoised"] for r in rows], mode="lines+markers", name="denoised"))
    has_lpips = any(r.get("lpips_denoised") is not None for r in rows)
    for key, name in (("lpips_noisy", "LPIPS, noised input"), ("lpips_denoised", "LPIPS, denoised")):
        if has_lpips:
            values = [r.get(key) for r in rows]
            fig.add_trace(
                go.Scatter(x=ts, y=values, mode="lines+markers", name=name, yaxis="y2", line=dict(dash="dash"))
            )
    fig.update_layout(
        title="Denoising from x_t: PSNR" + (" and LPIPS" if has_lpips else "") + " against the clean image",
        xaxis_title="timestep t (log scale)",
        yaxis_title="PSNR (dB)",
        legend=dict(orientation="h", y=-0.35),
        margin=dict(l=70, r=20, t=60, b=60),
    )
    if has_lpips:
        fig.update_layout(
            yaxis2=dict(title="LPIPS (lower is better)", overlaying="y", side="right", rangemode="tozero"),
            margin=dict(l=70, r=80, t=60, b=60),
        )
    _log_axis(fig, ts, axis="x")
    return _readable(fig, height=400)


def restoration_trace_figure(traces: dict, titles: dict | None = None) -> go.Figure:
    """Per-step PSNR of x0_hat against the truth and residual ||y - A x0_hat|| of each method, against progress.

    ``traces``: method -> {"step": fractions of the run in (0, 1], "psnr": dB, "residual": norms (or None)}."""
    titles = titles or {}
    fig = make_subplots(1, 2, subplot_titles=["PSNR of x0_hat vs truth (dB)", "residual ||y - A x0_hat||_2"])
    for k, (name, tr) in enumerate(traces.items()):
        colour = "rgb({},{},{})".format(*LINE_COLOURS[k % len(LINE_COLOURS)])
        label = titles.get(name, name)
        fig.add_trace(go.Scatter(x=tr["step"], y=tr["psnr"], mode="lines", name=label, line=dict(color=colour)), 1, 1)
        residual = [np.nan if r is None else r for r in tr["residual"]]
        fig.add_trace(
            go.Scatter(x=tr["step"], y=residual, mode="lines", name=label, line=dict(color=colour), showlegend=False),
            1,
            2,
        )
    fig.update_xaxes(title_text="fraction of the run", range=[0, 1])
    residuals = [r for tr in traces.values() for r in tr["residual"] if r is not None]
    _log_axis(fig, residuals, row=1, col=2)
    fig.update_layout(margin=dict(l=50, r=20, t=50, b=50), height=380, legend=dict(orientation="h", y=-0.35))
    return _readable(fig)


def refresh_restoration_trace(fig: go.Figure, traces: dict) -> go.Figure:
    """``fig`` (made by restoration_trace_figure for the same methods, in the same order) with the new points.

    Streaming rebuilds nothing: building the two-panel figure costs 50-200 ms on a 2-core CPU, as much as a DPS
    step, while setting its arrays costs under 1 ms (bench/RESULTS_estimates.md)."""
    residuals = [r for tr in traces.values() for r in tr["residual"] if r is not None]
    with fig.batch_update():
        for k, tr in enumerate(traces.values()):
            psnr, residual = fig.data[2 * k], fig.data[2 * k + 1]
            psnr.x, psnr.y = list(tr["step"]), list(tr["psnr"])
            residual.x, residual.y = list(tr["step"]), [np.nan if r is None else r for r in tr["residual"]]
        tickvals, ticktext = log_ticks(residuals)
        fig.layout.yaxis2.update(tickvals=tickvals, ticktext=ticktext)
    return fig
