"""Studies (diffdemo/study/): a row equals the CLI's restore, an interrupted study resumes without repeating a
run, two studies never share a folder, Ray's rows equal the local executor's, and the report's statistics."""

from __future__ import annotations

import json
import math
import re
import sqlite3
from pathlib import Path

import pytest
import torch

from diffdemo import study
from diffdemo.cli import main
from diffdemo.study import executors

IMAGES = ["london_006_neutral", "cc0_lisa1"]


def write_study(path, model_dir, name="tiny", extra=""):
    path.write_text(
        f"""
name = "{name}"
model = "{model_dir}"
images = {json.dumps(IMAGES)}
precision = "fp32"

[defaults]
seed = 3

[[problem]]
name = "deblur"
method = "dps"
operator = "gaussian_blur"
spacing = ["uniform", "quadratic"]
steps = [2, 3]
rows = "spacing"
columns = "steps"
reference = {{ spacing = "uniform", steps = 3 }}

[[problem]]
name = "inpaint"
operator = "box_inpaint"
box_preset = "eyes"
steps = 3
variants = [{{ method = "score_ald", samples = 2 }}, {{ method = "tv" }}]
{extra}
"""
    )
    return path


def rows_of(out):
    db = sqlite3.connect(out / study.DB_NAME)
    db.row_factory = sqlite3.Row
    rows = {r["key"]: dict(r) for r in db.execute("SELECT * FROM runs")}
    db.close()
    return rows


@pytest.fixture(scope="module")
def finished(tmp_path_factory, tiny_model_dir):
    """The tiny study run once through the CLI: (study file, output folder, its rows)."""
    root = tmp_path_factory.mktemp("study")
    file = write_study(root / "tiny.toml", tiny_model_dir)
    assert main(["study", str(file), "--out", str(root / "out"), "--no-progress"]) == 0
    return file, root / "out", rows_of(root / "out")


def test_study_rows_equal_the_cli_restore_bit_for_bit(finished, tiny_model_dir, tmp_path, capsys):
    _, _, rows = finished
    assert len(rows) == 2 * (4 + 2)
    picked = [r for r in rows.values() if r["method"] in ("dps", "score_ald") and r["image"] == "cc0_lisa1"]
    assert {r["method"] for r in picked} == {"dps", "score_ald"}
    for row in picked:
        p = json.loads(row["params"])
        argv = ["restore", "--model", str(tiny_model_dir), "--image", p["image"], "--method", p["method"]]
        argv += ["--operator", p["operator"], "--box-preset", p["box_preset"], "--steps", p["steps"]]
        argv += ["--spacing", p["spacing"]] if p["spacing"] else []  # none given: restore's per-task default
        argv += ["--seed", p["seed"], "--precision", "fp32", "--out", tmp_path]
        argv += ["--samples", p["samples"]] if p["samples"] else []
        capsys.readouterr()
        assert main(argv) == 0
        cli = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
        assert row["spacing"] == (p["spacing"] or "quadratic")  # Score-ALD inpainting's default list
        for key in ("psnr", "ssim", "residual", "nfe", "precision", "spacing"):
            assert row[key] == cli[key], key  # exact: the same floats, not close ones
        assert row["lpips"] == cli["lpips"]
        assert json.loads(row["resolved"]) == cli["params"]


def test_rows_carry_the_study_model_and_machine(finished):
    _, _, rows = finished
    row = next(iter(rows.values()))
    assert row["study"] == "tiny" and len(row["model_hash"]) == 64 and len(row["recon_sha"]) == 64
    assert "cores" in row["machine"] and row["code_version"]
    assert len({r["key"] for r in rows.values()}) == len(rows)


