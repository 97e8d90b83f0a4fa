"""The claims' verdict rows and where they go: ``evaluate_claims`` (one row per claim, with the run's budget), the
markdown table, the report's claims section, claims.json, and the stored table the app shows."""

from __future__ import annotations

from dataclasses import asdict

from diffdemo.claims.poster import CLAIMS
from diffdemo.claims.verdicts import VERDICTS, Finding, combine
from diffdemo.jsonio import plain, write_json

SMOKE = "smoke run: quick budget"


def budget_label(name: str | None) -> str:
    """What every verdict row says about the budget behind it."""
    if name in (None, ""):
        return "budget not recorded"
    return SMOKE if name != "full" else "full budget"


def evaluate_claims(metrics: dict, budget: str | None = None) -> list[dict]:
    """One row per claim: figure, statement, measured, rule, numbers, findings (effect, interval, test), the
    verdict and the budget (strict-JSON ready). ``budget`` defaults to the run's recorded budget name."""
    name = budget or (metrics.get("budget") or {}).get("name")
    rows = []
    for c in CLAIMS:
        numbers, found = c.evaluate(metrics)
        rows.append({"key": c.key, "figure": c.figure, "statement": c.statement, "measured": c.measured,
                     "rule": c.rule, "numbers": plain(numbers), "findings": [plain(asdict(f)) for f in found],
                     "verdict": combine(found), "budget": budget_label(name)})  # fmt: skip
    return rows


def summary_line(row: dict) -> str:
    """The findings behind one verdict (effect, interval, test), and its budget, for reports and the app."""
    found = [Finding(**f) for f in row.get("findings", [])]
    if not found:
        return f"not measured in this run ({row.get('budget', '')})"
    return "; ".join(f.text() for f in found) + f" ({row.get('budget', 'budget not recorded')})"


def claims_markdown(rows: list[dict]) -> str:
    """The claims table for report.md / README / the app."""
    lines = ["| figure | poster's claim | measured on this model: effect [95 % interval] | verdict | rule |",
             "|---|---|---|---|---|"]  # fmt: skip
    for r in rows:
        lines.append(f"| {r['figure']} | {r['statement']} | {summary_line(r)} | **{r['verdict']}** | {r['rule']} |")
    return "\n".join(lines)


def append_claims_section(out, rows: list[dict], lpips_status: str) -> None:
    """Add 'The poster's claims on this model' to report.md and report.html (written by figures.write_report_pages)."""
    import html as _html
    from pathlib import Path

    from diffdemo.figures import md_table_to_html

    out = Path(out)
    heading = "The poster's claims on this model"
    counts = {v: sum(r["verdict"] == v for r in rows) for v in VERDICTS}
    sentence = (
        "Each verdict is computed from this run's numbers by the rule beside it (diffdemo/claims/): "
        + ", ".join(f"{n} {v}" for v, n in counts.items() if n)
        + f". LPIPS: {lpips_status}."
    )
    table = claims_markdown(rows)
    md_path, html_path = out / "report.md", out / "report.html"
    md = md_path.read_text()
    md_path.write_text(md + f"\n## {heading}\n\n{sentence}\n\n{table}\n")
    page = html_path.read_text()
    section = f"<h2>{_html.escape(heading)}</h2><p>{_html.escape(sentence)}</p>{md_table_to_html(table)}"
    html_path.write_text(page.replace("</body></html>", section + "</body></html>"))


CLAIMS_NAME = "claims.json"  # written by reproduce into its output folder; a copy next to a model feeds the app


def write_claims_file(path, rows: list[dict], **about) -> None:
    """Strict JSON: where the numbers come from (model, budget, seed, ...) and the claim rows."""
    write_json(path, {**about, "claims": rows})


def stored_claims_markdown(model_name: str) -> str:
    """The claims table stored next to a model (a copy of a reproduce run's claims.json), for the app's panel."""
    import json

    from diffdemo.models import resolve_model_dir

    folder = resolve_model_dir(str(model_name))
    path = folder / CLAIMS_NAME if folder is not None else None
    if path is None or not path.is_file():
        return (
            f"No claims table stored for `{model_name}`. Run `python -m diffdemo reproduce --model {model_name} "
            "--out DIR` (the verdicts are in DIR/report.md) and copy DIR/claims.json next to the model."
        )
    data = json.loads(path.read_text())
    budget = data.get("budget", "?")
    head = (
        f"Verdicts computed by `diffdemo/claims/` from a `reproduce` run: **{budget_label(budget)}**"
        + (" (a smoke run: not the poster's budget)" if budget != "full" else "")
        + f", made {data.get('date', 'on an unrecorded date')} by `{data.get('command', 'python -m diffdemo reproduce')}`"
        + (f" in {data['seconds'] / 60:.0f} min" if data.get("seconds") else "")
        + f" (seed {data.get('seed', '?')}, LPIPS: {data.get('lpips_status', '?')}); each rule is in the last column."
    )
    return head + "\n\n" + claims_markdown(data["claims"])
