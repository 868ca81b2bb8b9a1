"""Text -> Home Assistant intents: templates first (exact, ~2 ms), the fine-tuned LLM when they miss.

Confidence rule for the LLM (measured, README "Intents"): the answer is kept only if every token the
model chose freely (where the grammar left more than one option) had probability >= ``min_confidence``
under the grammar mask, leaving out the tokens of values that the words themselves settle
(``values_said``: "low" is a battery's "on" whatever the model hesitated over). A hesitant answer
becomes "not understood": asking again is cheaper than switching off the wrong device. Whatever the
path, every entity, area and floor in the result is checked against the home's exposed names before
it leaves this module.
"""

from __future__ import annotations

import re
import time
import unicodedata
from dataclasses import dataclass, field

from rapidfuzz import fuzz

from casavox.runtime.home import Home
from casavox.runtime.intents.catalogue import lookup
from casavox.runtime.intents.grounding import SIMILAR, Grounding, not_a_command_reply, ungrounded_reply
from casavox.runtime.intents.prompt import slot_spans
from casavox.runtime.intents.result import Intent, IntentResult
from casavox.runtime.intents.said_values import SaidValues, plain_words, values_said, words_outside
from casavox.runtime.intents.templates import TemplateMatcher, context_area_intents

MAX_TEXT = 300  # characters; a spoken command is far shorter
# "turn off the kitchen lights and lock the front door": tried as separate commands when the whole
# sentence matches no template. The small LLM, asked for a list, measured to return only the first
# command, so splitting is done here; a split is only used when every part is understood.
SPLIT = re.compile(r"(\s*(?:,\s*)?\b(?:and then|and also|and|then|also)\b\s*)", re.IGNORECASE)
# ...except inside a quantity: "a timer for 1 hour and 15 minutes", "5 and a half minutes". A part
# that starts with a number continues the one before (measured: splitting there cost 14 of the
# suite's timer sentences with the LLM alone). No command starts with a number.
NUMBER_START = re.compile(
    r"(?:\d|(?:a |an )?(?:half|quarter)\b|(?:one|two|three|four|five|six|seven|eight|nine|ten|eleven|"
    r"twelve|fifteen|twenty|thirty|forty|fifty|sixty|ninety|hundred)\b)",
    re.IGNORECASE,
)
DEFAULT_MIN_CONFIDENCE = 0.7
# Places as Home Assistant reads them (``places_as_said``): an area or floor is one the words say,
# or the speaker's area for the intents whose templates take it from the context ("pause", "play
# X", "turn off the lights"), never one the LLM added on its own. "everywhere", "in the house"...
# mean the whole home, as in Home Assistant's templates.
WHOLE_HOME = re.compile(
    r"\b(?:everywhere|house|home|apartment|flat|entire|whole|every room|each room|all rooms)\b",
    re.IGNORECASE,
)
HERE = re.compile(r"\b(?:here|this (?:room|space)|(?:my|our|the) room)\b", re.IGNORECASE)
# Words of a place name that do not say which place it is ("the living room": "living" does).
PLACE_FILLER = {"the", "room", "floor", "level", "and", "of"}
SAID_SIMILARITY = SIMILAR  # one threshold for a word as ASR misspells it (grounding.SIMILAR)


def unknown_references(intent: Intent, home: Home) -> list[str]:
    """Names in the intent that the home does not expose (must be empty to act); the name of an
    intent whose name is not an entity's (``IntentDef.name_checked``: a timer's, a list's) is not."""
    bad = []
    names = {n.casefold() for e in home.exposed for n in e.names} | {"all"}
    name = intent.slots.get("name")
    if isinstance(name, str) and lookup(intent.name).name_checked and name.casefold() not in names:
        bad.append(f"name '{name}'")
    area = intent.slots.get("area")
    if isinstance(area, str) and home.area(area) is None:
        bad.append(f"area '{area}'")
    floor = intent.slots.get("floor")
    if isinstance(floor, str) and home.floor(floor) is None:
        bad.append(f"floor '{floor}'")
    return bad


