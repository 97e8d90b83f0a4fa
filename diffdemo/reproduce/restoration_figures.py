"""Figures 3-5 and the methods table: each diffusion method against its parameter on both problems (SDEdit vs t0,
Score-ALD vs zeta, DPS vs scale), and every method at its defaults on the table's images. They share the run's
cache of restorations (``Reproduction.restoration``)."""

from __future__ import annotations

from diffdemo import metrics
from diffdemo.defaults import params_for
from diffdemo.imaging import bundled_images, to_uint8
from diffdemo.labels import METHOD_TITLES
from diffdemo.reproduce.reproduction import Reproduction
from diffdemo.reproduce.specs import FIGURES, TASK_TITLES, TASKS, FigureSpec
from diffdemo.restore import DIFFUSION_METHODS


# --- Figs. 3-5 --------------------------------------------------------------------------------------------------
def sweep(run: Reproduction, key: str) -> None:
    """A restoration method against its parameter on both tasks (FIGURES[key]): PSNR / SSIM chart and pictures."""
    spec, b = FIGURES[key], run.budget
    names, values = run.image_names[: b.sweep_images], list(getattr(b, spec.values))
    data = {task: _sweep_task(run, spec, task, names, values) for task in TASKS}
    psnr_panel = {"ylabel": "PSNR (dB)", "series": [], "hlines": []}
    ssim_panel = {"ylabel": "SSIM", "series": []}
    rows = []
    for task, d in data.items():
        psnr_panel["series"].append({"name": TASK_TITLES[task], "x": values, "y": [r["psnr"] for r in d["runs"]]})
        psnr_panel["hlines"].append({"name": f"measurement ({TASK_TITLES[task]})", "y": d["psnr_measurement"]})
        ssim_panel["series"].append({"name": TASK_TITLES[task], "x": values, "y": [r["ssim"] for r in d["runs"]]})
        prob = run.problems[(task, names[0])]
        cells = [("truth", to_uint8(prob.x0)), (f"y: {metrics.psnr(prob.y, prob.x0):.1f} dB", to_uint8(prob.y))]
        for v in values:
            r = run.restoration(spec.method, task, names[0], **{spec.param: v})
            cells.append((f"{spec.param}={v:g}: {r.psnr:.1f} dB", to_uint8(r.reconstruction)))
        rows.append((TASK_TITLES[task], cells))
    chart = run.figures.line_chart(key, spec.chart, spec.xlabel, [psnr_panel, ssim_panel])
    strip = run.figures.image_table(f"{key}_images", f"{spec.chart}: reconstructions", rows)
    parts = []
    for task, d in data.items():
        runs, p = d["runs"], spec.param
        best = max(runs, key=lambda r: r["psnr"])
        parts.append(
            f"{TASK_TITLES[task]} {runs[0]['psnr']:.1f} dB at {p}={runs[0][p]:g} to {runs[-1]['psnr']:.1f} dB at "
            f"{p}={runs[-1][p]:g} (best {best['psnr']:.1f} dB at {p}={best[p]:g}; measurement "
            f"{d['psnr_measurement']:.1f} dB)"
        )
    method = METHOD_TITLES[spec.method]
    sentence = f"{method} ({b.steps} strided steps, {len(names)} image(s)), PSNR: " + "; ".join(parts) + "."
    run.figures.add(key, spec.heading, sentence, [chart, strip])
    run.metrics[key] = {"param": spec.param, "values": values, "steps": b.steps, "images": names, **data}


def _sweep_task(run: Reproduction, spec: FigureSpec, task: str, names: list[str], values: list) -> dict:
    """Mean metrics over the images at each swept value, and the measurement's mean PSNR."""
    per_value = []
    for v in values:
        runs = [run.restoration(spec.method, task, n, **{spec.param: v}) for n in names]
        per_value.append(
            {
                spec.param: v,
                "psnr": metrics.mean_sd([r.psnr for r in runs])[0],
                "psnr_per_image": [r.psnr for r in runs],
                "ssim": metrics.mean_sd([r.ssim for r in runs])[0],
                "lpips": metrics.mean_sd([r.lpips for r in runs])[0] if runs[0].lpips is not None else None,
                "seconds": metrics.mean_sd([r.seconds for r in runs])[0],
                "nfe": runs[0].nfe,
            }
        )
    measured = [metrics.psnr(run.problems[(task, n)].y, run.problems[(task, n)].x0) for n in names]
    return {"runs": per_value, "psnr_measurement": metrics.mean_sd(measured)[0], "psnr_measurement_per_image": measured}


