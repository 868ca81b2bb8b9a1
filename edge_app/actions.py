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
from casavox.runtime.intents import catalogue as c
from casavox.runtime.intents.catalogue import DEFAULT_CONFIRM_VERB, IntentDef, lookup
from casavox.runtime.intents.result import Intent

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
# The past tense an on/off reply starts with, per domain: (on, off).
ON_OFF_DONE = {
    "cover": ("Opened", "Closed"),
    "valve": ("Opened", "Closed"),
    "lock": ("Locked", "Unlocked"),
    "vacuum": ("Started", "Sent home"),
    "scene": ("Activated", "Turned off"),
    "script": ("Started", "Stopped"),
}


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
    volume_step: float | None = None  # relative volume: percent points, added to each player's level
    # The infinitive for "Are you sure you want to {verb} the Front Door?" (``IntentDef.confirm_verb``
    # of the first target's domain), so the question never has to be read back out of ``reply``.
    verb: str = DEFAULT_CONFIRM_VERB

    @property
    def sensitive(self) -> list[Entity]:
        """Targets that need a spoken confirmation before a state change (locks, doors...)."""
        if self.kind != "control" or not lookup(self.intent.name).sensitive:
            return []
        return [e for e in self.targets if e.confirm]


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
    domains = _as_set(slots.get("domain")) or set(lookup(intent.name).domains)
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


def _ids(targets: list[Entity]) -> tuple[str, ...]:
    return tuple(e.id for e in targets)


class Planner:
    """What doing one intent means (one planner registered per intent, as Home Assistant registers
    one handler per intent). The common case resolves the targets first (:class:`TargetPlanner`)."""

    def __call__(self, intent: Intent, home: Home, area: str | None) -> Action:
        raise NotImplementedError


class TargetPlanner(Planner):
    """Resolves the exposed entities the intent means, then ``act`` says what to do with them."""

    def __call__(self, intent: Intent, home: Home, area: str | None) -> Action:
        targets, error = resolve_targets(intent, home, area)
        if error:
            return Action(intent, error=error)
        return self.act(intent, targets)

    def act(self, intent: Intent, targets: list[Entity]) -> Action:
        return Action(intent, error=f"I can't do {intent.name} yet")


class LocalPlanner(Planner):
    """Timers, the time, the date...: answered by the box itself (``execute.local``)."""

    def __call__(self, intent: Intent, home: Home, area: str | None) -> Action:
        return Action(intent, kind="local")


class QueryPlanner(TargetPlanner):
    """A question about the targets' state, answered from the backend (``execute.answer``)."""

    def act(self, intent: Intent, targets: list[Entity]) -> Action:
        return Action(intent, targets, kind="query")


class WeatherPlanner(QueryPlanner):
    """A weather question that names no entity ("what's the weather?"): the home's first weather entity."""

    def __call__(self, intent: Intent, home: Home, area: str | None) -> Action:
        if intent.slots.get("name"):
            return super().__call__(intent, home, area)
        weather = [e for e in home.exposed if e.domain == "weather"]
        return (
            Action(intent, weather[:1], kind="query")
            if weather
            else Action(intent, error="no weather service")
        )


class ServicePlanner(TargetPlanner):
    """A plain service intent (``IntentDef.service``): one call on every target, a fixed reply."""

    def __init__(self, definition: IntentDef) -> None:
        self.definition = definition

    def act(self, intent: Intent, targets: list[Entity]) -> Action:
        assert self.definition.service is not None
        domain, service = self.definition.service
        call = ServiceCall(domain, service, _ids(targets), dict(self.definition.service_data))
        return Action(intent, targets, [call], self.definition.done)


class OnOffPlanner(TargetPlanner):
    """HassTurnOn/HassTurnOff: the per-domain services (HassTurnOn opens a cover, locks a lock)."""

    def __init__(self, on: bool) -> None:
        self.on = on

    def act(self, intent: Intent, targets: list[Entity]) -> Action:
        on = self.on
        bad = [e for e in targets if e.domain not in CONTROLLABLE or (not on and e.domain == "scene")]
        targets = [e for e in targets if e not in bad]
        if not targets:
            return Action(intent, error=f"{_names(bad)} can't be turned {'on' if on else 'off'}")
        calls = _group(targets, ON_SERVICES if on else OFF_SERVICES, "turn_on" if on else "turn_off")
        domain = targets[0].domain
        done = ON_OFF_DONE.get(domain, ("Turned on", "Turned off"))[0 if on else 1]
        verb = lookup(intent.name).confirm_verb(domain)
        return Action(intent, targets, calls, f"{done} {_names(targets)}", verb=verb)