def test_an_interrupted_study_resumes_without_repeating_a_run(tiny_model_dir, tmp_path, monkeypatch):
    file = write_study(tmp_path / "s.toml", tiny_model_dir)
    spec, out = study.load_study(file), tmp_path / "out"
    calls, real = [], study.execute

    def counted(params, model):
        if len(calls) == 5:
            raise KeyboardInterrupt  # the user's Ctrl-C in the sixth run
        calls.append(params["image"] + json.dumps(params, sort_keys=True))
        return real(params, model)

    monkeypatch.setattr(executors, "execute", counted)
    with pytest.raises(KeyboardInterrupt):
        study.run_study(spec, out, progress=False, say=lambda s: None)
    first = rows_of(out)
    assert len(first) == 5  # every finished run was stored as it finished
    calls.clear()
    monkeypatch.setattr(executors, "execute", real)
    monkeypatch.setattr(executors, "execute", lambda p, m: calls.append(json.dumps(p, sort_keys=True)) or real(p, m))
    summary = study.run_study(spec, out, progress=False, say=lambda s: None)
    assert summary["ran"] == len(calls) == 12 - 5
    second = rows_of(out)
    assert len(second) == 12 and all(second[k] == first[k] for k in first)  # old rows untouched
    assert study.run_study(spec, out, progress=False, say=lambda s: None)["ran"] == 0
    db = sqlite3.connect(out / study.DB_NAME)
    sessions = db.execute("SELECT runs, finished >= started FROM sessions ORDER BY rowid").fetchall()
    assert sessions == [(5, 1), (7, 1)]  # the interrupted session's wall time and runs are kept too


def test_two_studies_never_share_a_folder(finished, tiny_model_dir, tmp_path, capsys):
    _, out, _ = finished
    other = write_study(tmp_path / "other.toml", tiny_model_dir, name="other")
    assert main(["study", str(other), "--out", str(out), "--dry-run"]) == 2
    assert "holds the study 'tiny'" in capsys.readouterr().err


def test_the_plan_is_printed_before_the_runs(tiny_model_dir, tmp_path):
    said = []
    spec = study.load_study(write_study(tmp_path / "s.toml", tiny_model_dir))
    summary = study.run_study(spec, tmp_path / "out", dry_run=True, say=said.append)
    assert summary["runs"] == 12 and summary["to_run"] == 12
    # per image: DPS 2 + 3 steps on two spacings, Score-ALD 3 steps x 2 chains, TV none
    assert summary["evaluations"] == 2 * (2 * (2 + 3) + 3 * 2)
    assert "12 runs" in said[0] and "network evaluations" in said[0] and "estimate on this machine" in said[1]
    assert not rows_of(tmp_path / "out")


@pytest.mark.parametrize(
    "extra, needle",
    [
        ("bogus = 1", "unknown key"),
        ("t0 = [1, 1]", "distinct"),
        ("reference = { method = 'dps' }", "reference"),
        ("rows = 'seed'", "rows / columns"),
    ],
)
def test_bad_study_files_are_refused_before_any_work(tiny_model_dir, tmp_path, extra, needle):
    with pytest.raises(study.StudyError, match=needle):
        study.load_study(write_study(tmp_path / "s.toml", tiny_model_dir, extra=extra))
    bad = tmp_path / "steps.toml"
    bad.write_text(write_study(tmp_path / "ok.toml", tiny_model_dir).read_text().replace("[2, 3]", "[2, 0]"))
    with pytest.raises(study.StudyError, match="steps"):
        study.load_study(bad)


@pytest.mark.parametrize(
    "old",
    [
        ("seed = 3", 'seed = 3\nschedule = "uniform"'),  # [defaults]: an unknown key there would be ignored
        ('spacing = ["uniform", "quadratic"]', 'schedule = ["uniform", "quadratic"]'),
        ('rows = "spacing"', 'rows = "schedule"'),
        ('{ spacing = "uniform", steps = 3 }', '{ schedule = "uniform", steps = 3 }'),
    ],
)
def test_the_old_name_schedule_is_refused_with_its_new_one(tiny_model_dir, tmp_path, old):
    """'schedule' named the timestep spacing before the rename: a study file using it is told the new name."""
    text = write_study(tmp_path / "ok.toml", tiny_model_dir).read_text()
    assert old[0] in text
    bad = tmp_path / "old.toml"
    bad.write_text(text.replace(old[0], old[1], 1))
    with pytest.raises(study.StudyError, match="'schedule' is now called 'spacing'"):
        study.load_study(bad)


