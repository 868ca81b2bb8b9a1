"""casavox against a REAL Home Assistant on loopback (tests/ha_instance.py installs and starts it).

One Home Assistant per module, reset to the home file's states before every test. casavox's own
``hass`` backend and conversation turn act on it (Home Assistant's templates understand the text:
no model bundle, no LLM), and every outcome is read back from Home Assistant's REST or websocket
API, never from casavox. The parity test runs the same service calls on Home Assistant and on the
simulated home (``sim``) and compares what both report. Skipped, with the reason, where Home Assistant
cannot be installed or started.
"""

from __future__ import annotations

import json
import logging
import os
import time
from pathlib import Path

import pytest
import yaml

from casavox.edge_app.actions import ServiceCall, plan
from casavox.edge_app.assistant import Assistant
from casavox.edge_app.backends import DeliveryError
from casavox.edge_app.backends.hass import HassBackend, HassSettings
from casavox.edge_app.backends.sim import SimBackend
from casavox.edge_app.config import SafetySettings
from casavox.edge_app.state_store import StateStore
from casavox.edge_app.timers import Timers
from casavox.runtime.home import home_from_dict, load_home
from casavox.runtime.intents.engine import IntentEngine
from casavox.runtime.intents.result import Intent
from tests.ha_instance import HOME_YAML, RunningHa

ROOT = Path(__file__).resolve().parents[1]
CACHE = Path(os.environ.get("CASAVOX_TEST_CACHE") or ROOT / ".cache")  # as conftest.py's
log = logging.getLogger(__name__)


@pytest.fixture(scope="module")
def ha(home_assistant) -> RunningHa:
    """The session's real Home Assistant (tests/conftest.py ``home_assistant``)."""
    return home_assistant


@pytest.fixture()
def house(ha: RunningHa) -> RunningHa:
    ha.reset()
    return ha


@pytest.fixture(scope="module")
def home(ha: RunningHa):
    return load_home(ha.home_yaml)


@pytest.fixture(scope="module")
def engine(home, ha_intents):
    return IntentEngine.build(home, None, ha_intents)  # templates only


@pytest.fixture()
def backend(ha: RunningHa) -> HassBackend:
    return HassBackend(HassSettings(url=ha.url, token_file=str(ha.token_file)))


@pytest.fixture()
def assistant(house, home, engine, backend, tmp_path):
    store = StateStore.open(tmp_path / "state.sqlite")
    yield Assistant(
        home=home,
        understand=lambda text, area: engine.parse(text, area),
        backend=backend,
        timers=Timers(store),
        safety=SafetySettings(confirm="ask"),
    )
    store.close()


def expect(ha: RunningHa, entity_id: str, state: str | None = None, **attributes) -> dict:
    """Home Assistant's state of ``entity_id`` once it shows ``state`` and ``attributes`` (template
    entities follow their helpers a moment after the service call returns); fails with what it shows."""
    last: dict = {}

    def matches() -> bool:
        nonlocal last
        last = ha.state(entity_id) or {}
        attrs = last.get("attributes", {})
        return (state is None or last.get("state") == state) and all(
            attrs.get(k) == v for k, v in attributes.items()
        )

    try:
        ha.wait_for(matches, 5, entity_id)
    except TimeoutError:
        shown = {k: last.get("attributes", {}).get(k) for k in attributes}
        pytest.fail(
            f"{entity_id}: Home Assistant shows {last.get('state')!r} {shown}, expected {state!r} {attributes}"
        )
    return last


def say(assistant: Assistant, text: str, outcome: str = "acted"):
    turn = assistant.handle(text)
    assert turn.outcome == outcome, (text, turn.to_json())
    if outcome == "acted":
        assert turn.delivered and not turn.errors, (text, turn.to_json())
    return turn


# ---- one turn per command, checked on Home Assistant ------------------------------------------
def test_light_on_brightness_colour_off(assistant, house) -> None:
    assert say(assistant, "turn on the kitchen light").reply == "Turned on Kitchen Light"
    expect(house, "light.kitchen_light", "on", brightness=255)
    say(assistant, "set the kitchen light to 40%")
    expect(house, "light.kitchen_light", "on", brightness=102)
    say(assistant, "set the kitchen light to red")
    expect(house, "light.kitchen_light", "on", rgb_color=[255, 0, 0], brightness=102)
    say(assistant, "turn off the kitchen light")
    expect(house, "light.kitchen_light", "off", brightness=None)
    say(assistant, "turn on the kitchen light")  # a dimmer comes back at its last level
    expect(house, "light.kitchen_light", "on", brightness=102)


