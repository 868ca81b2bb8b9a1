"""MQTT with Home Assistant's conventions: one command topic per entity, JSON schema for lights.

Topics follow the layout Home Assistant's MQTT integration documents for its ``mqtt:`` entities:
``<prefix>/<domain>/<object_id>/set`` for commands (``.../position/set``, ``.../temperature/set``,
``.../percentage/set`` for the numeric ones) and ``<prefix>/<domain>/<object_id>/state`` for state,
which we subscribe to (retained) so state questions can be answered. An entity's
``attributes.command_topic`` / ``state_topic`` in the home file overrides the layout. Ids and topics
that MQTT cannot publish to (``#``, ``+``, NUL; ``/`` in an id) are refused when the backend is
created, as a one-line :class:`HomeError` naming the entity, never as a crash at the first command.

Delivery is QoS 1 and synchronous: a command counts as delivered when the broker acknowledged it.

* Broker down, or the command could not be written: reported *not delivered*, and dropped from
  paho's resend queue, so it cannot fire minutes later behind the user's back.
* Sent but not acknowledged within ``ack_timeout_s`` (a stalled link): the outcome is *unknown*
  (``DeliveryError(unknown=True)``): the user hears "I'm not sure the Garage Door got the command",
  the log says so, and the connection is reset (``SO_LINGER`` 0, then close: a TCP RST, no
  DISCONNECT and no flush), so bytes the broker's host has not yet acknowledged are discarded
  instead of being delivered when the link recovers. paho then reconnects with backoff.
* Entities that need confirmation (``Entity.confirm``: locks, doors, garage doors) are only sent
  over a link proven alive within ``alive_window_s`` (a CONNACK, a PUBACK, or the UNSUBACK of a
  probe sent just before); if the probe goes unanswered the connection is reset and re-established
  first, and if that fails the command is reported not delivered, with nothing sent.

Residual risk (what can still happen):

* A command reported "not sure" can still happen, late. If the broker's host already acknowledged
  the bytes (the broker *process* is stalled while its machine runs: stopped, swapping, blocked on
  a disk), they are in the broker's receive buffer; the reset does not recall them (Linux still
  hands queued data to the broker after an RST), and the command fires when the broker resumes.
  The broker may also have forwarded it and only the acknowledgement was lost. Hence "not sure",
  never "failed".
* For confirmed entities the liveness proof narrows that window to a stall beginning within
  ``alive_window_s`` of the publish; it cannot close it.
* "Delivered" means the broker accepted the command, not that the device acted. A device that is
  offline with a persistent session may get a queued command when it comes back; that is a
  broker/device setting (clean sessions, or message expiry on MQTT 5) outside casavox.
"""

from __future__ import annotations

import json
import logging
import os
import socket
import struct
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from casavox.edge_app.actions import ServiceCall
from casavox.edge_app.backends import DeliveryError, EntityState
from casavox.runtime.home import Entity, Home, HomeError

log = logging.getLogger(__name__)

COLORS = {  # the names Home Assistant's HassLightSet template accepts, as RGB for the JSON schema
    "white": (255, 255, 255), "red": (255, 0, 0), "orange": (255, 165, 0), "yellow": (255, 255, 0),
    "green": (0, 128, 0), "blue": (0, 0, 255), "purple": (128, 0, 128), "brown": (165, 42, 42),
    "pink": (255, 192, 203), "turquoise": (64, 224, 208), "cyan": (0, 255, 255), "magenta": (255, 0, 255),
    "gold": (255, 215, 0), "violet": (238, 130, 238), "indigo": (75, 0, 130), "lime": (0, 255, 0),
}  # fmt: skip
STATE_WORDS = {
    "ON": "on",
    "OFF": "off",
    "OPEN": "open",
    "CLOSED": "closed",
    "LOCKED": "locked",
    "UNLOCKED": "unlocked",
}
RESET_WAIT_S = 1.0  # how long a reset waits for paho's thread to close the socket (it takes milliseconds)


@dataclass(frozen=True)
class MqttSettings:
    host: str = "127.0.0.1"
    port: int = 1883
    prefix: str = "casavox"
    username: str | None = None
    password_env: str = "CASAVOX_MQTT_PASSWORD"  # the password comes from here or from password_file
    password_file: str | None = None
    client_id: str = "casavox"
    ack_timeout_s: float = 2.0
    alive_window_s: float = 0.5  # a lock/door command needs the broker to have answered this recently
    connect_timeout_s: float = 3.0
    subscribe_state: bool = True
    tls: bool = False

    def password(self) -> str | None:
        if self.password_file:
            return Path(self.password_file).read_text().strip()
        return os.environ.get(self.password_env)