def test_a_database_of_before_the_rename_opens_with_its_rows_and_keys(tiny_model_dir, tmp_path):
    """A runs table with the column ``schedule`` (made before the timestep spacing was called 'spacing') is renamed
    in place, its rows kept; run keys still hash the spacing under its old name, so its runs count as done."""
    import hashlib

    old_columns = {("schedule" if k == "spacing" else k): v for k, v in study.COLUMNS.items()}
    path = tmp_path / study.DB_NAME
    db = sqlite3.connect(path)
    db.executescript(
        "CREATE TABLE study (name TEXT PRIMARY KEY, created REAL);"
        "CREATE TABLE models (name TEXT PRIMARY KEY, hash TEXT);"
        f"CREATE TABLE runs ({', '.join(f'{k} {v}' for k, v in old_columns.items())});"
        "CREATE TABLE sessions (started REAL, finished REAL, executor TEXT, runs INTEGER, machine TEXT);"
    )
    spec = study.load_study(write_study(tmp_path / "tiny.toml", tiny_model_dir))
    run = study.expand(spec, "model-hash")[0]
    old_params = {("schedule" if k == "spacing" else k): v for k, v in run.params.items()}
    ident = {
        "study": "tiny",
        "model_hash": "model-hash",
        "image_sha": hashlib.sha256(_image_bytes(run.image)).hexdigest(),
    }
    old_key = hashlib.sha256(json.dumps({**ident, "run": old_params}, sort_keys=True).encode()).hexdigest()
    assert run.key == old_key  # the key a run had before the rename
    db.execute("INSERT INTO study VALUES ('tiny', 0)")
    db.execute("INSERT INTO runs (key, study, problem, image, params, psnr, schedule) VALUES (?, ?, ?, ?, ?, ?, ?)",
               (old_key, "tiny", run.problem, run.image, json.dumps(old_params), 21.5, "uniform"))  # fmt: skip
    db.commit()
    db.close()

    opened = study.Database(path, "tiny", create=False)
    try:
        columns = {r[1] for r in opened.db.execute("PRAGMA table_info(runs)")}
        assert "spacing" in columns and "schedule" not in columns
        rows = opened.rows()
        assert rows[old_key]["spacing"] == "uniform" and rows[old_key]["psnr"] == 21.5
        assert opened.done() == {run.key}  # a resumed study skips it
        opened.add([{"key": "new", "study": "tiny", "problem": "p", "image": "i", "params": {}, "spacing": "karras"}])
        assert opened.rows()["new"]["spacing"] == "karras"
    finally:
        opened.close()
    study.Database(path, "tiny", create=False).close()  # a second opening leaves it as it is


def _image_bytes(image: str) -> bytes:
    from diffdemo.imaging import bundled_images

    return open(bundled_images().get(image, image), "rb").read()


def test_paired_interval_and_sd_definition():
    m, sd = study.mean_sd([1.0, 2.0, 3.0, 6.0])
    assert m == 3.0 and sd == pytest.approx(math.sqrt(14 / 3))  # ddof = 1
    mean, low, high, n = study.paired({"a": 2.0, "b": 4.0, "c": 6.0, "x": 9.0}, {"a": 1.0, "b": 2.0, "c": 3.0})
    half = 4.302652729911275 / math.sqrt(3)  # t(0.975, 2) x sd(1, 2, 3) / sqrt(3); "x" has no pair
    assert (mean, n) == (2.0, 3) and low == pytest.approx(2 - half) and high == pytest.approx(2 + half)


def test_report_is_computed_from_the_database(finished, tmp_path, capsys):
    file, out, rows = finished
    results = tmp_path / "RESULTS_x.md"
    results.write_text("# kept above\n\nhand-written text\n")
    assert main(["study", str(file), "--out", str(out), "--results", str(results)]) == 0
    text = results.read_text()
    assert "hand-written text" in text and text.count("<!-- study:tiny begin") == 1
    assert main(["study", str(file), "--out", str(out), "--results", str(results)]) == 0
    assert results.read_text() == text  # regenerated in place, nothing duplicated
    params = {k: json.loads(r["params"]) for k, r in rows.items()}
    quad3 = [
        r["psnr"]
        for k, r in rows.items()
        if r["problem"] == "deblur" and (params[k]["spacing"], params[k]["steps"]) == ("quadratic", 3)
    ]
    m, sd = study.mean_sd(quad3)
    assert len(quad3) == 2 and f"{m:.2f} ± {sd:.2f} |\n" in text  # the pivot's last cell: quadratic, 3 steps
    assert "12 of 12 runs finished" in text and "ddof = 1" in text and "cores" in text
    assert (tmp_path / "fig_study_tiny.png").exists()


