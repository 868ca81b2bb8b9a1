"""Semantic endpointing: how long a pause ends an utterance, given what the words so far mean.

At the first short pause (``vad.speculate_ms``) the daemon already knows what the words so far
mean. Words that may go on (:func:`may_go_on`) are given ``vad.unfinished_silence_ms`` before the
utterance ends; a finished command ``vad.trailing_silence_ms``; and with ``safety.act_early`` one
that passes every rule below acts at once, instead of waiting out the trailing silence. A person who only paused ("turn on the light
... in the bedroom") must not be acted on: the rules are ordered, each names what it guards
against, and each can be switched off (``benchmarks.endpointing --without RULE``) to measure what
it buys. They were written before the paused-speech sets in ``tests/data/*_pauses_*`` existed
(docs/design.md "Semantic endpointing").
"""

from __future__ import annotations

from collections.abc import Callable, Collection
from dataclasses import dataclass

from casavox.runtime.home import Home
from casavox.runtime.intents.catalogue import lookup
from casavox.runtime.intents.engine import WHOLE_HOME, says_place
from casavox.runtime.intents.result import IntentResult
from casavox.runtime.intents.said_values import words_outside

# Below this an LLM answer waits for the endpoint: a wrong early action cannot be taken back, and
# the confirmed endpoint is only ``trailing_silence_ms - speculate_ms`` later.
EARLY_CONFIDENCE = 0.9
SENTENCE_END = (".", "?", "!")
TARGET_SLOTS = frozenset({"name", "area", "floor", "domain", "device_class"})  # how a command picks devices


@dataclass(frozen=True)
class EarlyContext:
    """What the rules look at: the speculative result, the raw transcript, the home and room."""

    result: IntentResult
    heard: str  # Whisper's transcript, punctuation kept
    home: Home
    area: str | None  # the box's room
    sensitive: bool  # acting would touch a lock, door or garage door (it asks first)
    question_pending: bool


Rule = Callable[[EarlyContext], bool]  # True: this rule lets the result act early


def _understood(c: EarlyContext) -> bool:
    """Nothing to act on, or a question waiting for its answer: the normal path decides."""
    return c.result.understood and not c.question_pending


def _confident(c: EarlyContext) -> bool:
    """A template match is complete by construction; an LLM answer only when it is sure."""
    return c.result.source == "template" or c.result.confidence >= EARLY_CONFIDENCE


def _not_sensitive(c: EarlyContext) -> bool:
    """A lock or door asks first anyway: nothing to gain, a question asked too early to lose."""
    return not c.sensitive


def _sentence_closed(c: EarlyContext) -> bool:
    """Whisper closed the sentence ('.', '?', '!', not '...'): its language model's own reading that
    the words so far are a whole sentence. "Turn off the" and a trailing "..." stay open."""
    text = c.heard.rstrip()
    return text.endswith(SENTENCE_END) and not text.endswith("..")


def _names_target(c: EarlyContext) -> bool:
    """A control command acts early only on a target the words named: a device, an area or floor
    said, or the whole home. One that fell back to the speaker's room ("turn on the light") is
    often followed by the room it meant ("... in the kids room")."""
    text = c.result.text
    for intent in c.result.intents:
        if lookup(intent.name).kind != "control":
            continue
        s = intent.slots
        if not TARGET_SLOTS.intersection(s):
            continue  # its target is implicit (the shopping list): nothing more to name
        if isinstance(s.get("name"), str) and s["name"] != "all":
            continue
        if WHOLE_HOME.search(text):
            continue
        said = words_outside(text, s)
        named_place = False
        for slot, find in (("area", c.home.area), ("floor", c.home.floor)):
            value = s.get(slot)
            if isinstance(value, str):
                place = find(value)
                names = (place.name, *place.aliases) if place is not None else (value,)
                named_place = named_place or says_place(said, names)
        if not named_place:
            return False
    return True


RULES: tuple[tuple[str, Rule], ...] = (
    ("understood", _understood),
    ("confident", _confident),
    ("not_sensitive", _not_sensitive),
    ("sentence_closed", _sentence_closed),
    ("names_target", _names_target),
)
RULE_NAMES = tuple(name for name, _ in RULES)


def may_go_on(c: EarlyContext) -> bool:
    """Whether the words so far may be the start of a longer command, so a pause should be waited
    out longer (``vad.unfinished_silence_ms``): nothing understood yet ("turn off the", "set a timer
    for"), or a control command that names no target. Costs time only where nothing would be done
    or the command would fall back to the speaker's room."""
    return not c.result.understood or not _names_target(c)


def early_blocker(c: EarlyContext, without: Collection[str] = ()) -> str:
    """The name of the first rule that says wait, or "" when the result may act now."""
    for name, rule in RULES:
        if name not in without and not rule(c):
            return name
    return ""
