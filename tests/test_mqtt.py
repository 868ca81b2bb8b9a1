"""The MQTT backend against a real mosquitto: Home Assistant topics and payloads, auth, outages."""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest

from casavox.edge_app.actions import plan
from casavox.edge_app.backends import DeliveryError
from casavox.edge_app.backends.mqtt import MqttBackend, MqttSettings
from casavox.runtime.home import load_home
from casavox.runtime.intents.result import Intent
from tests.broker import Broker, Recorder

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture()
def home():
    return load_home(ROOT / "examples" / "home.yaml")


@pytest.fixture()
def broker(tmp_path):
    b = Broker(tmp_path).start()
    yield b
    b.stop()


def send(backend, home, intent: str, /, **slots) -> None:
    for call in plan(Intent(intent, slots), home).calls:
        backend.call(call)


def test_commands_follow_home_assistant_mqtt_conventions(home, broker) -> None:
    rec = Recorder(broker.port)
    backend = MqttBackend(home, MqttSettings(port=broker.port))
    try:
        send(backend, home, "HassLightSet", name="Bedroom Lamp", brightness=50)
        send(backend, home, "HassTurnOff", area="Kitchen", domain="light")
        send(backend, home, "HassSetPosition", name="Living Room Blinds", position=40)
        send(backend, home, "HassTurnOn", name="Coffee Maker")
        send(backend, home, "HassClimateSetTemperature", name="Thermostat", temperature=22)
        got = rec.wait_for(6)
    finally:
        backend.close()
        rec.close()
    assert got[0] == ("casavox/light/bedroom_lamp/set", json.dumps({"state": "ON", "brightness": 128}))
    assert set(got[1:3]) == {
        ("casavox/light/kitchen_ceiling/set", '{"state": "OFF"}'),
        ("casavox/light/kitchen_counter/set", '{"state": "OFF"}'),
    }
    assert got[3] == ("casavox/cover/living_room_blinds/position/set", "40")
    assert got[4] == ("casavox/switch/coffee_maker/set", "ON")
    assert got[5] == ("casavox/climate/thermostat/temperature/set", "22.0")


def test_retained_state_answers_questions(home, broker) -> None:
    rec = Recorder(broker.port)
    rec.publish("casavox/lock/front_door/state", "UNLOCKED", retain=True)
    rec.publish("casavox/light/desk_lamp/state", json.dumps({"state": "ON", "brightness": 200}), retain=True)
    backend = MqttBackend(home, MqttSettings(port=broker.port))
    try:
        deadline = time.monotonic() + 5
        while len(backend.states) < 2 and time.monotonic() < deadline:
            time.sleep(0.02)
        assert backend.state("lock.front_door").state == "unlocked"
        assert backend.state("light.desk_lamp").attributes == {"brightness": 200}
    finally:
        backend.close()
        rec.close()


def test_auth_required(home, tmp_path, monkeypatch) -> None:
    broker = Broker(tmp_path, users={"casa": "s3cret"}).start()
    try:
        rec = Recorder(broker.port, username="casa", password="s3cret")
        wrong = MqttBackend(
            home,
            MqttSettings(port=broker.port, username="casa", password_env="NO_SUCH_VAR", connect_timeout_s=1),
        )
        with pytest.raises(DeliveryError, match="unreachable.*refused|not authorized|unreachable"):
            send(wrong, home, "HassTurnOn", name="Coffee Maker")
        wrong.close()
        monkeypatch.setenv("CASAVOX_MQTT_PASSWORD", "s3cret")
        right = MqttBackend(home, MqttSettings(port=broker.port, username="casa"))
        send(right, home, "HassTurnOn", name="Coffee Maker")
        assert rec.wait_for(1) == [("casavox/switch/coffee_maker/set", "ON")]
        right.close()
        rec.close()
    finally:
        broker.stop()


def test_broker_down_at_start_then_up(home, tmp_path) -> None:
    broker = Broker(tmp_path)  # not started yet
    backend = MqttBackend(home, MqttSettings(port=broker.port, connect_timeout_s=0.5))
    try:
        with pytest.raises(DeliveryError, match="unreachable"):
            send(backend, home, "HassTurnOn", name="Coffee Maker")
        broker.start()
        rec = Recorder(broker.port)
        deadline = time.monotonic() + 40  # paho's backoff (1 s, 2 s, ... capped at 30 s)
        while not backend._connected.is_set() and time.monotonic() < deadline:
            time.sleep(0.1)
        send(backend, home, "HassTurnOff", name="Coffee Maker")
        got = rec.wait_for(2, timeout=2)
        # the command that failed while the broker was down is NOT delivered behind the user's back
        assert got == [("casavox/switch/coffee_maker/set", "OFF")]
        rec.close()
    finally:
        backend.close()
        broker.stop()


def test_broker_restarted_mid_run(home, tmp_path) -> None:
    broker = Broker(tmp_path).start()
    backend = MqttBackend(home, MqttSettings(port=broker.port))
    try:
        send(backend, home, "HassTurnOn", name="Coffee Maker")
        broker.stop()
        time.sleep(0.3)
        with pytest.raises(DeliveryError, match="unreachable"):
            send(backend, home, "HassTurnOn", name="Desk Lamp")
        broker.start()
        rec = Recorder(broker.port)
        deadline = time.monotonic() + 40
        while not backend._connected.is_set() and time.monotonic() < deadline:
            time.sleep(0.1)
        send(backend, home, "HassTurnOff", name="Coffee Maker")
        assert rec.wait_for(2, timeout=2) == [("casavox/switch/coffee_maker/set", "OFF")]
        rec.close()
    finally:
        backend.close()
        broker.stop()
