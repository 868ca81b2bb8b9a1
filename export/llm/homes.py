"""Random homes for training data: the model must learn to pick names from the home it is given,
not to memorize one home, so areas, floors and devices are drawn from wide pools every time."""

from __future__ import annotations

import random

from casavox.runtime.home import Home, home_from_dict

AREAS = [
    "Kitchen",
    "Living Room",
    "Bedroom",
    "Master Bedroom",
    "Guest Room",
    "Office",
    "Study",
    "Garage",
    "Basement",
    "Attic",
    "Hallway",
    "Dining Room",
    "Bathroom",
    "Laundry Room",
    "Nursery",
    "Den",
    "Patio",
    "Porch",
    "Garden",
    "Backyard",
    "Front Yard",
    "Kids Room",
    "Playroom",
    "Library",
    "Gym",
    "Workshop",
    "Pantry",
    "Sunroom",
    "Lounge",
    "Entrance",
    "Utility Room",
    "Cellar",
    "Balcony",
    "Emma's Room",
    "Noah's Room",
    "Kaylee's Room",
    "Loft",
    "Media Room",
    "Shed",
    "Conservatory",
]
FLOORS = [
    "Upstairs",
    "Downstairs",
    "Ground Floor",
    "First Floor",
    "Second Floor",
    "Basement Level",
    "Attic Floor",
]
PEOPLE = ["Emma", "Noah", "Kaylee", "Liam", "Olivia", "Mia", "Lucas", "Zoe", "Aiden", "Grandma"]

# (domain, device_class or None, name patterns; "{a}" is the area, "{p}" a person)
DEVICES: list[tuple[str, str | None, list[str]]] = [
    (
        "light",
        None,
        [
            "{a} Lamp",
            "{a} Light",
            "{a} Lights",
            "Ceiling Light",
            "Desk Lamp",
            "Floor Lamp",
            "Reading Lamp",
            "Bedside Lamp",
            "Strip Lights",
            "Pendant Light",
            "{a} Ceiling",
            "Porch Light",
            "Night Light",
            "{p}'s Lamp",
            "Chandelier",
            "Spotlights",
            "Accent Light",
        ],
    ),
    (
        "switch",
        None,
        [
            "Coffee Maker",
            "{a} Switch",
            "Christmas Tree",
            "Kettle",
            "Heater",
            "Dishwasher",
            "Smart Plug",
            "Fountain",
            "Espresso Machine",
            "Space Heater",
            "{p}'s Plug",
        ],
    ),
    ("fan", None, ["Ceiling Fan", "{a} Fan", "Desk Fan", "Tower Fan", "Exhaust Fan", "Attic Fan"]),
    ("cover", "blind", ["{a} Blinds", "Window Blinds", "Roller Blind"]),
    ("cover", "curtain", ["{a} Curtains", "Curtains", "Drapes"]),
    ("cover", "shade", ["{a} Shades", "Sun Shade"]),
    ("cover", "shutter", ["Shutters", "{a} Shutters"]),
    ("cover", "window", ["{a} Windows", "Roof Window", "Bay Window"]),
    ("cover", "garage", ["Garage Door", "Left Garage Door", "Right Garage Door"]),
    ("cover", "door", ["Patio Door", "Sliding Door"]),
    ("cover", "gate", ["Driveway Gate", "Garden Gate"]),
    ("cover", "awning", ["Awning", "Patio Awning"]),
    ("lock", None, ["Front Door", "Back Door", "Side Door", "Garage Lock", "Patio Lock", "Gate Lock"]),
    ("climate", None, ["Thermostat", "{a} Thermostat", "Heat Pump", "Air Conditioner", "{a} AC"]),
    (
        "media_player",
        None,
        ["TV", "{a} TV", "{a} Speaker", "Soundbar", "Stereo", "{p}'s Speaker", "Kitchen Radio"],
    ),
    ("vacuum", None, ["Robot Vacuum", "Roomba", "Vacuum", "Mop Robot"]),
    ("sensor", "temperature", ["{a} Temperature", "Outdoor Temperature", "{a} Thermometer"]),
    ("sensor", "humidity", ["{a} Humidity", "Bathroom Humidity"]),
    ("sensor", "battery", ["{p}'s Phone Battery", "Doorbell Battery"]),
    ("binary_sensor", "window", ["{a} Window", "Skylight"]),
    ("binary_sensor", "door", ["{a} Door Sensor", "Front Door Sensor"]),
    ("binary_sensor", "motion", ["{a} Motion", "Hallway Motion"]),
    ("binary_sensor", "smoke", ["Smoke Detector", "{a} Smoke Alarm"]),
    ("binary_sensor", "moisture", ["Leak Sensor", "{a} Water Leak"]),
    ("scene", None, ["Movie Time", "Party Mode", "Good Night", "Romantic", "Reading Mode", "Dinner Time"]),
    ("script", None, ["Morning Routine", "Leaving Home", "Bedtime", "Wake Up"]),
    ("valve", None, ["Water Main", "Garden Valve", "Sprinkler Valve"]),
    ("todo", None, ["Shopping List", "Chores", "Groceries", "To Do"]),
    ("person", None, ["{p}"]),
    ("weather", None, ["Home Weather", "Forecast"]),
]
# Every device class Home Assistant's state templates ask about ("what is the air quality index of
# ...", "is the phone charging?"), each with plain names; without them the model never saw most of
# sensor_HassGetState's questions (0 of 49 right with the LLM alone, adapter of 2026-11-26).
SENSOR_CLASSES = [
    "apparent_power",
    "aqi",
    "atmospheric_pressure",
    "carbon_dioxide",
    "carbon_monoxide",
    "current",
    "data_rate",
    "data_size",
    "date",
    "distance",
    "duration",
    "energy",
    "energy_storage",
    "frequency",
    "gas",
    "illuminance",
    "irradiance",
    "moisture",
    "monetary",
    "nitrogen_dioxide",
    "nitrogen_monoxide",
    "nitrous_oxide",
    "ozone",
    "pm1",
    "pm10",
    "pm25",
    "power",
    "power_factor",
    "precipitation",
    "precipitation_intensity",
    "pressure",
    "reactive_power",
    "signal_strength",
    "sound_pressure",
    "speed",
    "sulphur_dioxide",
    "volatile_organic_compounds",
    "volatile_organic_compounds_parts",
    "voltage",
    "volume",
    "volume_storage",
    "water",
    "weight",
    "wind_speed",
]  # temperature, humidity and battery have their own entries in DEVICES
BINARY_CLASSES = [
    "battery",
    "battery_charging",
    "carbon_monoxide",
    "cold",
    "connectivity",
    "garage_door",
    "gas",
    "heat",
    "light",
    "lock",
    "occupancy",
    "opening",
    "plug",
    "power",
    "presence",
    "problem",
    "running",
    "safety",
    "sound",
    "tamper",
    "update",
    "vibration",
]  # window, door, motion, smoke and moisture have their own entries
LABELS = {"aqi": "Air Quality", "pm1": "PM1", "pm10": "PM10", "pm25": "PM2.5", "co": "CO"}


