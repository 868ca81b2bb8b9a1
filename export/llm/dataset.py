"""Supervised examples: prompt (as the device builds it) -> compact intent JSON.

Recipe (fixed by the seed): a fresh random home for every example; 52% Home Assistant template
sentences (half of them augmented), 23% our own paraphrases, 10% non-commands and 5% commands for
devices the home does not have (both answered with []), 10% two commands in one sentence.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field

from hassil import Intents, recognize_best

from casavox.export.llm.augment import NOT_COMMANDS, asr_noise, augment, paraphrase
from casavox.export.llm.homes import random_home
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
from casavox.runtime.intents.templates import slot_lists

JOINERS = [" and ", " and then ", ", then ", ". also ", " and also "]


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


def _in_home(sample: Sample, home: Home) -> bool:
    names = {n.casefold() for e in home.exposed for n in e.names}
    areas = {n.casefold() for a in home.areas for n in (a.name, *a.aliases)}
    floors = {n.casefold() for f in home.floors for n in (f.name, *f.aliases)}
    s = sample.slots
    return not (
        (isinstance(s.get("name"), str) and s["name"] != "all" and s["name"].casefold() not in names)
        or (isinstance(s.get("area"), str) and s["area"].casefold() not in areas)
        or (isinstance(s.get("floor"), str) and s["floor"].casefold() not in floors)
    )


def make_prompt(home: Home, text: str, area: str | None) -> str:
    return PREFIX + user_message(text, candidates(home, text, area), area) + SUFFIX


def build_example(rng: random.Random, intents: Intents) -> Example | None:
    home = random_home(rng)
    area = rng.choice(home.areas).name if rng.random() < 0.3 else None
    r = rng.random()
    if r < 0.52:
        s = sample_command(rng, intents, home, area)
        if s is None:
            return None
        if rng.random() < 0.5:
            s = augment(s, rng)
        kind, text, labels = "template", s.text, [_label(s)]
    elif r < 0.75:
        para = paraphrase(home, rng)
        if para is None:
            return None
        text, canonical_text = para
        result = recognize_best(canonical_text, intents, slot_lists=slot_lists(home), best_slot_name="name")
        if result is None:
            return None
        if rng.random() < 0.4:
            text = asr_noise(text, rng)
        labels = [
            {"name": result.intent.name, "slots": {e.name: _plain(e.value) for e in result.entities.values()}}
        ]
        kind = "paraphrase"
    elif r < 0.85:
        kind, text, labels = "negative", rng.choice(NOT_COMMANDS), []
    elif r < 0.90:
        s = sample_command(rng, intents, random_home(rng), None)
        if s is None or _in_home(s, home) or not any(k in s.slots for k in ("name", "area", "floor")):
            return None
        kind, text, labels = "absent", s.text, []
    else:
        a = sample_command(rng, intents, home, area)
        b = sample_command(rng, intents, home, area)
        if a is None or b is None or lookup(a.intent).is_timer or lookup(b.intent).is_timer:
            return None
        kind, text, labels = "multi", a.text + rng.choice(JOINERS) + b.text, [_label(a), _label(b)]
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
