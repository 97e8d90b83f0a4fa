"""Dense Jacobian oracle: the full 12,288 x 12,288 J_s of faces64 at one image, against the matrix-free spectra.

    python bench/bench_dense_jacobian.py [--t 200,50,700] [--batch 32] [--image london_006_neutral]

For each t it builds J_s(x_t, t) column by column (batched exact JVPs, cached in bench/results/ so a killed run
resumes where it stopped), then, with the dense matrix in hand, computes to solver precision (ARPACK on the
dense matrix, tol 1e-10): the top singular values of J_s, J_f and J_D (both affine in J_s: J_f = (I + (1 -
alpha_t) J_s)/sqrt(alpha_t), J_D = (I + (1 - abar_t) J_s)/sqrt(abar_t)), the extreme eigenvalues of J_s and from
them rho(J_f), and the asymmetry ||J - J^T||_F / ||J||_F. It compares sigma_max and rho with
``analysis.spectrum_sweep`` at the app's defaults (k=3, 20 steps) and the CLI's (k=4, 30 steps), on the same x_t
(``analysis.state_at``, seed 0). Writes bench/RESULTS_dense.md.
"""

from __future__ import annotations

import argparse
import json
import platform
import sys
import time
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from diffdemo import analysis as A  # noqa: E402
from diffdemo.cli import resolve_image  # noqa: E402
from diffdemo.imaging import to_tensor  # noqa: E402
from diffdemo.models import load_model  # noqa: E402

CACHE = ROOT / "bench" / "results" / "dense"
FULL_LAPACK_MAX = 4096
SETTINGS = {"app": (3, 20), "cli": (4, 30), "tol": (4, 80)}  # (k, Lanczos / Arnoldi steps; "tol": the cap)


def build(model, x_t: torch.Tensor, t: int, batch: int, tag: str) -> np.ndarray:
    """J_s^T as a float32 (D, D) memmap: row i is J_s e_i (one batched JVP per ``batch`` columns), resumable."""
    D = x_t[0].numel()
    path, done_path = CACHE / f"{tag}_JsT.npy", CACHE / f"{tag}_done.json"
    CACHE.mkdir(parents=True, exist_ok=True)
    if path.exists() and done_path.exists():
        JT = np.lib.format.open_memmap(path, mode="r+")
        done = json.loads(done_path.read_text())["columns"]
    else:
        JT = np.lib.format.open_memmap(path, mode="w+", dtype=np.float32, shape=(D, D))
        done = 0
    start = time.perf_counter()
    first = done
    while done < D:
        n = min(batch, D - done)
        X = x_t.expand(n, -1, -1, -1).contiguous()
        V = torch.zeros(n, D)
        V[torch.arange(n), torch.arange(done, done + n)] = 1.0
        js = A.score_jvp(model, X, t, V.view_as(X))  # the traced exact JVP the app's probe and spectrum use
        JT[done : done + n] = js.detach().reshape(n, D).cpu().numpy()
        done += n
        JT.flush()
        done_path.write_text(json.dumps({"columns": done}))
        rate = (time.perf_counter() - start) / (done - first)
        print(f"t={t}: {done}/{D} columns, {rate:.3f} s/column, eta {rate * (D - done) / 60:.1f} min", flush=True)
    return JT


def extreme_eigenvalues(J: np.ndarray, k: int = 6) -> np.ndarray:
    """Eigenvalues of J_s at the edges of its spectrum (largest |.|, largest and smallest real part, largest imag)."""
    from scipy.sparse.linalg import ArpackNoConvergence, eigs

    found = []
    for which in ("LM", "LR", "SR", "LI"):
        try:
            found.append(eigs(J, k=k, which=which, tol=1e-10, ncv=80, maxiter=20000, return_eigenvectors=False))
        except ArpackNoConvergence as exc:  # keep what converged, say so in the log
            print(f"eigs {which}: {len(exc.eigenvalues)} of {k} converged", flush=True)
            found.append(exc.eigenvalues)
    lam = np.concatenate(found)
    # the four searches overlap: one eigenvalue found twice differs in the last digits, so merge to 1e-9 relative
    keep: list[complex] = []
    for z in lam[np.argsort(-np.abs(lam))]:
        if all(abs(z - w) > 1e-9 * max(abs(z), 1.0) for w in keep):
            keep.append(z)
    return np.array(keep)


def top_singular(J: np.ndarray, a: float, b: float, k: int = 6) -> np.ndarray:
    """Top-k singular values of a I + b J by ARPACK on the dense matrix."""
    from scipy.sparse.linalg import LinearOperator, svds

    D = J.shape[0]
    op = LinearOperator(
        (D, D), matvec=lambda v: a * v + b * (J @ v), rmatvec=lambda u: a * u + b * (J.T @ u), dtype=np.float64
    )
    return np.sort(svds(op, k=k, tol=1e-10, ncv=60, maxiter=20000, return_singular_vectors=False))[::-1]