def _label(device_class: str) -> str:
    return LABELS.get(device_class) or device_class.replace("_", " ").title()


DEVICES += [
    ("sensor", c, [f"{{a}} {_label(c)}", f"{_label(c)} Sensor", f"{{a}} {_label(c)} Sensor"])
    for c in SENSOR_CLASSES
]
DEVICES += [
    ("binary_sensor", c, [f"{{a}} {_label(c)}", f"{_label(c)} Sensor", "{p}'s Phone"]) for c in BINARY_CLASSES
]
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


def _weights() -> list[float]:
    """Draw weight per DEVICES entry: a domain's weight is per entry, except the two sensor domains
    whose weight is shared by their many device classes (else they would fill every home)."""
    shared = {"sensor", "binary_sensor"}
    count = {d: sum(1 for e in DEVICES if e[0] == d) for d in shared}
    return [WEIGHTS[d] / count[d] if d in shared else WEIGHTS[d] for d, _, _ in DEVICES]


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
    floors = rng.sample(FLOORS, rng.randint(0, 3))
    areas = rng.sample(AREAS, rng.randint(*n_areas))
    area_items = [
        {"name": a, "id": f"area_{i}", **({"floor": f"floor_{rng.randrange(len(floors))}"} if floors else {})}
        for i, a in enumerate(areas)
    ]
    entities, names = [], set()
    weights = _weights()
    for _ in range(rng.randint(*n_entities) * 3):
        if len(entities) >= n_entities[1]:
            break
        domain, device_class, patterns = rng.choices(DEVICES, weights)[0]
        area_i = rng.randrange(len(areas))
        name = rng.choice(patterns).format(a=areas[area_i], p=rng.choice(PEOPLE))
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