def test_switch(assistant, house) -> None:
    say(assistant, "turn on the coffee maker")
    expect(house, "switch.coffee_maker", "on")
    say(assistant, "turn off the coffee maker")
    expect(house, "switch.coffee_maker", "off")


def test_fan_on_speed_off(assistant, house) -> None:
    say(assistant, "turn on the ceiling fan")
    expect(house, "fan.ceiling_fan", "on", percentage=100)
    say(assistant, "set the ceiling fan to 40%")
    expect(house, "fan.ceiling_fan", "on", percentage=40)
    say(assistant, "turn off the ceiling fan")
    expect(house, "fan.ceiling_fan", "off", percentage=0)


def test_cover_open_position_close(assistant, house) -> None:
    say(assistant, "open the living room blinds")
    expect(house, "cover.living_room_blinds", "open", current_position=100)
    say(assistant, "set the living room blinds to 40%")
    expect(house, "cover.living_room_blinds", "open", current_position=40)
    say(assistant, "close the living room blinds")
    expect(house, "cover.living_room_blinds", "closed", current_position=0)


def test_thermostat_temperature_and_the_room_temperature_from_home_assistant(assistant, house) -> None:
    say(assistant, "set the thermostat to 23 degrees")
    expect(house, "climate.thermostat", "heat", temperature=23.0)
    say(assistant, "set the temperature to 23.5")
    expect(house, "climate.thermostat", "heat", temperature=23.5)
    # Home Assistant's sensor changes behind casavox's back: the answer is Home Assistant's, not the file's
    house.service("input_number", "set_value", entity_id="input_number.room_temperature", value=18.2)
    expect(house, "climate.thermostat", current_temperature=18.2)
    turn = say(assistant, "what is the temperature in the living room")
    assert "18.2" in turn.reply, turn.reply


def test_lock_asks_first_then_unlocks(assistant, house) -> None:
    turn = say(assistant, "unlock the front door", outcome="asked")
    assert "Front Door" in turn.reply
    expect(house, "lock.front_door", "locked")  # nothing happened before the answer
    say(assistant, "yes", outcome="confirmed")
    expect(house, "lock.front_door", "unlocked")


def test_state_questions_are_answered_from_home_assistant(assistant, house) -> None:
    assert say(assistant, "is the front door locked").reply == "Yes"
    house.service("lock", "unlock", entity_id="lock.front_door")  # someone unlocks it by hand
    expect(house, "lock.front_door", "unlocked")
    assert say(assistant, "is the front door locked").reply == "No, Front Door is unlocked"
    house.service("switch", "turn_on", entity_id="switch.coffee_maker")
    expect(house, "switch.coffee_maker", "on")
    assert say(assistant, "is the coffee maker on").reply == "Yes"


def test_media_player(assistant, house) -> None:
    say(assistant, "turn on the tv")
    expect(house, "media_player.tv", "on", volume_level=0.3)
    say(assistant, "set the tv volume to 40%")
    expect(house, "media_player.tv", "on", volume_level=0.4)
    say(assistant, "turn up the tv volume")  # relative: from the level Home Assistant reports
    expect(house, "media_player.tv", volume_level=0.5)
    say(assistant, "mute the tv")
    expect(house, "media_player.tv", is_volume_muted=True)
    say(assistant, "play jazz on the tv")
    expect(house, "media_player.tv", "playing")
    assert house.state("input_text.tv_media")["state"] == "jazz"
    say(assistant, "pause the tv")
    expect(house, "media_player.tv", "paused")


def test_todo_and_shopping_list(assistant, house, home, backend) -> None:
    say(assistant, "add milk to my shopping list")
    expect(house, "todo.shopping_list", "1")
    for call in plan(Intent("HassShoppingListAddItem", {"item": "eggs"}), home).calls:  # todo.add_item
        backend.call(call)
    expect(house, "todo.shopping_list", "2")
    # a home file without the to-do entity: the legacy shopping_list.add_item service, same list
    legacy = home_from_dict({**yaml.safe_load(HOME_YAML), "entities": [
        e for e in yaml.safe_load(HOME_YAML)["entities"] if e["id"] != "todo.shopping_list"
    ]})  # fmt: skip
    calls = plan(Intent("HassShoppingListAddItem", {"item": "apples"}), legacy).calls
    assert [(c.domain, c.service) for c in calls] == [("shopping_list", "add_item")]
    for call in calls:
        backend.call(call)
    expect(house, "todo.shopping_list", "3")
    say(assistant, "check off milk from my shopping list")
    expect(house, "todo.shopping_list", "2")
    items = {i["summary"]: i["status"] for i in house.todo_items()}
    assert items == {"milk": "completed", "eggs": "needs_action", "apples": "needs_action"}


