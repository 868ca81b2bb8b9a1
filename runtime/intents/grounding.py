"""Never the wrong device: an LLM answer may only act on what the words said.

The grammar offers the model nothing but the home's names, so for "turn on the hot tub" in a home
without one it must still pick *some* name, and it does so at confidence 0.6-0.85: confidence
cannot tell these apart from right answers. So every answer is checked against the words, the way
a person would check it:

- an entity only if the words name it (the words of its name or an alias, each as ASR may misspell
  it; the words of its own area may be left out when it is in the speaker's area), or the words
  name its domain and it is the only such device where the command points;
- an area or floor only if the words say it (or it is the speaker's own area, filled from context);
- a domain or device class only if the words name that kind of device (``lexicon.yaml``), a named
  entity is of it, or the intent has only that domain (HassLightSet is about lights);
- a change to a whole domain across the home only if the words say so (all, every, the house...);
- a number only if it was said, with its sign, inside its range.

Before the model runs at all, text that is not a command for this box is refused: markup, JSON or
chat-template tokens (a transcript never has them; a text client can send them), text in another
language (an English bundle), an utterance that ends unfinished ("turn off the"), a bare device
name or a bare number.

Home Assistant's templates are grounded by construction: every name, area and floor they return is
a slot-list value that the matcher found in the words, and their numbers are the numbers said
(``tests/test_grounding.py`` checks the suite's template answers against this module).
Everything here is general language knowledge (the lexicon is data): no rule names a test's device.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from functools import cache
from importlib.resources import files
from typing import Any

import yaml
from rapidfuzz import fuzz

from casavox.runtime.home import Entity, Home
from casavox.runtime.intents.catalogue import (
    START_TIMER,
    TURN_OFF,
    TURN_ON,
    VACUUM_RETURN_TO_BASE,
    VACUUM_START,
    lookup,
)
from casavox.runtime.intents.result import Intent
from casavox.runtime.intents.said_values import TEXT_SLOTS
from casavox.runtime.intents.schema import ABSENT

SIMILAR = 80  # rapidfuzz ratio for a word as heard: "kichen"/"kitchen" 92, "office"/"off" 67 (engine.py too)
MARKUP = re.compile(r"[<>{}\[\]|\\`]|im_start|im_end|endoftext|\bassistant\s*:|\bsystem\s*:", re.IGNORECASE)
WORD = re.compile(r"[^\W_]+(?:'[^\W_]+)*")
NUMBER = re.compile(r"(?<![\w.])([-−–]\s*|\b(?:minus|negative)\s+)?(\d+(?:[.,]\d+)?)", re.IGNORECASE)
PERCENT_SLOTS = {"brightness", "position", "volume_level", "percentage"}
# number words, for numbers said in words ("fifty", "twenty five", "two and a half")
UNITS = {
    "zero": 0, "no": 0, "one": 1, "a": 1, "an": 1, "two": 2, "three": 3, "four": 4, "five": 5,
    "six": 6, "seven": 7, "eight": 8, "nine": 9, "ten": 10, "eleven": 11, "twelve": 12,
    "thirteen": 13, "fourteen": 14, "fifteen": 15, "sixteen": 16, "seventeen": 17, "eighteen": 18,
    "nineteen": 19,
}  # fmt: skip
TENS = {
    "twenty": 20,
    "thirty": 30,
    "forty": 40,
    "fifty": 50,
    "sixty": 60,
    "seventy": 70,
    "eighty": 80,
    "ninety": 90,
}
# words that set a percentage without a number ("halfway", "all the way", "full")
PERCENT_WORDS = {
    "lowest": (0, 1), "dimmest": (0, 1), "minimum": (0, 1), "min": (0, 1), "bottom": (0,),
    "highest": (100,), "brightest": (100,), "full": (100,), "fully": (100,), "max": (100,),
    "maximum": (100,), "way": (0, 100), "completely": (0, 100), "top": (100,),
    "half": (50,), "halfway": (50,), "quarter": (25,),
}  # fmt: skip


def words(text: str) -> list[str]:
    """Lower-case words, letters of any script kept ("Küche"), a possessive dropped ("Priya's")."""
    out = []
    for w in WORD.findall(text.casefold()):
        out.append(w[:-2] if w.endswith("'s") else w)
    return out


def _variants(word: str) -> set[str]:
    """A lexicon word and its plurals ("lamp" -> lamps, "battery" -> batteries)."""
    out = {word, word + "s", word + "es"}
    if word.endswith("y"):
        out.add(word[:-1] + "ies")
    return out


@dataclass(frozen=True)
class Lexicon:
    """The words that name kinds of devices, the whole home, and words with no meaning of their own."""

    domains: dict[str, frozenset[str]]
    classes: dict[tuple[str, str], frozenset[str]]
    whole_home: frozenset[str]
    filler: frozenset[str]
    unfinished: frozenset[str]
    not_kinds: frozenset[str] = frozenset()
    actions: dict[str, frozenset[str]] = field(default_factory=dict)
    lock_actions: dict[str, frozenset[str]] = field(default_factory=dict)
    not_commands: frozenset[str] = frozenset()
    statements: frozenset[str] = frozenset()
    qualifiers: frozenset[str] = frozenset()
    negations: tuple[str, ...] = ()
    stranded: frozenset[str] = frozenset()
    questions: frozenset[str] = frozenset()
    dismissals: tuple[str, ...] = ()

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Lexicon:
        def expand(items: Iterable[str]) -> frozenset[str]:
            return frozenset(v for w in items for v in _variants(str(w).casefold()))

        return cls(
            domains={d: expand(ws) for d, ws in (data.get("domains") or {}).items()},
            classes={
                (d, c): expand(ws) for d, cs in (data.get("classes") or {}).items() for c, ws in cs.items()
            },
            whole_home=expand(data.get("whole_home") or ()),
            filler=frozenset(str(w) for w in data.get("filler") or ()),
            unfinished=frozenset(str(w) for w in data.get("unfinished") or ()),
            not_kinds=expand(data.get("not_kinds") or ()),
            actions={
                i: frozenset(str(w).casefold() for w in ws) for i, ws in (data.get("actions") or {}).items()
            },
            lock_actions={
                i: frozenset(str(w).casefold() for w in ws)
                for i, ws in (data.get("lock_actions") or {}).items()
            },
            not_commands=frozenset(str(w).casefold() for w in data.get("not_commands") or ()),
            statements=frozenset(str(w).casefold() for w in data.get("statements") or ()),
            qualifiers=frozenset(str(w).casefold() for w in data.get("qualifiers") or ()),
            negations=tuple(str(w).casefold() for w in data.get("negations") or ()),
            stranded=frozenset(str(w).casefold() for w in data.get("stranded") or ()),
            questions=frozenset(str(w).casefold() for w in data.get("questions") or ()),
            dismissals=tuple(str(w).casefold() for w in data.get("dismissals") or ()),
        )

    def undismissed(self, said: list[str]) -> str:
        """The words as one padded string, with "never mind" / "forget it" taken out: a dismissal
        is how Home Assistant's HassNevermind is said, not a negation or a statement."""
        plain = " " + " ".join(said) + " "
        for phrase in self.dismissals:
            plain = plain.replace(f" {phrase} ", " ")
        return plain

    def kinds_named(self, heard: set[str]) -> set[str]:
        """The domains a noun of the text names ("skylight" -> cover), verbs and states left out."""
        return {d for d, ws in self.domains.items() if heard & (ws - self.not_kinds)}


