"""The README is a front door and every command the documentation shows is one the CLI accepts: each
``python3 -m diffdemo ...`` line of a bash block in README.md and docs/*.md parses with the real parser, each
relative link points at a file, and the README's test command is the one CI runs (``.ci/run``)."""

from __future__ import annotations

import re
import shlex
from pathlib import Path

import pytest

from diffdemo import cli, train

ROOT = Path(__file__).resolve().parent.parent
PAGES = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]


def _bash_lines(page: Path) -> list[str]:
    blocks = re.findall(r"```bash\n(.*?)```", page.read_text(encoding="utf-8"), flags=re.S)
    return [ln.strip() for block in blocks for ln in block.replace("\\\n", " ").splitlines() if ln.strip()]


def _commands(prefix: str) -> list[tuple[str, list[str]]]:
    found = []
    for page in PAGES:
        for line in _bash_lines(page):
            for part in line.split("&&"):
                words = shlex.split(part.split("  #")[0])
                if words[:3] == ["python3", "-m", prefix]:
                    found.append((f"{page.name}: {part.strip()}", words[3:]))
    return found


def test_the_docs_show_commands():
    shown = {words[0] for _, words in _commands("diffdemo")}
    assert {"restore", "sample", "probe", "spectrum", "reproduce", "lpips", "profile"} <= shown, shown
    assert _commands("diffdemo.train")


@pytest.mark.parametrize("where,words", _commands("diffdemo"), ids=lambda v: v if isinstance(v, str) else "")
def test_every_cli_command_shown_parses(where, words):
    """The parser refuses an option the CLI does not have (a ``--device`` it never had, a renamed flag)."""
    args = cli.build_parser().parse_args(words)
    assert args.command == words[0], where


@pytest.mark.parametrize("where,words", _commands("diffdemo.train"), ids=lambda v: v if isinstance(v, str) else "")
def test_every_training_command_shown_parses(where, words):
    args = train.parse_args(words)
    assert args.resume == ("--resume" in words), where


def test_a_wrong_option_is_caught():
    """The oracle of the two tests above: an option the CLI lacks does not parse."""
    with pytest.raises(cli.UsageError, match="--device"):
        cli.build_parser().parse_args(["restore", "--out", "o", "--device", "cuda"])


def test_readme_is_a_front_door():
    lines = (ROOT / "README.md").read_text(encoding="utf-8").splitlines()
    assert len(lines) <= 200, len(lines)
    text = "\n".join(lines)
    assert not re.search(r"\b20\d\d-\d\d-\d\d\b", text), "dates of re-runs belong in bench/RESULTS_*.md"
    assert "load average" not in text


def test_readme_test_command_is_what_ci_runs():
    ci = (ROOT / ".ci" / "run").read_text(encoding="utf-8").splitlines()
    shown = [ln for ln in _bash_lines(ROOT / "README.md") if "pytest" in ln]
    assert len(shown) == 1 and shown[0].endswith("&& python3 -m pytest"), shown
    assert "python3 -m pytest" in ci


@pytest.mark.parametrize("page", PAGES, ids=lambda p: p.name)
def test_relative_links_resolve(page):
    text = page.read_text(encoding="utf-8")
    targets = re.findall(r"\]\(([^)#\s]+)(?:#[^)]*)?\)", text)
    broken = [t for t in targets if "://" not in t and not (page.parent / t).exists()]
    assert not broken, broken