def test_checking_off_an_item_not_on_the_list_is_refused(assistant, house) -> None:
    say(assistant, "add milk to my shopping list")
    expect(house, "todo.shopping_list", "1")
    turn = say(assistant, "check off bread from my shopping list", outcome="failed")
    # Home Assistant answers a ServiceValidationError ("Unable to find to-do list item: bread") over
    # REST as HTTP 500 with no reason in the body: casavox can only say the status
    assert "\n" not in turn.reply and "todo/update_item" in turn.reply, turn.reply
    assert [(i["summary"], i["status"]) for i in house.todo_items()] == [("milk", "needs_action")]


def test_vacuum_script_scene_and_helper(assistant, house) -> None:
    say(assistant, "start the robot vacuum")
    expect(house, "vacuum.robot", "cleaning")
    say(assistant, "return the robot vacuum to base")
    expect(house, "vacuum.robot", "returning")
    say(assistant, "turn on guest mode")
    expect(house, "input_boolean.guest_mode", "on")
    say(assistant, "run movie night")
    expect(house, "input_boolean.movie_mode", "on")  # what the script does
    say(assistant, "activate evening")
    expect(house, "light.bedroom_lamp", "on")  # what the scene sets


def test_every_planned_service_is_one_home_assistant_accepts(house, home, backend) -> None:
    """casavox's plans for each domain, sent as they are: none is refused (HTTP 400) by Home Assistant."""
    intents = [
        Intent("HassTurnOn", {"name": "Bedroom Lamp"}),
        Intent("HassToggle", {"name": "Coffee Maker"}),
        Intent("HassLightSet", {"name": "Kitchen Light", "brightness": 0}),
        Intent("HassFanSetSpeed", {"name": "Ceiling Fan", "percentage": 0}),
        Intent("HassSetPosition", {"name": "Living Room Blinds", "position": 100}),
        Intent("HassTurnOff", {"name": "Thermostat"}),
        Intent("HassTurnOn", {"name": "Front Door"}),
        Intent("HassTurnOn", {"name": "TV"}),
        Intent("HassMediaPlayerUnmute", {"name": "TV"}),
        Intent("HassMediaNext", {"name": "TV"}),
        Intent("HassMediaPrevious", {"name": "TV"}),
        Intent("HassMediaUnpause", {"name": "TV"}),
        Intent("HassTurnOff", {"name": "TV"}),
        Intent("HassVacuumStart", {"name": "Robot Vacuum"}),
    ]
    refused = []
    for intent in intents:
        for call in plan(intent, home).calls:
            try:
                backend.call(call)
            except DeliveryError as exc:
                refused.append(f"{call.domain}.{call.service} {call.data}: {exc}")
    assert refused == []
    expect(house, "light.kitchen_light", "off")  # brightness 0 is off
    expect(house, "fan.ceiling_fan", "off", percentage=0)
    expect(house, "climate.thermostat", "off")
    expect(house, "media_player.tv", "off")


# ---- failures are one clear line, and change nothing --------------------------------------------
def test_a_wrong_token_is_one_clear_line_and_changes_nothing(house, home, engine, tmp_path) -> None:
    (tmp_path / "token").write_text("not-the-token\n")
    backend = HassBackend(HassSettings(url=house.url, token_file=str(tmp_path / "token")))
    store = StateStore.open(tmp_path / "state.sqlite")
    assistant = Assistant(home, lambda t, a: engine.parse(t, a), backend, Timers(store))
    turn = assistant.handle("turn on the coffee maker")
    store.close()
    assert turn.outcome == "failed" and not turn.delivered
    assert "\n" not in turn.reply and "token rejected" in turn.reply and "not-the-token" not in turn.reply
    assert turn.reply.startswith("Sorry, that did not work: Home Assistant POST /api/services/switch/turn_on")
    with pytest.raises(DeliveryError, match="token rejected"):
        backend.state("switch.coffee_maker")
    expect(house, "switch.coffee_maker", "off")


