"""The JSON schema the LLM's answer must follow, built from the home and the bundle's intent spec.

Every intent name, and for each intent exactly the slots Home Assistant uses with it; entity, area
and floor slots are enums of the home's *exposed* names, so the decoder cannot even spell an entity
the home does not expose. Numbers carry their ranges (brightness 0-100...). The bundle's
``llm/intent_spec.json`` (written by the exporter from the training data and Home Assistant's
templates, ``export/llm/spec.py``) says which slot has which kind and values, and which device
classes each domain can be asked about; the home fills in the names. For intents that name a domain, what the answer adds to a
name must be that entity's own domain, device class and states (``_consistent_slots``).
"""

from __future__ import annotations

from typing import Any

from casavox.runtime.home import Home
from casavox.runtime.intents.catalogue import lookup
from casavox.runtime.intents.prompt import slot_rank

MAX_INTENTS = 3  # "turn off the kitchen lights and lock the front door": at most three per sentence
# "A name this home does not have": besides the home's names, every entity, area and floor slot
# admits ABSENT followed by the words heard ("switch on the hot tub" in a home without one ->
# name "?hot tub"), so that the model is never forced onto a real device when the words name none.
# The model is trained to copy the words (export/llm/dataset.py, kind "absent"); the engine checks
# the copy against the words and answers as Home Assistant does ("Sorry, I am not aware of any
# device called hot tub"). Letters (any script), digits, spaces, hyphens and apostrophes: what a transcript's words are.
ABSENT = "?"
# Anchored: a JSON-schema pattern matches anywhere in the string unless it says otherwise, and an
# unanchored one let the decoder write free text that only had to contain a "?" somewhere.
# Letters and digits of any script (\p{L}, \p{N}): "\w" is ASCII-only in llguidance and refused "?télé".
ABSENT_SCHEMA = {"type": "string", "pattern": r"^\?[\p{L}\p{N}][\p{L}\p{N}' -]{0,39}$"}


def or_absent(schema: dict[str, Any]) -> dict[str, Any]:
    """``schema`` (an enum of the home's names) or a name the home does not have (``ABSENT``)."""
    return {"anyOf": [schema, ABSENT_SCHEMA]}


def intent_domains(intent: str | None) -> frozenset[str] | None:
    """The domains an intent may act on (``IntentDef.domains``), None for any. Home Assistant's intent
    handlers filter the same way: the grammar offers an intent only those entities, so a misheard
    "walk the front door" cannot become "start vacuuming the front door lock"."""
    return lookup(intent).domains or None if intent is not None else None


def takes_all(intent: str | None) -> bool:
    """Whether the name "all" is offered. Home Assistant's templates name "all" only in on/off
    commands over a domain ("turn off all the fans" -> name "all", domain fan; ``over_domain``);
    offering it elsewhere let the LLM answer "pause the living room media player" with name "all"
    (measured on the suite), which Home Assistant never does."""
    return intent is None or lookup(intent).over_domain


def _names(home: Home, intent: str | None = None) -> list[str]:
    domains = intent_domains(intent)
    names = {n for e in home.exposed if domains is None or e.domain in domains for n in e.names}
    return sorted(names | ({"all"} if takes_all(intent) else set()))


def slot_schema(kind: dict[str, Any], home: Home, intent: str | None = None) -> dict[str, Any] | None:
    k = kind["kind"]
    if k == "entity":
        if intent is not None and not lookup(intent).name_checked:
            return {"enum": _names(home, intent)}  # a list's or a timer's name, not a device's
        return or_absent({"enum": _names(home, intent)})
    if k == "area":
        values = sorted({n for a in home.areas for n in (a.name, *a.aliases)})
        return or_absent({"enum": values}) if values else ABSENT_SCHEMA
    if k == "floor":
        values = sorted({n for f in home.floors for n in (f.name, *f.aliases)})
        return or_absent({"enum": values}) if values else ABSENT_SCHEMA
    if k == "enum":
        return {"enum": list(kind["values"])}
    if k == "integer":
        return {"type": "integer", "minimum": kind.get("min", 0), "maximum": kind.get("max", 1000)}
    if k == "number":
        return {"type": "number", "minimum": kind.get("min", -100), "maximum": kind.get("max", 1000)}
    if k == "text":
        return {"type": "string", "maxLength": kind.get("max_length", 60)}
    raise ValueError(f"unknown slot kind {k!r}")


# The states Home Assistant's templates ask about, per domain ("is the curtain shut?" -> cover
# "closed", never "off"; a sensor is asked for its value, never a state). Domains not listed (person:
# home or a zone) keep the values the training data showed.
ON_OFF = ("on", "off")
DOMAIN_STATES: dict[str, tuple[str, ...]] = {
    "binary_sensor": ON_OFF,
    "light": ON_OFF,
    "switch": ON_OFF,
    "fan": ON_OFF,
    "input_boolean": ON_OFF,
    "media_player": ON_OFF,
    "cover": ("open", "closed", "opening", "closing"),
    "valve": ("open", "closed", "opening", "closing"),
    "lock": ("locked", "unlocked", "locking", "unlocking", "jammed", "open"),
    "sensor": (),
}


