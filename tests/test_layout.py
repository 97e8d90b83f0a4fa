"""The engine stays free of the UI: every diffdemo module but the app's tab package (diffdemo/ui) imports and the
CLI answers with gradio made unimportable, so `python -m diffdemo ...` and `reproduce` never need it."""

from __future__ import annotations

import subprocess
import sys

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
    from pathlib import Path

    root = Path(__file__).resolve().parent.parent / "diffdemo"
    users = sorted(
        str(p.relative_to(root)) for p in root.rglob("*.py") if "import gradio" in p.read_text(encoding="utf-8")
    )
    assert users and all(u.startswith("ui/") for u in users), users
