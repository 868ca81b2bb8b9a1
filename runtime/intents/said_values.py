"""Slot values that Home Assistant's templates take from a word list, read back from the words said.

Home Assistant's templates decide some slots by one word alone: "are any batteries *low*?" is a
battery binary sensor in state "on", "*normal*" or "*charged*" is "off"; "is the phone *charging*?"
is the class battery_charging; "play the *podcast* Serial" is media_class "podcast". The small LLM
picks the intent and the entity well but guesses such values (measured on the suite: "are any
batteries low?" answered "off" with probability 0.9, "is the pet door open?" answered "off"). So
after the LLM, a value that the words literally say, through the very lists Home Assistant's
templates use, wins over the LLM's guess: the LLM keeps what it is good at (which intent, which
device), the words keep the polarity.

The phrase tables are read from the installed home-assistant-intents when the engine is built (no
hand table): for every template block of an intent, the lists its sentences capture into the slot,
keyed by the domain and device class the block is about. A value is only changed when the words
leave exactly one reading; two readings ("detected" is on for a gas, smoke and motion sensor alike)
leave the LLM's answer as it was.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from functools import cached_property
from typing import Any

from hassil import Intents
from hassil.intents import TextSlotList
from hassil.sample import sample_expression

from casavox.runtime.home import Home
from casavox.runtime.intents.catalogue import INTENTS, lookup
from casavox.runtime.intents.result import Intent
from casavox.runtime.intents.templates import list_references

# (domain, device_class) a template block is about -> (phrase as lower-case words, slot value)
Key = tuple[str | None, str | None]
PhraseTable = dict[Key, tuple[tuple[str, Any], ...]]
# Slots whose words are a name or free text, never a value or place said ("play The Open Road",
# "play The Office"): their words are left out before the rest of the sentence is read.
TEXT_SLOTS = ("name", "search_query", "item", "message")


def plain_words(text: str) -> str:
    """Lower-case words separated by single spaces, punctuation dropped ("Shut the Door!" -> "shut the door")."""
    return re.sub(r"[^a-z0-9]+", " ", text.casefold()).strip()


def words_outside(text: str, slots: dict[str, Any]) -> str:
    """``plain_words(text)`` padded with spaces, without the words of the answer's ``TEXT_SLOTS``."""
    said = f" {plain_words(text)} "
    for key in TEXT_SLOTS:
        value = slots.get(key)
        if isinstance(value, str) and plain_words(value):
            said = said.replace(f" {plain_words(value)} ", " ")
    return said


def _one(value: Any) -> str | None:
    return value if isinstance(value, str) else None


@dataclass(frozen=True)
class SaidValues:
    """Per (intent, slot): the phrases of Home Assistant's lists and the value each one means."""

    tables: dict[tuple[str, str], PhraseTable] = field(default_factory=dict)

    @cached_property
    def classes_asked(self) -> frozenset[tuple[str, str]]:
        """(domain, device class) pairs that Home Assistant's questions ask about class by class
        (the keys of the tables of intents whose said values depend on the device asked about)."""
        return frozenset(
            (d, c)
            for (intent, _), table in self.tables.items()
            if lookup(intent).said_by_device
            for d, c in table
            if d is not None and c is not None
        )

    @classmethod
    def from_templates(cls, intents: Intents) -> SaidValues:
        """The phrase tables of every catalogued intent with a ``said_slot`` (the slots read back
        from the words: the state a question asks about, per domain and class, and the kind of media
        asked for). Slots whose lists name things (areas, entities) are the LLM's and
        ``places_as_said``'s business, numbers are the grammar's."""
        tables: dict[tuple[str, str], PhraseTable] = {}
        for intent_name, slot in ((d.name, d.said_slot) for d in INTENTS.values() if d.said_slot):
            intent = intents.intents.get(intent_name)
            if intent is None:
                continue
            table: dict[Key, dict[str, Any]] = {}
            for data in intent.data:
                where = {**(data.slots or {}), **(data.requires_context or {})}
                key = (_one(where.get("domain")), _one(where.get("device_class")))
                rules = {**intents.expansion_rules, **(data.expansion_rules or {})}
                lists = {**intents.slot_lists, **(data.slot_lists or {})}
                for sentence in data.sentences:
                    for ref in list_references(sentence.expression, rules):
                        values = lists.get(ref.list_name) if ref.slot_name == slot else None
                        if not isinstance(values, TextSlotList):
                            continue  # a wildcard or range: nothing fixed to read back
                        phrases = table.setdefault(key, {})
                        for value in values.values:
                            for text in sample_expression(value.text_in):
                                if words := plain_words(text):
                                    phrases[words] = value.value_out
            tables[(intent_name, slot)] = {k: tuple(sorted(v.items())) for k, v in table.items() if v}
        return cls(tables)