# ---- the CLI, as a user runs it ---------------------------------------------------------------
def _cli(monkeypatch, engine, config: Path, state: Path, *texts: str) -> int:
    """``casavox handle --backend hass --no-llm TEXT...`` in this process; only the model loading is
    replaced by the templates-only engine (no bundle needed)."""
    from casavox.edge_app import app, cli

    class TemplatesOnly:
        def parse(self, text, area=None):
            return engine.parse(text, area)

    monkeypatch.setattr(app, "load_pipeline", lambda config, home: TemplatesOnly())
    argv = ["handle", *texts, "--backend", "hass", "--no-llm", "--config", str(config), "--state", str(state)]
    return cli.main([*argv, "--json"])


def _config(tmp_path: Path, ha: RunningHa, token_file: Path) -> Path:
    config = tmp_path / "casavox.toml"
    config.write_text(
        f'home = "{ha.home_yaml}"\nbackend = "hass"\nllm = false\n'
        f'[hass]\nurl = "{ha.url}"\ntoken_file = "{token_file}"\n'
    )
    return config


def test_cli_handle_acts_on_home_assistant(house, engine, tmp_path, monkeypatch, capsys) -> None:
    config = _config(tmp_path, house, house.token_file)
    rc = _cli(monkeypatch, engine, config, tmp_path / "s.sqlite",
                 "turn on the coffee maker", "open the living room blinds", "is the coffee maker on")  # fmt: skip
    out = capsys.readouterr().out.strip().splitlines()
    assert rc == 0, out
    turns = [json.loads(line) for line in out]
    assert [t["reply"] for t in turns] == ["Turned on Coffee Maker", "Opened Living Room Blinds", "Yes"]
    assert all(t["delivered"] for t in turns)
    expect(house, "switch.coffee_maker", "on")
    expect(house, "cover.living_room_blinds", "open", current_position=100)


def test_cli_with_a_wrong_token_says_so_in_one_line(house, engine, tmp_path, monkeypatch, capsys) -> None:
    (tmp_path / "token").write_text("not-the-token\n")
    config = _config(tmp_path, house, tmp_path / "token")
    rc = _cli(monkeypatch, engine, config, tmp_path / "s.sqlite", "turn on the coffee maker")
    captured = capsys.readouterr()
    # The home is read from Home Assistant first (hass.read_home), so a wrong token stops the command
    # at start, in one line, before any sentence is handled.
    errors = captured.err.strip().splitlines()
    assert rc == 1 and captured.out == "" and len(errors) == 1, captured
    assert errors[0].startswith("casavox: error: ") and "token rejected" in errors[0], errors
    assert "not-the-token" not in captured.out + captured.err
    expect(house, "switch.coffee_maker", "off")


# ---- parity: the simulated home does what Home Assistant does ----------------------------------
L, S, F, C = "light.kitchen_light", "switch.coffee_maker", "fan.ceiling_fan", "cover.living_room_blinds"
T, K, M, V, TODO = (
    "climate.thermostat",
    "lock.front_door",
    "media_player.tv",
    "vacuum.robot",
    "todo.shopping_list",
)
PARITY_CALLS = [
    ServiceCall("light", "turn_on", (L,), {"brightness_pct": 40}),
    ServiceCall("light", "turn_off", (L,)),
    ServiceCall("light", "turn_on", (L,)),
    ServiceCall("light", "turn_on", (L,), {"color_name": "red"}),
    ServiceCall("light", "turn_on", (L,), {"brightness_pct": 0}),
    ServiceCall("switch", "turn_on", (S,)),
    ServiceCall("switch", "toggle", (S,)),
    ServiceCall("fan", "turn_on", (F,)),
    ServiceCall("fan", "set_percentage", (F,), {"percentage": 40}),
    ServiceCall("fan", "turn_off", (F,)),
    ServiceCall("fan", "turn_on", (F,)),
    ServiceCall("fan", "set_percentage", (F,), {"percentage": 0}),
    ServiceCall("cover", "open_cover", (C,)),
    ServiceCall("cover", "set_cover_position", (C,), {"position": 40}),
    ServiceCall("cover", "close_cover", (C,)),
    ServiceCall("climate", "set_temperature", (T,), {"temperature": 23.5}),
    ServiceCall("climate", "turn_off", (T,)),
    ServiceCall("climate", "set_temperature", (T,), {"temperature": 20.0}),
    ServiceCall("lock", "unlock", (K,)),
    ServiceCall("lock", "lock", (K,)),
    ServiceCall("media_player", "turn_on", (M,)),
    ServiceCall("media_player", "volume_set", (M,), {"volume_level": 0.45}),
    ServiceCall("media_player", "volume_mute", (M,), {"is_volume_muted": True}),
    ServiceCall("media_player", "media_pause", (M,)),
    ServiceCall("media_player", "turn_off", (M,)),
    ServiceCall("vacuum", "start", (V,)),
    ServiceCall("vacuum", "return_to_base", (V,)),
    ServiceCall("input_boolean", "turn_on", ("input_boolean.guest_mode",)),
    ServiceCall("todo", "add_item", (TODO,), {"item": "milk"}),
    ServiceCall("shopping_list", "add_item", (), {"name": "apples"}),
    ServiceCall("todo", "update_item", (TODO,), {"item": "milk", "status": "completed"}),
]
# The attributes that matter, per domain (what casavox reads back, and what a user would ask about).
COMPARED = {
    "light": ("brightness",),
    "fan": ("percentage",),
    "cover": ("current_position",),
    "climate": ("temperature", "current_temperature"),
    "media_player": ("volume_level", "is_volume_muted"),
}
# ...and for a call with this data key, these too (a colour is compared where one was asked for).
COMPARED_FOR_DATA = {"color_name": ("color_name", "rgb_color")}


