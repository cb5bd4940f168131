"""The README's command lines run when copied, and it names no file outside the repository (issue 11)."""

from __future__ import annotations

import re
import shlex
from pathlib import Path

from rodin_nb.cli import build_parser

README = Path(__file__).resolve().parents[1] / "README.md"


def _cli_lines() -> list[str]:
    """``rodin-nb ...`` lines of the README's shell blocks, and inline ``rodin-nb ...`` code."""
    text = README.read_text(encoding="utf-8")
    lines: list[str] = []
    language = None  # inside a fenced block: its language
    for line in text.splitlines():
        if line.startswith("```"):
            language = None if language is not None else (line[3:].strip() or "text")
        elif language in ("bash", "sh", "console", "text"):
            lines.append(line.split(" #", 1)[0].strip())
    lines += re.findall(r"`(rodin-nb [^`]+)`", text)
    return [line for line in lines if line.startswith("rodin-nb ")]


def test_the_readme_shows_the_command_line() -> None:
    assert len(_cli_lines()) >= 4


def test_every_readme_cli_line_parses_as_written() -> None:
    parser = build_parser()
    bad = []
    for line in _cli_lines():
        try:
            parser.parse_args(shlex.split(line)[1:])
        except SystemExit:
            bad.append(line)
    assert not bad, "these README lines fail when copied:\n" + "\n".join(bad)
    assert any("--resume" in line for line in _cli_lines()), "document `rodin-nb sweep --resume SWEEP_ID`"


def test_the_readme_names_no_file_outside_the_repository() -> None:
    outside = re.findall(r"\.\./[\w./-]+", README.read_text(encoding="utf-8"))
    assert not outside, f"README.md names files outside the repository: {outside}"
