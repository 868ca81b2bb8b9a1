"""The home read from Home Assistant itself: no hand-written YAML that repeats what it knows.

With the ``hass`` backend and ``[hass] read_home = true`` (the default), casavox reads over Home
Assistant's websocket API (``/api/websocket``, the same long-lived token as the REST backend):
floors, areas (names, aliases, floor), devices (for an entity's area when the entity has none of
its own), entities (``config/entity_registry/get_entries``: name, aliases, area), which entities are
**exposed to Assist** (``homeassistant/expose_entity/list``, the "conversation" assistant) and their
states. Only exposed entities can be named or acted on, as in Home Assistant's own agent; the
locks, doors and garage doors that need a spoken "yes" are the same as for a YAML home.

A YAML home (``home = ...``) still works alongside: it is laid over what Home Assistant says, never
the other way round. Its aliases are added, its ``confirm`` is used, and ``exposed: false`` hides
an entity; it can never expose one Home Assistant does not expose, nor add an entity or area Home
Assistant does not have.

:class:`HomeFollower` re-reads the registries every ``refresh_s`` seconds (10 by default) and hands
a new :class:`Home` to the daemon only when something a command depends on changed (a rename, an
alias, an area, an entity exposed or hidden, added or removed; not states, which the backend reads
when it needs them). Polling rather than event subscriptions: exposure changes have no event of
their own, and one snapshot is five small websocket calls. websockets (sync client) is the
connection: the REST API has no registry endpoints.
"""

from __future__ import annotations

import hashlib
import json
import logging
import threading
import time
import urllib.parse
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from typing import Any

from casavox.edge_app.backends import DeliveryError
from casavox.edge_app.backends.hass import HassSettings, check_url, redact_url
from casavox.runtime.home import CONFIRM_DEVICE_CLASSES, CONFIRM_DOMAINS, Area, Entity, Floor, Home

log = logging.getLogger(__name__)

ASSISTANT = "conversation"  # Home Assistant's name for Assist in its exposure settings
DROP_ATTRIBUTES = ("friendly_name", "icon", "entity_picture")


def websocket_url(http_url: str) -> str:
    parts = urllib.parse.urlsplit(http_url)
    scheme = "wss" if parts.scheme == "https" else "ws"
    return urllib.parse.urlunsplit((scheme, parts.netloc, parts.path.rstrip("/") + "/api/websocket", "", ""))


@dataclass
class RegistryReader:
    """One websocket session per snapshot: connect, authenticate, read, close."""

    settings: HassSettings

    def snapshot(self) -> dict[str, Any]:
        """Floors, areas, devices, entities, exposure and states, as Home Assistant returns them."""
        from websockets.exceptions import WebSocketException
        from websockets.sync.client import connect

        check_url(self.settings)  # no credentials in the URL, before anything is sent
        shown = redact_url(self.settings.url)
        token = self.settings.token()
        url = websocket_url(self.settings.url)
        timeout = self.settings.timeout_s
        try:
            with connect(url, open_timeout=timeout, close_timeout=1, max_size=2**26) as ws:
                self._auth(ws, timeout, shown, token)
                calls = _Calls(ws, timeout, shown)
                states = calls("get_states")
                snapshot = {
                    "floors": calls("config/floor_registry/list", optional=True) or [],
                    "areas": calls("config/area_registry/list"),
                    "devices": calls("config/device_registry/list"),
                    "states": states,
                    "exposed": calls("homeassistant/expose_entity/list")["exposed_entities"],
                }
                ids = [s["entity_id"] for s in states]
                snapshot["entities"] = (
                    calls("config/entity_registry/get_entries", entity_ids=ids) if ids else {}
                )
                return snapshot
        except (OSError, TimeoutError, WebSocketException) as exc:
            raise DeliveryError(
                f"Home Assistant at {shown} unreachable over its websocket API ({exc})"
            ) from None

    def _auth(self, ws, timeout: float, shown: str, token: str) -> None:
        hello = json.loads(ws.recv(timeout))
        if hello.get("type") != "auth_required":
            raise DeliveryError(f"{shown} did not greet as Home Assistant's websocket API does")
        ws.send(json.dumps({"type": "auth", "access_token": token}))
        reply = json.loads(ws.recv(timeout))
        if reply.get("type") != "auth_ok":
            raise DeliveryError(f"Home Assistant at {shown}: token rejected (websocket API)")


@dataclass
class _Calls:
    ws: Any
    timeout: float
    shown: str
    next_id: int = 1

    def __call__(self, kind: str, optional: bool = False, **data) -> Any:
        msg_id, self.next_id = self.next_id, self.next_id + 1
        self.ws.send(json.dumps({"id": msg_id, "type": kind, **data}))
        while True:
            reply = json.loads(self.ws.recv(self.timeout))
            if reply.get("id") == msg_id and reply.get("type") == "result":
                break
        if not reply.get("success"):
            if optional:  # e.g. floors, which Home Assistant before 2024.4 does not have
                return None
            error = reply.get("error", {})
            raise DeliveryError(
                f"Home Assistant at {self.shown}: {kind} failed ({error.get('message', error)})"
            )
        return reply["result"]


def _confirm_default(domain: str, attributes: dict) -> bool:
    return domain in CONFIRM_DOMAINS or (
        domain == "cover" and attributes.get("device_class") in CONFIRM_DEVICE_CLASSES
    )


