"""Everyday phrasings composed over a random home, from the paraphrase lexicon (``data/paraphrases.yaml``).

The lexicon is data: phrasings with a canonical Home Assistant sentence each, word pools (verbs,
politeness), relative amounts ("halfway" = 50) and numbers said in words. This module only fills the
placeholders from the home it is given and says the numbers as people do ("twenty one and a half");
``dataset.py`` labels the canonical sentence with hassil, so every label is Home Assistant's own.
"""

from __future__ import annotations

import random
import re
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import yaml

from casavox.export.llm.sampler import WILDCARDS
from casavox.runtime.home import Entity, Home

LEXICON_FILE = Path(__file__).resolve().parent / "data" / "paraphrases.yaml"
PLACEHOLDER = re.compile(r"\{(\w+)\}")
NO_ENTITY = ("timer", "shopping", "none")  # "for" values that need no device of the home
SHOPPING = [*WILDCARDS["shopping_list_item"], "toilet paper", "bananas", "olive oil", "rice", "butter"]


@dataclass(frozen=True)
class Phrasing:
    target: str  # "for": a domain, "area:<domain>", or one of NO_ENTITY
    say: tuple[str, ...]
    means: str
    classes: tuple[str, ...] = ()  # device classes the entity may have (empty: any)
    amounts: tuple[str, ...] = ()  # which "amounts" {amount} draws from (empty: all)


@dataclass(frozen=True)
class Lexicon:
    words: dict[str, tuple[str, ...]]
    amounts: dict[str, int]
    phrasings: tuple[Phrasing, ...]
    statements: tuple[str, ...]
    not_commands: tuple[str, ...]
    context_before: tuple[str, ...] = ()  # reasons said before a command ("it's a bit nippy, ")
    context_after: tuple[str, ...] = ()  # ... or after it (", the baby's asleep")


def parse_lexicon(data: dict) -> Lexicon:
    """A lexicon from its YAML form (see ``data/paraphrases.yaml`` for the fields)."""
    phrasings = tuple(
        Phrasing(
            p["for"],
            tuple(p["say"]),
            p["means"],
            tuple(p.get("class", ())),
            tuple(p.get("amounts", ())),
        )
        for p in data["phrasings"]
    )
    return Lexicon(
        {k: tuple(v) for k, v in data["words"].items()},
        {str(k): int(v) for k, v in data["amounts"].items()},
        phrasings,
        tuple(data.get("statements", ())),
        tuple(data.get("not_commands", ())),
        tuple((data.get("context") or {}).get("before", ())),
        tuple((data.get("context") or {}).get("after", ())),
    )


@lru_cache(maxsize=1)
def default_lexicon() -> Lexicon:
    return parse_lexicon(yaml.safe_load(LEXICON_FILE.read_text(encoding="utf-8")))


@lru_cache(maxsize=1)
def _english_numbers():
    """unicode-rbnf's English engine (hassil's own number words), loaded once, not per number."""
    from unicode_rbnf import RbnfEngine

    return RbnfEngine.for_language("en")


def number_words(n: int) -> str:
    """English words for 0..999 (unicode-rbnf, which hassil itself uses)."""
    return _english_numbers().format_number(n).text.replace("-", " ")


def _say_number(n: int, rng: random.Random, words_share: float = 0.4) -> str:
    return number_words(n) if rng.random() < words_share else str(n)


def _entities(home: Home, p: Phrasing, domain: str) -> list[Entity]:
    return [
        e
        for e in home.exposed
        if e.domain == domain and (not p.classes or e.attributes.get("device_class") in p.classes)
    ]


def _spoken(name: str, rng: random.Random) -> str:
    return name.lower() if rng.random() < 0.5 else name


def compose(
    home: Home, rng: random.Random, lexicon: Lexicon | None = None
) -> tuple[str, str, Phrasing] | None:
    """One phrasing of the lexicon filled in for ``home``: (what is said, its canonical sentence, the
    phrasing). None when the home has nothing the drawn phrasing needs."""
    lex = lexicon or default_lexicon()
    p = rng.choice(lex.phrasings)
    said, means = _fill(p, home, rng, lex)
    if said is None:
        return None
    return said, means, p


