"""The reproduction's last stage and its outputs: the claims evaluated on the run's numbers, metrics.json,
report.md / report.html and claims.json; ``refresh_claims`` re-applies the claims' rules to a finished run."""

from __future__ import annotations

import time
from dataclasses import asdict
from pathlib import Path

from diffdemo import defaults, metrics
from diffdemo.experiments import network
from diffdemo.figures import write_report_pages
from diffdemo.jsonio import write_json
from diffdemo.reproduce.reproduction import Reproduction
from diffdemo.reproduce.restoration_figures import table_markdown
from diffdemo.restore import DIFFUSION_METHODS


# --- the claims table and the report ----------------------------------------------------------------------------
def claims(run: Reproduction) -> None:
    from diffdemo.claims import evaluate_claims

    profile = run.profile()
    if profile is not None:
        keys = ("t", "rho_Js", "stiff_Js", "rho_Jf", "rho_Jf_per_image", "residual_Jf_per_image")
        run.metrics["stability_profile"] = {k: profile[k] for k in keys if k in profile}
    run.metrics["claims"] = evaluate_claims(run.metrics, budget=run.budget.name)


def command_line(model: str, budget: str, seed: int, out) -> str:
    """The command that makes a run of this budget (what the app shows under the claims table)."""
    flag = {"full": "", "quick": " --quick", "tiny": " --tiny"}[budget]
    seed_text = "" if seed == defaults.SEED else f" --seed {seed}"
    return f"python -m diffdemo reproduce{flag} --model {model}{seed_text} --out {out}"


def _write_claims(out: Path, metrics_: dict, lp_status: str, date: str) -> None:
    from diffdemo.claims import CLAIMS_NAME, write_claims_file

    budget = metrics_["budget"]["name"]
    write_claims_file(out / CLAIMS_NAME, metrics_["claims"], model=metrics_["model"], budget=budget,
                      seed=metrics_["seed"], lpips_status=lp_status, date=date, seconds=metrics_.get("seconds"),
                      command=command_line(metrics_["model"], budget, metrics_["seed"], out))  # fmt: skip


def refresh_claims(out: str | Path) -> dict:
    """Re-evaluate the claims of a finished run from its metrics.json (the rules changed, the numbers did not):
    rewrites metrics.json's claims, claims.json and the report's claims section; no network evaluation."""
    import json

    from diffdemo.claims import append_claims_section, evaluate_claims

    out = Path(out)
    data = json.loads((out / "metrics.json").read_text())
    data["claims"] = evaluate_claims(data, budget=data["budget"]["name"])
    write_json(out / "metrics.json", data)
    heading = "\n## The poster's claims on this model"
    md = (out / "report.md").read_text()
    (out / "report.md").write_text(md.split(heading)[0])
    page = (out / "report.html").read_text()
    cut = page.find("<h2>The poster&#x27;s claims on this model</h2>")
    (out / "report.html").write_text(page[:cut] + "</body></html>" if cut >= 0 else page)
    append_claims_section(out, data["claims"], data["lpips_status"])
    _write_claims(out, data, data["lpips_status"], data.get("date") or "an unrecorded date")
    return {"claims": str(out / "claims.json"), "verdicts": {r["key"]: r["verdict"] for r in data["claims"]}}


def write_report(run: Reproduction, seconds: float) -> dict:
    out, lp_status = run.out, metrics.lpips_status(size=run.size)
    run.metrics.update(
        model=run.model.name,
        budget=asdict(run.budget),
        seed=run.seed,
        size=run.size,
        sigma_y=run.sigma_y,
        operators={task: op.describe() for task, op in run.ops.items()},
        lpips_status=lp_status,
        # the network's number format per method; the analysis figures always differentiate in fp32
        precision={
            "requested": run.precision,
            **{m: network(run.model, m, run.precision).precision for m in (*DIFFUSION_METHODS, "sample")},
            "analysis": "fp32",
        },
        figures=[{"key": e["key"], "files": e["files"]} for e in run.figures.entries],
        seconds=seconds,
        date=time.strftime("%Y-%m-%d", time.gmtime()),
    )
    write_json(out / "metrics.json", run.metrics)
    head = (
        f"Model `{run.model.name}`, budget `{run.budget.name}`, seed {run.seed}, {run.size} px, "
        f"sigma_y = {run.sigma_y} ([-1, 1] units), {seconds / 60:.1f} min. LPIPS: {lp_status}."
    )
    table = None
    if "methods_table" in run.metrics:
        table = ("fig5_dps", "Methods table", run.table_sentence, table_markdown(run.metrics["methods_table"]))
    write_report_pages(out, "diffdemo - the poster's figures, regenerated", head, run.figures.entries, table)
    if "claims" in run.metrics:
        from diffdemo.claims import append_claims_section

        append_claims_section(out, run.metrics["claims"], lp_status)
        _write_claims(out, run.metrics, lp_status, run.metrics["date"])
    return {
        "report": str(out / "report.html"),
        "report_md": str(out / "report.md"),
        "metrics": str(out / "metrics.json"),
        "claims": str(out / "claims.json"),
    }
