"""How often grounding refuses a right answer, on generated commands (the development set).

    python -m benchmarks.grounding [--examples 1500] [--seed 7] [--show 20]

The right answers come from the training-data generator (``export/llm/dataset.py``: Home Assistant's
templates and paraphrases on random homes, labelled by hassil), with a seed the committed adapter
was not trained on. Each labelled intent goes through ``Grounding.refuse_text`` and
``Grounding.check`` as if the LLM had answered it: every refusal here is a right answer grounding
would have thrown away. This is the set the grounding rules and the lexicon are developed on; the
frozen held-out sets in ``tests/data/heldout_*.yaml`` are only ever reported, never tuned on.
"""

from __future__ import annotations

import argparse
import collections
import json

from casavox.export.llm.dataset import build_examples
from casavox.runtime.intents.grounding import Grounding
from casavox.runtime.intents.result import Intent
from casavox.runtime.intents.templates import load_language_intents


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--examples", type=int, default=1500)
    parser.add_argument("--seed", type=int, default=7, help="not the recipe's training seed")
    parser.add_argument("--show", type=int, default=20)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args(argv)
    examples = build_examples(args.examples, args.seed, load_language_intents())
    checked, refused = 0, []
    by_reason: collections.Counter[str] = collections.Counter()
    for ex in examples:
        if not ex.intents or ex.home is None or ex.kind == "absent":  # absent: nothing to ground
            continue
        grounding = Grounding(ex.home)
        here = ex.home.area(ex.area).name if ex.area and ex.home.area(ex.area) else None
        text_reason = grounding.refuse_text(ex.text)
        for i in ex.intents:
            checked += 1
            reason = text_reason or grounding.check(Intent(i["name"], i.get("slots", {})), ex.text, here)
            if reason:
                refused.append((ex.kind, ex.text, i, reason))
                by_reason[reason.split(":")[0].split(" called")[0]] += 1
    summary = {
        "examples": len(examples),
        "intents_checked": checked,
        "refused": len(refused),
        "false_refusal_rate": len(refused) / max(1, checked),
        "by_reason": dict(by_reason.most_common()),
    }
    if args.json:
        print(json.dumps({**summary, "refused_examples": refused}, default=str))
        return 0
    for kind, text, intent, reason in refused[: args.show]:
        print(f"[{kind}] {text!r}\n    {intent['name']} {intent.get('slots')}\n    -> {reason}")
    print(json.dumps(summary, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
