"""Choose the LLM's confidence floor on the DEVELOPMENT sets, then report it on the frozen held-out sets.

    python -m benchmarks.confidence_floor BUNDLE [--json OUT]

The floor (``--min-confidence``, runtime/intents/engine.py) trades wrong actions for "not
understood". It is chosen here only from the development sets (``tests/data/dev_*.yaml``: written
for tuning, by a helper that had not seen the recipe, the rules or the held-out sets), by a cost
fixed before any run: **a wrong action costs three "not understood"** (on commands, and any action
on a non-command), so the chosen floor maximizes ``exact - 3 x wrong`` over all development
sentences. The frozen held-out sets (``tests/data/heldout_*.yaml``) are then measured at the old
and the chosen floor and reported, never used to choose.
"""

from __future__ import annotations

import argparse
import glob
import json
from pathlib import Path

from benchmarks.rules import ROOT, RememberingLlm
from casavox.edge_app.intent_eval import evaluate, load_suite
from casavox.runtime.bundle import verify
from casavox.runtime.intents.engine import DEFAULT_MIN_CONFIDENCE, IntentEngine
from casavox.runtime.intents.llm import load_llm
from casavox.runtime.intents.templates import load_language_intents

FLOORS = (0.5, 0.55, 0.6, 0.65, 0.7, 0.75, 0.8, 0.85, 0.9, 0.95)
WRONG_COST = 3.0


def _sets(pattern: str) -> list[Path]:
    return [Path(p) for p in sorted(glob.glob(str(ROOT / pattern)))]


def sweep(llm, intents, sets: list[Path], floors) -> dict[float, dict]:
    groups = [g for s in sets for g in load_suite(s)]
    engines: dict[int, IntentEngine] = {}
    out = {}
    for floor in floors:

        def engine_for(home, floor=floor):
            if id(home) not in engines:
                engines[id(home)] = IntentEngine.build(home, llm, intents)
            engine = engines[id(home)]
            engine.min_confidence = floor
            return engine.parse

        report = evaluate(groups, engine_for)
        c, n = report.rates(True), report.rates(False)
        wrong = c["wrong_action"] * c["n"] + n["wrong_action"] * n["n"]
        out[floor] = {
            "commands": c["n"],
            "exact": c["exact"],
            "wrong_action": c["wrong_action"],
            "not_understood": c["not_understood"],
            "non_commands": n["n"],
            "non_commands_acted": n["wrong_action"],
            "score": c["exact"] * c["n"] + n["exact"] * n["n"] - WRONG_COST * wrong,
        }
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("bundle", type=Path)
    parser.add_argument("--json", type=Path)
    args = parser.parse_args(argv)
    llm = RememberingLlm(load_llm(verify(args.bundle)))
    intents = load_language_intents()
    dev = sweep(llm, intents, _sets("tests/data/dev_*.yaml"), FLOORS)
    chosen = max(dev, key=lambda f: (dev[f]["score"], -f))
    held = sweep(
        llm, intents, _sets("tests/data/heldout_*commands_*.yaml"), sorted({DEFAULT_MIN_CONFIDENCE, chosen})
    )
    result = {"cost_of_a_wrong_action": WRONG_COST, "dev": dev, "chosen": chosen, "heldout": held}
    if args.json:
        args.json.write_text(json.dumps(result, indent=1) + "\n")
    print(
        f"{'set':<8} {'floor':>5} {'exact':>7} {'wrong':>7} {'not und.':>9} {'non-cmd acted':>14} {'score':>7}"
    )
    for name, rows in (("dev", dev), ("heldout", held)):
        for floor, r in rows.items():
            mark = " <- chosen" if name == "dev" and floor == chosen else ""
            print(
                f"{name:<8} {floor:>5.2f} {r['exact']:>7.1%} {r['wrong_action']:>7.1%} {r['not_understood']:>9.1%}"
                f" {r['non_commands_acted']:>14.1%} {r['score']:>7.1f}{mark}"
            )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
