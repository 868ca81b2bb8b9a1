"""The embedded simulated home: the home YAML's entities, their state in SQLite, HA service semantics.

On first start every entity is seeded from the YAML (state + attributes); after that the file
wins, so state survives restarts. Each service call changes the entities the way the matching
Home Assistant integration would (light.turn_on with brightness_pct sets brightness 0-255,
cover.set_cover_position sets current_position and open/closed, lock.unlock -> "unlocked"...).

What is stored is the device's memory (a light switched off keeps the brightness it comes back
on at, a fan the speed, a TV its volume); what is *reported* (:func:`reported`: state questions,
`casavox state`) is what Home Assistant reports for that state: no brightness or colour for a light
that is off, percentage 0 for a fan that is off, no volume for a media player that is off. Compared
call by call with a real Home Assistant in tests/test_hass_real.py.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from typing import Any

from casavox.edge_app.actions import ServiceCall
from casavox.edge_app.backends import DeliveryError, EntityState
from casavox.edge_app.backends.mqtt import COLORS
from casavox.edge_app.state_store import StateError, StateStore
from casavox.runtime.home import Home

TRACK = "media_track"
# What Home Assistant shows as None while the entity is off (its entities report these only when on).
HIDDEN_WHEN_OFF = {
    "light": ("brightness", "rgb_color", "hs_color", "xy_color", "color_temp_kelvin"),
    "media_player": ("volume_level", "is_volume_muted", "media_title", TRACK),
}
SHOPPING_LIST = "todo.shopping_list"  # Home Assistant's shopping list is this to-do entity


def reported(domain: str, state: str, attrs: dict[str, Any]) -> dict[str, Any]:
    """The attributes Home Assistant reports for an entity in ``state`` (see the module docstring)."""
    out = dict(attrs)
    if state == "off":
        for key in HIDDEN_WHEN_OFF.get(domain, ()):
            if key in out:
                out[key] = None
        if domain == "fan" and "percentage" in out:
            out["percentage"] = 0
    return out


def apply_service(
    domain: str, service: str, state: str, attrs: dict[str, Any], data: dict
) -> tuple[str, dict]:
    """One entity's new (state, attributes) after ``domain.service(data)``."""
    a = dict(attrs)
    if service == "toggle":
        service = "turn_off" if state not in ("off", "closed", "unlocked", "idle") else "turn_on"
    if domain == "light" and service == "turn_on":
        if "brightness_pct" in data:
            if data["brightness_pct"] == 0:
                return "off", a  # as light.turn_off: the brightness it comes back at is kept
            a["brightness"] = round(data["brightness_pct"] * 255 / 100)
        if "color_name" in data:  # Home Assistant turns the name into a colour (its state has no name)
            rgb = COLORS.get(str(data["color_name"]).lower())
            if rgb is None:
                raise DeliveryError(f"the simulated home knows no colour {data['color_name']}")
            a["rgb_color"] = list(rgb)
            a.pop("color_name", None)
        return "on", a
    if domain in ("cover", "valve"):
        position = {
            f"open_{domain}": 100,
            f"close_{domain}": 0,
            f"set_{domain}_position": data.get("position"),
            "turn_on": 100,
            "turn_off": 0,
        }.get(service)
        if position is None:
            raise DeliveryError(f"{domain} has no service {service}")
        a["current_position"] = int(position)
        return ("open" if position > 0 else "closed"), a
    if domain == "lock":
        return {"lock": "locked", "unlock": "unlocked", "turn_on": "locked", "turn_off": "unlocked"}[
            service
        ], a
    if domain in ("scene", "script"):
        a["last_triggered"] = time.time()
        return state, a
    if domain == "climate" and service == "set_temperature":
        a["temperature"] = data["temperature"]
        return state, a  # a thermostat that is off stays off (Home Assistant's climate entities)
    if domain == "vacuum":
        return {"start": "cleaning", "return_to_base": "returning", "turn_on": "cleaning"}.get(
            service, "docked"
        ), a
    if domain == "lawn_mower":
        return {"start_mowing": "mowing", "turn_on": "mowing", "dock": "docked", "turn_off": "docked"}[
            service
        ], a
    if domain == "fan" and service == "set_percentage":
        a["percentage"] = data["percentage"]
        return ("on" if data["percentage"] > 0 else "off"), a
    if domain == "fan" and service == "turn_on":
        if not a.get("percentage"):  # back at the speed it had, or full speed
            a["percentage"] = 100
        return "on", a
    if domain == "media_player":
        if service == "volume_set":
            a["volume_level"] = data["volume_level"]
            return state, a
        if service == "volume_mute":
            a["is_volume_muted"] = bool(data["is_volume_muted"])
            return state, a
        if service in ("media_next_track", "media_previous_track"):
            a[TRACK] = int(a.get(TRACK, 1)) + (1 if service == "media_next_track" else -1)
            return "playing", a
        if service == "play_media":
            a["media_title"] = data.get("media_content_id", "")
            return "playing", a
        return {"media_pause": "paused", "media_play": "playing", "turn_on": "on", "turn_off": "off"}[
            service
        ], a
    if service in ("turn_on", "turn_off"):
        return ("on" if service == "turn_on" else "off"), a
    raise DeliveryError(f"the simulated home cannot do {domain}.{service}")