def split_commands(text: str) -> list[str]:
    """The commands joined in ``text`` by "and", "then", "also" (one part if there is no joiner)."""
    pieces = SPLIT.split(text)
    parts = [pieces[0]]
    for joiner, part in zip(pieces[1::2], pieces[2::2], strict=True):
        if NUMBER_START.match(part) or not parts[-1].strip():
            parts[-1] += joiner + part
        else:
            parts.append(part)
    return [p.strip() for p in parts if p.strip()]


def says_place(said: str, names: tuple[str, ...]) -> bool:
    """Whether a word of one of ``names`` that tells the place apart is in ``said``, also as heard
    ("kichen": similarity >= SAID_SIMILARITY, as ASR misspells names)."""
    heard = said.split()
    return any(
        fuzz.ratio(w, h) >= SAID_SIMILARITY
        for n in names
        for w in plain_words(n).split()
        if w not in PLACE_FILLER and len(w) > 2
        for h in heard
    )


def places_as_said(
    intent: Intent, home: Home, text: str, here: str | None, context_intents: frozenset[str]
) -> Intent:
    """``intent`` with the area and floor the text says. An area or floor none of whose words is said
    (outside the entity's name and free text: "is the bedroom lamp on?", "TV pause" answered with
    area "Outside") is dropped, unless it is the speaker's and the text says "here". Then, as Home
    Assistant's templates do for ``context_intents`` (those whose templates take the speaker's area
    from context), a command that names no entity, area or floor is the speaker's area's, unless the
    text means the whole home; for on/off only when it names a domain ("turn off the lights" said in
    the bedroom: the LLM often leaves the place out, and acting on the whole home is the wrong and
    surprising reading). "all" of a domain said in a room ("turn off all the fans", "all the fans in
    here") is that room's, as in Home Assistant's templates.

    Never broadens an action: an unsaid place is only dropped where a device is named, the intent
    is a question, the text says the whole home, or the speaker's area takes its place. "turn off
    the lights in the kichen" (a misheard place) keeps the LLM's Kitchen rather than becoming every
    light in the home."""
    s = dict(intent.slots)
    definition = lookup(intent.name)
    named = isinstance(s.get("name"), str) and s["name"] != "all"
    whole_home = bool(WHOLE_HOME.search(text))
    speakers = here is not None and intent.name in context_intents  # the speaker's area may apply
    may_drop = named or definition.drops_unsaid_places or whole_home or speakers
    said = words_outside(text, s)
    for slot, find in (("area", home.area), ("floor", home.floor)):
        value = s.get(slot)
        if not isinstance(value, str):
            continue
        place = find(value)
        names = (place.name, *place.aliases) if place is not None else (value,)
        if may_drop and not says_place(said, names) and not (value == here and HERE.search(text)):
            del s[slot]
    if (
        speakers
        and not whole_home
        and s.get("name") == "all"
        and "domain" in s
        and "floor" not in s
        and (s.get("area") is None or (s["area"] == here and HERE.search(text)))
    ):
        # "turn off all the fans" said in the living room: the living room's fans, as Home
        # Assistant's context templates read it (no name "all", the speaker's area), not the home's.
        del s["name"]
    if (
        speakers
        and not whole_home
        and not any(k in s for k in ("name", "area", "floor"))
        and (not definition.over_domain or "domain" in s)
    ):
        s["area"] = here
    return intent if s == intent.slots else Intent(intent.name, s)


# "are any gas sensors on?", "which doors are locked?": about a set of devices, never the one device
# whose name is a word of it (the fixture home's binary sensor named "Gas"; measured on the suite).
SET_WORDS = re.compile(r"\b(?:any|all|every|each|which|how many)\b", re.IGNORECASE)