@cache
def default_lexicon() -> Lexicon:
    """The lexicon shipped with casavox (``runtime/intents/lexicon.yaml``), read once."""
    text = (files("casavox.runtime.intents") / "lexicon.yaml").read_text(encoding="utf-8")
    return Lexicon.from_dict(yaml.safe_load(text))


def numbers_said(text: str) -> set[float]:
    """Every number the text says, in digits or words, with its sign ("-50" is -50, never 50)."""
    found: set[float] = set()
    for sign, digits in NUMBER.findall(text):
        value = float(digits.replace(",", "."))
        found.add(-value if sign.strip() else value)
    ws = words(text)
    i = 0
    while i < len(ws):
        w = ws[i]
        negative = i > 0 and ws[i - 1] in ("minus", "negative")
        value: float | None = None
        if w in TENS:
            value = TENS[w]
            if (
                i + 1 < len(ws)
                and ws[i + 1] in UNITS
                and UNITS[ws[i + 1]] < 10
                and ws[i + 1] not in ("a", "an")
            ):
                value += UNITS[ws[i + 1]]
                i += 1
        elif w in UNITS and w not in ("a", "an", "no"):
            value = UNITS[w]
        elif w == "hundred":
            value = 100
        if value is not None:
            if i + 1 < len(ws) and ws[i + 1] == "hundred":
                value *= 100
                i += 1
            if ws[i + 1 : i + 4] == ["and", "a", "half"]:
                found.add(value + 0.5)
            if i + 2 < len(ws) and ws[i + 1] == "point" and ws[i + 2] in UNITS:
                found.add(value + UNITS[ws[i + 2]] / 10)  # "twenty point five"
            found.add(-value if negative else value)
        i += 1
    return found