# Timer durations: a number and its unit word said together ("a 1 hour 15 minute and 30 second
# timer"). Home Assistant's templates put the unit word right after the number; the LLM measured to
# swap units in multi-unit durations ("minutes 30, seconds 15") and to write "5 minutes" as seconds.
# English unit words, like the rest of the LLM path; digits only (Whisper writes numbers as digits).
# Fractions ("1/2 an hour", "half a minute") are left to the LLM.
UNITS = {"hour": "hours", "minute": "minutes", "second": "seconds"}
_DURATION = re.compile(r"\b(\d+) (hour|minute|second)s?\b")
_FRACTION = re.compile(r"\d\s*[/.]\s*\d|\bhalf\b|\bquarter\b")
# "a 5 minute timer", "the 1 hour and 30 second timer", "my timer for 1 hour": which timer is meant
_NAMES_TIMER = re.compile(r"^(?: (?:and )?\d+ (?:hour|minute|second)s?)* timers?\b")


def durations_said(intent: Intent, text: str) -> dict[str, Any]:
    """A timer intent's duration slots as the words say them ({} where they say none, or say a
    fraction or the same unit twice); a unit the answer has but the words do not say is None
    (dropped). Which duration names the timer and which is the amount follows the words ("remove
    5 minutes from the 1 hour timer"); a new timer's duration is all amount (``IntentDef.durations``: the intents that change a timer by
    an amount of hours/minutes/seconds, the others that only name a timer by its starting duration,
    start_hours...)."""
    role = lookup(intent.name).durations
    if not role or _FRACTION.search(text):
        return {}
    words = plain_words(text)
    amount: dict[str, int] = {}
    start: dict[str, int] = {}
    for m in _DURATION.finditer(words):
        unit = UNITS[m.group(2)]
        names_timer = bool(_NAMES_TIMER.match(words[m.end() :])) or words[: m.start()].endswith("timer for ")
        if role == "new" or (role == "change" and not names_timer):
            found, slot = amount, unit
        else:
            found, slot = start, f"start_{unit}"
        if slot in found:
            return {}  # "5 minutes and 10 minutes": leave it to the LLM
        found[slot] = int(m.group(1))
    fixed: dict[str, Any] = {}
    for found, slots in ((amount, UNITS.values()), (start, [f"start_{u}" for u in UNITS.values()])):
        if found:
            fixed.update({slot: found.get(slot) for slot in slots if slot in found or slot in intent.slots})
    return fixed


def _said(phrases: tuple[tuple[str, Any], ...], said: str) -> set[Any]:
    """The values whose phrases the words say; a phrase inside a longer one said ("charging" in
    "not charging", "home" in "not home") does not count."""
    spans = []
    for phrase, value in phrases:
        at = said.find(f" {phrase} ")
        while at >= 0:
            spans.append((at, at + len(phrase) + 2, value))
            at = said.find(f" {phrase} ", at + 1)
    return {
        value
        for start, end, value in spans
        if not any(s <= start and end <= e and (e - s) > (end - start) for s, e, _ in spans)
    }


def values_said(intent: Intent, home: Home, text: str, said_values: SaidValues) -> dict[str, Any]:
    """The slots of ``intent`` whose value the text says (``IntentDef.said_slot``, the device class a
    question's words pin down, a timer's durations), with that value (None: a slot to drop); empty
    where the words leave it open.

    For a question the phrases are those of the asked thing's domain and class: the named entity's
    (an entity name can cover several, "Phone" as battery, charging and connectivity sensors), else
    the domain and class in the answer. Where the answer's class has no phrase in the text but
    exactly one other class of the same thing does ("is the phone charging?" answered as a
    connectivity sensor), that class is the one asked about."""
    definition = lookup(intent.name)
    if definition.is_timer:
        return durations_said(intent, text)
    slot = definition.said_slot
    table = said_values.tables.get((intent.name, slot or ""))
    if not slot or not table:
        return {}
    s = intent.slots
    said = words_outside(text, s)

    def phrases(key: Key) -> tuple[tuple[str, Any], ...]:
        return table.get(key) or table.get((key[0], None)) or ()

    if not definition.said_by_device:
        values = _said(tuple(p for ps in table.values() for p in ps), said)
        return {slot: values.pop()} if len(values) == 1 else {}

    domain, device_class = _one(s.get("domain")), _one(s.get("device_class"))
    name = s.get("name")
    if isinstance(name, str) and name != "all":
        keys = {
            (e.domain, e.attributes.get("device_class"))
            for e in home.exposed
            if name.casefold() in (n.casefold() for n in e.names) and domain in (None, e.domain)
        }
    elif domain is not None:
        keys = {(domain, c) for d, c in table if d == domain} | {(domain, None)}
    else:
        return {}  # "is anything on?": no domain to read the words by
    readings = {k: v for k in keys if len(v := _said(phrases(k), said)) == 1}
    own = [k for k in readings if k[1] == device_class]
    if len(own) == 1:
        key = own[0]  # the answer's class, one of the words' readings
    elif len(readings) == 1:
        key = next(iter(readings))
    else:
        return {}  # no phrase said, or words that fit several things equally
    fixed = {slot: readings[key].pop()}
    if len(readings) == 1 and key in table and key[1] is not None:
        fixed["device_class"] = key[1]  # the one class the templates ask about by these words
    return fixed