def prefer_named_entity(
    intent: Intent, home: Home, text: str, classes_asked: frozenset[tuple[str, str]] = frozenset()
) -> Intent:
    """``intent`` naming the one entity the text literally names, where the LLM answered with a
    domain (and class) instead: "shut the garage door" in a home with a "Garage Door" is that
    door, not every garage-class cover. Home Assistant's matcher makes the same choice
    (``recognize_best(best_slot_name="name")`` prefers the reading with a named entity), and its
    templates then carry the name alone for on/off and the name, domain and state for a question,
    and the device class too where its question templates are per class (``classes_asked``, the
    (domain, class) pairs of ``SaidValues.classes_asked``: "is the pet door open?" is a door-class
    binary sensor). Not where the text is about a set of devices (``SET_WORDS``). Which intents, and
    the slots kept with the name, is ``IntentDef.keeps_with_name``."""
    s = intent.slots
    definition = lookup(intent.name)
    if not definition.keeps_with_name or "name" in s or "domain" not in s or SET_WORDS.search(text):
        return intent
    said = f" {plain_words(text)} "
    found: dict[str, int] = {}  # entity name -> longest of its names in the text
    for e in home.exposed:
        if e.domain != s["domain"] or s.get("device_class") not in (None, e.attributes.get("device_class")):
            continue
        for n in e.names:
            words = plain_words(n)
            if words and f" {words} " in said:
                found[e.name] = max(found.get(e.name, 0), len(words))
    if not found:
        return intent
    longest = max(found.values())
    best = [n for n, length in found.items() if length == longest]
    if len(best) != 1:
        return intent  # two devices fit equally well: leave the answer as it is
    keep = definition.keeps_with_name
    if definition.said_by_device and (s["domain"], s.get("device_class")) in classes_asked:
        keep += ("device_class",)
    return Intent(intent.name, {"name": best[0], **{k: v for k, v in s.items() if k in keep}})


def _clean_slots(slots: dict) -> dict:
    return {k: (int(v) if isinstance(v, float) and v.is_integer() else v) for k, v in slots.items()}


