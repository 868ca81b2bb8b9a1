"""MQTT with Home Assistant's conventions: one command topic per entity, JSON schema for lights.

Topics follow the layout Home Assistant's MQTT integration documents for its ``mqtt:`` entities:
``<prefix>/<domain>/<object_id>/set`` for commands (``.../position/set``, ``.../temperature/set``,
``.../percentage/set`` for the numeric ones) and ``<prefix>/<domain>/<object_id>/state`` for state,
which we subscribe to (retained) so state questions can be answered. An entity's
``attributes.command_topic`` / ``state_topic`` in the home file overrides the layout.

Delivery is QoS 1 and synchronous: a command counts as delivered when the broker acknowledged it.
If the broker is down the command is reported as failed, and it is *dropped* from paho's resend
queue, so it cannot fire minutes later behind the user's back. paho reconnects with backoff.
"""

from __future__ import annotations

import json
import os
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from casavox.edge_app.actions import ServiceCall
from casavox.edge_app.backends import DeliveryError, EntityState
from casavox.runtime.home import Home

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
        self._connected = threading.Event()
        self._topics = {
            (e.attributes.get("state_topic") or f"{s.prefix}/{e.domain}/{_object_id(e.id)[1]}/state"): e.id
            for e in self.home.exposed
        }
        self.client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=s.client_id)
        if s.username:
            self.client.username_pw_set(s.username, s.password())
        if s.tls:
            self.client.tls_set()
        self.client.reconnect_delay_set(min_delay=1, max_delay=30)
        self.client.on_connect = self._on_connect
        self.client.on_disconnect = self._on_disconnect
        self.client.on_message = self._on_message
        # connect_async + loop_start: a broker that is down at start is retried in the background.
        self.client.connect_async(s.host, s.port, keepalive=30)
        self.client.loop_start()
        self._connected.wait(s.connect_timeout_s)

    def _on_connect(self, client, _userdata, _flags, reason, _props) -> None:
        if reason.is_failure:
            self.last_error = f"broker refused the connection ({reason})"
            return
        client.drop_out_messages()  # anything still queued was already reported as not delivered
        self.last_error = ""
        self._connected.set()
        if self.settings.subscribe_state:
            for topic in self._topics:
                client.subscribe(topic, qos=1)

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

    def _unreachable(self) -> DeliveryError:
        s = self.settings
        why = f": {self.last_error}" if self.last_error else ""
        return DeliveryError(f"MQTT broker {s.host}:{s.port} unreachable{why}; command not delivered")

    def call(self, call: ServiceCall) -> None:
        if not self._connected.is_set():
            raise self._unreachable()
        messages = []
        for entity_id in call.entity_ids or (f"{call.domain}.{call.service}",):
            entity = self.home.entity(entity_id)
            attrs = entity.attributes if entity else {}
            if call.entity_ids:
                messages.extend(payloads(call, entity_id, self.settings.prefix, attrs))
            else:  # a service without entities (shopping list): <prefix>/<domain>/<service>
                messages.append(
                    (f"{self.settings.prefix}/{call.domain}/{call.service}", json.dumps(call.data))
                )
        for topic, payload in messages:
            info = self.client.publish(topic, payload, qos=1)
            try:
                info.wait_for_publish(self.settings.ack_timeout_s)
            except (RuntimeError, ValueError):
                pass
            if not info.is_published():
                self.client.drop_out_messages()
                raise self._unreachable()

    def state(self, entity_id: str) -> EntityState | None:
        return self.states.get(entity_id)

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()
