"""The fast path: Home Assistant's own sentence templates (home-assistant-intents) matched by hassil.

Slot lists are built from the home exactly as Home Assistant's intent tests build them: ``name``
from every exposed entity name and alias (with the entity's domain and attributes as match
context, so "open the garage door" only matches covers), ``area`` and ``floor`` from the home's
areas and floors. The room the speaker is in is passed as intent context, which is how "turn on the
lights in here" resolves.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from hassil import Intents, recognize_best
from hassil.expression import Group, ListReference, RuleReference
from hassil.intents import SlotList, TextSlotList

from casavox.errors import CasavoxError
from casavox.runtime.home import Home
from casavox.runtime.intents.result import Intent, IntentResult


class TemplateError(CasavoxError, RuntimeError):
    """Home Assistant's templates for the language are not installed."""


def load_language_intents(language: str = "en") -> Intents:
    from home_assistant_intents import get_intents

    data = get_intents(language)
    if data is None:
        raise TemplateError(f"home-assistant-intents has no sentences for language '{language}'")
    return Intents.from_dict(data)


def list_references(expr, rules: dict, seen: frozenset[str] = frozenset()) -> Iterator[ListReference]:
    """Every ``{list}`` in a template expression, through its ``<rules>`` (each rule once per path)."""
    if isinstance(expr, ListReference):
        yield expr
    elif isinstance(expr, Group):
        for item in expr.items:
            yield from list_references(item, rules, seen)
    elif isinstance(expr, RuleReference) and expr.rule_name not in seen and expr.rule_name in rules:
        yield from list_references(rules[expr.rule_name].expression, rules, seen | {expr.rule_name})


def context_area_intents(intents: Intents) -> frozenset[str]:
    """Intents with a template that takes the speaker's area as its area slot (``requires_context:
    area: {slot: true}``: "pause", "play X", "what's the temperature", "turn on the lights")."""
    return frozenset(
        intent.name
        for intent in intents.intents.values()
        if any(isinstance((d.requires_context or {}).get("area"), dict) for d in intent.data)
    )


def slot_lists(home: Home) -> dict[str, SlotList]:
    entity_values = []
    for entity in home.exposed:
        context = {"domain": entity.domain, **entity.attributes}
        entity_values.extend((name, name, context) for name in entity.names)
    areas = [n for a in home.areas for n in (a.name, *a.aliases)]
    floors = [n for f in home.floors for n in (f.name, *f.aliases)]
    return {
        "name": TextSlotList.from_tuples(entity_values, allow_template=False),
        "area": TextSlotList.from_strings(areas, allow_template=False),
        "floor": TextSlotList.from_strings(floors, allow_template=False),
    }


@dataclass
class TemplateMatcher:
    intents: Intents
    lists: dict[str, SlotList]
    home: Home

    @classmethod
    def for_home(cls, home: Home, intents: Intents | None = None) -> TemplateMatcher:
        return cls(intents or load_language_intents(home.language), slot_lists(home), home)

    def match(self, text: str, area: str | None = None) -> IntentResult | None:
        """The template intent for ``text``, or None when no template matches."""
        t0 = time.perf_counter()
        context: dict[str, Any] = {}
        if area:
            found = self.home.area(area)
            context["area"] = found.name if found else area
        # recognize_best, as Home Assistant's default agent does: among all matches prefer the one with
        # the most literal text and fewest wildcard words ("stop my timer" must not name a timer "my"),
        # and one that names an entity over one that only names an area ("turn off bedroom lamp").
        result = recognize_best(
            text, self.intents, slot_lists=self.lists, intent_context=context or None, best_slot_name="name"
        )
        ms = (time.perf_counter() - t0) * 1e3
        if result is None:
            return None
        slots = {e.name: e.value for e in result.entities.values()}
        return IntentResult(
            text=text,
            intents=[Intent(result.intent.name, slots)],
            source="template",
            confidence=1.0,
            timings_ms={"template_ms": ms},
        )
