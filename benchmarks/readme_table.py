"""The README's numbers, rendered from a committed benchmark run (never typed by hand).

    python -m benchmarks.readme_table benchmarks/reference/<machine>/results.json [--write README.md]

Prints the block that belongs between ``<!-- numbers:begin -->`` and ``<!-- numbers:end -->``;
with ``--write`` replaces that block in the README instead. ``tests/test_readme.py`` checks that
the README's block equals what this renders from the committed reference, so a figure cannot be
edited in one place and not the other. The table itself is :func:`benchmarks.report.summary_lines`,
the one ``make benchmark`` prints.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from benchmarks import report
from benchmarks.run import SECTIONS

ROOT = Path(__file__).resolve().parents[1]
BEGIN = "<!-- numbers:begin -->"
END = "<!-- numbers:end -->"
# versions worth naming beside the figures (results.json holds them all)
SHOWN_VERSIONS = ("onnxruntime", "numpy", "hassil", "home-assistant-intents", "llguidance", "faster-whisper",
                  "ctranslate2", "llama_cpp_python", "torch")  # fmt: skip


def _shown_path(path: Path) -> str:
    """The results.json's folder as the README shows it: relative to the repository when inside it."""
    folder = path.resolve().parent
    try:
        return folder.relative_to(ROOT).as_posix() + "/"
    except ValueError:
        return folder.as_posix() + "/"


def caption(results: dict, source: str) -> list[str]:
    """Which run, on which machine, with which versions."""
    env, settings = results["environment"], results["settings"]
    scope = "quick subset" if settings.get("quick") else "full run"
    if settings.get("items"):
        scope += f", {settings['items']} items per section"
    if set(settings.get("only") or SECTIONS) != set(SECTIONS):
        scope += f", sections {', '.join(settings['only'])}"
    versions = ", ".join(f"{d} {env['versions'][d]}" for d in SHOWN_VERSIONS if d in env.get("versions", {}))
    return [
        f"`make benchmark` ({scope}) of {results['started'][:10]}.",
        f"Machine: {env['cpu']}, {env['cores']} cores, GPU: {env['gpu'] or 'none'}; providers {settings['device']}, "
        f"{settings['threads']} threads; Python {env['python']}.",
        f"Versions: {versions}.",
        f"Report, raw results and plots: [`{source}`]({source}).",
    ]


def footer(results: dict) -> list[str]:
    """Start-up and bundle sizes, when the run measured them."""
    parts = []
    if s := results.get("startup"):
        parts.append(
            f"`casavox run` start -> listening {s['cold_s']:.2f} s cold, {s['warm_s']:.2f} s warm "
            f"(bundle hashes checked); daemon peak RSS {s['peak_rss_mb']:.0f} MB"
        )
    sizes = (results.get("bundle") or {}).get("size_mb") or {}
    if sizes:
        parts.append("bundle MB per variant: " + ", ".join(f"{k} {v:.0f}" for k, v in sorted(sizes.items())))
    return ["", "; ".join(parts) + "."] if parts else []


def render(results: dict, source: str) -> str:
    """The README block, markers included."""
    lines = [BEGIN, *caption(results, source), "", *report.summary_lines(results), *footer(results), END]
    return "\n".join(lines)


def render_file(path: str | Path) -> str:
    path = Path(path)
    return render(report.load(path), _shown_path(path))


def replace_block(text: str, block: str) -> str:
    """``text`` with its numbers block replaced by ``block`` (which carries the markers)."""
    start, end = text.find(BEGIN), text.find(END)
    if start < 0 or end < start:
        raise ValueError(f"no {BEGIN} ... {END} block")
    return text[:start] + block + text[end + len(END) :]


def read_block(text: str) -> str:
    start, end = text.find(BEGIN), text.find(END)
    if start < 0 or end < start:
        raise ValueError(f"no {BEGIN} ... {END} block")
    return text[start : end + len(END)]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("results", type=Path, help="results.json of a benchmark run")
    parser.add_argument("--write", type=Path, metavar="README", help="replace the block in this file")
    args = parser.parse_args(argv)
    block = render_file(args.results)
    if not args.write:
        print(block)
        return 0
    try:
        new = replace_block(args.write.read_text(), block)
    except ValueError as exc:
        print(f"readme_table: {args.write}: {exc}", file=sys.stderr)
        return 1
    args.write.write_text(new)
    print(f"readme_table: {args.write} numbers block from {args.results}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