def _percent_words(said: list[str]) -> set[float]:
    return {float(v) for w, vs in PERCENT_WORDS.items() if w in said for v in vs}


@dataclass
class Grounding:
    """The checks for one home (its names are read once, when the engine is built)."""

    home: Home
    lexicon: Lexicon = field(default_factory=default_lexicon)
    language: str = "en"

    # ---- before the model ---------------------------------------------------------------
    def refuse_text(self, text: str) -> str | None:
        """Why ``text`` is not a command for this box at all (None: let the model read it)."""
        if MARKUP.search(text):
            return "markup or code, not speech"
        said = words(text)
        if not said:
            return "no words"
        content = [w for w in said if w not in self.lexicon.filler]
        if said[-1] in self.lexicon.unfinished and not self._stranded(said):
            return "unfinished: it ends in '" + said[-1] + "'"
        if content and all(
            self._is_number_word(w) or w in ("percent", "per", "cent", "point", "degrees") for w in content
        ):
            return "a number alone is not a command"
        if content and self._bare_name(content):
            return "a name alone is not a command"
        foreign = self._foreign_words(content)
        if foreign:
            return f"not {self.language}: {' '.join(foreign)}"
        kept = self.lexicon.undismissed(said).split()
        marker = next((w for w in kept if w in self.lexicon.not_commands and w not in self._name_words), None)
        if marker is not None:
            return f"a statement, not a request ('{marker}')"
        return None

    def _stranded(self, said: list[str]) -> bool:
        """A question may end in its preposition or verb ("what's the propane tank at", "what the
        date is", "what is the thermostat set to"): English strands them in wh-questions, so the end
        is not a fragment there. Articles, possessives and conjunctions at the end still are."""
        head = [w for w in said if w not in self.lexicon.filler][:3]
        return said[-1] in self.lexicon.stranded and any(w in self.lexicon.questions for w in head)

    def _is_number_word(self, w: str) -> bool:
        return (
            bool(re.fullmatch(r"-?\d+(?:[.,]\d+)?%?", w))
            or w in UNITS
            or w in TENS
            or w in ("hundred", "minus")
        )

    def __post_init__(self) -> None:
        # a scene's or script's name alone is how Home Assistant runs it ("movie night"): not a bare name
        names = [n for e in self.home.exposed if e.domain not in ("scene", "script") for n in e.names]
        names += [n for a in self.home.areas for n in (a.name, *a.aliases)]
        names += [n for f in self.home.floors for n in (f.name, *f.aliases)]
        self._names = [words(n) for n in names if words(n)]  # every name of the home, as words
        self._name_words = {w for n in self._names for w in n}

    def _bare_name(self, content: list[str]) -> bool:
        """The words (less filler) are exactly one of the home's names: "kitchen light", "the garage"."""
        return any([w for w in n if w not in self.lexicon.filler] == content for n in self._names)

    def _foreign_words(self, content: list[str]) -> list[str]:
        """The words that mark the text as another language, when they outnumber the English ones.

        By word frequencies (wordfreq, the usual library for this): a word counts for another
        language when it is far more common there than in English. The home's own names never
        count ("Cozinha" is a room's name here)."""
        if self.language != "en":
            return []
        try:
            from wordfreq import zipf_frequency
        except ImportError:  # pragma: no cover - wordfreq is a dependency; without it, no check
            return []
        foreign, english = [], 0
        for w in content:
            if w in self._name_words or self._is_number_word(w):
                continue
            en = zipf_frequency(w, "en")
            other = max(zipf_frequency(w, lang) for lang in OTHER_LANGUAGES)
            if other >= en + 2.0 or (other >= en + 1.5 and en < 3.5):
                foreign.append(w)
            elif en >= 1.0:
                english += 1
        return foreign if len(foreign) > english and (len(foreign) >= 2 or english == 0) else []

    # ---- after the model ----------------------------------------------------------------
    def check(self, intent: Intent, text: str, here: str | None) -> str | None:
        """Why ``intent`` is not grounded in ``text`` (None: every target and value was said)."""
        s = intent.slots
        said = words(text)
        heard = set(said)
        named: list[Entity] = []
        name = s.get("name")
        spec = lookup(intent.name)
        if isinstance(name, str) and name != "all" and spec.name_kind == "entity":
            entities = self.home.entities_named(name)
            if entities and spec.name_checked:
                if not any(self._names_entity(e, said, here, s) for e in entities):
                    return f"no device called {self._phrase(text)}"
            elif not self._says(said, name):
                return f"nothing called {self._phrase(text)}"
            named = entities
        for slot, find in (("area", self.home.area), ("floor", self.home.floor)):
            value = s.get(slot)
            if not isinstance(value, str):
                continue
            place = find(value)
            if slot == "area" and place is not None and here is not None and place.name == here:
                continue  # the speaker's own area, from context
            names = (place.name, *place.aliases) if place is not None else (value,)
            if not any(self._says(said, n) for n in names):
                return f"no {slot} called {self._phrase(text)}"
        if named:
            extra = next(
                (w for w in said if w in self.lexicon.qualifiers and w not in self._name_words), None
            )
            if extra is not None:
                return f"no device called {self._phrase(text)} ('{extra}')"
        if spec.is_timer and isinstance(name, str) and not self._says(said, name):
            return f"no timer called {name} was said"
        if intent.name == START_TIMER and not (numbers_said(text) or heard & TIME_UNITS):
            return "no duration was said"
        query = s.get("search_query")
        if isinstance(query, str) and set(words(query)) <= NAVIGATION_WORDS:
            return f"'{query}' is not something to search for"
        if spec.changes_home:
            free = {w for k in TEXT_SLOTS if isinstance(s.get(k), str) for w in words(s[k])}
            plain = self.lexicon.undismissed([w for w in said if w not in free])
            negation = next((p for p in self.lexicon.negations if f" {p} " in plain), None)
            if negation is not None:
                return f"negated ('{negation}'): not a request to act"
            marker = next(
                (
                    w
                    for i, w in enumerate(said)
                    if w in self.lexicon.statements
                    and w not in self._name_words | free
                    and not _for_someone(said, i)
                ),
                None,
            )
            if marker is not None:
                return f"a statement, not a request ('{marker}')"
        kinds = {e.domain for e in named} | set(_as_list(s.get("domain")))
        if not kinds & {"scene", "script"}:  # a scene is only ever activated, by many verbs
            polarity = self._polarity(intent.name, heard, locks=kinds == {"lock"})
            if polarity is not None:
                return polarity
        domains = _as_list(s.get("domain"))
        if not spec.changes_home:
            # A question changes nothing: it must name what it asks about by name or place (above);
            # its kind of device may be implied ("who is home?", "is anything open?").
            return self._numbers(intent, text, said)
        for d in domains:
            if not self._domain_said(d, heard, named, intent.name):
                return f"no {d.replace('_', ' ')} was named"
        for c in _as_list(s.get("device_class")):
            if not self._class_said(domains, c, heard, named):
                return f"no {c.replace('_', ' ')} was named"
        if spec.kind == "control" and spec.name_checked:
            place = any(isinstance(s.get(k), str) for k in ("area", "floor")) or (
                isinstance(name, str) and name != "all"
            )
            if not place and not spec.domains and not domains and not s.get("device_class"):
                return "no device, room or kind of device was named"
            if (
                not place
                and spec.over_domain
                and not heard & self.lexicon.whole_home
                and len(self._targets(spec, s)) > 1
            ):
                # "turn off the lights" said where no room is known, in a home with many: which?
                return "which room? (the whole home needs 'all' or 'every')"
        return self._numbers(intent, text, said)

    def _polarity(self, intent: str, heard: set[str], locks: bool = False) -> str | None:
        """An on/off (or vacuum) answer needs the words of its own action, and not more of the
        opposite one's ("turn off the lights on the porch" is fine: one of each)."""
        table = (
            self.lexicon.lock_actions
            if locks and intent in self.lexicon.lock_actions
            else self.lexicon.actions
        )
        own = table.get(intent)
        if own is None:
            return None
        opposite = table.get(OPPOSITE.get(intent, ""), frozenset())
        strong = _count(heard, own - WEAK_ACTIONS)
        # A weak word ("out", "light", "up") counts half: it says an action only where nothing
        # says the other one ("lights out"; but "some light out in the garage", "it's dark out
        # here, lights please" are not "off"). A tie needs a strong word of the answer's own ("turn
        # off the lights on the porch").
        mine = strong + 0.5 * len(heard & own & WEAK_ACTIONS)
        theirs = _count(heard, opposite - WEAK_ACTIONS) + 0.5 * len(heard & opposite & WEAK_ACTIONS)
        if mine == 0 or theirs > mine or (theirs == mine and strong == 0):
            return f"the words do not say to {ACTION_NAMES.get(intent, intent)}"
        return None

    def _targets(self, spec, slots: dict) -> list[Entity]:
        """The exposed entities a nameless, placeless command would act on."""
        domains = set(_as_list(slots.get("domain"))) or set(spec.domains)
        classes = set(_as_list(slots.get("device_class")))
        return [
            e
            for e in self.home.exposed
            if (not domains or e.domain in domains)
            and (not classes or e.attributes.get("device_class") in classes)
        ]

    @staticmethod
    def _heard_any(heard: set[str], kind_words: frozenset[str]) -> bool:
        """A word of the lexicon was said, also as ASR misspells it ("ligts")."""
        return bool(heard & kind_words) or any(
            _similar(w, h) for h in heard if len(h) > 3 for w in kind_words
        )

    def _says(self, said: list[str], name: str) -> bool:
        """Every word of ``name`` that means something is heard, each as ASR may misspell it."""
        want = [w for w in words(name) if w not in self.lexicon.filler]
        return bool(want) and all(any(_similar(w, h) for h in said) for w in want)

    def _names_entity(self, e: Entity, said: list[str], here: str | None, slots: dict) -> bool:
        area = self.home.area(e.area_id) if e.area_id else None
        own_area = set()
        if area is not None and (area.name == here or slots.get("area") == area.name):
            own_area = {w for n in (area.name, *area.aliases) for w in words(n)}
        kind = self.lexicon.domains.get(e.domain, frozenset())
        named_kinds = self.lexicon.kinds_named(set(said))
        other_kind = bool(named_kinds) and e.domain not in named_kinds
        for n in e.names:
            want = [w for w in words(n) if w not in self.lexicon.filler and w not in own_area]
            distinct = [w for w in want if w not in kind]
            if want and all(any(_similar(w, h) for h in said) for w in want):
                return True  # every word of the name
            if (
                not other_kind  # "open the attic skylight" is no "Attic Light"
                and distinct
                and all(any(_similar(w, h) for h in said) for w in distinct)
            ):
                return True  # the name less its kind word ("the attic" for "Attic Light")
        # "turn on the fan" where the home (or the room said) has exactly one fan: named by a noun of
        # its kind ("heat up the sauna" names no thermostat)
        if set(said) & (kind - self.lexicon.not_kinds):
            where = slots.get("area") or here
            place = self.home.area(where) if where is not None else None
            if where is not None and place is None:
                return False
            same = [
                x
                for x in self.home.exposed
                if x.domain == e.domain and (place is None or x.area_id == place.id)
            ]
            return same == [e]
        return False

    def _domain_said(self, domain: str, heard: set[str], named: list[Entity], intent: str) -> bool:
        if self._heard_any(heard, self.lexicon.domains.get(domain, frozenset())):
            return True
        if any(e.domain == domain for e in named):
            return True
        if lookup(intent).domains == {domain}:
            return True
        # a device of that domain named by its own name ("is the Ecobee on?")
        return any(
            e.domain == domain
            and any(all(w in heard for w in words(n) if w not in self.lexicon.filler) for n in e.names)
            for e in self.home.exposed
        )

    def _class_said(
        self, domains: list[str], device_class: str, heard: set[str], named: list[Entity]
    ) -> bool:
        if any(e.attributes.get("device_class") == device_class for e in named):
            return True
        for (d, c), ws in self.lexicon.classes.items():
            if c == device_class and (not domains or d in domains) and self._heard_any(heard, ws):
                return True
        return device_class in heard

    def _numbers(self, intent: Intent, text: str, said: list[str]) -> str | None:
        numbers = numbers_said(text)
        for slot, value in intent.slots.items():
            if slot in ("seconds", "minutes", "hours") or isinstance(value, bool):
                continue  # a timer's duration is read from the words (said_values.durations_said)
            if not isinstance(value, (int, float)):
                continue
            if slot in PERCENT_SLOTS and not 0 <= value <= 100:
                return f"{slot} {value} is out of range"
            if float(value) in numbers:
                continue
            if slot in PERCENT_SLOTS and float(value) in _percent_words(said):
                continue
            if slot == "volume_step" and abs(float(value)) in numbers and _direction_said(float(value), said):
                continue
            if -float(value) in numbers:
                return f"{slot} {value} has the wrong sign"
            return f"{slot} {value} was not said"
        return None

    @staticmethod
    def _phrase(text: str) -> str:
        """The words after the verb, for the reply ("turn on the hot tub" -> "hot tub")."""
        ws = words(text)
        while ws and ws[0] in LEADING:
            ws = ws[1:]
        return " ".join(ws) or text

    def absent(self, intent: Intent, text: str) -> str | None:
        """The reason to give when the answer names something the home does not have (a slot value
        starting with ``schema.ABSENT``, the model's copy of the words): "no device called hot tub"
        where the copy is in the words, else the words after the verb (the copy is the model's, and a
        reply must never put words in the speaker's mouth). None: nothing absent is named."""
        said = words(text)
        for slot, what in (("name", "device"), ("area", "area"), ("floor", "floor")):
            value = intent.slots.get(slot)
            if isinstance(value, str) and value.startswith(ABSENT):
                copy = value[len(ABSENT) :].strip()
                phrase = copy if copy and self._says(said, copy) else self._phrase(text)
                return f"no {what} called {phrase}"
        return None


