"""The bundle's intent spec (export/llm/spec.py): the grammar can only say what the spec allows, so
values the templates know must be there even where a data sample never showed them."""

from __future__ import annotations

from casavox.export.llm.dataset import Example
from casavox.export.llm.spec import intent_spec


def _example(name: str, slots: dict) -> Example:
    return Example(prompt="", target="", kind="template", intents=[{"name": name, "slots": slots}])


def test_spec_takes_values_and_ranges_from_home_assistants_templates(ha_intents) -> None:
    data = [
        _example("HassGetState", {"domain": "binary_sensor", "device_class": "smoke", "state": "on"}),
        _example("HassGetState", {"name": "Kitchen Lamp", "area": "Kitchen"}),
        _example("HassTimerStatus", {"start_minutes": 5}),
        _example("HassClimateSetTemperature", {"temperature": 21}),
        _example("HassSetVolumeRelative", {"volume_step": "up"}),
        _example("HassSetVolumeRelative", {"volume_step": 10}),
    ]
    spec = intent_spec(data, ha_intents)
    get = spec["intents"]["HassGetState"]
    # "how many lights are on?" / "are any switches on?": domains of a template list, not in the data
    assert {"light", "switch", "fan", "lock", "cover", "binary_sensor", "sensor"} <= set(
        get["domain"]["values"]
    )
    assert {"on", "off", "open", "closed", "locked"} <= set(get["state"]["values"])
    assert get["name"] == {"kind": "entity"} and get["area"] == {"kind": "area"}
    assert "floor" not in get  # names, areas and floors come from the data and the home, never a list
    # "status of the 1 hour timer": a slot only the templates had
    assert spec["intents"]["HassTimerStatus"]["start_hours"]["kind"] == "integer"
    # "set the temperature to 20.5": the template's range takes halves
    assert spec["intents"]["HassClimateSetTemperature"]["temperature"]["kind"] == "number"
    # a slot that is a word or a number stays an enum of what was seen plus the template's words
    step = spec["intents"]["HassSetVolumeRelative"]["volume_step"]
    assert step["kind"] == "enum" and {"up", "down", "10"} <= set(step["values"])
    assert set(spec["intents"]) == {e.intents[0]["name"] for e in data}  # only intents that were taught


def test_device_classes_are_recorded_per_domain(ha_intents) -> None:
    classes = intent_spec([], ha_intents)["domain_classes"]
    assert {"garage", "curtain", "shade"} <= set(classes["cover"])
    assert {"battery_charging", "light", "moisture"} <= set(classes["binary_sensor"])
    assert {"aqi", "humidity", "pm25"} <= set(classes["sensor"])
    assert not set(classes["cover"]) & {"battery", "aqi", "moisture"}
    assert not set(classes["binary_sensor"]) & {"curtain", "shade", "aqi"}
