"""The bundle's intent spec (``llm/intent_spec.json``): which slots each intent takes, of what kind
and with which values, and which device classes each domain can be asked about.

The intents and slot kinds come from the Home Assistant-labelled training data (what the model was
taught); the values of enum slots, the ranges of numbers and the classes per domain come from Home
Assistant's templates themselves. Taking the values from a data sample alone missed the rare ones:
3,000 examples never asked "how many lights are on?", so the grammar could not answer HassGetState
with domain "light", nor HassTimerStatus with start_hours, nor a temperature of 20.5 (suite, adapter
of 2026-11-26).
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterator
from typing import Any

from hassil import Intents
from hassil.intents import RangeSlotList, SlotList, TextSlotList, WildcardSlotList

from casavox.export.llm.dataset import Example
from casavox.export.llm.sampler import block_domains
from casavox.runtime.intents.catalogue import lookup
from casavox.runtime.intents.templates import list_references

# Slots whose values Home Assistant also bounds itself (its intent handlers' schemas).
HA_RANGES = {
    "brightness": (0, 100),
    "position": (0, 100),
    "volume_level": (0, 100),
    "temperature": (0, 100),
    "hours": (0, 100),
    "minutes": (0, 100),
    "seconds": (0, 100),
}
TEXT_SLOTS = {"item", "search_query", "message", "conversation_command", "zone"}
# Slots filled from the home (names, areas, floors), never from the templates' lists.
HOME_SLOTS = {"name", "area", "floor"}


def _block_lists(intents: Intents, data) -> Iterator[tuple[str, SlotList | None]]:
    """(slot name, its slot list) for every list reference in a template block's sentences; the list
    is None where the home provides it (names, areas, zones)."""
    rules = {**intents.expansion_rules, **(data.expansion_rules or {})}
    lists: dict[str, SlotList] = {**intents.slot_lists, **(data.slot_lists or {})}
    for sentence in data.sentences:
        for ref in list_references(sentence.expression, rules):
            yield ref.slot_name, lists.get(ref.list_name)


def _text_values(values: TextSlotList) -> set[str]:
    out = set()
    for v in values.values:
        value = v.value_out if v.value_out is not None else getattr(v.text_in, "text", None)
        if isinstance(value, str):
            out.add(value)
    return out


def template_slots(intents: Intents) -> dict[str, dict[str, dict[str, Any]]]:
    """Per intent and slot, what Home Assistant's templates can put there: {"values": {...}} for a
    list of words or a fixed value, {"range": (lo, hi, fractions)} for numbers, {"text": True} for
    free text."""
    found: dict[str, dict[str, dict[str, Any]]] = defaultdict(lambda: defaultdict(dict))
    for intent in intents.intents.values():
        for data in intent.data:
            slots = found[intent.name]
            for slot, value in (data.slots or {}).items():
                if isinstance(value, str):
                    slots[slot].setdefault("values", set()).add(value)
            for slot, values in _block_lists(intents, data):
                if slot in HOME_SLOTS:
                    continue
                if isinstance(values, TextSlotList):
                    slots[slot].setdefault("values", set()).update(_text_values(values))
                elif isinstance(values, RangeSlotList):
                    lo, hi, frac = slots[slot].get("range", (values.start, values.stop, False))
                    slots[slot]["range"] = (
                        min(lo, values.start),
                        max(hi, values.stop),
                        frac or values.fraction_type is not None,
                    )
                elif isinstance(values, WildcardSlotList):
                    slots[slot]["text"] = True
                # None: a list the home provides (zones...); the data's values stand
    return found


def domain_classes(intents: Intents) -> dict[str, list[str]]:
    """Device classes Home Assistant's templates ask about, per domain: the block's required or set
    class with its domain, and every class of a ``device_class`` list in a block about one domain."""
    classes: dict[str, set[str]] = defaultdict(set)
    for intent in intents.intents.values():
        for data in intent.data:
            context, fixed = data.requires_context or {}, data.slots or {}
            domains = block_domains(data)
            found = context.get("device_class") or fixed.get("device_class")
            found = {found} if isinstance(found, str) else set(found or [])
            for slot, values in _block_lists(intents, data):
                if slot == "device_class" and isinstance(values, TextSlotList):
                    found |= _text_values(values)
            for domain in domains:
                classes[domain] |= found
    return {d: sorted(c) for d, c in sorted(classes.items()) if c}


def _kind(intent: str, slot: str, values: list, template: dict[str, Any]) -> dict[str, Any]:
    if slot == "name":
        return {"kind": lookup(intent).name_kind}  # a timer's own name is text, else an entity's
    if slot in ("area", "floor"):
        return {"kind": slot}
    numbers = [v for v in values if isinstance(v, (int, float)) and not isinstance(v, bool)]
    # Numbers where the data holds only numbers (or the templates only a range); a slot that takes
    # words or numbers (volume_step: "up" or 10) stays an enum of what was seen, as before.
    if (values and len(numbers) == len(values)) or (
        not values and "range" in template and "values" not in template
    ):
        lo, hi, frac = template.get("range", (None, None, False))
        lo, hi = HA_RANGES.get(slot, (lo, hi))
        lo = min(0, *numbers) if lo is None else lo
        hi = max(100, *numbers) if hi is None else hi
        if frac or any(isinstance(v, float) for v in numbers):
            return {"kind": "number", "min": lo, "max": hi}
        return {"kind": "integer", "min": lo, "max": hi}
    if slot in TEXT_SLOTS or (template.get("text") and not template.get("values")):
        return {"kind": "text", "max_length": 60}
    return {"kind": "enum", "values": sorted({str(v) for v in values} | template.get("values", set()))}


def intent_spec(examples: list[Example], intents: Intents) -> dict[str, Any]:
    """The spec of every intent the training data taught, its slots as seen in the data or the
    templates, enum values and number ranges from both."""
    seen: dict[str, dict[str, list]] = defaultdict(lambda: defaultdict(list))
    for ex in examples:
        for intent in ex.intents:
            seen[intent["name"]]  # an intent with no slots still counts
            for slot, value in intent["slots"].items():
                seen[intent["name"]][slot].append(value)
    templates = template_slots(intents)
    spec: dict[str, dict[str, dict]] = {}
    for intent, slots in seen.items():
        from_templates = templates.get(intent, {})
        names = list(slots) + sorted(set(from_templates) - set(slots) - HOME_SLOTS)
        spec[intent] = {
            slot: _kind(intent, slot, slots.get(slot, []), from_templates.get(slot, {})) for slot in names
        }
    return {"intents": dict(sorted(spec.items())), "domain_classes": domain_classes(intents)}