def _object(properties: dict[str, Any], required: tuple[str, ...] = ()) -> dict[str, Any]:
    ordered = {k: properties[k] for k in sorted(properties, key=slot_rank)}
    return {
        "type": "object",
        "properties": ordered,
        "required": list(required),
        "additionalProperties": False,
    }


def _states(domain: str, kind: dict[str, Any] | None) -> list[str]:
    if kind is None:
        return []
    if domain in DOMAIN_STATES:
        return list(DOMAIN_STATES[domain])
    known = {s for states in DOMAIN_STATES.values() for s in states}
    return [s for s in kind["values"] if s not in known]


def _consistent_slots(
    slots: dict[str, Any], home: Home, intent: str, domain_classes: dict[str, list[str]] | None
) -> dict[str, Any]:
    """Slots of an intent that names a domain (HassGetState, HassTurnOn...), as one alternative per
    kind of thing asked about, so that what the LLM says agrees with the home.

    With a name, the domain, device class and state it may add are the named entity's own ("what is
    the air quality of the kitchen sensor?" can only say device_class "aqi" if that entity is an
    aqi sensor; a sensor has no on/off state). Home Assistant resolves a name together with the
    domain and device class the template set, so any other combination could never match. Without
    a name ("are any curtains open in the living room?") the domain is chosen first, then the device
    classes and states of that domain (the home's classes plus those Home Assistant's templates ask
    about for that domain, from the spec's ``domain_classes``; a bundle without them offers the
    intent's classes from the training data). The name comes first in every
    answer (``SLOT_ORDER``), so the grammar narrows what follows as soon as it is chosen.
    """
    common = {}
    for slot in slots:
        if slot not in ("name", "domain", "device_class", "state"):
            schema = slot_schema(slots[slot], home, intent)
            if schema is not None:
                common[slot] = schema
    spec_domains = set(slots["domain"]["values"])
    allowed = intent_domains(intent)
    has_class, state_kind = "device_class" in slots, slots.get("state")

    groups: dict[tuple[str, str | None], set[str]] = {}
    for e in home.exposed:
        if allowed is None or e.domain in allowed:
            key = (e.domain, e.attributes.get("device_class") if has_class else None)
            groups.setdefault(key, set()).update(e.names)
    options = []
    for (domain, device_class), names in sorted(groups.items(), key=str):
        properties = dict(common, name={"enum": sorted(names)})
        if domain in spec_domains:
            properties["domain"] = {"const": domain}
        if device_class:
            properties["device_class"] = {"const": device_class}
        if states := _states(domain, state_kind):
            properties["state"] = {"enum": states}
        options.append(_object(properties, ("name",)))

    nameless = dict(common)
    if takes_all(intent):
        nameless["name"] = {"const": "all"}
    home_classes: dict[str, set[str]] = {}
    for e in home.exposed:
        if e.attributes.get("device_class"):
            home_classes.setdefault(e.domain, set()).add(e.attributes["device_class"])
    spec_classes = set(slots["device_class"]["values"]) if has_class else set()
    for domain in sorted(spec_domains):
        properties = dict(nameless, domain={"const": domain})
        if has_class:
            # The home's classes plus every class the templates ask about for this domain: "open the
            # garage door" in a home without one must still be understood (and answered "no such
            # device"), never turned into the nearest class the home has ("shade", measured on the
            # suite); never a class of another domain ("are any switches on?" as a binary sensor of
            # the cover class "shade", measured when classes were per intent).
            known = spec_classes if domain_classes is None else set(domain_classes.get(domain, ()))
            if classes := home_classes.get(domain, set()) | known:
                properties["device_class"] = {"enum": sorted(classes)}
        if states := _states(domain, state_kind):
            properties["state"] = {"enum": states}
        options.append(_object(properties, ("domain",)))
    if state_kind is not None:
        nameless["state"] = {"enum": list(state_kind["values"])}
    options.append(_object(nameless))
    # A device the home does not have ("is the hot tub on?"): its name as heard and nothing about
    # its domain or state, which the home cannot say.
    options.append(_object(dict(common, name=ABSENT_SCHEMA), ("name",)))
    return {"anyOf": options}


def answer_schema(spec: dict[str, Any], home: Home) -> dict[str, Any]:
    """JSON schema of the answer: a list (<= MAX_INTENTS) of {"name": intent, "slots": {...}}."""
    options = []
    for intent, slots in sorted(spec["intents"].items()):
        if (
            "domain" in slots
            and slots["domain"]["kind"] == "enum"
            and slots.get("name", {}).get("kind") == "entity"
        ):
            slot_object = _consistent_slots(slots, home, intent, spec.get("domain_classes"))
        else:
            properties = {}
            for slot in slots:
                schema = slot_schema(slots[slot], home, intent)
                if schema is not None:
                    properties[slot] = schema
            slot_object = _object(properties)
        options.append(
            {
                "type": "object",
                "properties": {"name": {"const": intent}, "slots": slot_object},
                "required": ["name", "slots"],
                "additionalProperties": False,
            }
        )
    return {"type": "array", "maxItems": MAX_INTENTS, "items": {"anyOf": options}}