class TogglePlanner(TargetPlanner):
    def act(self, intent: Intent, targets: list[Entity]) -> Action:
        return Action(intent, targets, _group(targets, {}, "toggle"), f"Toggled {_names(targets)}")


class LightSetPlanner(TargetPlanner):
    def act(self, intent: Intent, targets: list[Entity]) -> Action:
        slots = intent.slots
        data: dict[str, Any] = {}
        if "brightness" in slots:
            data["brightness_pct"] = max(0, min(100, int(slots["brightness"])))
        if "color" in slots:
            data["color_name"] = str(slots["color"])
        if not data:
            return Action(intent, error="set the light to what?")
        what = f"brightness {data['brightness_pct']}%" if "brightness_pct" in data else data.get("color_name")
        call = ServiceCall("light", "turn_on", _ids(targets), data)
        return Action(intent, targets, [call], f"Set {_names(targets)} to {what}")


class SetPositionPlanner(TargetPlanner):
    def act(self, intent: Intent, targets: list[Entity]) -> Action:
        position = max(0, min(100, int(intent.slots.get("position", 0))))
        calls = [
            ServiceCall(
                d, f"set_{d}_position", tuple(e.id for e in targets if e.domain == d), {"position": position}
            )
            for d in sorted({e.domain for e in targets})
        ]
        return Action(intent, targets, calls, f"Set {_names(targets)} to {position}%")


class ClimateSetTemperaturePlanner(TargetPlanner):
    def act(self, intent: Intent, targets: list[Entity]) -> Action:
        temperature = float(intent.slots.get("temperature", 0))
        call = ServiceCall("climate", "set_temperature", _ids(targets), {"temperature": temperature})
        shown = int(temperature) if temperature.is_integer() else temperature
        return Action(intent, targets, [call], f"Set {_names(targets)} to {shown} degrees")


class SetVolumePlanner(TargetPlanner):
    def act(self, intent: Intent, targets: list[Entity]) -> Action:
        level = max(0, min(100, int(intent.slots.get("volume_level", 50))))
        call = ServiceCall("media_player", "volume_set", _ids(targets), {"volume_level": level / 100})
        return Action(intent, targets, [call], f"Volume set to {level}%")


class SetVolumeRelativePlanner(TargetPlanner):
    """Home Assistant's handler: "up"/"down" is a 10-point step, a number is a step in percent points;
    the new level depends on each player's current one, so execute() turns it into volume_set calls."""

    def act(self, intent: Intent, targets: list[Entity]) -> Action:
        step = intent.slots.get("volume_step", "up")
        step = {"up": 10.0, "down": -10.0}.get(step, step) if isinstance(step, str) else step
        try:
            step = float(step)
        except (TypeError, ValueError):
            return Action(intent, error=f"I can't change the volume by {step}")
        reply = f"Volume {'up' if step > 0 else 'down'}"
        return Action(intent, targets, [], reply, volume_step=step)


class SearchAndPlayPlanner(TargetPlanner):
    def act(self, intent: Intent, targets: list[Entity]) -> Action:
        query = str(intent.slots.get("search_query", "")).strip()
        data = {
            "media_content_id": query,
            "media_content_type": str(intent.slots.get("media_class", "music")),
        }
        call = ServiceCall("media_player", "play_media", _ids(targets), data)
        return Action(intent, targets, [call], f"Playing {query}")


class TodoPlanner(TargetPlanner):
    """HassListAddItem/HassListCompleteItem on a to-do list entity."""

    def __init__(self, add: bool) -> None:
        self.add = add

    def act(self, intent: Intent, targets: list[Entity]) -> Action:
        item = str(intent.slots.get("item", "")).strip()
        data = {"item": item} if self.add else {"item": item, "status": "completed"}
        call = ServiceCall("todo", "add_item" if self.add else "update_item", _ids(targets), data)
        return Action(intent, targets, [call], f"{'Added' if self.add else 'Checked off'} {item}")


