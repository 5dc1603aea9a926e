"""The documentation is checked against the code: every command line it shows parses with the real CLI."""

from __future__ import annotations

from pathlib import Path

import pytest

from mlops_unity_pipeline.cli import build_parser
from synopsis import check_line, command_lines

ROOT = Path(__file__).resolve().parents[1]
PAGES = [ROOT / "README.md", *sorted((ROOT / "docs").rglob("*.md"))]


@pytest.mark.parametrize("page", PAGES, ids=lambda p: str(p.relative_to(ROOT)))
def test_every_command_line_matches_the_parsers(page):
    parser = build_parser()
    problems = {line: check_line(parser, line) for line in command_lines(page.read_text())}
    assert {line: p for line, p in problems.items() if p} == {}


@pytest.mark.parametrize("line, words", [
    ("unity-mlops schedule trigger ID CONFIG", "arguments in the order ['ID', 'CONFIG']"),
    ("unity-mlops models promote V --too production", "no option --too"),
    ("unity-mlops modles list", "'modles' is not one of"),
    ("unity-mlops schedule list | pauze CONFIG ID", "'pauze' is not a command here"),
    ("unity-mlops evaluate MODEL SPEC", "2 arguments"),
])
def test_the_checker_finds_what_drifted(line, words):
    """The README once gave `trigger ID CONFIG`; the CLI takes CONFIG first."""
    assert any(words in p for p in check_line(build_parser(), line)), check_line(build_parser(), line)