def ungrounded_reply(reason: str) -> str:
    """What to say when an answer was not grounded: Home Assistant's words where they fit."""
    for marker in ("no device called ", "nothing called "):
        if reason.startswith(marker):
            return f"Sorry, I am not aware of any device called {reason[len(marker) :]}"
    for slot in ("area", "floor"):
        marker = f"no {slot} called "
        if reason.startswith(marker):
            return f"Sorry, I am not aware of any {slot} called {reason[len(marker) :]}"
    if reason.startswith("which room"):
        return "Which room do you mean?"
    return "Sorry, I didn't understand that"


def _for_someone(said: list[str], i: int) -> bool:
    """The person at ``said[i]`` is who the command is for ("unlock the door for the neighbour",
    "turn on the porch light for my sister"), not the subject of a statement about the home."""
    before = said[max(0, i - 2) : i]
    return before[-1:] == ["for"] or (len(before) == 2 and before[0] == "for" and before[1] in FOR_WHOM)


FOR_WHOM = frozenset({"the", "my", "our", "your", "a"})


def not_a_command_reply(text: str, reason: str) -> str:
    """The reply to text refused before the model ("turn off the" -> "Turn off what?")."""
    if reason.startswith("unfinished"):
        ws = text.rstrip(" .,!?").split()
        while (
            ws
            and words(ws[-1])
            and words(ws[-1])[0] in default_lexicon().unfinished - {"turn", "set", "switch", "put", "make"}
        ):
            ws.pop()
        head = " ".join(ws)
        return f"{head[:1].upper()}{head[1:]} what?" if head else "Sorry, I didn't catch that"
    return ""


