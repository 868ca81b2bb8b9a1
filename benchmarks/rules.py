"""What each rule around the model buys: the frozen held-out sets with every rule on, then with
each rule (runtime/intents/rules.py) switched off in turn.

    python -m benchmarks.rules BUNDLE [--json OUT] [--sets tests/data/heldout_*commands_*.yaml]

Per setting: exact match, wrong-action rate and not-understood on the commands, and the share of
non-commands acted on. The model's answer to a given prompt does not depend on the rules after it,
so answers are computed once per prompt and reused across settings (the rules before the model
change which prompts reach it: those are computed when first seen). Reported, never tuned on: the
sets are frozen (tests/data/README in docs/tests.md).
"""

from __future__ import annotations

import argparse
import glob
import json
import sys
from pathlib import Path

from casavox.edge_app.intent_eval import evaluate, load_suite
from casavox.runtime.bundle import verify
from casavox.runtime.intents.engine import IntentEngine
from casavox.runtime.intents.llm import load_llm
from casavox.runtime.intents.rules import RULE_NAMES
from casavox.runtime.intents.templates import load_language_intents

ROOT = Path(__file__).resolve().parents[1]
SETS = (
    "tests/data/heldout_*commands_*.yaml"  # the paused sets (heldout_pauses_*) are benchmarks.endpointing's
)


class RememberingLlm:
    """An ``IntentLLM`` whose answers are kept per (prompt, grammar): the model is deterministic
    (greedy under the grammar), so a second identical question needs no second decode."""

    def __init__(self, llm):
        self.llm = llm
        self.spec = llm.spec
        self.answers: dict[tuple[str, str], object] = {}

    def grammar(self, schema):
        return self.llm.grammar(schema)

    def generate(self, message: str, grammar: str):
        key = (message, grammar)
        if key not in self.answers:
            self.answers[key] = self.llm.generate(message, grammar)
        return self.answers[key]


def measure(bundle: Path, sets: list[Path]) -> dict:
    llm = RememberingLlm(load_llm(verify(bundle)))
    intents = load_language_intents()
    groups = [g for s in sets for g in load_suite(s)]
    engines = {}

    def run(disabled: frozenset[str]) -> dict:
        def engine_for(home):
            key = id(home)
            if key not in engines:
                engines[key] = IntentEngine.build(home, llm, intents)
            engine = engines[key]

            def parse(text, area):
                engine.disabled = disabled
                return engine.parse(text, area)

            return parse

        report = evaluate(groups, engine_for)
        commands, others = report.rates(True), report.rates(False)
        return {
            "commands": commands["n"],
            "exact": commands["exact"],
            "wrong_action": commands["wrong_action"],
            "not_understood": commands["not_understood"],
            "non_commands": others["n"],
            "non_commands_acted": others["wrong_action"],
            "per_file": report.verdicts("file"),
        }

    out = {"sets": [str(s.relative_to(ROOT)) if s.is_relative_to(ROOT) else str(s) for s in sets]}
    out["all_rules"] = run(frozenset())
    out["without"] = {name: run(frozenset({name})) for name in RULE_NAMES}
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("bundle", type=Path)
    parser.add_argument("--sets", nargs="*", help=f"test files (default {SETS})")
    parser.add_argument("--json", type=Path, help="also write the figures here")
    args = parser.parse_args(argv)
    sets = [Path(s) for s in (args.sets or sorted(glob.glob(str(ROOT / SETS))))]
    result = measure(args.bundle, sets)
    if args.json:
        args.json.write_text(json.dumps(result, indent=1) + "\n")
    base = result["all_rules"]
    print(f"{'setting':<28} {'exact':>7} {'wrong':>7} {'not und.':>9} {'non-cmd acted':>14}")
    rows = [("all rules", base)] + [(f"without {k}", v) for k, v in result["without"].items()]
    for label, r in rows:
        print(
            f"{label:<28} {r['exact']:>7.1%} {r['wrong_action']:>7.1%} {r['not_understood']:>9.1%}"
            f" {r['non_commands_acted']:>14.1%}"
        )
    print(f"({base['commands']} commands, {base['non_commands']} non-commands)", file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
