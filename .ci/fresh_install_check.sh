#!/usr/bin/env bash
# A new user's install, proved: a clean virtual environment made from requirements.txt alone (no dev
# packages, no system site-packages), then every command the README shows, run briefly, offline.
# Usage: .ci/fresh_install_check.sh   (FRESH_VENV=DIR reuses or places the environment; default: a temp dir)
set -euo pipefail
cd "$(dirname "$0")/.."
started=$(date +%s)
work=$(mktemp -d)
venv=${FRESH_VENV:-$work/venv}
unset PYTHONPATH PYTHONHOME
[ -x "$venv/bin/python" ] || python3 -m venv "$venv"
# (this machine's pip config lists local indexes that lack some packages: drop pip's notices about them)
"$venv/bin/python" -m pip install -q --disable-pip-version-check -r requirements.txt 2>&1 |
  { grep -v "is ignored: it is neither a file nor a directory" || true; }
"$venv/bin/python" -m pip check
installed=$(( $(date +%s) - started ))
"$venv/bin/python" .ci/fresh_install_smoke.py --out "$work/out"
echo "fresh install check passed: install ${installed} s, total $(( $(date +%s) - started )) s"
[ -n "${FRESH_VENV:-}" ] || rm -rf "$work"