def _keys(entity_id: str, call: ServiceCall | None) -> tuple[str, ...]:
    extra = [k for d in (call.data if call else {}) for k in COMPARED_FOR_DATA.get(d, ())]
    return (*COMPARED.get(entity_id.split(".")[0], ()), *extra)


def _call_text(call: ServiceCall) -> str:
    data = f" {json.dumps(call.data)}" if call.data else ""
    return f"{call.domain}.{call.service}({', '.join(call.entity_ids)}){data}"


def _ha_view(ha: RunningHa, entity_id: str, call: ServiceCall | None = None) -> dict:
    state = ha.state(entity_id) or {}
    attrs = state.get("attributes", {})
    view = {"state": state.get("state")}
    for key in _keys(entity_id, call):
        value = attrs.get(key)
        view[key] = list(value) if isinstance(value, (list, tuple)) else value
    if entity_id.startswith("todo."):
        view["items"] = sorted((i["summary"], i["status"] == "completed") for i in ha.todo_items(entity_id))
    return view


def _sim_view(sim: SimBackend, store: StateStore, entity_id: str, call: ServiceCall | None = None) -> dict:
    state = sim.state(entity_id)
    attrs = state.attributes if state else {}
    view = {"state": state.state if state else None}
    for key in _keys(entity_id, call):
        value = attrs.get(key)
        view[key] = list(value) if isinstance(value, (list, tuple)) else value
    if entity_id.startswith("todo."):
        view["items"] = sorted((item, done) for item, done in store.items(entity_id))
    return view


def _settled(ha: RunningHa, entity_id: str, call: ServiceCall) -> dict:
    """Home Assistant's view once two reads 0.3 s apart agree (template entities follow their helpers
    a moment after the service call returns)."""
    view = _ha_view(ha, entity_id, call)
    for _ in range(10):
        time.sleep(0.3)
        again = _ha_view(ha, entity_id, call)
        if again == view:
            break
        view = again
    return view


def test_sim_does_what_home_assistant_does(house, home, backend, tmp_path) -> None:
    """Each call on both, then the touched entity's state and attributes compared. Every difference
    is listed (call, entity, attribute, Home Assistant's value, sim's value)."""
    store = StateStore.open(tmp_path / "sim.sqlite")
    sim = SimBackend.open(home, store)
    differences = []
    for entity_id in sorted({e for c in PARITY_CALLS for e in c.entity_ids}):  # the same start
        ha_view, sim_view = _ha_view(house, entity_id), _sim_view(sim, store, entity_id)
        differences += [
            f"(start) {entity_id} {k}: HA={ha_view[k]!r} sim={sim_view.get(k)!r}"
            for k in ha_view
            if ha_view[k] != sim_view.get(k)
        ]
    for call in PARITY_CALLS:
        backend.call(call)
        sim.call(call)
        touched = call.entity_ids or (TODO,)  # the shopping list is Home Assistant's todo.shopping_list
        for entity_id in touched:
            ha_view, sim_view = _settled(house, entity_id, call), _sim_view(sim, store, entity_id, call)
            differences += [
                f"{_call_text(call)} -> {entity_id} {k}: HA={ha_view[k]!r} sim={sim_view.get(k)!r}"
                for k in ha_view
                if ha_view[k] != sim_view.get(k)
            ]
    store.close()
    assert differences == [], f"sim differs from Home Assistant {house.version}:\n" + "\n".join(differences)
