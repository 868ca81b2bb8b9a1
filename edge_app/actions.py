"""Intent -> what to do: target entities and Home Assistant service calls, plus the reply text.

The same resolution Home Assistant's intent handlers do (``homeassistant/helpers/intent.py``):
targets by name, area, floor, domain and device class among *exposed* entities only, the
speaker's area when the command names no place, and per-domain services (HassTurnOn opens a
cover, locks a lock, turns on a light). Backends only ever see :class:`ServiceCall` objects, so
the simulated home, MQTT and Home Assistant's REST API act on exactly the same plan.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from casavox.runtime.home import Entity, Home
from casavox.runtime.intents.result import Intent
from casavox.runtime.intents.schema import INTENT_DOMAINS

ON_SERVICES = {
    "cover": "open_cover", "valve": "open_valve", "lock": "lock", "vacuum": "start", "lawn_mower": "start_mowing",
}  # fmt: skip
OFF_SERVICES = {
    "cover": "close_cover", "valve": "close_valve", "lock": "unlock", "vacuum": "return_to_base", "lawn_mower": "dock",
}  # fmt: skip
CONTROLLABLE = {
    "light", "switch", "fan", "cover", "valve", "lock", "scene", "script", "input_boolean",
    "media_player", "climate", "vacuum", "humidifier", "siren", "automation", "lawn_mower",
}  # fmt: skip
MEDIA_SERVICES = {
    "HassMediaPause": ("media_pause", "Paused"),
    "HassMediaUnpause": ("media_play", "Resumed"),
    "HassMediaNext": ("media_next_track", "Playing the next track"),
    "HassMediaPrevious": ("media_previous_track", "Playing the previous track"),
}
QUERIES = {"HassGetState", "HassClimateGetTemperature", "HassGetWeather"}
LOCAL = {  # answered by the box itself, whatever the backend (as Home Assistant's satellites do)
    "HassStartTimer", "HassCancelTimer", "HassCancelAllTimers", "HassIncreaseTimer",
    "HassDecreaseTimer", "HassPauseTimer", "HassUnpauseTimer", "HassTimerStatus",
    "HassGetCurrentTime", "HassGetCurrentDate", "HassNevermind", "HassRespond", "HassBroadcast",
}  # fmt: skip


@dataclass(frozen=True)
class ServiceCall:
    domain: str
    service: str
    entity_ids: tuple[str, ...] = ()
    data: dict[str, Any] = field(default_factory=dict)


@dataclass
class Action:
    """A planned intent. ``error`` set = nothing to do (the reply says why)."""

    intent: Intent
    targets: list[Entity] = field(default_factory=list)
    calls: list[ServiceCall] = field(default_factory=list)
    reply: str = ""
    error: str = ""
    kind: str = "control"  # control | query | local
    volume_step: float | None = None  # HassSetVolumeRelative: percent points, applied to each player's level

    @property
    def sensitive(self) -> list[Entity]:
        """Targets that need a spoken confirmation before a state change (locks, doors...)."""
        return [e for e in self.targets if e.confirm] if self.kind == "control" else []


def _as_set(value: Any) -> set[str]:
    if value is None:
        return set()
    return {str(v) for v in value} if isinstance(value, (list, tuple, set)) else {str(value)}


def _names(entities: list[Entity]) -> str:
    names = [e.name for e in entities]
    return names[0] if len(names) == 1 else ", ".join(names[:-1]) + " and " + names[-1]


def resolve_targets(intent: Intent, home: Home, area: str | None = None) -> tuple[list[Entity], str]:
    """Exposed entities the intent means, or an error text (HA's "no device called ...")."""
    slots = intent.slots
    name = slots.get("name")
    name = None if name in (None, "", "all") else str(name)
    domains = _as_set(slots.get("domain")) or INTENT_DOMAINS.get(intent.name, set())
    classes = _as_set(slots.get("device_class"))
    area_obj = home.area(slots.get("area")) if slots.get("area") else None
    floor_obj = home.floor(slots.get("floor")) if slots.get("floor") else None
    if slots.get("area") and area_obj is None:
        return [], f"there is no area called {slots['area']}"
    if slots.get("floor") and floor_obj is None:
        return [], f"there is no floor called {slots['floor']}"
    if name is None and area_obj is None and floor_obj is None and area:
        area_obj = home.area(area)  # "turn on the lights": the room the speaker is in
    found = home.entities_named(name) if name else list(home.exposed)
    if name and not found:
        return [], f"there is no device called {name}"
    if domains:
        found = [e for e in found if e.domain in domains]
    if classes:
        found = [e for e in found if e.attributes.get("device_class") in classes]
    if area_obj is not None:
        found = [e for e in found if e.area_id == area_obj.id]
    if floor_obj is not None:
        floor_areas = {a.id for a in home.areas if a.floor_id == floor_obj.id}
        found = [e for e in found if e.area_id in floor_areas]
    if name is None and not domains and not classes and area_obj is None and floor_obj is None:
        return [], "which device do you mean?"
    if not found:
        where = f" in the {area_obj.name}" if area_obj else f" on the {floor_obj.name}" if floor_obj else ""
        what = name or "/".join(sorted(classes or domains)) or "device"
        return [], f"there is no {what}{where}"
    return found, ""


def _group(entities: list[Entity], service_for: dict[str, str], default: str) -> list[ServiceCall]:
    by_service: dict[tuple[str, str], list[str]] = {}
    for e in entities:
        by_service.setdefault((e.domain, service_for.get(e.domain, default)), []).append(e.id)
    return [ServiceCall(d, s, tuple(ids)) for (d, s), ids in by_service.items()]


def _on_off(intent: Intent, targets: list[Entity]) -> Action:
    on = intent.name == "HassTurnOn"
    bad = [e for e in targets if e.domain not in CONTROLLABLE or (not on and e.domain == "scene")]
    targets = [e for e in targets if e not in bad]
    if not targets:
        return Action(intent, error=f"{_names(bad)} can't be turned {'on' if on else 'off'}")
    calls = _group(targets, ON_SERVICES if on else OFF_SERVICES, "turn_on" if on else "turn_off")
    domain = targets[0].domain
    verb = {
        "cover": ("Opened", "Closed"),
        "valve": ("Opened", "Closed"),
        "lock": ("Locked", "Unlocked"),
        "vacuum": ("Started", "Sent home"),
        "scene": ("Activated", "Turned off"),
        "script": ("Started", "Stopped"),
    }.get(domain, ("Turned on", "Turned off"))[0 if on else 1]
    return Action(intent, targets, calls, f"{verb} {_names(targets)}")


def plan(intent: Intent, home: Home, area: str | None = None) -> Action:
    """What doing this intent in this home means; never names an unexposed entity."""
    n, slots = intent.name, intent.slots
    if n in LOCAL:
        return Action(intent, kind="local")
    if n in ("HassShoppingListAddItem", "HassShoppingListCompleteItem"):
        service = "add_item" if n.endswith("AddItem") else "complete_item"
        item = str(slots.get("item", "")).strip()
        if not item:
            return Action(intent, error="what should I add?")
        verb = "Added" if service == "add_item" else "Checked off"
        call = ServiceCall("shopping_list", service, (), {"name": item})
        return Action(intent, [], [call], f"{verb} {item}")
    if n == "HassGetWeather" and not slots.get("name"):
        weather = [e for e in home.exposed if e.domain == "weather"]
        return (
            Action(intent, weather[:1], kind="query")
            if weather
            else Action(intent, error="no weather service")
        )
    targets, error = resolve_targets(intent, home, area)
    if error:
        return Action(intent, error=error)
    if n in QUERIES:
        return Action(intent, targets, kind="query")
    if n in ("HassTurnOn", "HassTurnOff"):
        return _on_off(intent, targets)
    if n == "HassToggle":
        return Action(intent, targets, _group(targets, {}, "toggle"), f"Toggled {_names(targets)}")
    if n == "HassLightSet":
        data: dict[str, Any] = {}
        if "brightness" in slots:
            data["brightness_pct"] = max(0, min(100, int(slots["brightness"])))
        if "color" in slots:
            data["color_name"] = str(slots["color"])
        if not data:
            return Action(intent, error="set the light to what?")
        ids = tuple(e.id for e in targets)
        what = f"brightness {data['brightness_pct']}%" if "brightness_pct" in data else data.get("color_name")
        return Action(
            intent, targets, [ServiceCall("light", "turn_on", ids, data)], f"Set {_names(targets)} to {what}"
        )
    if n == "HassSetPosition":
        position = max(0, min(100, int(slots.get("position", 0))))
        calls = [
            ServiceCall(
                d, f"set_{d}_position", tuple(e.id for e in targets if e.domain == d), {"position": position}
            )
            for d in sorted({e.domain for e in targets})
        ]
        return Action(intent, targets, calls, f"Set {_names(targets)} to {position}%")
    if n == "HassClimateSetTemperature":
        temperature = float(slots.get("temperature", 0))
        ids = tuple(e.id for e in targets)
        call = ServiceCall("climate", "set_temperature", ids, {"temperature": temperature})
        shown = int(temperature) if temperature.is_integer() else temperature
        return Action(intent, targets, [call], f"Set {_names(targets)} to {shown} degrees")
    if n in MEDIA_SERVICES:
        service, reply = MEDIA_SERVICES[n]
        return Action(
            intent, targets, [ServiceCall("media_player", service, tuple(e.id for e in targets))], reply
        )
    if n == "HassSetVolume":
        level = max(0, min(100, int(slots.get("volume_level", 50))))
        call = ServiceCall(
            "media_player", "volume_set", tuple(e.id for e in targets), {"volume_level": level / 100}
        )
        return Action(intent, targets, [call], f"Volume set to {level}%")
    if n == "HassSetVolumeRelative":
        # Home Assistant's handler: "up"/"down" is a 10-point step, a number is a step in percent points;
        # the new level depends on each player's current one, so execute() turns it into volume_set calls.
        step = slots.get("volume_step", "up")
        step = {"up": 10.0, "down": -10.0}.get(step, step) if isinstance(step, str) else step
        try:
            step = float(step)
        except (TypeError, ValueError):
            return Action(intent, error=f"I can't change the volume by {step}")
        reply = f"Volume {'up' if step > 0 else 'down'}"
        return Action(intent, targets, [], reply, volume_step=step)
    if n in ("HassMediaPlayerMute", "HassMediaPlayerUnmute"):
        mute = n == "HassMediaPlayerMute"
        call = ServiceCall(
            "media_player", "volume_mute", tuple(e.id for e in targets), {"is_volume_muted": mute}
        )
        return Action(intent, targets, [call], "Muted" if mute else "Unmuted")
    if n in ("HassLawnMowerStartMowing", "HassLawnMowerDock"):
        service = "start_mowing" if n == "HassLawnMowerStartMowing" else "dock"
        call = ServiceCall("lawn_mower", service, tuple(e.id for e in targets))
        return Action(
            intent,
            targets,
            [call],
            "Started mowing" if service == "start_mowing" else "Returning to the dock",
        )
    if n == "HassMediaSearchAndPlay":
        query = str(slots.get("search_query", "")).strip()
        data = {"media_content_id": query, "media_content_type": str(slots.get("media_class", "music"))}
        call = ServiceCall("media_player", "play_media", tuple(e.id for e in targets), data)
        return Action(intent, targets, [call], f"Playing {query}")
    if n in ("HassVacuumStart", "HassVacuumReturnToBase"):
        service = "start" if n == "HassVacuumStart" else "return_to_base"
        call = ServiceCall("vacuum", service, tuple(e.id for e in targets))
        return Action(intent, targets, [call], "Started" if service == "start" else "Returning to base")
    if n in ("HassListAddItem", "HassListCompleteItem"):
        item = str(slots.get("item", "")).strip()
        data = {"item": item} if n == "HassListAddItem" else {"item": item, "status": "completed"}
        service = "add_item" if n == "HassListAddItem" else "update_item"
        call = ServiceCall("todo", service, tuple(e.id for e in targets), data)
        return Action(
            intent, targets, [call], f"{'Added' if service == 'add_item' else 'Checked off'} {item}"
        )
    if n == "HassFanSetSpeed":
        pct = max(0, min(100, int(slots.get("percentage", 50))))
        call = ServiceCall("fan", "set_percentage", tuple(e.id for e in targets), {"percentage": pct})
        return Action(intent, targets, [call], f"Set {_names(targets)} to {pct}%")
    return Action(intent, error=f"I can't do {n} yet")
