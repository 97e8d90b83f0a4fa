"""What the Inverse problems tab shows of a restoration as it runs: the pictures (one strip, built in the browser),
the metrics table and the per-step trace, kept up to date from what ``experiments.restoration`` yields."""

from __future__ import annotations

import gradio as gr

from diffdemo.labels import METHOD_TITLES
from diffdemo.ui.common import metrics_line, view_file


def gallery_items(latest: dict, finals: dict, single: bool, rows: list[dict]) -> list:
    """(picture, "Name: detail") per tile, in the order the page shows them after the measurement and the truth:
    each method's result with its metrics (or, while it runs, its current x0_hat and, for one method, x_t), the
    chains' spread for a multi-chain run, then the classical baselines. No tile twice: a finished run's x_t is its
    result."""
    by_method = {r["method"]: r for r in rows}
    best = max(rows, key=lambda r: r["psnr"])["method"] if len(rows) > 1 else None

    def caption(name: str, title: str) -> str:
        return f"{title}: {metrics_line(by_method[name])}" + (" (best PSNR)" if name == best else "")

    items = []
    for name, frame in latest.items():
        title = METHOD_TITLES.get(name, name)
        if name in finals:
            items.append((view_file(finals[name], name), caption(name, title)))
        else:
            items.append((view_file(frame.x0_hat, name), f"{title}: x0_hat at step {frame.step}/{frame.total}"))
            if single:
                items.append((view_file(frame.x_t, name), f"{title}: x_t at t = {max(frame.t_prev, 0)}"))
        if single and frame.x_std is not None:
            from diffdemo.pictures import spread_picture

            shown, top = spread_picture(frame.x_std)
            items.append((view_file(shown, f"{name}_std"), f"{title}: spread across the chains (white = {top:.3f})"))
    for name, x in finals.items():
        if name not in latest:
            items.append((view_file(x, name), caption(name, f"{METHOD_TITLES.get(name, name)} (classical)")))
    if best is not None:  # the winner right after the measurement and the truth: on screen at 1280x800
        items.sort(key=lambda item: not item[1].endswith("(best PSNR)"))
    return items


# The page shows /restore's pictures as one strip built in the browser from the measurement, the truth and the
# gallery (kept as outputs so that gradio_client users get the files): whole, enlarged with nearest neighbour,
# each with its caption below it, no scrolling box.
STRIP_JS = """(truth, meas, gallery) => {
  const url = (v) => v ? (v.url || (v.image && v.image.url) || null) : null;
  const esc = (s) => String(s ?? "").replace(/[&<>"]/g, (c) => ({"&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;"}[c]));
  const fig = (src, name, detail) => src ? `<figure${detail.endsWith("(best PSNR)") ? ' class="best"' : ""}>` +
    `<img src="${src}" alt="${esc(name)}"><figcaption>` +
    `<span class="name">${esc(name)}</span><br>${esc(detail)}</figcaption></figure>` : "";
  let html = fig(url(meas), "measurement y", "what the methods see") + fig(url(truth), "truth x0", "the original");
  for (const item of (gallery || [])) {
    const cap = item.caption || "";
    const i = cap.indexOf(": ");
    html += fig(url(item.image || item), i < 0 ? cap : cap.slice(0, i), i < 0 ? "" : cap.slice(i + 2));
  }
  return html ? `<div class="strip">${html}</div>` : "";
}"""


def metrics_table(rows: list[dict]):
    header = ["method", "PSNR (dB)", "SSIM", "LPIPS", "residual", "seconds", "NFE"]
    body = [
        [
            METHOD_TITLES.get(r["method"], r["method"]),
            round(r["psnr"], 2),
            round(r["ssim"], 3),
            "unavailable" if r["lpips"] is None else round(r["lpips"], 3),
            "none" if r["residual"] is None else round(r["residual"], 3),
            round(r["seconds"], 2),
            r["nfe"],
        ]
        for r in rows
    ]
    return {"headers": header, "data": body}


class RunView:
    """What the tab shows of a restoration so far, built from what diffdemo.experiments.restoration yields: each
    diffusion method's latest frame and per-step trace, the finished rows and their pictures."""

    def __init__(self, methods: list[str], truth, measurement):
        self.single = len(methods) == 1
        self.latest, self.finals, self.rows = {}, {}, []
        self.traces = {m: {"step": [], "psnr": [], "residual": []} for m in methods}
        self.pictures, self.sent = (view_file(truth, "truth"), view_file(measurement, "measurement")), False
        self.figure = None  # the trace figure, built once and refreshed in place (plots.refresh_restoration_trace)

    def add(self, item) -> None:
        """A Step (a streamed frame, scored by the engine) or a Row (a finished method)."""
        from diffdemo.experiments import Step

        if isinstance(item, Step):
            frame = self.latest[item.method] = item.frame
            trace = self.traces[item.method]
            trace["step"].append(frame.step / frame.total)
            trace["psnr"].append(item.psnr)
            trace["residual"].append(item.residual)
        else:
            self.finals[item.method] = item.reconstruction
            self.rows.append(item.record())

    def progress(self) -> tuple[float, str, int, int]:
        """(fraction done, the progress bar's words, steps done, steps in all) of the diffusion methods."""
        frames = self.latest.values()
        done = sum(f.step / f.total for f in frames) / len(self.traces)
        words = ", ".join(f"{m} {f.step}/{f.total}" for m, f in self.latest.items())
        return done, words, sum(f.step for f in frames), sum(f.total for f in frames)

    def status(self) -> str:
        return " | ".join(f"{METHOD_TITLES[m]}: step {f.step}/{f.total}" for m, f in self.latest.items())

    def outputs(self, status: str, record=None, files=None) -> tuple:
        """/restore's outputs in their API order; the truth and the measurement sent with the first only."""
        from diffdemo import plots

        final = record is not None
        truth, measured = self.pictures if final or not self.sent else (gr.skip(), gr.skip())
        self.sent = True
        gallery = gallery_items(self.latest, self.finals, self.single, self.rows)
        if self.figure is None:
            self.figure = plots.restoration_trace_figure(self.traces, METHOD_TITLES)
        trace = plots.refresh_restoration_trace(self.figure, self.traces)
        done = (record, files) if final else (gr.skip(), gr.skip())
        return truth, measured, gallery, metrics_table(self.rows), trace, status, *done