def test_ray_rows_equal_the_local_executors_and_a_dead_worker_is_retried(finished, tiny_model_dir, tmp_path):
    ray = pytest.importorskip("ray", reason="Ray is optional (requirements-ray.txt); CI installs it")
    _, _, local = finished
    spec = study.load_study(write_study(tmp_path / "s.toml", tiny_model_dir))
    died = tmp_path / "died"  # the first task's worker exits (os._exit) once: Ray must run that task again
    study.connect_ray(env={study.DIE_ONCE: str(died)}, num_cpus=2, include_dashboard=False)
    try:
        summary = study.run_study(spec, tmp_path / "out", executor="ray", progress=False, say=lambda s: None)
    finally:
        ray.shutdown()
    assert summary["ran"] == 12 and died.exists()
    remote = rows_of(tmp_path / "out")
    assert set(remote) == set(local)
    for key, row in remote.items():
        for col in ("psnr", "ssim", "lpips", "residual", "nfe", "recon_sha", "resolved", "model_hash"):
            assert row[col] == local[key][col], col


def test_a_batched_problem_scores_each_image_of_one_batched_run(tiny_model_dir, tmp_path):
    from diffdemo.experiments import run_restoration
    from diffdemo.imaging import bundled_images, load_image, to_tensor
    from diffdemo.models import load_model
    from diffdemo.operators import make_operator
    from diffdemo.restore import make_problem

    file = tmp_path / "b.toml"
    file.write_text(
        f'name = "b"\nmodel = "{tiny_model_dir}"\nimages = {json.dumps(IMAGES)}\nprecision = "fp32"\nbatch = true\n'
        '[[problem]]\nname = "deblur"\nmethod = "dps"\noperator = "gaussian_blur"\nsteps = [2, 3]\nseed = 1\n'
    )
    summary = study.run_study(study.load_study(file), tmp_path / "out", progress=False, say=lambda s: None)
    assert summary["ran"] == 4 and summary["to_run"] == 4
    rows = rows_of(tmp_path / "out")
    model = load_model(str(tiny_model_dir))
    x0 = torch.cat([to_tensor(load_image(bundled_images()[n], 16)) for n in IMAGES])
    problem = make_problem(x0, make_operator("gaussian_blur", 16, mask_seed=1), 0.05, 1)
    overrides = {"steps": 3}  # no spacing in the study either: DPS deblurring's own list (logsnr), as restore's
    (direct,) = run_restoration(model, problem, ["dps"], overrides=overrides, precision="fp32")
    mine = [r for r in rows.values() if json.loads(r["params"])["steps"] == 3]
    assert [r["image"] for r in sorted(mine, key=lambda r: IMAGES.index(r["image"]))] == IMAGES
    assert sum(r["psnr"] for r in mine) / 2 == pytest.approx(direct.psnr, abs=1e-12)  # Row.psnr: the images' mean
    assert sum(r["residual"] for r in mine) / 2 == pytest.approx(direct.residual, rel=1e-6)
    assert all(r["seconds"] == mine[0]["seconds"] for r in mine)  # one run for the batch


def test_batches_of_n_images_are_tasks_of_their_own(tiny_model_dir, tmp_path):
    file = tmp_path / "c.toml"
    file.write_text(
        f'name = "c"\nmodel = "{tiny_model_dir}"\nimages = ["cc0_lisa1", "london_006_neutral", "london_017_neutral"]\n'
        'batch = 2\n[[problem]]\nname = "w"\nmethod = "wiener"\nseed = [0, 1]\n'
        '[[problem]]\nname = "d"\nkind = "denoise"\nt = 50\n'
    )
    runs = study.expand(study.load_study(file), "0" * 64)
    tasks = study.group(runs)
    pairs = [["cc0_lisa1", "london_006_neutral"], ["london_017_neutral"]] * 2
    assert [[r.image for r in t] for t in tasks] == pairs + [[r.image] for r in runs[-3:]]  # denoise: one by one
    assert len({r.key for r in runs}) == 9


