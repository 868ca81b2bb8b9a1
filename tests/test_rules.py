"""Each rule around the model (runtime/intents/rules.py), on and switched off.

The rules after the model are applied to a model answer given as data (``LlmAnswer``: what the
grammar-constrained decoder returns), so each test shows exactly what one rule changes; the real
model's answers through the same rules are tested in test_intents.py and test_grounding.py.
"""

from __future__ import annotations

import json

import pytest

from casavox.runtime.home import home_from_dict
from casavox.runtime.intents.engine import IntentEngine
from casavox.runtime.intents.llm import LlmAnswer
from casavox.runtime.intents.rules import RULE_NAMES, UnknownRuleError, check_names

HOME = home_from_dict(
    {
        "areas": [{"name": "Kitchen", "id": "kitchen"}, {"name": "Office", "id": "office"}],
        "entities": [
            {"name": "Desk Lamp", "id": "light.desk_lamp", "area": "office", "state": "off"},
            {"name": "Kitchen Light", "id": "light.kitchen", "area": "kitchen", "state": "on"},
            {
                "name": "Garage Door",
                "id": "cover.garage_door",
                "state": "closed",
                "attributes": {"device_class": "garage"},
            },
        ],
    }
)


@pytest.fixture(scope="module")
def engine(ha_intents) -> IntentEngine:
    return IntentEngine.build(HOME, None, ha_intents)


def answer(intents: list[dict], confidence: float = 0.95) -> LlmAnswer:
    return LlmAnswer(intents, json.dumps(intents, separators=(",", ":")), confidence, 0, 0, 0, 0)


def without(engine: IntentEngine, *rules: str) -> IntentEngine:
    from dataclasses import replace

    return replace(engine, disabled=check_names(set(rules)))


def test_rules_are_one_ordered_list_with_unique_names() -> None:
    assert len(set(RULE_NAMES)) == len(RULE_NAMES)
    assert RULE_NAMES.index("refuse_non_commands") < RULE_NAMES.index("grounding")
    with pytest.raises(UnknownRuleError, match="unknown rule nope"):
        check_names({"nope"})


def test_refuse_non_commands(engine: IntentEngine) -> None:
    assert engine.parse("turn off the").reason.startswith("not a command: unfinished")
    assert without(engine, "refuse_non_commands").parse("turn off the").reason == "no template matched"


def test_split_commands(engine: IntentEngine) -> None:
    text = "turn on the desk lamp and then turn off the kitchen light"
    got = engine.parse(text)
    assert [(i.name, i.slots.get("name")) for i in got.intents] == [
        ("HassTurnOn", "Desk Lamp"),
        ("HassTurnOff", "Kitchen Light"),
    ]
    assert not without(engine, "split_commands").parse(text).understood


def test_absent_names(engine: IntentEngine) -> None:
    said = answer([{"name": "HassTurnOn", "slots": {"name": "?hot tub"}}])
    got = engine.finish("switch on the hot tub", None, said)
    assert not got.intents and got.reply == "Sorry, I am not aware of any device called hot tub"
    # The copy is checked against the words: a model's invention is never put in the speaker's mouth.
    invented = engine.finish(
        "switch on the hot tub", None, answer([{"name": "HassTurnOn", "slots": {"name": "?sauna"}}])
    )
    assert invented.reply == "Sorry, I am not aware of any device called hot tub"
    # Off, the name still is not one the home exposes: nothing is done either way.
    off = without(engine, "absent_names").finish("switch on the hot tub", None, said)
    assert not off.intents and "unknown name" in off.reason


def test_values_said(engine: IntentEngine) -> None:
    # The words settle the state asked about; the model's "open" does not stand against "closed".
    said = answer(
        [{"name": "HassGetState", "slots": {"name": "Garage Door", "domain": "cover", "state": "open"}}]
    )
    got = engine.finish("is the garage door closed", None, said)
    assert got.intents[0].slots["state"] == "closed"
    off = without(engine, "values_said").finish("is the garage door closed", None, said)
    assert off.intents[0].slots["state"] == "open"


def test_prefer_named_entity(engine: IntentEngine) -> None:
    said = answer([{"name": "HassTurnOff", "slots": {"domain": "cover", "device_class": "garage"}}])
    got = engine.finish("shut the garage door", None, said)
    assert got.intents[0].slots == {"name": "Garage Door"}
    off = without(engine, "prefer_named_entity").finish("shut the garage door", None, said)
    assert off.intents[0].slots == {"domain": "cover", "device_class": "garage"}


def test_places_as_said(engine: IntentEngine) -> None:
    said = answer([{"name": "HassTurnOn", "slots": {"name": "Desk Lamp", "area": "Kitchen"}}])
    got = engine.finish("turn on the desk lamp", None, said)
    assert got.intents[0].slots == {"name": "Desk Lamp"}
    off = without(engine, "places_as_said").finish("turn on the desk lamp", None, said)
    assert not off.intents and "no area called" in off.reason  # then grounding refuses the unsaid place


def test_grounding(engine: IntentEngine) -> None:
    # The grammar offers only the home's names; the words named none of them.
    said = answer([{"name": "HassTurnOn", "slots": {"name": "Desk Lamp"}}])
    got = engine.finish("switch on the hot tub", None, said)
    assert not got.intents and got.reply.startswith("Sorry, I am not aware of any device called")
    assert (
        without(engine, "grounding").finish("switch on the hot tub", None, said).intents
    )  # what it prevents


def test_confidence_floor(engine: IntentEngine) -> None:
    said = answer([{"name": "HassTurnOn", "slots": {"name": "Desk Lamp"}}], confidence=0.2)
    assert "low confidence" in engine.finish("turn on the desk lamp", None, said).reason
    assert without(engine, "confidence_floor").finish("turn on the desk lamp", None, said).intents
