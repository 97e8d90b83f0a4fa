"""The engine stays free of the UI: every diffdemo module but the app's tab package (diffdemo/ui) imports and the
CLI answers with gradio made unimportable, so `python -m diffdemo ...` and `reproduce` never need it."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

PROBE = """
import importlib, pkgutil, sys
sys.modules["gradio"] = None  # any 'import gradio' now raises ImportError
import diffdemo
names = [m.name for m in pkgutil.iter_modules(diffdemo.__path__) if m.name not in ("ui", "__main__")]
for name in names:
    importlib.import_module("diffdemo." + name)
from diffdemo import cli
try:
    cli.main(["restore", "--help"])
except SystemExit as exc:
    assert exc.code == 0, exc.code
print(len(names))
"""


def test_engine_and_cli_never_import_gradio():
    done = subprocess.run([sys.executable, "-c", PROBE], capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    assert int(done.stdout.strip().splitlines()[-1]) >= 25  # every engine module was imported, not a few


def test_only_the_ui_package_imports_gradio():
    """Every form counts: ``import gradio``, ``import gradio.x as y``, ``from gradio import ...``, ``from
    gradio.utils import ...``, at module level or inside a function."""
    users = sorted({m for m, _, target, _ in _edges(external=True) if target.split(".")[0] == "gradio"})
    assert users and all(u.startswith("diffdemo.ui") for u in users), users


# --- the layering contract (DESIGN.md section 2: data flows one way) --------------------------------------------------
# Top to bottom. A module may import from its own layer or any layer below it, never above; together with
# ``test_no_import_cycles`` (which also covers imports within a layer) the import drawing is a one-way stack.
# Every module of diffdemo/ must be listed: a new module takes its place here. A package's modules (diffdemo/ui/*,
# diffdemo/experiments/*, analysis/*, claims/*, cli/*, reproduce/*, study/*, serving/*) take the package's layer, so a
# module split into a package keeps its place; within a package, ``test_no_import_cycles`` keeps the order one way
# (analysis: spectrum -> krylov -> products, never back).
LAYERS: list[tuple[str, set[str]]] = [
    ("entry points: the app's tabs, the command line", {"ui", "cli", "__main__"}),
    (
        "products and deployment: figures, reports, model card, training, serving policy",
        {
            "reproduce",
            "modelcard",
            "claims",
            "figures",
            "plots",
            "charts",
            "serving",
            "estimates",
            "model_timing",
            "workload",
            "zerogpu",
            "train",
            "hub_layout",
            "study",
        },
    ),
    ("experiments: every run the app, the CLI and reproduce make", {"experiments"}),
    ("one method on one problem; a spacing name resolved; the stability profile", {"restore", "stability", "profiles"}),
    ("samplers, analysis, classical baselines", {"samplers", "analysis", "baselines"}),
    (
        "model contract, operators, metrics, precision",
        {"models", "contract", "unet", "gaussian_prior", "operators", "metrics", "lpips_weights", "precision", "hub"},
    ),
    (
        "core: noise schedule, spacings, checkpoint, validation, defaults, errors, I/O",
        {
            "schedule",
            "spacing",
            "checkpoint",
            "validation",
            "defaults",
            "errors",
            "jsonio",
            "imaging",
            "pictures",
            "labels",
            "autodiff",
            "threads",
        },
    ),
]
ROOT = Path(__file__).resolve().parent.parent
PACKAGE = ROOT / "diffdemo"


def _module_name(path: Path) -> str:
    parts = path.relative_to(ROOT).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _modules() -> dict[str, Path]:
    return {_module_name(p): p for p in sorted(PACKAGE.rglob("*.py"))}


def _edges(external: bool = False) -> list[tuple[str, int, str, bool]]:
    """(module, line, imported module, inside a function) for every import statement of every diffdemo module,
    including the ones inside functions (deferred imports still make the arrow). Only diffdemo targets unless
    ``external``; ``from diffdemo import analysis`` is the module diffdemo.analysis."""
    mods = _modules()
    out = []
    for name, path in mods.items():
        tree = ast.parse(path.read_text(encoding="utf-8"))
        package = name if path.name == "__init__.py" else name.rpartition(".")[0]
        nested: set[int] = set()
        for f in ast.walk(tree):
            if isinstance(f, (ast.FunctionDef, ast.AsyncFunctionDef)):
                nested |= {id(n) for n in ast.walk(f)}
        for node in ast.walk(tree):
            if isinstance(node, ast.Import):
                targets = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom):
                base = node.module or ""
                if node.level:
                    up = package.split(".")[: len(package.split(".")) - (node.level - 1)]
                    base = ".".join(up + ([node.module] if node.module else []))
                targets = [f"{base}.{a.name}" if f"{base}.{a.name}" in mods else base for a in node.names]
            else:
                continue
            for target in dict.fromkeys(targets):
                if external or target.split(".")[0] == "diffdemo":
                    out.append((name, node.lineno, target, id(node) in nested))
    return out


def _layer_of(module: str) -> int | None:
    short = module.removeprefix("diffdemo.").split(".")[0] if module != "diffdemo" else ""
    for i, (_, members) in enumerate(LAYERS):
        if short in members:
            return i
    return None


def test_every_module_has_a_layer():
    missing = sorted(m for m in _modules() if m != "diffdemo" and _layer_of(m) is None)
    assert not missing, f"give these modules a layer in tests/test_layout.py LAYERS: {missing}"


def test_imports_only_go_down_the_layers():
    """No upward arrow, deferred imports included: a sampler never reaches the profile store or an analysis, the
    model contract never reaches the serving policy, nothing in the engine reaches the app."""
    upward = []
    for module, line, target, deferred in _edges():
        if target == "diffdemo":
            continue
        src, dst = _layer_of(module), _layer_of(target)
        if src is not None and dst is not None and dst < src:
            where = "inside a function" if deferred else "at module level"
            upward.append(f"{module}:{line} imports {target} {where} ({LAYERS[dst][0]!r} is above {LAYERS[src][0]!r})")
    upward += [f"{m}:{line} imports the app" for m, line, target, _ in _edges(external=True) if target == "app"]
    assert not upward, "\n".join(upward)


def test_no_import_cycles():
    """The module import graph (deferred imports included) is acyclic, within a layer as across layers."""
    graph: dict[str, set[str]] = {m: set() for m in _modules()}
    for module, _, target, _ in _edges():
        if target in graph and target != module and target != "diffdemo":
            graph[module].add(target)
    state: dict[str, int] = {}
    stack: list[str] = []
    cycles: list[list[str]] = []

    def visit(node: str) -> None:
        state[node] = 1
        stack.append(node)
        for nxt in sorted(graph[node]):
            if state.get(nxt) == 1:
                cycles.append(stack[stack.index(nxt) :] + [nxt])
            elif nxt not in state:
                visit(nxt)
        stack.pop()
        state[node] = 2

    for node in sorted(graph):
        if node not in state:
            visit(node)
    assert not cycles, "\n".join(" -> ".join(c) for c in cycles)


def _private_crossings(name: str, path: Path) -> list[str]:
    """Every ``from diffdemo.x import _name`` / ``import diffdemo.x as x; x._name`` in one file whose target is
    another module (app.py counts as a module outside diffdemo)."""
    mods = _modules()
    tree = ast.parse(path.read_text(encoding="utf-8"))
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    crossing, aliases = [], {}
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                up = package.split(".")[: len(package.split(".")) - (node.level - 1)]
                base = ".".join(up + ([node.module] if node.module else []))
            if not (base.startswith("diffdemo") or base == "app"):
                continue
            for a in node.names:
                target = f"{base}.{a.name}"
                if a.name[0] == "_" and base != name:
                    crossing.append(f"{name}:{node.lineno} {base}.{a.name}")
                elif target in mods or (base == "diffdemo" and f"diffdemo.{a.name}" in mods):
                    aliases[a.asname or a.name] = target
        elif isinstance(node, ast.Import):
            for a in node.names:
                if a.name.startswith("diffdemo") or a.name == "app":
                    top = a.name.split(".")[0]  # ``import diffdemo.ui.runs`` binds ``diffdemo``
                    aliases[a.asname or top] = a.name if a.asname else top
    for node in ast.walk(tree):
        if isinstance(node, ast.Attribute) and node.attr.startswith("_") and not node.attr.startswith("__"):
            chain, value = [node.attr], node.value
            while isinstance(value, ast.Attribute):
                chain.insert(0, value.attr)
                value = value.value
            if isinstance(value, ast.Name) and value.id in aliases:
                owner = ".".join([aliases[value.id], *chain[:-1]])
                if owner != name:
                    crossing.append(f"{name}:{node.lineno} {owner}.{node.attr}")
    return crossing


def test_no_private_name_crosses_a_module_boundary():
    """A name that starts with ``_`` stays in its module (DESIGN.md section 2): ``from diffdemo.x import _name``
    and ``x._name`` are refused everywhere in diffdemo/ (the app's tab package included) and in app.py, which
    imports the tabs' public helpers and re-exports nothing."""
    files = {**_modules(), "app": ROOT / "app.py"}
    crossing = [c for name, path in files.items() for c in _private_crossings(name, path)]
    assert not crossing, crossing
    app_tree = ast.parse((ROOT / "app.py").read_text(encoding="utf-8"))
    assert not any(
        isinstance(n, ast.Assign) and any(getattr(t, "id", None) == "__all__" for t in n.targets) for n in app_tree.body
    ), "app.py re-exports names (its __all__): tests import them from diffdemo.ui"


def test_the_private_name_check_is_not_vacuous(tmp_path):
    """Each form is caught: a private name imported from a sibling tab module, from the engine by relative import,
    and reached as an attribute of an imported module; a module's use of its own private names is not."""
    ui = tmp_path / "diffdemo" / "ui"
    ui.mkdir(parents=True)
    probe = ui / "probe.py"
    probe.write_text(
        "from diffdemo.ui.common import _seed\n"
        "from ..serving import _delete\n"
        "from diffdemo import models\n"
        "import diffdemo.ui.runs\n"
        "def _own():\n    return models._cache, diffdemo.ui.runs._live, _own\n"
    )
    found = " ".join(_private_crossings("diffdemo.ui.probe", probe))
    for expected in ("diffdemo.ui.common._seed", "diffdemo.serving._delete", "models._cache", "diffdemo.ui.runs._live"):
        assert expected in found, (expected, found)
    assert "_own" not in found


def test_the_contract_catches_an_upward_import(tmp_path, monkeypatch):
    """The checks above are not vacuous: a sampler importing the profile store, models importing serving, a
    circle analysis -> samplers -> analysis and a deferred ``from gradio import`` in the engine are each reported."""
    import shutil

    fake = tmp_path / "diffdemo"
    shutil.copytree(PACKAGE, fake, ignore=shutil.ignore_patterns("__pycache__"))
    (fake / "samplers.py").write_text(
        (fake / "samplers.py").read_text() + "\n\ndef f():\n    import diffdemo.profiles\n"
    )
    (fake / "models.py").write_text((fake / "models.py").read_text() + "\nfrom diffdemo.serving import capped\n")
    front = fake / "analysis" / "__init__.py"  # the analysis package's public face
    front.write_text(front.read_text() + "\nfrom diffdemo import samplers\n")
    (fake / "samplers.py").write_text((fake / "samplers.py").read_text() + "\nfrom diffdemo.analysis import KINDS\n")
    monkeypatch.setattr(sys.modules[__name__], "ROOT", tmp_path)
    monkeypatch.setattr(sys.modules[__name__], "PACKAGE", fake)
    with pytest.raises(AssertionError) as upward:
        test_imports_only_go_down_the_layers()
    assert "diffdemo.samplers" in str(upward.value) and "diffdemo.profiles inside a function" in str(upward.value)
    assert "diffdemo.models" in str(upward.value) and "imports diffdemo.serving" in str(upward.value)
    with pytest.raises(AssertionError, match="diffdemo.analysis -> diffdemo.samplers -> diffdemo.analysis"):
        test_no_import_cycles()
    # gradio outside diffdemo/ui in the form the runtime probe cannot see: ``from gradio import``, deferred
    (fake / "metrics.py").write_text(
        (fake / "metrics.py").read_text() + "\n\ndef g():\n    from gradio import Blocks\n"
    )
    with pytest.raises(AssertionError, match="diffdemo.metrics"):
        test_only_the_ui_package_imports_gradio()