def shopping_list_entity(home: Home) -> Entity | None:
    """The to-do entity that is the shopping list, if the home has one.

    Home Assistant's shopping list is a to-do entity (``todo.shopping_list``, named "Shopping List")
    wherever the shopping_list integration is loaded, and its legacy ``shopping_list.*`` services
    exist only there: a home with that to-do entity gets ``todo.*`` calls on it, which every Home
    Assistant with to-do entities has; a home without one keeps the legacy service."""
    for entity in home.entities:
        if (
            entity.domain == "todo"
            and entity.exposed
            and (entity.id == "todo.shopping_list" or entity.name.strip().lower() == "shopping list")
        ):
            return entity
    return None


class ShoppingListPlanner(Planner):
    """HassShoppingListAddItem/CompleteItem: on the shopping list's to-do entity when the home has
    one (see :func:`shopping_list_entity`), else the legacy shopping_list service (no entity)."""

    def __init__(self, add: bool) -> None:
        self.add = add

    def __call__(self, intent: Intent, home: Home, area: str | None) -> Action:
        item = str(intent.slots.get("item", "")).strip()
        if not item:
            return Action(intent, error="what should I add?")
        reply = f"{'Added' if self.add else 'Checked off'} {item}"
        todo = shopping_list_entity(home)
        if todo is not None:
            data = {"item": item} if self.add else {"item": item, "status": "completed"}
            call = ServiceCall("todo", "add_item" if self.add else "update_item", (todo.id,), data)
            return Action(intent, [todo], [call], reply)
        call = ServiceCall("shopping_list", "add_item" if self.add else "complete_item", (), {"name": item})
        return Action(intent, [], [call], reply)


class FanSetSpeedPlanner(TargetPlanner):
    def act(self, intent: Intent, targets: list[Entity]) -> Action:
        pct = max(0, min(100, int(intent.slots.get("percentage", 50))))
        call = ServiceCall("fan", "set_percentage", _ids(targets), {"percentage": pct})
        return Action(intent, targets, [call], f"Set {_names(targets)} to {pct}%")


# The planners of intents that are not a plain service call, query or local intent (those are
# planned from their catalogue entry, ``planner_for``).
PLANNERS: dict[str, Planner] = {
    c.TURN_ON: OnOffPlanner(on=True),
    c.TURN_OFF: OnOffPlanner(on=False),
    c.TOGGLE: TogglePlanner(),
    c.LIGHT_SET: LightSetPlanner(),
    c.SET_POSITION: SetPositionPlanner(),
    c.CLIMATE_SET_TEMPERATURE: ClimateSetTemperaturePlanner(),
    c.GET_WEATHER: WeatherPlanner(),
    c.SET_VOLUME: SetVolumePlanner(),
    c.SET_VOLUME_RELATIVE: SetVolumeRelativePlanner(),
    c.MEDIA_SEARCH_AND_PLAY: SearchAndPlayPlanner(),
    c.LIST_ADD_ITEM: TodoPlanner(add=True),
    c.LIST_COMPLETE_ITEM: TodoPlanner(add=False),
    c.SHOPPING_LIST_ADD_ITEM: ShoppingListPlanner(add=True),
    c.SHOPPING_LIST_COMPLETE_ITEM: ShoppingListPlanner(add=False),
    c.FAN_SET_SPEED: FanSetSpeedPlanner(),
}
UNSUPPORTED = TargetPlanner()  # an intent nobody plans: its targets' error, else "I can't do X yet"
_LOCAL = LocalPlanner()
_QUERY = QueryPlanner()


def planner_for(name: str) -> Planner:
    """The planner of intent ``name``: its own, else the generic one its catalogue entry sets up
    (local, query, plain service), else ``UNSUPPORTED``."""
    if name in PLANNERS:
        return PLANNERS[name]
    definition = lookup(name)
    if definition.kind == "local":
        return _LOCAL
    if definition.kind == "query":
        return _QUERY
    if definition.service is not None:
        return ServicePlanner(definition)
    return UNSUPPORTED


def plan(intent: Intent, home: Home, area: str | None = None) -> Action:
    """What doing this intent in this home means; never names an unexposed entity."""
    return planner_for(intent.name)(intent, home, area)
