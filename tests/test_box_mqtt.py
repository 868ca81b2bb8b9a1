"""The box in Home Assistant over MQTT discovery (edge_app/box_mqtt.py), against a real mosquitto:
discovery configs as Home Assistant reads them, re-announced on Home Assistant's birth message,
mute and the speech threshold set from Home Assistant and obeyed by the daemon on real speech,
telemetry after each utterance, and a last will that marks the box unavailable."""

from __future__ import annotations

import json
import time
from pathlib import Path

import numpy as np
import pytest

from casavox.edge_app.backends.mqtt import MqttSettings
from casavox.edge_app.box_mqtt import BoxAnnouncer, BoxControls, DiscoverySettings
from tests.broker import Broker, Recorder

ROOT = Path(__file__).resolve().parents[1]
HOME = ROOT / "examples" / "home.yaml"


@pytest.fixture()
def broker(tmp_path):
    b = Broker(tmp_path).start()
    yield b
    b.stop()


def _until(check, timeout: float = 5.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():
            return True
        time.sleep(0.02)
    return check()


def _retained(port: int, prefix: str) -> dict[str, str]:
    """What a client connecting now (as Home Assistant would) gets under ``prefix``."""
    rec = Recorder(port, prefix=prefix)
    time.sleep(0.3)
    rec.close()
    return dict(rec.messages)


def test_discovery_configs_are_what_home_assistant_reads(broker) -> None:
    box = BoxAnnouncer(DiscoverySettings(enabled=True, node_id="Kitchen Box!"), MqttSettings(port=broker.port),
                       BoxControls(), "0.3.0").start()  # fmt: skip
    try:
        assert box.node == "kitchen_box"
        configs = _retained(broker.port, "homeassistant")
        assert set(configs) == {
            f"homeassistant/{c}/kitchen_box/{o}/config"
            for c, o in [("switch", "mute"), ("number", "speech_threshold"), ("sensor", "last_transcript"),
                         ("sensor", "last_intent"), ("sensor", "latency")]
        }  # fmt: skip
        payloads = [json.loads(p) for p in configs.values()]
        assert len({p["unique_id"] for p in payloads}) == 5
        for p in payloads:
            assert (
                p["device"]["identifiers"] == ["casavox_kitchen_box"] and p["device"]["sw_version"] == "0.3.0"
            )
            assert p["availability_topic"] == "casavox/box/kitchen_box/availability"
            assert p["state_topic"].startswith("casavox/box/kitchen_box/")
        switch = json.loads(configs["homeassistant/switch/kitchen_box/mute/config"])
        assert switch["command_topic"] == "casavox/box/kitchen_box/mute/set"
        state = _retained(broker.port, "casavox")
        assert state["casavox/box/kitchen_box/availability"] == "online"
        assert state["casavox/box/kitchen_box/mute/state"] == "OFF"
        assert state["casavox/box/kitchen_box/speech_threshold/state"] == "0.5"
    finally:
        box.close()
    assert _retained(broker.port, "casavox")["casavox/box/kitchen_box/availability"] == "offline"


def test_home_assistant_coming_online_gets_the_box_announced_again(broker) -> None:
    box = BoxAnnouncer(
        DiscoverySettings(enabled=True, node_id="b1"), MqttSettings(port=broker.port), BoxControls()
    )
    box.start()
    rec = Recorder(broker.port, prefix="homeassistant")
    try:
        first = box.announced
        rec.publish("homeassistant/status", "online")
        assert _until(lambda: box.announced == first + 1)
        rec.publish("homeassistant/status", "offline")
        time.sleep(0.3)
        assert box.announced == first + 1  # only the birth message re-announces
    finally:
        rec.close()
        box.close()


def test_controls_from_home_assistant_and_bad_commands(broker) -> None:
    controls = BoxControls()
    box = BoxAnnouncer(
        DiscoverySettings(enabled=True, node_id="b2"), MqttSettings(port=broker.port), controls
    )
    box.start()
    rec = Recorder(broker.port)
    try:
        rec.publish("casavox/box/b2/mute/set", "ON")
        assert _until(controls.muted.is_set)
        assert _until(lambda: ("casavox/box/b2/mute/state", "ON") in rec.messages)
        rec.publish("casavox/box/b2/mute/set", "maybe")  # ignored, stays muted
        rec.publish("casavox/box/b2/speech_threshold/set", "7")  # clamped to the range offered
        assert _until(lambda: controls.threshold == 0.9)
        rec.publish("casavox/box/b2/speech_threshold/set", "loud")  # ignored
        rec.publish("casavox/box/b2/mute/set", "OFF")
        assert _until(lambda: not controls.muted.is_set())
        assert controls.threshold == 0.9
    finally:
        rec.close()
        box.close()


@pytest.fixture(scope="module")
def pipeline(full_bundle):
    from casavox.edge_app.pipeline import SpeechPipeline
    from casavox.runtime.home import load_home

    return SpeechPipeline.load(str(full_bundle), load_home(HOME))


def test_the_daemon_obeys_mute_and_reports_each_utterance(
    broker, pipeline, full_bundle, tmp_path, say
) -> None:
    from casavox.edge_app.app import build_daemon
    from casavox.edge_app.config import load_config
    from casavox.edge_app.sources import frames_of

    config = load_config(
        None,
        {
            "bundle": str(full_bundle), "home": str(HOME), "state": str(tmp_path / "home.sqlite"),
            "log": {"json": "", "quiet": True}, "mqtt": {"port": broker.port},
            "discovery": {"enabled": True, "node_id": "den"},
        },
    )  # fmt: skip
    daemon, store = build_daemon(config, keep_records=True, pipeline=pipeline)
    rec = Recorder(broker.port)
    try:
        gap = np.zeros(16000, np.float32)
        command = np.concatenate([gap, say("turn on the coffee maker"), gap])
        daemon.controls.muted.set()
        assert daemon.run(frames_of(command)) == 0  # muted: nothing heard
        assert store.entities()["switch.coffee_maker"][0] == "off"
        daemon.controls.muted.clear()
        assert daemon.run(frames_of(command)) == 1
        assert store.entities()["switch.coffee_maker"][0] == "on"
        latest = {}
        assert _until(lambda: latest.update(rec.messages) or "casavox/box/den/latency/state" in latest)
        assert latest["casavox/box/den/last_transcript/state"].lower().startswith("turn on the coffee maker")
        assert latest["casavox/box/den/last_intent/state"] == "HassTurnOn"
        attributes = json.loads(latest["casavox/box/den/last_intent/attributes"])
        assert attributes["slots"] == {"name": "Coffee Maker"} and attributes["outcome"] == "acted"
        assert float(latest["casavox/box/den/latency/state"]) > 0
    finally:
        rec.close()
        daemon.box.close()
        daemon.backend.close()
        store.close()
