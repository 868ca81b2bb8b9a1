"""Random homes for training data: the model must learn to pick names from the home it is given,
not to memorize one home, so areas, floors and devices are drawn from wide pools every time."""

from __future__ import annotations

import random
from functools import lru_cache
from pathlib import Path

import yaml

from casavox.runtime.home import Home, home_from_dict

NAMES_FILE = Path(__file__).resolve().parent / "data" / "names.yaml"


@lru_cache(maxsize=1)
def name_pools() -> dict:
    """The name pools (``data/names.yaml``): areas, floors, people, brands and device name patterns."""
    return yaml.safe_load(NAMES_FILE.read_text(encoding="utf-8"))


def _pools() -> tuple[list[str], list[str], list[str], list[str], list[tuple[str, str | None, list[str]]]]:
    d = name_pools()
    devices = [(x["domain"], x["device_class"], list(x["names"])) for x in d["devices"]]
    return d["areas"], d["floors"], d["people"], d["brands"], devices


UNITS = {"temperature": "°C", "humidity": "%", "battery": "%"}
# Fans and scenes up from 2 and 1 (suite, adapter of 2026-11-26 18:30: fans 17 of 37, scenes 4 of 15
# with the LLM alone: area-wide fan commands and "activate kitchen party mode scene" were rare).
WEIGHTS = {
    "light": 6,
    "switch": 3,
    "fan": 3,
    "cover": 1,
    "lock": 2,
    "climate": 1,
    "media_player": 2,
    "vacuum": 1,
    "sensor": 6,  # shared by all its device classes (see _weights)
    "binary_sensor": 6,
    "scene": 1.5,
    "script": 1,
    "valve": 1,
    "todo": 1,
    "person": 1,
    "weather": 1,
}


def _weights(devices: list[tuple[str, str | None, list[str]]]) -> list[float]:
    """Draw weight per device entry: a domain's weight is per entry, except the two sensor domains
    whose weight is shared by their many device classes (else they would fill every home)."""
    shared = {"sensor", "binary_sensor"}
    count = {d: sum(1 for e in devices if e[0] == d) for d in shared}
    return [WEIGHTS[d] / count[d] if d in shared else WEIGHTS[d] for d, _, _ in devices]


# Share of device names written in sentence case ("Living room humidity"), as Home Assistant names
# an entity from its device and as many homes (and the suite's fixtures) spell them. With Title Case
# names only, the model copied "Living Room" out of habit and ended in "Living Room Lamp" when the
# list said "Living room humidity" (suite, adapter of 2026-11-26 18:30: 8 sensor questions).
SENTENCE_CASE = 0.35


def sentence_case(name: str) -> str:
    """``name`` with every capitalized word after the first in lower case; acronyms (TV, PM2.5) kept."""
    first, *rest = name.split(" ")
    return " ".join([first, *(w.lower() if w[:1].isupper() and w[1:].islower() else w for w in rest)])


def random_home(
    rng: random.Random, n_areas: tuple[int, int] = (3, 8), n_entities: tuple[int, int] = (8, 30)
) -> Home:
    all_areas, all_floors, people, brands, devices = _pools()
    floors = rng.sample(all_floors, rng.randint(0, 3))
    areas = rng.sample(all_areas, rng.randint(*n_areas))
    area_items = [
        {"name": a, "id": f"area_{i}", **({"floor": f"floor_{rng.randrange(len(floors))}"} if floors else {})}
        for i, a in enumerate(areas)
    ]
    entities, names = [], set()
    weights = _weights(devices)
    for _ in range(rng.randint(*n_entities) * 3):
        if len(entities) >= n_entities[1]:
            break
        domain, device_class, patterns = rng.choices(devices, weights)[0]
        area_i = rng.randrange(len(areas))
        name = rng.choice(patterns).format(a=areas[area_i], p=rng.choice(people), b=rng.choice(brands))
        if rng.random() < SENTENCE_CASE:
            name = sentence_case(name)
        if name.casefold() in names:
            continue
        names.add(name.casefold())
        attributes: dict = {}
        if device_class:
            attributes["device_class"] = device_class
        if device_class in UNITS:
            attributes["unit_of_measurement"] = UNITS[device_class]
        item = {"name": name, "id": f"{domain}.e{len(entities)}", "state": rng.choice(["on", "off"])}
        if domain not in ("person", "todo", "weather", "scene", "script"):
            item["area"] = f"area_{area_i}"
        if attributes:
            item["attributes"] = attributes
        entities.append(item)
        if len(entities) >= rng.randint(*n_entities):
            break
    return home_from_dict(
        {
            "floors": [{"name": f, "id": f"floor_{i}"} for i, f in enumerate(floors)],
            "areas": area_items,
            "entities": entities,
        },
        source="<random>",
    )
