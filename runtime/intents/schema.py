"""The JSON schema the LLM's answer must follow, built from the home and the bundle's intent spec.

Every intent name, and for each intent exactly the slots Home Assistant uses with it; entity, area
and floor slots are enums of the home's *exposed* names, so the decoder cannot even spell an entity
the home does not expose. Numbers carry their ranges (brightness 0-100...). The bundle's
``llm/intent_spec.json`` (written by the exporter from the training data) says which slot has which
kind; the home fills in the names.
"""

from __future__ import annotations

from typing import Any

from runtime.home import Home
from runtime.intents.prompt import slot_rank

MAX_INTENTS = 3  # "turn off the kitchen lights and lock the front door": at most three per sentence
# Intents that only make sense for some domains (Home Assistant's intent handlers filter the same
# way): the grammar offers them only those entities, so a misheard "walk the front door" cannot
# become "start vacuuming the front door lock".
INTENT_DOMAINS = {
    "HassLightSet": {"light"},
    "HassVacuumStart": {"vacuum"},
    "HassVacuumReturnToBase": {"vacuum"},
    "HassClimateSetTemperature": {"climate"},
    "HassClimateGetTemperature": {"climate", "sensor"},
    "HassSetPosition": {"cover", "valve"},
    "HassMediaPause": {"media_player"},
    "HassMediaUnpause": {"media_player"},
    "HassMediaNext": {"media_player"},
    "HassMediaPrevious": {"media_player"},
    "HassSetVolume": {"media_player"},
    "HassSetVolumeRelative": {"media_player"},
    "HassMediaPlayerMute": {"media_player"},
    "HassMediaPlayerUnmute": {"media_player"},
    "HassLawnMowerStartMowing": {"lawn_mower"},
    "HassLawnMowerDock": {"lawn_mower"},
    "HassMediaSearchAndPlay": {"media_player"},
    "HassListAddItem": {"todo"},
    "HassListCompleteItem": {"todo"},
}


# Home Assistant's templates name "all" only in on/off commands over a domain ("turn off all the
# fans" -> name "all", domain fan); offering it elsewhere let the LLM answer "pause the living room
# media player" with name "all" (measured on the suite), which Home Assistant never does.
ALL_NAME_INTENTS = {"HassTurnOn", "HassTurnOff"}


def _names(home: Home, intent: str | None = None) -> list[str]:
    domains = INTENT_DOMAINS.get(intent or "")
    names = {n for e in home.exposed if domains is None or e.domain in domains for n in e.names}
    return sorted(names | ({"all"} if intent is None or intent in ALL_NAME_INTENTS else set()))


def slot_schema(kind: dict[str, Any], home: Home, intent: str | None = None) -> dict[str, Any] | None:
    k = kind["kind"]
    if k == "entity":
        return {"enum": _names(home, intent)}
    if k == "area":
        values = sorted({n for a in home.areas for n in (a.name, *a.aliases)})
        return {"enum": values} if values else None
    if k == "floor":
        values = sorted({n for f in home.floors for n in (f.name, *f.aliases)})
        return {"enum": values} if values else None
    if k == "enum":
        return {"enum": list(kind["values"])}
    if k == "integer":
        return {"type": "integer", "minimum": kind.get("min", 0), "maximum": kind.get("max", 1000)}
    if k == "number":
        return {"type": "number", "minimum": kind.get("min", -100), "maximum": kind.get("max", 1000)}
    if k == "text":
        return {"type": "string", "maxLength": kind.get("max_length", 60)}
    raise ValueError(f"unknown slot kind {k!r}")


def answer_schema(spec: dict[str, Any], home: Home) -> dict[str, Any]:
    """JSON schema of the answer: a list (<= MAX_INTENTS) of {"name": intent, "slots": {...}}."""
    options = []
    for intent, slots in sorted(spec["intents"].items()):
        properties = {}
        for slot in sorted(slots, key=slot_rank):
            schema = slot_schema(slots[slot], home, intent)
            if schema is not None:
                properties[slot] = schema
        options.append(
            {
                "type": "object",
                "properties": {
                    "name": {"const": intent},
                    "slots": {"type": "object", "properties": properties, "additionalProperties": False},
                },
                "required": ["name", "slots"],
                "additionalProperties": False,
            }
        )
    return {"type": "array", "maxItems": MAX_INTENTS, "items": {"anyOf": options}}