@dataclass
class IntentEngine:
    home: Home
    templates: TemplateMatcher
    llm: object | None = None  # casavox.runtime.intents.llm.IntentLLM
    grammar: str | None = None
    min_confidence: float = DEFAULT_MIN_CONFIDENCE
    context_intents: frozenset[str] = frozenset()  # see places_as_said
    said_values: SaidValues = field(default_factory=SaidValues)  # see values_said
    grounding: Grounding | None = None  # None: answers are not checked against the words (studies only)
    disabled: frozenset[str] = (
        frozenset()
    )  # rules.RULE_NAMES switched off (to measure them; never for acting)

    def on(self, rule: str) -> bool:
        """Whether the named rule (``rules.RULES``) applies."""
        return rule not in self.disabled

    @classmethod
    def build(
        cls, home: Home, llm=None, intents=None, min_confidence: float = DEFAULT_MIN_CONFIDENCE
    ) -> IntentEngine:
        templates = TemplateMatcher.for_home(home, intents)
        grammar = None
        if llm is not None:
            from casavox.runtime.intents.schema import answer_schema

            grammar = llm.grammar(answer_schema(llm.spec, home))
        return cls(
            home,
            templates,
            llm,
            grammar,
            min_confidence,
            context_area_intents(templates.intents),
            SaidValues.from_templates(templates.intents),
            Grounding(home),
        )

    def parse(
        self, text: str, area: str | None = None, templates: bool = True, use_llm: bool = True
    ) -> IntentResult:
        t0 = time.perf_counter()
        text = " ".join(
            "".join(c for c in str(text) if c.isspace() or unicodedata.category(c)[0] != "C").split()
        )
        timings: dict[str, float] = {}

        def done(result: IntentResult) -> IntentResult:
            result.timings_ms = {**timings, **result.timings_ms, "total_ms": (time.perf_counter() - t0) * 1e3}
            return result

        if not text:
            return done(IntentResult(text, [], "none", 0.0, "empty text"))
        if len(text) > MAX_TEXT:
            return done(
                IntentResult(text[:MAX_TEXT], [], "none", 0.0, f"text longer than {MAX_TEXT} characters")
            )
        if area is not None and self.home.area(area) is None:
            area = None  # an unknown context area is ignored, never invented
        if templates:
            found = self.templates.match(text, area)
            if found is not None:
                found.intents = [Intent(i.name, _clean_slots(i.slots)) for i in found.intents]
                bad = [b for i in found.intents for b in unknown_references(i, self.home)]
                if not bad:
                    return done(found)
            timings["template_ms"] = (time.perf_counter() - t0) * 1e3
        # Whatever Home Assistant's templates match is a command by Home Assistant's own definition;
        # past them, text that is no command for this box never reaches the model (grounding.py).
        refused = None
        if self.grounding is not None and self.on("refuse_non_commands"):
            refused = self.grounding.refuse_text(text)
        if refused is not None:
            reply = not_a_command_reply(text, refused)
            return done(IntentResult(text, [], "none", 0.0, f"not a command: {refused}", reply))
        parts = split_commands(text) if self.on("split_commands") else [text]
        if len(parts) > 1:
            results = [self.parse(p, area, templates=templates, use_llm=use_llm) for p in parts]
            if all(r.understood for r in results):
                for r in results:
                    for k, v in r.timings_ms.items():
                        if k != "total_ms":
                            timings[k] = timings.get(k, 0.0) + v
                sources = {r.source for r in results}
                return done(
                    IntentResult(
                        text,
                        [i for r in results for i in r.intents],
                        "llm" if "llm" in sources else "template",
                        min(r.confidence for r in results),
                    )
                )
        if self.llm is None or not use_llm:
            return done(IntentResult(text, [], "none", 0.0, "no template matched"))
        from casavox.runtime.intents.prompt import candidates, spoken_form, user_message

        command = spoken_form(text)
        answer = self.llm.generate(
            user_message(command, candidates(self.home, command, area), area), self.grammar
        )
        timings.update(answer.timings_ms)
        return done(self.finish(text, area, answer))

    def finish(self, text: str, area: str | None, answer) -> IntentResult:
        """The result of the model's ``answer`` (an ``llm.LlmAnswer``) to ``text``: the rules after the
        model (``rules.RULES``, stage "after") in their order, then the home's exposed names."""
        if answer.error:
            return IntentResult(text, [], "none", 0.0, f"llm: {answer.error}")
        here = self.home.area(area).name if area is not None else None
        raw = [Intent(i["name"], _clean_slots(i.get("slots", {}))) for i in answer.intents]
        if self.grounding is not None and self.on("absent_names"):
            # The model said the words name something this home does not have (schema.ABSENT): nothing
            # is done, whatever else the answer holds, and the reply names what was not found.
            absent = next((w for i in raw if (w := self.grounding.absent(i, text))), None)
            if absent is not None:
                reply = ungrounded_reply(absent)
                return IntentResult(text, [], "none", answer.confidence, f"absent: {absent}", reply)
        fixed = [
            values_said(i, self.home, text, self.said_values) if self.on("values_said") else {} for i in raw
        ]
        intents = [
            Intent(i.name, {k: v for k, v in {**i.slots, **f}.items() if v is not None})
            for i, f in zip(raw, fixed, strict=True)
        ]
        if self.on("prefer_named_entity"):
            intents = [
                prefer_named_entity(i, self.home, text, self.said_values.classes_asked) for i in intents
            ]
        if self.on("places_as_said"):
            intents = [places_as_said(i, self.home, text, here, self.context_intents) for i in intents]
        # What the words settled (values_said) is not the model's to doubt: its hesitation over
        # "on" or "off" after "are any batteries low?" does not make the answer doubtful.
        confidence = answer.confidence_without(slot_spans(answer.text, [set(f) for f in fixed]))
        if not intents:
            return IntentResult(text, [], "none", confidence, "llm: not a command for this home")
        bad = [b for i in intents for b in unknown_references(i, self.home)]
        if bad:
            return IntentResult(text, [], "none", confidence, f"unknown {', '.join(bad)}")
        if self.grounding is not None and self.on("grounding"):
            ungrounded = next((w for i in intents if (w := self.grounding.check(i, text, here))), None)
            if ungrounded is not None:
                # The model had to pick one of the home's names; the words did not name it.
                reply = ungrounded_reply(ungrounded)
                return IntentResult(text, [], "none", confidence, f"not grounded: {ungrounded}", reply)
        if self.on("confidence_floor") and confidence < self.min_confidence:
            return IntentResult(text, [], "none", confidence, f"llm: low confidence {confidence:.2f}")
        return IntentResult(text, intents, "llm", confidence)
