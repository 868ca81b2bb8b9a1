"""A training curve: adapters (checkpoints of one `casavox finetune --checkpoints` run, or runs with
other settings) each exported to an int8 LLM bundle and measured on the frozen held-out sets.

    python -m benchmarks.training_curve ADAPTER_DIR... [--json OUT] [--work DIR]

Per adapter: exact match, wrong-action rate and not-understood on the held-out commands, and the
share of held-out non-commands acted on, through the merged engine (templates first) and through the
LLM alone. The adapter's ``recipe.json`` (when there is one) gives its steps and config; a checkpoint
folder ``step-N`` (``casavox finetune --checkpoints``) is N steps of its run.
"""

from __future__ import annotations

import argparse
import glob
import json
import re
import tempfile
from pathlib import Path

from casavox.edge_app.intent_eval import evaluate, load_suite
from casavox.export.llm.pipeline import export_llm
from casavox.runtime.bundle import verify
from casavox.runtime.intents.engine import IntentEngine
from casavox.runtime.intents.llm import load_llm
from casavox.runtime.intents.templates import load_language_intents

ROOT = Path(__file__).resolve().parents[1]
SETS = (
    "tests/data/heldout_*commands_*.yaml"  # the paused sets (heldout_pauses_*) are benchmarks.endpointing's
)


def describe(adapter: Path) -> dict:
    """What is known of an adapter: its recipe's steps and config, or a checkpoint's steps (``step-N``)."""
    recipe = adapter / "recipe.json"
    if recipe.exists():
        data = json.loads(recipe.read_text())
        return {"steps": data["config"]["steps"], "config": data["config"], "train_s": data.get("train_s")}
    m = re.fullmatch(r"step-(\d+)", adapter.name)
    return {"steps": int(m.group(1))} if m else {}


def score(bundle: Path, sets: list[Path]) -> dict:
    llm = load_llm(verify(bundle))
    intents = load_language_intents()
    groups = [g for s in sets for g in load_suite(s)]
    out = {}
    for path, templates in (("merged", True), ("llm_only", False)):

        def engine_for(home, templates=templates):
            engine = IntentEngine.build(home, llm, intents)
            return lambda text, area: engine.parse(text, area, templates=templates)

        report = evaluate(groups, engine_for)
        commands, others = report.rates(True), report.rates(False)
        out[path] = {
            "exact": commands["exact"],
            "wrong_action": commands["wrong_action"],
            "not_understood": commands["not_understood"],
            "commands": commands["n"],
            "non_commands_acted": others["wrong_action"],
            "non_commands": others["n"],
        }
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("adapters", nargs="+", type=Path)
    parser.add_argument("--sets", nargs="*", help=f"test files (default {SETS})")
    parser.add_argument("--json", type=Path)
    parser.add_argument("--work", type=Path, help="where the bundles go (default: a temporary folder)")
    args = parser.parse_args(argv)
    sets = [Path(s) for s in (args.sets or sorted(glob.glob(str(ROOT / SETS))))]
    work = args.work or Path(tempfile.mkdtemp(prefix="casavox-curve-"))
    rows = []
    for adapter in args.adapters:
        bundle = work / re.sub(r"\W+", "_", str(adapter.resolve()))
        if not (bundle / "manifest.json").exists():
            export_llm(bundle, None, adapter, ("int8",), progress=False)
        rows.append({"adapter": str(adapter), **describe(adapter), **score(bundle, sets)})
        r = rows[-1]
        print(
            f"{adapter}: steps {r.get('steps', '?')}; merged exact {r['merged']['exact']:.1%} wrong"
            f" {r['merged']['wrong_action']:.1%}; LLM alone exact {r['llm_only']['exact']:.1%} wrong"
            f" {r['llm_only']['wrong_action']:.1%}; non-commands acted {r['merged']['non_commands_acted']:.1%}",
            flush=True,
        )
    if args.json:
        args.json.write_text(json.dumps({"sets": [str(s) for s in sets], "adapters": rows}, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