def test_a_process_pool_gives_the_local_rows(finished, tiny_model_dir, tmp_path):
    _, _, local = finished
    spec = study.load_study(write_study(tmp_path / "s.toml", tiny_model_dir))
    summary = study.run_study(spec, tmp_path / "out", workers=2, progress=False, say=lambda s: None)
    pooled = rows_of(tmp_path / "out")
    assert summary["ran"] == 12 and set(pooled) == set(local)
    for key, row in pooled.items():
        assert (row["psnr"], row["recon_sha"], row["resolved"]) == (local[key]["psnr"], local[key]["recon_sha"],
                                                                    local[key]["resolved"])  # fmt: skip


def test_precision_is_an_axis_and_each_bf16_row_meets_its_own_fp32_row(tiny_model_dir, tmp_path):
    file = tmp_path / "p.toml"
    file.write_text(
        f"""
name = "prec"
model = "{tiny_model_dir}"
images = {json.dumps(IMAGES)}
precision = ["fp32", "bf16"]

[[problem]]
name = "deblur"
operator = "gaussian_blur"
steps = 2
spacing = "quadratic"
variants = [{{ method = "dps" }}, {{ method = "sdedit" }}]
reference = {{ precision = "fp32" }}

[[problem]]
name = "denoise"
kind = "denoise"
t = 200
steps = 2
reference = {{ precision = "fp32" }}
"""
    )
    said = []
    spec = study.load_study(file)
    summary = study.run_study(spec, tmp_path / "out", progress=False, say=said.append)
    assert summary["ran"] == 12
    assert "bf16:" in said[1] and "fp32:" in said[1]  # the plan timed the network in both formats its runs use
    rows = rows_of(tmp_path / "out")
    assert all(r["precision"] == json.loads(r["params"])["precision"] for r in rows.values())  # denoise's too
    denoised = {r["precision"]: r["recon_sha"] for r in rows.values() if r["kind"] == "denoise"}
    assert len(denoised) == 2 and len(set(denoised.values())) == 2  # bf16 really ran in bf16
    psnr = {(r["method"], r["precision"], r["image"]): r["psnr"] for r in rows.values()}
    text = study.report(spec, tmp_path / "out")
    for method in ("dps", "sdedit"):  # paired with the same method's fp32 run, image by image
        d = [psnr[(method, "bf16", i)] - psnr[(method, "fp32", i)] for i in IMAGES]
        line = next(x for x in text.splitlines() if x.startswith(f"| method={method}, precision=bf16 |"))
        assert f"| {sum(d) / 2:+.2f} [" in line
        fp32 = next(x for x in text.splitlines() if x.startswith(f"| method={method}, precision=fp32 |"))
        assert fp32.endswith("| reference | reference | 1 |")
    assert "Δ PSNR vs precision=fp32" in text and "s ÷ reference" in text


@pytest.mark.parametrize("file", sorted(p.name for p in (Path(__file__).parent.parent / "studies").glob("*.toml")))
def test_every_shipped_study_file_loads_and_its_results_file_is_generated_from_it(file):
    root = Path(__file__).parent.parent
    spec = study.load_study(root / "studies" / file)
    assert study.expand(spec, "0" * 64)  # every run checked against the parameter ranges, before any work
    results = re.search(r"--results (bench/RESULTS_\w+\.md)", (root / "studies" / file).read_text())
    assert results, f"{file} names the RESULTS file its --report regenerates"
    text = (root / results.group(1)).read_text()
    section = text.split(f"<!-- study:{spec.name} begin", 1)[1].split(f"<!-- study:{spec.name} end -->", 1)[0]
    runs = len(study.expand(spec, "0" * 64))
    assert f"{runs} of {runs} runs finished." in section, "the shipped table is the whole study, regenerated"