def asymmetry(J: np.ndarray, block: int = 1024) -> float:
    """||J - J^T||_F / ||J||_F, block by block (no second dense copy)."""
    num = 0.0
    for i in range(0, J.shape[0], block):
        num += float(np.sum((J[i : i + block] - J[:, i : i + block].T) ** 2))
    return (num / float(np.sum(J * J))) ** 0.5


def analyse(model, x0, x_t, t: int, JT: np.ndarray) -> dict:
    J = np.asarray(JT, dtype=np.float64).T.copy()  # J[:, i] = J_s e_i
    started = time.perf_counter()
    D = J.shape[0]
    row = {"t": t, "D": D, "asymmetry_Js": asymmetry(J), "frobenius_Js": float(np.linalg.norm(J))}
    full = D <= FULL_LAPACK_MAX  # every eigenvalue by LAPACK; larger: ARPACK at the spectrum's edges
    row["eigen_solver"] = "LAPACK geev (all eigenvalues)" if full else "ARPACK (LM, LR, SR, LI; tol 1e-10)"
    lam = np.linalg.eigvals(J) if full else extreme_eigenvalues(J)
    lam = lam[np.argsort(-np.abs(lam))]
    row["eigenvalues_Js"] = [[float(z.real), float(z.imag)] for z in lam[:6]]
    row["rho_Js"] = float(np.abs(lam).max())
    row["max_real_Js"] = float(lam.real.max())
    row["min_real_Js"] = float(lam.real.min())
    for kind in ("score", "reverse", "denoiser"):
        a, b = A.affine_coefficients(model, kind, t)
        if full:
            sv = np.linalg.svd(a * np.eye(D) + b * J, compute_uv=False)[:6]
        else:
            sv = top_singular(J, a, b)
        row[f"singular_values_{A.LABELS[kind]}"] = sv.tolist()
        row[f"sigma_max_{A.LABELS[kind]}"] = float(sv[0])
    row["sigma_max_Js"], row["sigma_max_Jf"] = row["sigma_max_J_s"], row["sigma_max_J_f"]
    a, b = A.affine_coefficients(model, "reverse", t)
    lam_f = a + b * lam  # eigenvalues map exactly under the affine map; |.| peaks on the hull's extremes
    row["rho_Jf"] = float(np.abs(lam_f).max())
    a_d, b_d = A.affine_coefficients(model, "denoiser", t)
    row["rho_JD"] = float(np.abs(a_d + b_d * lam).max())
    row["dense_seconds"] = time.perf_counter() - started
    for name, (k, iters) in SETTINGS.items():
        t0 = time.perf_counter()
        tol = A.RESIDUAL_TOL if name == "tol" else 0.0
        (r,) = A.spectrum_sweep(model, x0, [t], k=k, iters=iters, seed=0, tol=tol)
        it = {
            "k": k,
            "iters": iters,
            "tol": tol,
            "lanczos_steps": r.singular_Js.iters,
            "arnoldi_steps": r.eig.iters,
            # values 2..k too: each against the dense value of the same rank (eigenvalues: the nearest dense one)
            "relerr_singular_values_Js": (
                np.abs(r.singular_Js.values - row["singular_values_J_s"][:k])
                / np.asarray(row["singular_values_J_s"][:k])
            ).tolist(),
            "relerr_eigenvalues_Js": [float(np.abs(lam - z).min() / abs(z)) for z in r.eig.eigenvalues_Js[:k]],
            "converged_singular_Js": r.singular_Js.converged.tolist(),
            "converged_eigenvalues_Js": r.eig.converged(k).tolist(),
            "seconds": time.perf_counter() - t0,
            "sigma_max_Js": r.sigma_max_Js,
            "sigma_max_Jf": r.sigma_max_Jf,
            "rho_Jf": r.rho_Jf,
            "rho_Js": r.eig.rho_Js,
        }
        for key in ("sigma_max_Js", "sigma_max_Jf", "rho_Jf", "rho_Js"):
            it[f"relerr_{key}"] = abs(it[key] - row[key]) / abs(row[key])
        row[f"iterative_{name}"] = it
    return row


def _relerr_cells(row: dict) -> str:
    """'app % / cli %' relative errors of sigma_max(J_s), sigma_max(J_f), rho(J_f), rho(J_s): four table cells."""
    app, cli = row["iterative_app"], row["iterative_cli"]
    keys = ("sigma_max_Js", "sigma_max_Jf", "rho_Jf", "rho_Js")
    return " | ".join(f"{100 * app['relerr_' + k]:.3g} % / {100 * cli['relerr_' + k]:.3g} %" for k in keys)