OPPOSITE = {
    TURN_ON: TURN_OFF, TURN_OFF: TURN_ON,
    VACUUM_START: VACUUM_RETURN_TO_BASE, VACUUM_RETURN_TO_BASE: VACUUM_START,
}  # fmt: skip
ACTION_NAMES = {TURN_ON: "turn on", TURN_OFF: "turn off", VACUUM_START: "start",
                VACUUM_RETURN_TO_BASE: "send home"}  # fmt: skip
# Action words that say little on their own ("power", "up", "light"): enough when nothing else says
# the action, never against the opposite's words.
WEAK_ACTIONS = frozenset(
    {"power", "up", "down", "light", "go", "let", "play", "home", "back", "run", "stop", "of", "anymore", "out"}
)
# A search that is only these words is a player's own command ("play the previous song"), not a
# search for media of that name.
NAVIGATION_WORDS = frozenset(
    {"previous", "next", "last", "prior", "earlier", "skip", "back", "song", "track", "the", "a", "one", "again"}
)
TIME_UNITS = frozenset(
    {"second", "seconds", "minute", "minutes", "hour", "hours", "sec", "secs", "min", "mins"}
)


# Languages an English bundle is most often spoken to in, for the foreign-word check.
OTHER_LANGUAGES = ("de", "fr", "es", "pt", "it", "nl", "pl", "sv")
LEADING = {
    "please", "can", "could", "would", "you", "will", "hey", "turn", "switch", "set", "put", "start",
    "stop", "open", "close", "on", "off", "the", "a", "an", "my", "up", "down", "is", "are", "lock", "unlock",
    "activate", "run", "play", "pause", "make", "get", "kill", "shut",
}  # fmt: skip


def _similar(want: str, heard: str) -> bool:
    if want == heard:
        return True
    if len(want) <= 3 or len(heard) <= 3:
        return False
    return fuzz.ratio(want, heard) >= SIMILAR


def _count(heard: set[str], action_words: frozenset[str]) -> int:
    """How many action words were said, each also as ASR misspells it ("deativate")."""
    return sum(
        1
        for w in action_words
        if w in heard
        or (len(w) > 5 and any(abs(len(h) - len(w)) <= 1 and fuzz.ratio(w, h) >= 88 for h in heard))
    )


def _direction_said(step: float, said: list[str]) -> bool:
    up = {"up", "louder", "increase", "raise", "more"}
    down = {"down", "quieter", "lower", "decrease", "reduce", "less", "softer"}
    return bool(set(said) & (up if step > 0 else down))


def _as_list(value: Any) -> list[str]:
    if value is None:
        return []
    return [str(v) for v in value] if isinstance(value, (list, tuple, set)) else [str(value)]
