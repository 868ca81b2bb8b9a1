"""The rules around the model, in the order the engine applies them: one named list, each switchable.

What the model can learn goes into its training data (export/llm/data/); what stays here is general
(about words, numbers and the home's own names, never about one fixture's devices), and each rule
can be switched off by name (``IntentEngine.disabled``, ``casavox eval-intents --without NAME``) so
that what it buys is measured (``python -m benchmarks.rules``, docs/experiments.md). Two checks are
not rules and cannot be switched off: an answer may only name what the home exposes
(``unknown_references``), and templates match before any of this.

Before the model:
- ``refuse_non_commands``: text that is no command for this box (a fragment ending in "the", a bare
  name, numbers alone, another language, chat markup) never reaches the model (grounding.py).
- ``split_commands``: "turn off the lights and lock the door" is tried as two commands when the
  whole matches no template (the small model, asked for a list, returned only the first command).

After the model, on its answer:
- ``absent_names``: the model said the words name something this home does not have
  (``schema.ABSENT``): nothing is done and the reply names it, as Home Assistant's does.
- ``values_said``: values the words settle ("off", "50 percent", "closed") replace the model's.
- ``prefer_named_entity``: a domain-wide answer where the words name one device of that domain
  becomes that device, as Home Assistant's matcher prefers.
- ``places_as_said``: areas and floors the words do not say are dropped; the speaker's area
  applies where Home Assistant's templates take it from context.
- ``grounding``: every device, area, floor, domain, polarity and number of the answer must be in
  the words (grounding.py); otherwise nothing is done.
- ``confidence_floor``: an answer with a freely chosen token under ``min_confidence`` is "not
  understood".
"""

from __future__ import annotations

from dataclasses import dataclass

from casavox.errors import CasavoxError


@dataclass(frozen=True)
class Rule:
    name: str
    stage: str  # "before" or "after" the model
    what: str


RULES: tuple[Rule, ...] = (
    Rule("refuse_non_commands", "before", "text that is no command never reaches the model"),
    Rule("split_commands", "before", "two commands joined by 'and'/'then' are parsed one by one"),
    Rule("absent_names", "after", "a name the home does not have: nothing done, the reply names it"),
    Rule("values_said", "after", "values the words settle replace the model's"),
    Rule("prefer_named_entity", "after", "a domain-wide answer becomes the one device the words name"),
    Rule("places_as_said", "after", "areas and floors not said are dropped; the speaker's area applies"),
    Rule("grounding", "after", "every target, polarity and number must be in the words"),
    Rule("confidence_floor", "after", "a hesitant answer is 'not understood'"),
)
RULE_NAMES: tuple[str, ...] = tuple(r.name for r in RULES)
# What --no-grounding switched off before the rules had names: every check of the answer against the words.
GROUNDING_RULES = frozenset({"refuse_non_commands", "absent_names", "grounding"})


class UnknownRuleError(CasavoxError, ValueError):
    """A rule name that is not in ``RULES``."""


def check_names(names: frozenset[str] | set[str] | list[str]) -> frozenset[str]:
    """``names`` as a set of known rule names; a clear error for any other."""
    unknown = sorted(set(names) - set(RULE_NAMES))
    if unknown:
        raise UnknownRuleError(f"unknown rule {', '.join(unknown)} (rules: {', '.join(RULE_NAMES)})")
    return frozenset(names)
