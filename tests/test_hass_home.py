"""The home read from a real Home Assistant's registries (edge_app/backends/hass_home.py), followed
while casavox runs: an entity renamed and one hidden from Assist in Home Assistant change what
casavox understands and acts on, with no restart; a YAML home laid over it adds aliases and can only
hide. Every action is checked on Home Assistant's own states."""

from __future__ import annotations

import time
from dataclasses import replace

import pytest

from casavox.edge_app.assistant import Assistant
from casavox.edge_app.backends.hass import HassBackend, HassSettings
from casavox.edge_app.backends.hass_home import HomeFollower, lay_over, read_home
from casavox.edge_app.config import SafetySettings
from casavox.edge_app.state_store import StateStore
from casavox.edge_app.timers import Timers
from casavox.runtime.home import home_from_dict
from casavox.runtime.intents.engine import IntentEngine


@pytest.fixture()
def ha(home_assistant):
    home_assistant.reset()
    return home_assistant


@pytest.fixture()
def settings(ha) -> HassSettings:
    return HassSettings(url=ha.url, token_file=str(ha.token_file))


def _expose(ha, entity_id: str, exposed: bool) -> None:
    ha.ws_call({"type": "homeassistant/expose_entity", "assistants": ["conversation"],
                "entity_ids": [entity_id], "should_expose": exposed})  # fmt: skip


def _rename(ha, entity_id: str, name: str | None) -> None:
    ha.ws_call({"type": "config/entity_registry/update", "entity_id": entity_id, "name": name})


def test_the_home_is_what_home_assistant_has(settings) -> None:
    home = read_home(settings)
    assert {"Kitchen", "Living Room", "Bedroom", "Hallway"} <= {a.name for a in home.areas}
    by_id = {e.id: e for e in home.entities}
    coffee = by_id["switch.coffee_maker"]
    assert coffee.name == "Coffee Maker" and coffee.area_id == "kitchen" and coffee.exposed
    assert by_id["switch.heater"].exposed is False  # Home Assistant does not expose it to Assist
    assert by_id["lock.front_door"].confirm is True and by_id["switch.coffee_maker"].confirm is False
    assert by_id["cover.living_room_blinds"].attributes["device_class"] == "blind"
    assert "friendly_name" not in coffee.attributes
    assert "switch.heater" not in {e.id for e in home.exposed}


def test_a_rename_and_a_hidden_entity_are_followed_while_casavox_runs(
    ha, settings, ha_intents, tmp_path
) -> None:
    home = read_home(settings)
    engine = {"now": IntentEngine.build(home, None, ha_intents)}
    store = StateStore.open(tmp_path / "timers.sqlite")
    assistant = Assistant(home, lambda t, a: engine["now"].parse(t, a), HassBackend(settings), Timers(store),
                          SafetySettings(confirm="ask"))  # fmt: skip

    def use_home(new_home) -> None:
        engine["now"] = IntentEngine.build(new_home, None, ha_intents)
        assistant.home = new_home

    follower = HomeFollower(settings, home, use_home, refresh_s=1.0).start()
    try:
        _rename(ha, "switch.coffee_maker", "Espresso Machine")
        _expose(ha, "light.bedroom_lamp", False)
        deadline = time.monotonic() + 15
        while follower.changes == 0 and time.monotonic() < deadline:
            time.sleep(0.2)
        assert follower.changes >= 1, "the follower did not see the change"
        follower.check()  # both changes in, whatever the timing of the two calls
        turn = assistant.handle("turn on the espresso machine")
        assert turn.outcome == "acted", turn.to_json()
        ha.wait_for(lambda: ha.state("switch.coffee_maker")["state"] == "on", 5, "the espresso machine on")
        hidden = assistant.handle("turn on the bedroom lamp")
        assert hidden.outcome in ("failed", "not_understood"), hidden.to_json()  # "no light in the Bedroom"
        assert not [c for a in hidden.acted for c in a.calls], hidden.to_json()
        time.sleep(0.5)
        assert ha.state("light.bedroom_lamp")["state"] == "off"
    finally:
        follower.stop()
        _rename(ha, "switch.coffee_maker", None)
        _expose(ha, "light.bedroom_lamp", True)
        store.close()
    assert follower.check() is True  # and back
    assert {e.id: e.name for e in follower.home.entities}["switch.coffee_maker"] == "Coffee Maker"


def test_a_yaml_home_laid_over_adds_aliases_and_can_only_hide(settings) -> None:
    overlay = home_from_dict(
        {
            "areas": [{"name": "(Kitchen|Galley)", "id": "kitchen"}, {"name": "Attic", "id": "attic"}],
            "entities": [
                {"name": "(Coffee Maker|Java Machine)", "id": "switch.coffee_maker", "area": "kitchen"},
                {"name": "Kitchen Light", "id": "light.kitchen_light", "exposed": False},
                {"name": "Heater", "id": "switch.heater"},  # exposed by default in YAML: stays hidden
                {"name": "Front Door", "id": "lock.front_door", "confirm": False},
                {"name": "Ghost Lamp", "id": "light.ghost_lamp"},  # not in Home Assistant
            ],
        }
    )
    home = read_home(settings, overlay)
    by_id = {e.id: e for e in home.entities}
    assert "Java Machine" in by_id["switch.coffee_maker"].aliases
    assert by_id["light.kitchen_light"].exposed is False and by_id["switch.heater"].exposed is False
    assert by_id["lock.front_door"].confirm is False  # the YAML may set confirm
    assert "light.ghost_lamp" not in by_id and "attic" not in {a.id for a in home.areas}
    assert "Galley" in next(a for a in home.areas if a.id == "kitchen").aliases
    assert lay_over(home, replace(overlay, entities=())) == replace(home, timers=overlay.timers)


def test_a_wrong_token_is_one_line_before_anything_loads(ha, tmp_path) -> None:
    (tmp_path / "token").write_text("not-the-token\n")
    from casavox.edge_app.backends import DeliveryError

    with pytest.raises(DeliveryError, match="token rejected") as err:
        read_home(HassSettings(url=ha.url, token_file=str(tmp_path / "token")))
    assert "not-the-token" not in str(err.value) and "\n" not in str(err.value)


def test_casavox_handle_with_no_home_file_acts_on_home_assistants_home(
    ha, ha_intents, tmp_path, monkeypatch, capsys
) -> None:
    """`casavox handle --backend hass` with no `home`: the home comes from Home Assistant."""
    import json

    from casavox.edge_app import app, cli

    class TemplatesOnly:  # only the model loading is replaced (no bundle needed)
        def __init__(self, home):
            self.engine = IntentEngine.build(home, None, ha_intents)

        def parse(self, text, area=None):
            return self.engine.parse(text, area)

    monkeypatch.setattr(app, "load_pipeline", lambda config, home: TemplatesOnly(home))
    config = tmp_path / "casavox.toml"
    config.write_text(
        f'backend = "hass"\nllm = false\n[hass]\nurl = "{ha.url}"\ntoken_file = "{ha.token_file}"\n'
    )
    rc = cli.main(["handle", "turn on the coffee maker", "--config", str(config),
                   "--state", str(tmp_path / "s.sqlite"), "--json"])  # fmt: skip
    turn = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert rc == 0 and turn["outcome"] == "acted", turn
    ha.wait_for(lambda: ha.state("switch.coffee_maker")["state"] == "on", 5, "the coffee maker on")
