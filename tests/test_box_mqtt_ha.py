"""The box appears in a REAL Home Assistant with no set-up: Home Assistant's own MQTT integration
(added through its config flow, on a real mosquitto) reads casavox's discovery configs, shows the
box's controls and telemetry as entities, and what is switched in Home Assistant reaches the box.
Skipped with the reason where Home Assistant cannot run here."""

from __future__ import annotations

import pytest

from casavox.edge_app.backends.mqtt import MqttSettings
from casavox.edge_app.box_mqtt import BoxAnnouncer, BoxControls, DiscoverySettings
from tests.broker import Broker
from tests.ha_instance import RunningHa

NODE = "hall_box"


@pytest.fixture()
def mqtt_ha(home_assistant: RunningHa, tmp_path):
    """Home Assistant's MQTT integration on a fresh broker; removed afterwards."""
    ha, broker = home_assistant, Broker(tmp_path).start()
    entry_id = None
    try:
        flow = ha.rest("POST", "/api/config/config_entries/flow", {"handler": "mqtt"})
        for _ in range(3):  # the broker form (2024.3, 2025.4); a release may show a menu before it
            if flow.get("type") == "menu":
                answer: dict = {"next_step_id": "broker"}
            elif flow.get("type") == "form" and flow.get("step_id") == "broker":
                answer = {"broker": "127.0.0.1", "port": broker.port}
            else:
                break
            flow = ha.rest("POST", f"/api/config/config_entries/flow/{flow['flow_id']}", answer)
        assert flow.get("type") == "create_entry", flow
        entry_id = flow["result"]["entry_id"]
        ha.wait_for(
            lambda: any(
                e["entry_id"] == entry_id and e["state"] == "loaded"
                for e in ha.rest("GET", "/api/config/config_entries/entry")
            ),
            60,
            "the MQTT entry loaded",
        )
        yield ha, broker
    finally:
        if entry_id is not None:
            ha.rest("DELETE", f"/api/config/config_entries/entry/{entry_id}")
        broker.stop()


def test_the_box_appears_in_home_assistant_and_obeys_it(mqtt_ha) -> None:
    ha, broker = mqtt_ha
    controls = BoxControls()
    box = BoxAnnouncer(
        DiscoverySettings(enabled=True, node_id=NODE, name="Hall box"),
        MqttSettings(port=broker.port),
        controls,
        "0.3.0",
    ).start()
    try:
        mute, threshold = f"switch.casavox_{NODE}_mute", f"number.casavox_{NODE}_speech_threshold"
        ha.shows(mute, "off", 15.0)
        assert float(ha.shows(threshold, "0.5", 15.0)["state"]) == 0.5
        # the box's telemetry, as a daemon reports it after an utterance
        box.observe({"text": "turn on the hall light", "intent": {"name": "HassTurnOn", "slots": {"name": "Hall"}},
                     "outcome": "acted", "timings_ms": {"eos_to_action_ms": 212.4}})  # fmt: skip
        ha.shows(f"sensor.casavox_{NODE}_last_transcript", "turn on the hall light", 15.0)
        ha.shows(f"sensor.casavox_{NODE}_last_intent", "HassTurnOn", 15.0)
        ha.shows(f"sensor.casavox_{NODE}_latency", "212", 15.0)
        # switched in Home Assistant, obeyed by the box
        ha.service("switch", "turn_on", entity_id=mute)
        ha.wait_for(controls.muted.is_set, 10, "the box muted")
        ha.shows(mute, "on", 15.0)
        ha.service("number", "set_value", entity_id=threshold, value=0.7)
        ha.wait_for(lambda: controls.threshold == 0.7, 10, "the box's threshold at 0.7")
        registry = ha.ws_call({"type": "config/device_registry/list"})
        device = next(d for d in registry if ["mqtt", f"casavox_{NODE}"] in d["identifiers"])
        assert device["name"] == "Hall box" and device["manufacturer"] == "casavox"
    finally:
        box.close()
    ha.shows(f"switch.casavox_{NODE}_mute", "unavailable", 15.0)  # the box said it is gone
