"""The LLM's prompt: a fixed instruction (prefilled once, its KV cache reused) and a short per-command
part listing only the home's *candidate* names for this command.

Listing every entity would make the per-command cost grow with the home; instead the names most
similar to the words heard (rapidfuzz partial ratio) are listed, at most a fixed number, while the
decoding grammar still admits every exposed name. The exporter builds its training prompts with
these same functions, so the model sees at training time exactly what it sees on the device.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass

from rapidfuzz import fuzz, process

from casavox.runtime.home import Home

SYSTEM = "Map the smart-home command to Home Assistant intents. Answer with a JSON list."
PREFIX = f"<|im_start|>system\n{SYSTEM}<|im_end|>\n<|im_start|>user\n"
SUFFIX = "<|im_end|>\n<|im_start|>assistant\n"
END = "<|im_end|>"
MAX_NAMES = 8
MAX_AREAS = 4
MAX_FLOORS = 2


@dataclass(frozen=True)
class Candidates:
    names: list[tuple[str, str]]  # (name, domain)
    areas: list[str]
    floors: list[str]


def _top(text: str, choices: list[str], limit: int) -> list[str]:
    if len(choices) <= limit:
        return list(choices)
    found = process.extract(text, choices, scorer=fuzz.partial_ratio, limit=limit, processor=str.casefold)
    return [choices[i] for _, _, i in sorted(found, key=lambda f: (-f[1], f[2]))]


def candidates(home: Home, text: str, area: str | None = None) -> Candidates:
    """The entity, area and floor names most likely meant by ``text`` (bounded, whatever the home's size)."""
    names: list[tuple[str, str]] = []
    seen = set()
    pairs = [(n, e.domain) for e in home.exposed for n in e.names]
    for name in _top(text, [p[0] for p in pairs], MAX_NAMES * 2):
        if name.casefold() in seen:
            continue
        seen.add(name.casefold())
        names.append(next(p for p in pairs if p[0] == name))
        if len(names) == MAX_NAMES:
            break
    areas = _top(text, [n for a in home.areas for n in (a.name, *a.aliases)], MAX_AREAS)
    if area and area not in areas:
        areas = [*areas[: MAX_AREAS - 1], area]
    floors = _top(text, [n for f in home.floors for n in (f.name, *f.aliases)], MAX_FLOORS)
    return Candidates(names, areas, floors)


def spoken_form(text: str) -> str:
    """A transcript in the form the LLM was trained on: no sentence punctuation around it and no
    sentence-initial capital ("Kill the kitchen lights." -> "kill the kitchen lights"). Whisper
    capitalizes and punctuates; Home Assistant's template sentences (our training commands) do not,
    and without this the LLM misreads "...living room blinds." and "Kill the kitchen lights.".
    Inner words keep their case: the training commands spell the home's names in their own case.
    So does a first word with more capitals than its first letter: "TV pause" must not become "tV
    pause", which the LLM read as a place (suite: "TV go back to the previous track" -> area Entrance)."""
    text = " ".join(text.split()).strip(" .!?;:,")
    first = text.split(" ", 1)[0]
    if first[1:] != first[1:].lower():
        return text
    return text[:1].lower() + text[1:]


def user_message(text: str, cands: Candidates, area: str | None) -> str:
    lines = [
        "names: " + "; ".join(f"{n} ({d})" for n, d in cands.names),
        "areas: " + "; ".join(cands.areas),
    ]
    if cands.floors:
        lines.append("floors: " + "; ".join(cands.floors))
    lines.append(f"here: {area or 'unknown'}")
    lines.append(f"command: {text.strip()}")
    return "\n".join(lines)


# Slots are always written in this order (then alphabetically): the decoding grammar fixes the key
# order, so training targets must use the very same order.
SLOT_ORDER = [
    "name",
    "area",
    "floor",
    "domain",
    "device_class",
    "state",
    "brightness",
    "color",
    "position",
    "temperature",
    "volume_level",
    "hours",
    "minutes",
    "seconds",
    "item",
    "search_query",
    "media_class",
]


def slot_rank(slot: str) -> tuple[int, str]:
    return (SLOT_ORDER.index(slot) if slot in SLOT_ORDER else len(SLOT_ORDER), slot)


def canonical(intents: list[dict]) -> list[dict]:
    return [
        {"name": i["name"], "slots": {k: i["slots"][k] for k in sorted(i["slots"], key=slot_rank)}}
        for i in intents
    ]


def target_json(intents: list[dict]) -> str:
    """The answer format: a compact JSON list of {"name", "slots"} objects, slots in canonical order."""
    return json.dumps(canonical(intents), separators=(",", ":"), ensure_ascii=False)


_SLOTS_KEY = re.compile(r'"slots":\{')
_SLOT = re.compile(r',?"(\w+)":("(?:[^"\\]|\\.)*"|[-\w.]+)')


def slot_spans(answer: str, slots: list[set[str]]) -> list[tuple[int, int]]:
    """Character spans in a ``target_json`` answer of the given slots of each intent (``slots[i]``
    for the i-th intent), each from its separator to the end of its value."""
    spans = []
    for found, wanted in zip(_SLOTS_KEY.finditer(answer), slots, strict=False):
        pos = found.end()
        while m := _SLOT.match(answer, pos):  # slot values are strings or numbers: no nesting
            if m.group(1) in wanted:
                spans.append((m.start(), m.end()))
            pos = m.end()
    return spans
