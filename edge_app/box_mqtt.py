"""The box itself in Home Assistant, over MQTT discovery: its controls and telemetry, no set-up.

With ``[discovery] enabled = true`` the daemon announces one Home Assistant *device* ("casavox
<node>") with these entities, following Home Assistant's MQTT discovery conventions
(``<discovery prefix>/<component>/<node>/<object>/config``, retained, with an availability topic
and a last will):

- ``switch`` **Mute**: while on, the daemon drops microphone frames (nothing is heard, transcribed
  or acted on); the state is what the daemon does, published after it changed.
- ``number`` **Speech threshold** (0.1-0.9): the VAD probability at which speech starts (``vad.
  threshold``), i.e. how easily the box starts listening. The transcript-matched wake phrase has no
  sensitivity of its own; an acoustic wake word's will be a second number when there is one.
- ``sensor`` **Last transcript**, **Last intent** (with the slots, outcome and reply as JSON
  attributes) and **Latency** (end of speech -> action, ms) after each utterance.

Everything is re-published when Home Assistant's birth message (``<discovery prefix>/status`` =
``online``) arrives, so a Home Assistant restarted later still finds the box. Its own connection
(client id ``<mqtt.client_id>-box``) so a backend outage or reset never takes the controls down;
the broker settings are ``[mqtt]``'s. Hand-written over paho because no library of the field
publishes discovery for a client that is not itself a Home Assistant integration.
"""

from __future__ import annotations

import json
import logging
import socket
import threading
from dataclasses import dataclass, field

from casavox.edge_app.backends.mqtt import MqttSettings, topic_problem

log = logging.getLogger(__name__)

SENSOR_STATE_MAX = 255  # Home Assistant rejects longer sensor states


@dataclass(frozen=True)
class DiscoverySettings:
    enabled: bool = False
    prefix: str = "homeassistant"  # Home Assistant's discovery prefix (its MQTT integration's setting)
    node_id: str = ""  # "" = this machine's host name; letters, digits, _ and - only
    name: str = ""  # the device's name in Home Assistant; "" = "casavox <node_id>"


def node_id(settings: DiscoverySettings) -> str:
    raw = settings.node_id or socket.gethostname()
    clean = "".join(c if c.isalnum() or c in "_-" else "_" for c in raw.lower()).strip("_") or "box"
    return clean[:64]


@dataclass
class BoxControls:
    """What Home Assistant may change on the box, shared with the daemon's loop (thread-safe)."""

    muted: threading.Event = field(default_factory=threading.Event)
    threshold: float = 0.5

    def set_threshold(self, value: float) -> float:
        self.threshold = min(0.9, max(0.1, float(value)))
        return self.threshold