def write_results(rows: list[dict], meta: dict, path: Path) -> None:
    lines = [
        "# Dense Jacobian oracle (bench/bench_dense_jacobian.py)",
        "",
        f"Model faces64, image {meta['image']}, x_t = analysis.state_at(x0, t, seed 0) (the state the app and "
        f"`spectrum` use). Dense J_s from 3 x size^2 exact JVP columns per t; J_f (one step t -> t-1) and J_D are "
        "affine in it. 'Dense' values: LAPACK on the dense float64 matrix (ARPACK, tol 1e-10, above 4096 columns). 'Iterative': "
        "`analysis.spectrum_sweep` at the app's defaults (k=3, 20 Lanczos/Arnoldi steps) and the CLI's (k=4, 30). "
        f"{meta['machine']}. Seconds are wall clock on a machine at times shared with other jobs.",
        "",
        "| size | t | ‖J_s−J_sᵀ‖/‖J_s‖ | σ_max(J_s) dense | σ_max(J_f) dense | σ_max(J_D) dense | ρ(J_s) dense | ρ(J_f) dense "
        "| σ_max(J_s) rel. err app / cli | σ_max(J_f) rel. err app / cli | ρ(J_f) rel. err app / cli "
        "| ρ(J_s) rel. err app / cli |",
        "|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for r in rows:
        lines.append(
            f"| {int(r['D'] // 3) ** 0.5:.0f} px | {r['t']} | {r['asymmetry_Js']:.3f} | {r['sigma_max_J_s']:.5g} | {r['sigma_max_J_f']:.6g} | "
            f"{r['sigma_max_J_D']:.5g} | {r['rho_Js']:.5g} | {r['rho_Jf']:.6g} | "
            f"{_relerr_cells(r)} |"
        )
    lines += ["", "Top singular values (dense) and leading eigenvalues of J_s (dense, by modulus):", ""]
    for r in rows:
        eig = ", ".join(f"{re:.4g}{im:+.3g}i" for re, im in r["eigenvalues_Js"][:4])
        sv = ", ".join(f"{s:.4g}" for s in r["singular_values_J_s"][:4])
        lines.append(f"- {int(r['D'] // 3) ** 0.5:.0f} px, t = {r['t']}: σ(J_s) = {sv}; λ(J_s) = {eig}; Re λ in [{r['min_real_Js']:.4g}, "
                     f"{r['max_real_Js']:.4g}]; iterative (app) σ_max(J_s) = {r['iterative_app']['sigma_max_Js']:.5g}, "
                     f"ρ(J_f) = {r['iterative_app']['rho_Jf']:.6g}, ρ(J_s) = {r['iterative_app']['rho_Js']:.5g}")  # fmt: skip
    lines += ["", "Values 2..k, not only the first: relative error of each iterative value against the dense one of the "
              "same rank (Ritz values: the nearest dense eigenvalue), '*' where the run flags it unconverged "
              f"(relative residual above analysis.RESIDUAL_TOL = {A.RESIDUAL_TOL:g}); 'tol': iterate until every value "
              "shown meets it (cap 80), steps spent in brackets.", "",
              "| size | t | setting (Lanczos / Arnoldi steps) | σ_1..σ_k(J_s) rel. err | λ_1..λ_k(J_s) rel. err |",
              "|---:|---:|---|---|---|"]  # fmt: skip
    for r in rows:
        for name in SETTINGS:
            it = r.get(f"iterative_{name}")
            if it is None or "relerr_singular_values_Js" not in it:
                continue
            sv = ", ".join(
                f"{e:.1e}{'' if ok else '*'}"
                for e, ok in zip(it["relerr_singular_values_Js"], it["converged_singular_Js"])
            )
            ev = ", ".join(
                f"{e:.1e}{'' if ok else '*'}"
                for e, ok in zip(it["relerr_eigenvalues_Js"], it["converged_eigenvalues_Js"])
            )
            lines.append(f"| {int(r['D'] // 3) ** 0.5:.0f} px | {r['t']} | {name} ({it['lanczos_steps']} / "
                         f"{it['arnoldi_steps']}) | {sv} | {ev} |")  # fmt: skip
    path.write_text("\n".join(lines) + "\n")


def converged_reference(model, x0, t: int, iters: int) -> dict:
    """At full size, where the dense matrix does not fit the time: Lanczos / Arnoldi run long (``iters`` steps, tol
    1e-10) as the reference. A singular triplet's residual r = ||J^T u - sigma v|| certifies a singular value within r
    of sigma; the app's settings are compared against it."""
    t0 = time.perf_counter()
    (ref,) = A.spectrum_sweep(model, x0, [t], k=4, iters=iters, seed=1, tol=1e-10)
    row = {
        "t": t,
        "D": x0[0].numel(),
        "reference_iters": ref.singular_Js.iters,
        "reference_arnoldi": ref.eig.iters,
        "seconds": time.perf_counter() - t0,
        "sigma_max_Js": ref.sigma_max_Js,
        "sigma_max_Jf": ref.sigma_max_Jf,
        "rho_Jf": ref.rho_Jf,
        "rho_Js": ref.eig.rho_Js,
        "residual_Js": float(ref.singular_Js.residual[0]),
        "residual_Jf": float(ref.singular_Jf.residual[0]),
        "eig_residual_Js": ref.eig.residual_Js,
    }
    for name, (k, it) in SETTINGS.items():
        (r,) = A.spectrum_sweep(model, x0, [t], k=k, iters=it, seed=0)
        vals = {
            "sigma_max_Js": r.sigma_max_Js,
            "sigma_max_Jf": r.sigma_max_Jf,
            "rho_Jf": r.rho_Jf,
            "rho_Js": r.eig.rho_Js,
        }
        row[f"iterative_{name}"] = {
            **vals,
            **{f"relerr_{k2}": abs(v - row[k2]) / abs(row[k2]) for k2, v in vals.items()},
        }
    return row


def write_reference(rows: list[dict], path: Path) -> None:
    lines = [
        "",
        "## 64 px: the app's settings against long, residual-certified Lanczos / Arnoldi runs",
        "",
        "Where the dense 64 px Jacobian (12,288 JVP columns per t) is too costly, the reference is the same "
        "iteration run long (tol 1e-10, different start vector); residual = ||J^T u - sigma v|| / sigma of the top "
        "triplet, which bounds the distance to a true singular value.",
        "",
        "| t | ref. steps (Lanczos / Arnoldi) | σ_max(J_s) ref. (rel. residual) | σ_max(J_f) ref. | ρ(J_f) ref. | ρ(J_s) ref. "
        "(Ritz residual) | σ_max(J_s) rel. err app / cli | σ_max(J_f) app / cli | ρ(J_f) app / cli | ρ(J_s) app / cli |",
        "|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for r in rows:
        lines.append(
            f"| {r['t']} | {r['reference_iters']} / {r['reference_arnoldi']} | {r['sigma_max_Js']:.5g} "
            f"({r['residual_Js']:.1e}) | {r['sigma_max_Jf']:.6g} | {r['rho_Jf']:.6g} | {r['rho_Js']:.5g} "
            f"({r['eig_residual_Js']:.1e}) | {_relerr_cells(r)} |"
        )
    with path.open("a") as f:
        f.write("\n".join(lines) + "\n")


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--t", default="200,50,700")
    p.add_argument("--batch", type=int, default=32)
    p.add_argument("--image", default="london_006_neutral")
    p.add_argument("--size", type=int, default=64, help="working resolution (the app's spectrum runs at 64)")
    p.add_argument("--results", default=str(ROOT / "bench" / "RESULTS_dense.md"))
    p.add_argument("--reference-iters", type=int, default=0, help="> 0: no dense build; the long-run reference")
    args = p.parse_args(argv)
    torch.set_num_threads(2)
    model = load_model("faces64")
    x0 = to_tensor(resolve_image(args.image, args.size))
    rows_path = CACHE / "rows.json"
    rows = json.loads(rows_path.read_text()) if rows_path.exists() else {}
    machine = f"{platform.machine()}, torch {torch.__version__}, {torch.get_num_threads()} threads"
    if args.reference_iters > 0:
        ref_path = CACHE / "reference.json"
        refs = json.loads(ref_path.read_text()) if ref_path.exists() else {}
        for t in [int(s) for s in args.t.split(",")]:
            key = f"{args.image}_{args.size}px_t{t}_it{args.reference_iters}"
            if key not in refs:
                refs[key] = converged_reference(model, x0, t, args.reference_iters)
                CACHE.mkdir(parents=True, exist_ok=True)
                ref_path.write_text(json.dumps(refs, indent=1, allow_nan=False))
                print(json.dumps(refs[key]), flush=True)
        rows = json.loads(rows_path.read_text()) if rows_path.exists() else {}
        write_results(list(rows.values()), {"image": args.image, "machine": machine}, Path(args.results))
        write_reference(list(refs.values()), Path(args.results))
        return
    for t in [int(s) for s in args.t.split(",")]:
        tag = f"{args.image}_{args.size}px_t{t}"
        if tag in rows:
            continue
        x_t = A.state_at(model, x0, t, seed=0)
        JT = build(model, x_t, t, args.batch, tag)
        rows[tag] = analyse(model, x0, x_t, t, JT)
        rows_path.write_text(json.dumps(rows, indent=1, allow_nan=False))
        write_results(list(rows.values()), {"image": args.image, "machine": machine}, Path(args.results))
        print(json.dumps(rows[tag]), flush=True)


if __name__ == "__main__":
    main()