# --- methods table ----------------------------------------------------------------------------------------------
def methods_table(run: Reproduction) -> None:
    table = []
    for task in TASKS:
        for method in run.table_methods(task):
            runs = [run.restoration(method, task, n, **run.table_params(method, task)) for n in run.table_names]
            row = {"task": task, "method": method, "images": len(runs), "nfe": runs[0].nfe}
            for m in ("psnr", "ssim", "lpips", "seconds"):
                vals = [getattr(r, m) for r in runs]
                mean, std = metrics.mean_sd(vals) if all(v is not None for v in vals) else (None, None)
                row[m] = {"mean": mean, "std": std}
            row["params"] = dict(runs[0].params)
            row["psnr_per_image"] = [r.psnr for r in runs]  # paired over images by the claims' rules
            table.append(row)
    measurement = {}
    for task in TASKS:
        measured = [metrics.psnr(run.problems[(task, n)].y, run.images[n]) for n in run.table_names]
        measurement[task] = {**dict(zip(("mean", "std"), metrics.mean_sd(measured))), "per_image": measured}
    run.metrics["methods_table"] = {"images": run.table_names, "rows": table, "psnr_measurement": measurement}
    best = {task: max((r for r in table if r["task"] == task), key=lambda r: r["psnr"]["mean"]) for task in TASKS}
    run.table_sentence = (
        f"All methods on {len(run.table_names)} of the {len(bundled_images())} bundled test images at {run.size} px "
        f"(sigma_y={run.sigma_y}, diffusion methods {_table_steps_text(run)} with their default parameters, one "
        "posterior draw each): best mean PSNR "
        + "; ".join(
            f"{TASK_TITLES[t]} {METHOD_TITLES[best[t]['method']]} {best[t]['psnr']['mean']:.1f} dB "
            f"(measurement {measurement[t]['mean']:.1f} dB)"
            for t in TASKS
        )
        + "."
    )


def _table_steps_text(run: Reproduction) -> str:
    if run.budget.table_steps is not None:
        return f"{run.budget.table_steps} strided steps"
    return (
        "their default strided steps ("
        + ", ".join(f"{METHOD_TITLES[m]} {params_for(m)['steps']}" for m in DIFFUSION_METHODS if m != "denoise")
        + "; SDEdit from t0)"
    )


def table_markdown(table: dict) -> str:
    """The methods table (metrics.json's ``methods_table``) as markdown."""
    lines = [
        "| task | method | PSNR (dB) mean ± sd | SSIM mean ± sd | LPIPS | NFE | seconds/image |",
        "|---|---|---|---|---|---|---|",
    ]
    for r in table["rows"]:
        lp = "n/a" if r["lpips"]["mean"] is None else f"{r['lpips']['mean']:.3f} ± {r['lpips']['std']:.3f}"
        lines.append(
            f"| {TASK_TITLES[r['task']]} | {METHOD_TITLES[r['method']]} | {r['psnr']['mean']:.2f} ± "
            f"{r['psnr']['std']:.2f} | {r['ssim']['mean']:.3f} ± {r['ssim']['std']:.3f} | {lp} | {r['nfe']} | "
            f"{r['seconds']['mean']:.2f} |"
        )
    for task, m in table["psnr_measurement"].items():
        lines.append(f"| {TASK_TITLES[task]} | *measurement y* | {m['mean']:.2f} ± {m['std']:.2f} | | | | |")
    lines.append(f"\n± : {metrics.MEAN_SD}.")
    return "\n".join(lines)