@dataclass
class BoxAnnouncer:
    """One MQTT connection publishing the box's discovery, state and telemetry."""

    settings: DiscoverySettings
    mqtt: MqttSettings
    controls: BoxControls
    version: str = ""
    connected: threading.Event = field(default_factory=threading.Event)
    announced: int = 0  # how many times the discovery configs were published (tests, logs)

    def __post_init__(self) -> None:
        self.node = node_id(self.settings)
        self.base = f"{self.mqtt.prefix}/box/{self.node}"
        problem = topic_problem(self.base) or topic_problem(self.settings.prefix)
        if problem:
            from casavox.edge_app.config import ConfigError

            raise ConfigError(f"discovery topic {self.base!r} {problem}")
        self.availability = f"{self.base}/availability"
        self._last: dict[str, str] = {}

    # ---- topics and configs -------------------------------------------------------------
    def topic(self, obj: str, what: str) -> str:
        return f"{self.base}/{obj}/{what}"

    def configs(self) -> dict[str, dict]:
        """Discovery topic -> config payload, for every entity of the box."""
        device = {
            "identifiers": [f"casavox_{self.node}"],
            "name": self.settings.name or f"casavox {self.node}",
            "manufacturer": "casavox",
            "model": "voice box",
            "sw_version": self.version,
        }

        def entity(component: str, obj: str, name: str, **extra) -> tuple[str, dict]:
            payload = {
                "name": name,
                "unique_id": f"casavox_{self.node}_{obj}",
                "object_id": f"casavox_{self.node}_{obj}",
                "state_topic": self.topic(obj, "state"),
                "availability_topic": self.availability,
                "device": device,
                **extra,
            }
            return f"{self.settings.prefix}/{component}/{self.node}/{obj}/config", payload

        items = [
            entity(
                "switch", "mute", "Mute", command_topic=self.topic("mute", "set"), icon="mdi:microphone-off"
            ),
            entity(
                "number",
                "speech_threshold",
                "Speech threshold",
                command_topic=self.topic("speech_threshold", "set"),
                min=0.1,
                max=0.9,
                step=0.05,
                mode="slider",
                entity_category="config",
            ),  # fmt: skip
            entity("sensor", "last_transcript", "Last transcript", icon="mdi:text"),
            entity(
                "sensor",
                "last_intent",
                "Last intent",
                icon="mdi:target",
                json_attributes_topic=self.topic("last_intent", "attributes"),
            ),  # fmt: skip
            entity(
                "sensor",
                "latency",
                "Latency",
                unit_of_measurement="ms",
                device_class="duration",
                state_class="measurement",
                entity_category="diagnostic",
            ),  # fmt: skip
        ]
        return dict(items)

    # ---- connection -------------------------------------------------------------------
    def start(self) -> BoxAnnouncer:
        import paho.mqtt.client as mqtt

        s = self.mqtt
        self.client = mqtt.Client(
            mqtt.CallbackAPIVersion.VERSION2, client_id=f"{s.client_id}-box-{self.node}"
        )
        if s.username:
            self.client.username_pw_set(s.username, s.password())
        if s.tls:
            self.client.tls_set()
        self.client.will_set(self.availability, "offline", qos=1, retain=True)
        self.client.reconnect_delay_set(min_delay=1, max_delay=30)
        self.client.suppress_exceptions = True
        self.client.on_connect = self._on_connect
        self.client.on_disconnect = lambda *_: self.connected.clear()
        self.client.on_message = self._on_message
        self.client.connect_async(s.host, s.port, keepalive=30)
        self.client.loop_start()
        self.connected.wait(s.connect_timeout_s)
        return self

    def close(self) -> None:
        client = getattr(self, "client", None)
        if client is None:
            return
        if self.connected.is_set():
            client.publish(self.availability, "offline", qos=1, retain=True).wait_for_publish(2.0)
        client.disconnect()
        client.loop_stop()

    def _publish(self, topic: str, payload: str, retain: bool = True) -> None:
        self.client.publish(topic, payload, qos=1, retain=retain)

    def announce(self) -> None:
        """Discovery configs, availability and the current state of every entity."""
        for topic, payload in self.configs().items():
            self._publish(topic, json.dumps(payload))
        self._publish(self.availability, "online")
        self._publish(self.topic("mute", "state"), "ON" if self.controls.muted.is_set() else "OFF")
        self._publish(self.topic("speech_threshold", "state"), f"{self.controls.threshold:g}")
        for topic, payload in self._last.items():
            self._publish(topic, payload)
        self.announced += 1
        log.info(
            "announced the box to Home Assistant as casavox_%s (%d entities)", self.node, len(self.configs())
        )

    def _on_connect(self, client, _userdata, _flags, reason, _props) -> None:
        if reason.is_failure:
            log.warning("box MQTT: connection refused (%s)", reason)
            return
        client.subscribe(
            [
                (f"{self.settings.prefix}/status", 1),
                (self.topic("mute", "set"), 1),
                (self.topic("speech_threshold", "set"), 1),
            ]
        )
        self.announce()
        self.connected.set()

    def _on_message(self, _client, _userdata, message) -> None:
        try:
            payload = message.payload.decode("utf-8", "replace").strip()
            if message.topic == f"{self.settings.prefix}/status":
                if payload == "online":  # Home Assistant (re)started: it forgot non-retained state
                    self.announce()
            elif message.topic == self.topic("mute", "set"):
                if payload.upper() not in ("ON", "OFF"):
                    log.warning("box MQTT: mute command %r is neither ON nor OFF; ignored", payload[:40])
                    return
                (self.controls.muted.set if payload.upper() == "ON" else self.controls.muted.clear)()
                self._publish(self.topic("mute", "state"), "ON" if self.controls.muted.is_set() else "OFF")
                log.info("box MQTT: %s", "muted" if self.controls.muted.is_set() else "unmuted")
            elif message.topic == self.topic("speech_threshold", "set"):
                try:
                    value = self.controls.set_threshold(float(payload))
                except ValueError:
                    log.warning("box MQTT: speech threshold %r is not a number; ignored", payload[:40])
                    return
                self._publish(self.topic("speech_threshold", "state"), f"{value:g}")
        except Exception:  # noqa: BLE001 - paho's thread must survive any message
            log.exception("box MQTT: message on %s", message.topic)

    # ---- telemetry --------------------------------------------------------------------
    def observe(self, record: dict) -> None:
        """After each utterance (the daemon's JSON record): transcript, intent, latency."""
        intent = record.get("intent") or {}
        name = intent.get("name") or ("several" if intent.get("intents") else "none")
        attributes = {
            "slots": intent.get("slots", {}),
            "intents": intent.get("intents", []),
            "source": intent.get("source", ""),
            "outcome": record.get("outcome", ""),
            "reply": record.get("reply", ""),
        }
        updates = {
            self.topic("last_transcript", "state"): (record.get("text") or "")[:SENSOR_STATE_MAX],
            self.topic("last_intent", "state"): name,
            self.topic("last_intent", "attributes"): json.dumps(attributes, ensure_ascii=False),
        }
        latency = record.get("timings_ms", {}).get("eos_to_action_ms")
        if latency is not None:
            updates[self.topic("latency", "state")] = f"{latency:.0f}"
        self._last.update(updates)
        if getattr(self, "client", None) is not None:
            for topic, payload in updates.items():
                self._publish(topic, payload)