def _fill(p: Phrasing, home: Home, rng: random.Random, lex: Lexicon) -> tuple[str | None, str]:
    said: dict[str, str] = {}
    meant: dict[str, str] = {}
    if p.target.startswith("area:"):
        domain = p.target.split(":", 1)[1]
        area_ids = sorted({e.area_id for e in _entities(home, p, domain) if e.area_id})
        if not area_ids:
            return None, ""
        area = home.area(rng.choice(area_ids))
        said["a"], meant["a"] = _spoken(area.name, rng), area.name
    elif p.target not in NO_ENTITY:
        entities = _entities(home, p, p.target)
        if not entities:
            return None, ""
        e = rng.choice(entities)
        name = rng.choice(e.names)
        said["e"], meant["e"] = _spoken(name, rng), name
    if "{a}" in p.say[0] + p.means and "a" not in said:
        if not home.areas:
            return None, ""
        area = rng.choice(home.areas)
        said["a"], meant["a"] = _spoken(area.name, rng), area.name
    n = rng.choice(range(5, 101, 5)) if rng.random() < 0.7 else rng.randint(1, 100)
    said["n"], meant["n"] = _say_number(n, rng), str(n)
    t = rng.randint(15, 28)
    half = rng.random() < 0.25
    if half:
        said["t"] = rng.choice([f"{t} and a half", f"{number_words(t)} and a half", f"{t}.5"])
        meant["t"] = f"{t}.5"
    else:
        said["t"], meant["t"] = _say_number(t, rng, 0.5), str(t)
    m = (
        rng.choice([1, 2, 3, 4, 5, 6, 7, 8, 10, 12, 15, 20, 25, 30, 40, 45])
        if rng.random() < 0.8
        else rng.randint(1, 59)
    )
    said["m"], meant["m"] = _say_number(m, rng, 0.5), str(m)
    h = rng.randint(1, 3)
    said["h"], meant["h"] = _say_number(h, rng, 0.5), str(h)
    amount = rng.choice(p.amounts or tuple(lex.amounts))
    said["amount"], meant["amount"] = amount, str(lex.amounts[amount])
    item = rng.choice(SHOPPING)
    said["item"] = meant["item"] = item
    query = rng.choice(WILDCARDS["search_query"])
    said["query"] = meant["query"] = query
    for pool, values in lex.words.items():
        said[pool] = meant[pool] = rng.choice(values)
    template = rng.choice(p.say)
    try:
        text = PLACEHOLDER.sub(lambda mt: said[mt.group(1)], template)
        canonical = PLACEHOLDER.sub(lambda mt: meant[mt.group(1)], p.means)
    except KeyError as exc:
        raise ValueError(f"paraphrase lexicon: unknown placeholder {exc} in {template!r}") from exc
    return " ".join(text.split()), canonical


def with_context(text: str, rng: random.Random, lexicon: Lexicon | None = None) -> str:
    """``text`` with a reason said before or after it (the lexicon's ``context``); the command, and
    so its label, is unchanged."""
    lex = lexicon or default_lexicon()
    if rng.random() < 0.5 and lex.context_before:
        clause = rng.choice(lex.context_before)
        return clause + (text[:1].lower() + text[1:] if text[:2] != "I " else text)
    if lex.context_after:
        return text.rstrip(".!?") + rng.choice(lex.context_after)
    return text


def statement(home: Home, rng: random.Random, lexicon: Lexicon | None = None) -> str | None:
    """A statement about one of the home's devices or rooms that is not a command ("the {e} is broken")."""
    lex = lexicon or default_lexicon()
    template = rng.choice(lex.statements)
    values = {}
    if "{e}" in template:
        if not home.exposed:
            return None
        values["e"] = _spoken(rng.choice(rng.choice(home.exposed).names), rng)
    if "{a}" in template:
        if not home.areas:
            return None
        values["a"] = _spoken(rng.choice(home.areas).name, rng)
    return PLACEHOLDER.sub(lambda mt: values[mt.group(1)], template)