def home_from_registry(snapshot: dict[str, Any], overlay: Home | None = None, source: str = "") -> Home:
    """A :class:`Home` from a :meth:`RegistryReader.snapshot`, with ``overlay`` laid over it."""
    floors = [
        Floor(id=f["floor_id"], name=f["name"], aliases=tuple(a for a in f.get("aliases", []) if a))
        for f in snapshot.get("floors", [])
    ]
    areas = [
        Area(
            id=a["area_id"],
            name=a["name"],
            aliases=tuple(x for x in a.get("aliases", []) if x),
            floor_id=a.get("floor_id"),
        )
        for a in snapshot["areas"]
    ]
    device_area = {d["id"]: d.get("area_id") for d in snapshot["devices"]}
    registry = snapshot.get("entities", {})
    exposed = snapshot["exposed"]
    entities = []
    for state in snapshot["states"]:
        entity_id = state["entity_id"]
        entry = registry.get(entity_id) or {}
        attributes = {k: v for k, v in state.get("attributes", {}).items() if k not in DROP_ATTRIBUTES}
        name = (
            state.get("attributes", {}).get("friendly_name")
            or entry.get("name")
            or entry.get("original_name")
            or entity_id.partition(".")[2].replace("_", " ")
        )
        domain = entity_id.partition(".")[0]
        entities.append(
            Entity(
                id=entity_id,
                name=str(name),
                domain=domain,
                aliases=tuple(a for a in entry.get("aliases", []) if a),
                area_id=entry.get("area_id") or device_area.get(entry.get("device_id")),
                state=str(state.get("state", "unknown")),
                attributes=attributes,
                exposed=bool(exposed.get(entity_id, {}).get(ASSISTANT)),
                confirm=_confirm_default(domain, attributes),
            )
        )
    home = Home(tuple(floors), tuple(areas), tuple(entities), source=source or "Home Assistant")
    return lay_over(home, overlay) if overlay is not None else home


def lay_over(home: Home, overlay: Home) -> Home:
    """``overlay``'s aliases, ``confirm`` and ``exposed: false`` on Home Assistant's home; it adds
    nothing Home Assistant does not have and exposes nothing it hides."""
    extra = {e.id: e for e in overlay.entities}
    entities = []
    for e in home.entities:
        o = extra.get(e.id)
        if o is not None:
            aliases = tuple(dict.fromkeys((*e.aliases, *(n for n in o.names if n != e.name))))
            e = replace(e, aliases=aliases, confirm=o.confirm, exposed=e.exposed and o.exposed)
        entities.append(e)
    area_extra = {a.id: a for a in overlay.areas}
    areas = []
    for a in home.areas:
        o = area_extra.get(a.id)
        if o is not None:
            a = replace(
                a,
                aliases=tuple(dict.fromkeys((*a.aliases, *(n for n in (o.name, *o.aliases) if n != a.name)))),
            )
        areas.append(a)
    return replace(
        home, areas=tuple(areas), entities=tuple(entities), timers=overlay.timers, media=overlay.media
    )


def what_matters(home: Home) -> str:
    """A digest of what commands depend on (names, places, exposure), not of states."""
    data = [
        [(f.id, f.name, f.aliases) for f in home.floors],
        [(a.id, a.name, a.aliases, a.floor_id) for a in home.areas],
        [
            (e.id, e.name, e.aliases, e.area_id, e.exposed, e.confirm, e.attributes.get("device_class"))
            for e in home.entities
        ],
    ]
    return hashlib.sha256(json.dumps(data, default=str).encode()).hexdigest()


def read_home(settings: HassSettings, overlay: Home | None = None) -> Home:
    """The home as Home Assistant has it now (one snapshot)."""
    home = home_from_registry(
        RegistryReader(settings).snapshot(), overlay, f"Home Assistant at {redact_url(settings.url)}"
    )
    log.info(
        "home from %s: %d areas, %d entities (%d exposed to Assist)",
        home.source, len(home.areas), len(home.entities), len(home.exposed),
    )  # fmt: skip
    return home


@dataclass
class HomeFollower:
    """Re-reads the home every ``refresh_s`` seconds; ``on_change(home)`` when what matters changed.

    A failed read (Home Assistant restarting) is logged once per outage and the last home kept."""

    settings: HassSettings
    home: Home
    on_change: Callable[[Home], None]
    overlay: Home | None = None
    refresh_s: float = 10.0
    changes: int = 0
    _stop: threading.Event = field(default_factory=threading.Event)
    _thread: threading.Thread | None = None

    def start(self) -> HomeFollower:
        self._digest = what_matters(self.home)
        self._thread = threading.Thread(target=self._run, name="casavox-home-follower", daemon=True)
        self._thread.start()
        return self

    def check(self) -> bool:
        """Read once; True when the home changed (and ``on_change`` ran)."""
        home = read_home(self.settings, self.overlay)
        digest = what_matters(home)
        if digest == self._digest:
            return False
        t0 = time.perf_counter()
        self.on_change(home)
        self.home, self._digest, self.changes = home, digest, self.changes + 1
        log.info("the home changed in Home Assistant; rebuilt in %.0f ms", (time.perf_counter() - t0) * 1e3)
        return True

    def _run(self) -> None:
        failing = False
        while not self._stop.wait(self.refresh_s):
            try:
                self.check()
                if failing:
                    log.info("home from Home Assistant: reading again")
                failing = False
            except DeliveryError as exc:
                if not failing:
                    log.warning("home from Home Assistant: %s; keeping the last one", exc)
                failing = True
            except Exception:  # noqa: BLE001 - the follower must outlive any one bad snapshot
                log.exception("home from Home Assistant: could not rebuild; keeping the last one")

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=self.settings.timeout_s + 2)