def _object_id(entity_id: str) -> tuple[str, str]:
    domain, _, obj = entity_id.partition(".")
    return domain, obj


def topic_problem(topic: object) -> str | None:
    """Why MQTT cannot publish to ``topic`` (None if it can): wildcards and NUL are not topic names,
    and paho raises on them."""
    if not isinstance(topic, str) or not topic:
        return "is not a non-empty string"
    for char, what in (("#", "'#'"), ("+", "'+'"), ("\0", "a NUL character")):
        if char in topic:
            return f"contains {what}, which MQTT topic names may not"
    if len(topic.encode()) > 65535:
        return "is longer than MQTT allows"
    return None


def command_topic(entity: Entity, prefix: str) -> object:
    """The entity's command topic: ``attributes.command_topic`` or the Home Assistant layout."""
    domain, obj = _object_id(entity.id)
    return entity.attributes.get("command_topic") or f"{prefix}/{domain}/{obj}/set"


def state_topic(entity: Entity, prefix: str) -> object:
    """The entity's (retained) state topic: ``attributes.state_topic`` or the Home Assistant layout."""
    domain, obj = _object_id(entity.id)
    return entity.attributes.get("state_topic") or f"{prefix}/{domain}/{obj}/state"


def check_home(home: Home, prefix: str) -> None:
    """Refuse, at start and in one line, a prefix or an entity whose topics MQTT cannot use; later,
    paho would raise on the first command to it, or kill its own loop subscribing at connect."""
    problem = topic_problem(prefix)
    if problem:
        from casavox.edge_app.config import ConfigError  # config imports this module

        raise ConfigError(f"[mqtt] prefix {prefix!r} {problem}")
    for entity in home.entities:
        _check_entity(entity, prefix, home.source)


def _check_entity(entity: Entity, prefix: str, source: str) -> None:
    """HomeError naming the entity if its id or topics cannot be used; ``/`` in an id would make its
    topics those of another entity (``cover.x/position`` is ``cover.x``'s position topic)."""
    bad_id = next((c for c in ("#", "+", "/", "\0") if c in entity.id), None)
    if bad_id is not None:
        raise HomeError(
            f"{source}: entity id {entity.id!r} contains {bad_id!r}, which cannot be part of an MQTT topic"
        )
    for kind, topic in (("command", command_topic(entity, prefix)), ("state", state_topic(entity, prefix))):
        problem = topic_problem(topic)
        if problem:
            raise HomeError(f"{source}: entity {entity.id!r}: MQTT {kind} topic {topic!r} {problem}")


def payloads(call: ServiceCall, entity_id: str, prefix: str, attrs: dict[str, Any]) -> list[tuple[str, str]]:
    """(topic, payload) pairs for one entity; Home Assistant MQTT payload conventions."""
    domain, obj = _object_id(entity_id)
    base = attrs.get("command_topic") or f"{prefix}/{domain}/{obj}/set"
    root = base[: -len("/set")] if base.endswith("/set") else base
    s, d = call.service, call.data
    if domain == "light":
        body: dict[str, Any] = {"state": "OFF" if s == "turn_off" else "TOGGLE" if s == "toggle" else "ON"}
        if "brightness_pct" in d:
            body["brightness"] = round(d["brightness_pct"] * 255 / 100)
            if d["brightness_pct"] == 0:
                body = {"state": "OFF"}
        if "color_name" in d:
            rgb = COLORS.get(str(d["color_name"]).casefold())
            if rgb is None:
                raise DeliveryError(f"unknown colour {d['color_name']}")
            body["color"] = dict(zip("rgb", rgb, strict=True))
        return [(base, json.dumps(body))]
    simple = {
        "turn_on": "ON", "turn_off": "OFF", "toggle": "TOGGLE", "open_cover": "OPEN", "close_cover": "CLOSE",
        "open_valve": "OPEN", "close_valve": "CLOSE", "lock": "LOCK", "unlock": "UNLOCK",
        "start": "start", "return_to_base": "return_to_base",
    }  # fmt: skip
    if s in simple:
        return [(base, simple[s])]
    numeric = {
        "set_cover_position": ("position", "position"),
        "set_valve_position": ("position", "position"),
        "set_temperature": ("temperature", "temperature"),
        "set_percentage": ("percentage", "percentage"),
        "volume_set": ("volume", "volume_level"),
    }
    if s in numeric:
        sub, key = numeric[s]
        return [(f"{root}/{sub}/set", str(d[key]))]
    return [(base, json.dumps({"service": s, **d}))]  # media and other services: JSON with the data