@dataclass
class SimBackend:
    home: Home
    store: StateStore
    name: str = "sim"

    @classmethod
    def open(cls, home: Home, store: StateStore) -> SimBackend:
        """Seed entities the store does not know yet (a read-only store is left as it is)."""
        known = store.entities()
        missing = [e for e in home.entities if e.id not in known]
        if missing:
            with store.transaction() as conn:
                conn.executemany(
                    "INSERT OR IGNORE INTO entities VALUES (?, ?, ?, ?)",
                    [(e.id, e.state, json.dumps(e.attributes), time.time()) for e in missing],
                )
        return cls(home, store)

    def call(self, call: ServiceCall) -> None:
        try:
            with self.store.transaction() as conn:
                if call.domain in ("shopping_list", "todo"):
                    self._list(conn, call)
                for entity_id in call.entity_ids:
                    row = conn.execute(
                        "SELECT state, attributes FROM entities WHERE entity_id = ?", (entity_id,)
                    ).fetchone()
                    if row is None:
                        raise DeliveryError(f"{entity_id} is not in the simulated home")
                    if call.domain == "todo":
                        continue
                    state, attrs = apply_service(
                        call.domain, call.service, row[0], json.loads(row[1]), call.data
                    )
                    conn.execute(
                        "UPDATE entities SET state = ?, attributes = ?, last_changed = ? WHERE entity_id = ?",
                        (state, json.dumps(attrs), time.time(), entity_id),
                    )
                self.store.log(conn, call.domain, call.service, call.entity_ids, call.data)
        except StateError as exc:
            raise DeliveryError(str(exc)) from None

    def _shopping_list(self) -> str:
        """Where ``shopping_list.*`` items go: Home Assistant's todo.shopping_list when the home has
        it (one list, whichever service is called), else the legacy list of that name."""
        return SHOPPING_LIST if any(e.id == SHOPPING_LIST for e in self.home.entities) else "shopping_list"

    def _list(self, conn, call: ServiceCall) -> None:
        lists = list(call.entity_ids) or [self._shopping_list()]
        item = str(call.data.get("name") or call.data.get("item") or "")
        for name in lists:
            if call.service == "add_item":
                conn.execute("INSERT INTO list_items VALUES (?, ?, 0, ?)", (name, item, time.time()))
            else:
                done = conn.execute(
                    "UPDATE list_items SET complete = 1 WHERE list = ? AND lower(item) = lower(?) AND complete = 0",
                    (name, item),
                ).rowcount
                if not done:
                    raise DeliveryError(f"{item} is not on the list")
        for name in lists:  # a to-do entity's state is its number of unfinished items, as in HA
            if name.startswith("todo."):
                (left,) = conn.execute(
                    "SELECT count(*) FROM list_items WHERE list = ? AND complete = 0", (name,)
                ).fetchone()
                conn.execute(
                    "UPDATE entities SET state = ?, last_changed = ? WHERE entity_id = ?",
                    (str(left), time.time(), name),
                )

    def state(self, entity_id: str) -> EntityState | None:
        try:
            row = self.store.entity(entity_id)
        except StateError as exc:
            raise DeliveryError(str(exc)) from None
        return EntityState(row[0], reported(entity_id.partition(".")[0], row[0], row[1])) if row else None

    def close(self) -> None:
        pass
