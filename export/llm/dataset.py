"""Supervised examples: prompt (as the device builds it) -> compact intent JSON.

Recipe (fixed by the seed; the shares and why in docs/design.md "Training data"): a fresh random
home for every example (name pools in ``data/names.yaml``), the speaker's area given 30% of the time;

- 42% Home Assistant template sentences, half of them augmented (synonyms, politeness, numbers in
  words, Whisper's mined mistakes or rule-based ASR damage), labelled by hassil;
- 25% phrasings from the paraphrase lexicon (``data/paraphrases.yaml``), 45% of them damaged,
  labelled by hassil from their canonical sentence;
- of those two kinds, 12% said with a reason before or after them (the lexicon's ``context``);
- 12% not commands, answered with ``[]``: half statements about the home's own devices and rooms
  ("the desk lamp is broken"), half small talk, world questions, injections, other languages,
  numbers and fragments;
- 11% commands naming a device, area or floor the home does not have, answered with the intent and
  ``schema.ABSENT`` plus the words heard ("switch on the hot tub" -> name "?hot tub");
- 10% two commands in one sentence.
"""

from __future__ import annotations

import random
import re
from dataclasses import dataclass, field

from hassil import Intents, recognize_best

from casavox.export.llm.augment import asr_noise, augment, label_words, whisper_damage
from casavox.export.llm.homes import random_home
from casavox.export.llm.paraphrase import compose, default_lexicon, statement, with_context
from casavox.export.llm.sampler import Sample, _plain, sample_command
from casavox.runtime.home import Home
from casavox.runtime.intents.catalogue import lookup
from casavox.runtime.intents.prompt import (
    END,
    PREFIX,
    SUFFIX,
    candidates,
    canonical,
    target_json,
    user_message,
)
from casavox.runtime.intents.schema import ABSENT
from casavox.runtime.intents.templates import slot_lists

CONTEXT_SHARE = 0.12  # commands said with a reason before or after them (paraphrases.yaml "context")
JOINERS = [" and ", " and then ", ", then ", ". also ", " and also "]
COPY_DROPS = re.compile(r"[^\w' -]")  # what schema.ABSENT_SCHEMA does not admit in a copied name


@dataclass
class Example:
    prompt: str
    target: str
    kind: str
    intents: list[dict] = field(default_factory=list)
    text: str = ""
    home: Home | None = None
    area: str | None = None


def _label(sample: Sample) -> dict:
    return {"name": sample.intent, "slots": sample.slots}


def _absent_slots(sample: Sample, home: Home) -> list[str]:
    """The slots of ``sample`` (drawn for another home) naming a device, area or floor ``home`` lacks."""
    names = {n.casefold() for e in home.exposed for n in e.names}
    s, out = sample.slots, []
    name = s.get("name")
    spec = lookup(sample.intent)
    if isinstance(name, str) and name != "all" and spec.name_checked and spec.name_kind == "entity":
        if name.casefold() not in names:
            out.append("name")
    if isinstance(s.get("area"), str) and home.area(s["area"]) is None:
        out.append("area")
    if isinstance(s.get("floor"), str) and home.floor(s["floor"]) is None:
        out.append("floor")
    return out


def absent_label(sample: Sample, home: Home) -> dict | None:
    """The answer to a command naming what ``home`` does not have: the intent, each such name as
    ``ABSENT`` + its words as said, and nothing about a missing device's domain, class or state
    (the grammar offers none: the home cannot say). None when everything named is in the home."""
    missing = _absent_slots(sample, home)
    if not missing:
        return None
    slots = dict(sample.slots)
    if "name" in missing:
        for k in ("domain", "device_class", "state"):
            slots.pop(k, None)
    for k in missing:
        copy = " ".join(COPY_DROPS.sub(" ", str(slots[k]).lower()).split())
        if not copy:
            return None
        slots[k] = ABSENT + copy
    return {"name": sample.intent, "slots": slots}


def make_prompt(home: Home, text: str, area: str | None) -> str:
    return PREFIX + user_message(text, candidates(home, text, area), area) + SUFFIX


def _paraphrased(home: Home, rng: random.Random, intents: Intents) -> tuple[str, list[dict]] | None:
    """A lexicon phrasing for ``home`` and Home Assistant's label of its canonical sentence."""
    composed = compose(home, rng)
    if composed is None:
        return None
    text, canonical_text, _ = composed
    result = recognize_best(canonical_text, intents, slot_lists=slot_lists(home), best_slot_name="name")
    if result is None:
        return None
    slots = {e.name: _plain(e.value) for e in result.entities.values()}
    r = rng.random()
    if r < 0.2:
        text = whisper_damage(text, rng, label_words(slots))
    elif r < 0.45:
        text = asr_noise(text, rng)
    return text, [{"name": result.intent.name, "slots": slots}]


def build_example(rng: random.Random, intents: Intents) -> Example | None:
    home = random_home(rng)
    area = rng.choice(home.areas).name if rng.random() < 0.3 else None
    r = rng.random()
    if r < 0.42:
        s = sample_command(rng, intents, home, area)
        if s is None:
            return None
        if rng.random() < 0.5:
            s = augment(s, rng)
        kind, text, labels = "template", s.text, [_label(s)]
    elif r < 0.67:
        para = _paraphrased(home, rng, intents)
        if para is None:
            return None
        kind, (text, labels) = "paraphrase", para
    elif r < 0.79:
        if rng.random() < 0.5:
            said = statement(home, rng)
            if said is None:
                return None
            text = said
        else:
            text = rng.choice(default_lexicon().not_commands)
        r = rng.random()
        if r < 0.15:
            text = whisper_damage(text, rng)
        elif r < 0.35:
            text = asr_noise(text, rng)
        kind, labels = "negative", []
    elif r < 0.90:
        # Most templated commands name no device, area or floor: draw a few to find one that does.
        for _ in range(8):
            s = sample_command(rng, intents, random_home(rng), None)
            label = absent_label(s, home) if s is not None else None
            if label is not None:
                break
        else:
            return None
        kind, text, labels = "absent", s.text, [label]
    else:
        a = sample_command(rng, intents, home, area)
        b = sample_command(rng, intents, home, area)
        if a is None or b is None or lookup(a.intent).is_timer or lookup(b.intent).is_timer:
            return None
        kind, text, labels = "multi", a.text + rng.choice(JOINERS) + b.text, [_label(a), _label(b)]
    if kind in ("template", "paraphrase") and rng.random() < CONTEXT_SHARE:
        text = with_context(text, rng)
    return Example(
        make_prompt(home, text, area), target_json(labels) + END, kind, canonical(labels), text, home, area
    )


def build_examples(n: int, seed: int, intents: Intents) -> list[Example]:
    rng = random.Random(seed)
    out: list[Example] = []
    while len(out) < n:
        ex = build_example(rng, intents)
        if ex is not None:
            out.append(ex)
    return out
