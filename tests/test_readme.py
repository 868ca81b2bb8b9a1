"""The README stays a user's README: short, its numbers generated from the committed reference run,
every command it names real.

The numbers block must equal what ``benchmarks.readme_table`` renders from
``benchmarks/reference/<machine>/results.json``, so a figure cannot be edited in the README
without the run behind it (or the other way round): ``make readme-table`` regenerates it.
"""

from __future__ import annotations

import argparse
import re
from pathlib import Path

import pytest

from benchmarks import readme_table

ROOT = Path(__file__).resolve().parents[1]
README = ROOT / "README.md"
MAX_LINES = 350


@pytest.fixture(scope="module")
def text() -> str:
    return README.read_text()


def reference_results() -> list[Path]:
    return sorted((ROOT / "benchmarks" / "reference").glob("*/results.json"))


def test_one_committed_reference_run() -> None:
    found = reference_results()
    assert len(found) == 1, f"expected one benchmarks/reference/<machine>/results.json, found {found}"
    folder = found[0].parent
    assert (folder / "report.md").is_file() and list((folder / "plots").glob("*.png"))


def test_numbers_block_is_generated_from_the_reference(text: str) -> None:
    (results,) = reference_results()
    expected = readme_table.render_file(results)
    assert readme_table.read_block(text) == expected, (
        "README's numbers block differs from the reference run: "
        f"python -m benchmarks.readme_table {results.relative_to(ROOT)} --write README.md"
    )


def test_readme_is_short(text: str) -> None:
    assert len(text.splitlines()) <= MAX_LINES


def test_readme_has_no_dated_run_windows(text: str) -> None:
    assert not re.search(r"\(\d{1,2}:\d{2}(-\d{1,2}:\d{2})? UTC\)", text)
    assert not re.search(r"\b\d{1,2}:\d{2}(-\d{1,2}:\d{2})? UTC\b", readme_table.replace_block(text, ""))


def test_the_two_commands(text: str) -> None:
    assert "make demo" in text and "make test" in text


def _subcommands() -> set[str]:
    from casavox.edge_app.cli import build_parser

    parser = build_parser()
    (sub,) = [a for a in parser._actions if isinstance(a, argparse._SubParsersAction)]
    return set(sub.choices)


def _code(text: str) -> list[str]:
    """The README's code: fenced blocks and inline spans (prose says "casavox is", code says commands)."""
    fenced = re.findall(r"^```[^\n]*\n(.*?)^```", text, flags=re.M | re.S)
    inline = re.findall(r"`([^`\n]+)`", re.sub(r"^```.*?^```", "", text, flags=re.M | re.S))
    return fenced + inline


def test_every_casavox_subcommand_named_exists(text: str) -> None:
    named = {m for code in _code(text) for m in re.findall(r"(?<![\w./-])casavox ([a-z][a-z-]+)", code)}
    assert named, "the README names no casavox subcommand"
    unknown = named - _subcommands()
    assert not unknown, f"README names casavox subcommands the CLI does not have: {sorted(unknown)}"


def test_replace_block_round_trip() -> None:
    block = f"{readme_table.BEGIN}\nnew\n{readme_table.END}"
    doc = f"before\n{readme_table.BEGIN}\nold\n{readme_table.END}\nafter\n"
    assert readme_table.replace_block(doc, block) == f"before\n{block}\nafter\n"
    with pytest.raises(ValueError):
        readme_table.replace_block("no markers", block)


def test_every_make_target_named_exists(text: str) -> None:
    makefile = (ROOT / "Makefile").read_text()
    targets = set(re.findall(r"^([a-z][a-z-]*):", makefile, flags=re.M))
    named = set(re.findall(r"(?<![\w-])make ([a-z][a-z-]+)", text))
    assert {"demo", "test"} <= named and not named - targets, sorted(named - targets)