@dataclass
class MqttBackend:
    home: Home
    settings: MqttSettings = field(default_factory=MqttSettings)
    name: str = "mqtt"
    states: dict[str, EntityState] = field(default_factory=dict)
    last_error: str = ""

    def __post_init__(self) -> None:
        import paho.mqtt.client as mqtt

        s = self.settings
        check_home(self.home, s.prefix)
        self._connected = threading.Event()
        self._alive_at = 0.0  # monotonic time of the broker's last answer to us (CONNACK, PUBACK, UNSUBACK)
        self._answered = threading.Condition()  # notified on each UNSUBACK; guards _unsubacked
        self._unsubacked: set[int] = set()  # mids of probes the broker answered (cleared per probe)
        self._probe_topic = f"{s.prefix}/casavox-liveness-probe"
        self._topics = {state_topic(e, s.prefix): e.id for e in self.home.exposed}
        self.client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=s.client_id)
        if s.username:
            self.client.username_pw_set(s.username, s.password())
        if s.tls:
            self.client.tls_set()
        self.client.reconnect_delay_set(min_delay=1, max_delay=30)
        self.client.suppress_exceptions = True  # a second guard: paho logs instead of killing its loop
        self.client.on_connect = _guarded("on_connect", self._on_connect)
        self.client.on_disconnect = _guarded("on_disconnect", self._on_disconnect)
        self.client.on_message = _guarded("on_message", self._on_message)
        self.client.on_unsubscribe = _guarded("on_unsubscribe", self._on_unsubscribe)
        # connect_async + loop_start: a broker that is down at start is retried in the background.
        self.client.connect_async(s.host, s.port, keepalive=30)
        self.client.loop_start()
        self._connected.wait(s.connect_timeout_s)

    # paho callbacks (run on paho's thread, each wrapped by _guarded)

    def _on_connect(self, client, _userdata, _flags, reason, _props) -> None:
        if reason.is_failure:
            self.last_error = f"broker refused the connection ({reason})"
            return
        client.drop_out_messages()  # anything still queued was already reported as not delivered
        self._alive_at = time.monotonic()
        self.last_error = ""
        self._connected.set()
        if self.settings.subscribe_state and self._topics:
            try:
                client.subscribe([(topic, 1) for topic in self._topics])
            except ValueError as exc:  # check_home makes this unreachable; commands work without it
                log.error("MQTT: cannot subscribe to the state topics: %s", exc)

    def _on_disconnect(self, _client, _userdata, _flags, reason, _props) -> None:
        self._connected.clear()
        if reason.is_failure:
            self.last_error = f"connection lost ({reason})"

    def _on_message(self, _client, _userdata, message) -> None:
        entity_id = self._topics.get(message.topic)
        if entity_id is None:
            return
        text = message.payload.decode("utf-8", "replace").strip()
        try:
            body = json.loads(text)
        except ValueError:
            body = text
        if isinstance(body, dict):
            state = STATE_WORDS.get(str(body.get("state", "")).upper(), str(body.get("state", "")).lower())
            self.states[entity_id] = EntityState(state, {k: v for k, v in body.items() if k != "state"})
        else:
            self.states[entity_id] = EntityState(STATE_WORDS.get(str(body).upper(), str(body).lower()))

    def _on_unsubscribe(self, _client, _userdata, mid, _reasons, _props) -> None:
        self._alive_at = time.monotonic()
        with self._answered:
            self._unsubacked.add(mid)
            self._answered.notify_all()

    # the link

    def _unreachable(self) -> DeliveryError:
        s = self.settings
        why = f": {self.last_error}" if self.last_error else ""
        return DeliveryError(f"MQTT broker {s.host}:{s.port} unreachable{why}; command not delivered")

    def _probe(self) -> bool:
        """One round trip (UNSUBSCRIBE of a topic nobody uses, answered by UNSUBACK): is the broker
        reading and answering us right now? Nothing is published, so nothing can fire."""
        with self._answered:
            self._unsubacked.clear()  # only calls to this method unsubscribe: stale answers go
        rc, mid = self.client.unsubscribe(self._probe_topic)
        if rc != 0 or mid is None:
            return False
        with self._answered:
            return self._answered.wait_for(lambda: mid in self._unsubacked, self.settings.ack_timeout_s)

    def _reset(self) -> None:
        """Tear the connection down so unsent bytes are discarded, not flushed.

        ``SO_LINGER`` 0 makes the close a TCP RST that throws away what the kernel still holds; the
        read side is shut so paho's own thread sees the end, closes the socket and reconnects (closing
        it here, under paho's select, would race it). A graceful DISCONNECT would send the stale
        command first."""
        self._connected.clear()
        self.client.drop_out_messages()
        sock = self.client.socket()
        if sock is None:
            return
        try:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            sock.shutdown(socket.SHUT_RD)
        except OSError as exc:  # already gone: nothing left to discard
            log.debug("MQTT reset: %s", exc)
            return
        deadline = time.monotonic() + RESET_WAIT_S  # done when the reply is given, not some time later
        while self.client.socket() is sock and time.monotonic() < deadline:
            time.sleep(0.005)

    def _ensure_alive(self) -> None:
        """Before a command that needs confirmation: the broker answered within ``alive_window_s``,
        or answers a probe now, or a fresh connection is made; else DeliveryError (nothing sent)."""
        s = self.settings
        if time.monotonic() - self._alive_at <= s.alive_window_s or self._probe():
            return
        log.warning(
            "MQTT broker %s:%s did not answer a probe within %.1f s: reconnecting before a command "
            "that needs confirmation",
            s.host,
            s.port,
            s.ack_timeout_s,
        )
        self._reset()
        if not (self._connected.wait(s.connect_timeout_s) and (self._fresh() or self._probe())):
            raise DeliveryError(f"MQTT broker {s.host}:{s.port} is not responding; command not delivered")

    def _fresh(self) -> bool:
        return time.monotonic() - self._alive_at <= self.settings.alive_window_s

    # commands

    def _messages(self, call: ServiceCall) -> list[tuple[str, str, Entity | None]]:
        """(topic, payload, entity) for each message ``call`` sends; topics MQTT refuses are a
        DeliveryError here, before anything is sent."""
        prefix = self.settings.prefix
        if not call.entity_ids:  # a service without entities (shopping list): <prefix>/<domain>/<service>
            messages = [(f"{prefix}/{call.domain}/{call.service}", json.dumps(call.data), None)]
        else:
            messages = []
            for entity_id in call.entity_ids:
                entity = self.home.entity(entity_id)
                attrs = entity.attributes if entity else {}
                messages.extend((t, p, entity) for t, p in payloads(call, entity_id, prefix, attrs))
        for topic, _payload, _entity in messages:
            problem = topic_problem(topic)
            if problem:
                raise DeliveryError(f"MQTT topic {topic!r} {problem}; command not delivered")
        return messages

    def _publish(self, topic: str, payload: str, entity: Entity | None) -> None:
        """Publish one message and wait for its PUBACK; an unacknowledged one resets the link and is
        reported as unknown (it was sent and may still arrive)."""
        s = self.settings
        try:
            info = self.client.publish(topic, payload, qos=1)
        except ValueError as exc:  # refused by paho before anything was written
            raise DeliveryError(f"MQTT publish to {topic!r} refused: {exc}; command not delivered") from None
        if info.rc != 0:  # not connected: only queued, never written
            self.client.drop_out_messages()
            raise self._unreachable()
        try:
            info.wait_for_publish(s.ack_timeout_s)
        except (RuntimeError, ValueError):
            pass
        if info.is_published():
            self._alive_at = time.monotonic()
            return
        what = f"the {entity.name}" if entity is not None else "the broker"
        log.warning(
            "MQTT broker %s:%s did not acknowledge %s within %.1f s: outcome unknown; resetting the link",
            s.host,
            s.port,
            topic,
            s.ack_timeout_s,
        )
        self._reset()
        raise DeliveryError(
            f"I'm not sure {what} got the command: the MQTT broker did not confirm it in time",
            unknown=True,
        )

    def call(self, call: ServiceCall) -> None:
        messages = self._messages(call)
        if not self._connected.is_set():
            raise self._unreachable()
        for topic, payload, entity in messages:
            if entity is not None and entity.confirm:
                self._ensure_alive()
            self._publish(topic, payload, entity)

    def state(self, entity_id: str) -> EntityState | None:
        return self.states.get(entity_id)

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()


def _guarded(name: str, callback: Callable[..., None]) -> Callable[..., None]:
    """``callback`` for paho, logging instead of raising: an exception escaping a callback would end
    paho's network thread, after which every command looks undelivered."""

    def guarded(*args: Any) -> None:
        try:
            callback(*args)
        except Exception as exc:  # noqa: BLE001 - any bug here must not kill the loop
            log.error("MQTT %s failed: %s: %s", name, type(exc).__name__, exc)
            log.debug("traceback of the MQTT %s failure", name, exc_info=True)

    return guarded
