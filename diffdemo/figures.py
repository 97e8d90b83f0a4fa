"""Figure and report writers for ``reproduce``: PNG (matplotlib) + interactive HTML (plotly) pairs, and the
report pages (markdown and HTML) that show them in order. Plotting only: no engine code here."""

from __future__ import annotations

import html
from pathlib import Path

import numpy as np


class Figures:
    """Writes PNG (matplotlib) + HTML (plotly) pairs into one folder and remembers them in order."""

    def __init__(self, out: Path):
        self.out = out
        self.entries: list[dict] = []

    def _plotly_html(self, fig, stem: str) -> str:
        name = f"{stem}.html"
        # one shared plotly.min.js next to the pages: small files that still open offline
        fig.write_html(self.out / name, include_plotlyjs="directory", full_html=True)
        return name

    def line_chart(
        self,
        stem: str,
        title: str,
        xlabel: str,
        panels: list[dict],
        log_x: bool = False,
        log_y: tuple[int, ...] = (),
        html: bool = True,
    ) -> dict:
        """Panels of curves (``charts.line_chart_png``'s format) as PNG + interactive HTML."""
        from diffdemo.charts import line_chart_png, pyplot
        from diffdemo.plots import line_chart_figure

        fig = line_chart_png(panels, title, xlabel, log_x, log_y)
        png = f"{stem}.png"
        fig.savefig(self.out / png, dpi=110)
        pyplot().close(fig)
        page = self._plotly_html(line_chart_figure(panels, title, xlabel, log_x, log_y), stem) if html else None
        return {"png": png, "html": page}

    def image_table(
        self, stem: str, title: str, rows: list[tuple[str, list[tuple[str, np.ndarray]]]], html: bool = True
    ) -> dict:
        """A labelled grid of uint8 (H, W, 3) pictures: rows of (row label, [(column title, image)])."""
        import plotly.graph_objects as go
        from plotly.subplots import make_subplots

        from diffdemo.charts import pyplot

        plt = pyplot()
        n_rows, n_cols = len(rows), max(len(r[1]) for r in rows)
        fig, axes = plt.subplots(n_rows, n_cols, figsize=(1.55 * n_cols + 0.6, 1.75 * n_rows + 0.5), squeeze=False)
        titles = [rows[i][1][j][0] if j < len(rows[i][1]) else "" for i in range(n_rows) for j in range(n_cols)]
        pfig = make_subplots(
            rows=n_rows, cols=n_cols, subplot_titles=titles, horizontal_spacing=0.01, vertical_spacing=0.06
        )
        for i, (label, cells) in enumerate(rows):
            for j in range(n_cols):
                ax = axes[i][j]
                ax.set_xticks([])
                ax.set_yticks([])
                if j >= len(cells):
                    ax.axis("off")
                    continue
                name, img = cells[j]
                ax.imshow(img, interpolation="nearest")
                ax.set_title(name, fontsize=7)
                pfig.add_trace(go.Image(z=img, name=f"{label}: {name}"), row=i + 1, col=j + 1)
            axes[i][0].set_ylabel(label, fontsize=8)
        pfig.update_xaxes(showticklabels=False)
        pfig.update_yaxes(showticklabels=False)
        pfig.update_annotations(font_size=10)
        pfig.update_layout(title=title, height=170 * n_rows + 90, width=max(520, 150 * n_cols + 60))
        fig.suptitle(title, fontsize=10)
        fig.tight_layout()
        png = f"{stem}.png"
        fig.savefig(self.out / png, dpi=110)
        plt.close(fig)
        return {"png": png, "html": self._plotly_html(pfig, stem) if html else None}

    def html_page(self, stem: str, title: str, figs: list) -> str:
        """Several plotly figures on one page, sharing the folder's plotly.min.js."""
        name = f"{stem}.html"
        if not (self.out / "plotly.min.js").exists():
            import plotly.graph_objects as go

            go.Figure().write_html(self.out / "_plotly_js.html", include_plotlyjs="directory")
            (self.out / "_plotly_js.html").unlink()
        parts = [f.to_html(full_html=False, include_plotlyjs=False) for f in figs]
        (self.out / name).write_text(
            f"<!doctype html><html><head><meta charset='utf-8'><title>{html.escape(title)}</title>"
            "<script src='plotly.min.js'></script></head><body>"
            f"<h3 style='font-family:sans-serif'>{html.escape(title)}</h3>" + "\n".join(parts) + "</body></html>"
        )
        return name

    def add(self, key: str, title: str, sentence: str, files: list[dict]) -> None:
        self.entries.append({"key": key, "title": title, "sentence": sentence, "files": files})


def md_table_to_html(md: str) -> str:
    rows = [line.strip().strip("|").split("|") for line in md.splitlines() if line.strip()]
    head, body = rows[0], rows[2:]
    out = ["<table><tr>" + "".join(f"<th>{html.escape(c.strip())}</th>" for c in head) + "</tr>"]
    for r in body:
        out.append("<tr>" + "".join(f"<td>{html.escape(c.strip().strip('*'))}</td>" for c in r) + "</tr>")
    return "".join(out) + "</table>"


def write_report_pages(
    out: Path, title: str, head: str, entries: list[dict], table: tuple[str, str, str, str] | None = None
) -> None:
    """report.md and report.html: each figure entry with its sentence; ``table`` = (after which key, heading,
    sentence, markdown table) is placed after that entry (or last)."""
    md = [f"# {title}", "", head, ""]
    body = [f"<h1>{html.escape(title)}</h1><p>{html.escape(head)}</p>"]
    after = next((i for i, e in enumerate(entries) if table and e["key"] == table[0]), len(entries) - 1)
    for i, e in enumerate(entries):
        md += [f"## {e['title']}", "", e["sentence"], ""]
        body.append(f"<h2>{html.escape(e['title'])}</h2><p>{html.escape(e['sentence'])}</p>")
        for f in e["files"]:
            md += [f"![{e['title']}]({f['png']})", "", f"[interactive version]({f['html']})", ""]
            body.append(
                f'<p><img src="{f["png"]}" alt="{html.escape(e["title"])}" style="max-width:100%"></p>'
                f'<details><summary><a href="{f["html"]}">interactive version</a> (open inline)</summary>'
                f'<iframe src="{f["html"]}" loading="lazy" style="width:100%;height:560px;border:0"></iframe>'
                "</details>"
            )
        if i == after and table:
            _, heading, sentence, table_md = table
            md += [f"## {heading}", "", sentence, "", table_md, ""]
            body.append(f"<h2>{html.escape(heading)}</h2><p>{html.escape(sentence)}</p>{md_table_to_html(table_md)}")
    md += ["", "All numbers: [metrics.json](metrics.json)."]
    body.append('<p>All numbers: <a href="metrics.json">metrics.json</a>.</p>')
    (out / "report.md").write_text("\n".join(md) + "\n")
    page = (
        "<!doctype html><html><head><meta charset='utf-8'><title>diffdemo reproduction</title>"
        "<style>body{font-family:system-ui,sans-serif;max-width:1100px;margin:2em auto;padding:0 1em}"
        "table{border-collapse:collapse}td,th{border:1px solid #ccc;padding:3px 8px;font-size:90%}</style>"
        "</head><body>" + "\n".join(body) + "</body></html>"
    )
    (out / "report.html").write_text(page)
