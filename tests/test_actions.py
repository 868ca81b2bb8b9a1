"""Intent -> plan -> simulated home, on a real SQLite file: Home Assistant semantics and safety."""

from __future__ import annotations

import os
import sqlite3
from pathlib import Path

import pytest

from casavox.edge_app.actions import plan
from casavox.edge_app.backends import DeliveryError
from casavox.edge_app.backends.sim import SimBackend
from casavox.edge_app.execute import execute
from casavox.edge_app.state_store import StateError, StateStore
from casavox.edge_app.timers import Timers
from casavox.runtime.home import home_from_dict, load_home
from casavox.runtime.intents.result import Intent

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture()
def home():
    return load_home(ROOT / "examples" / "home.yaml")


@pytest.fixture()
def sim(home, tmp_path):
    store = StateStore.open(tmp_path / "home.sqlite")
    yield SimBackend.open(home, store), store
    store.close()


def do(home, sim, intent: str, area: str | None = None, /, **slots):
    backend, store = sim
    return execute(plan(Intent(intent, slots), home, area), backend, Timers(store))


def state(sim, entity_id: str):
    return sim[1].entity(entity_id)


def test_turn_off_an_area_turns_off_only_its_lights(home, sim) -> None:
    out = do(home, sim, "HassTurnOff", area="Kitchen", domain="light")
    assert out.delivered and out.reply == "Turned off Kitchen Ceiling and Kitchen Counter Lights"
    assert state(sim, "light.kitchen_ceiling")[0] == "off" and state(sim, "light.kitchen_counter")[0] == "off"
    assert state(sim, "switch.coffee_maker")[0] == "off"  # in the kitchen, not a light
    assert state(sim, "light.desk_lamp")[0] == "off"  # untouched elsewhere


def test_home_assistant_service_semantics(home, sim) -> None:
    do(home, sim, "HassLightSet", name="Bedroom Lamp", brightness=50)
    assert state(sim, "light.bedroom_lamp") == ("on", {"brightness": 128})
    do(home, sim, "HassLightSet", name="Bedroom Lamp", color="red")
    assert state(sim, "light.bedroom_lamp") == ("on", {"brightness": 128, "rgb_color": [255, 0, 0]})
    do(home, sim, "HassTurnOff", name="Bedroom Lamp")  # Home Assistant reports no colour while off
    assert sim[0].state("light.bedroom_lamp").attributes == {"brightness": None, "rgb_color": None}
    do(home, sim, "HassTurnOn", name="Bedroom Lamp")  # and comes back as it was
    assert sim[0].state("light.bedroom_lamp").attributes == {"brightness": 128, "rgb_color": [255, 0, 0]}
    do(home, sim, "HassSetPosition", name="Living Room Blinds", position=30)
    assert state(sim, "cover.living_room_blinds") == (
        "open",
        {"device_class": "blind", "current_position": 30},
    )
    do(home, sim, "HassTurnOff", name="Living Room Blinds")
    assert state(sim, "cover.living_room_blinds")[0] == "closed"
    do(home, sim, "HassClimateSetTemperature", name="Thermostat", temperature=23)
    assert state(sim, "climate.thermostat")[1]["temperature"] == 23
    do(home, sim, "HassSetVolume", name="TV", volume_level=40)
    assert state(sim, "media_player.tv")[1]["volume_level"] == 0.4
    do(home, sim, "HassMediaPause", name="TV")
    assert state(sim, "media_player.tv")[0] == "paused"
    do(home, sim, "HassVacuumStart", name="Robot Vacuum")
    assert state(sim, "vacuum.robot")[0] == "cleaning"
    # the speaker's area is used when the command names no place
    do(home, sim, "HassTurnOn", area="Office", domain="light")
    do(home, sim, "HassTurnOff", "Office", domain="light")
    assert state(sim, "light.desk_lamp")[0] == "off"


def test_relative_volume_mute_and_lawn_mower(home, sim, tmp_path) -> None:
    """Intents newer template releases added: each acts the way Home Assistant's handlers do."""
    do(home, sim, "HassTurnOn", name="TV")  # a TV that is off reports no volume (as in Home Assistant)
    do(home, sim, "HassSetVolume", name="TV", volume_level=40)
    out = do(home, sim, "HassSetVolumeRelative", name="TV", volume_step="up")
    assert out.delivered and state(sim, "media_player.tv")[1]["volume_level"] == 0.5  # +10 points
    do(home, sim, "HassSetVolumeRelative", name="TV", volume_step=-30)
    assert state(sim, "media_player.tv")[1]["volume_level"] == 0.2
    do(home, sim, "HassSetVolumeRelative", name="TV", volume_step=-90)
    assert state(sim, "media_player.tv")[1]["volume_level"] == 0.0  # clamped
    do(home, sim, "HassMediaPlayerMute", name="TV")
    assert state(sim, "media_player.tv")[1]["is_volume_muted"] is True
    do(home, sim, "HassMediaPlayerUnmute", name="TV")
    assert state(sim, "media_player.tv")[1]["is_volume_muted"] is False
    garden = home_from_dict({"entities": [{"name": "Mower", "id": "lawn_mower.mower", "state": "docked"}]})
    store = StateStore.open(tmp_path / "garden.sqlite")
    backend = SimBackend.open(garden, store)
    out = execute(plan(Intent("HassLawnMowerStartMowing", {}), garden), backend, Timers(store))
    assert out.delivered and store.entity("lawn_mower.mower")[0] == "mowing", out
    execute(plan(Intent("HassLawnMowerDock", {"name": "Mower"}), garden), backend, Timers(store))
    assert store.entity("lawn_mower.mower")[0] == "docked"
    store.close()


def test_queries_are_answered_from_the_state(home, sim) -> None:
    assert do(home, sim, "HassGetState", name="Front Door").reply == "Front Door is locked"
    assert do(home, sim, "HassGetState", name="Front Door", state="locked").reply == "Yes"
    assert (
        do(home, sim, "HassGetState", name="Garage Door", state="open").reply == "No, Garage Door is closed"
    )
    assert (
        do(home, sim, "HassClimateGetTemperature", name="Thermostat").reply
        == "It is 20 degrees in the Thermostat"
    )
    assert (
        "Kitchen Ceiling" in do(home, sim, "HassGetState", area="Kitchen", domain="light", state="on").reply
    )


def test_the_shopping_list_goes_to_its_todo_entity_when_the_home_has_one(tmp_path) -> None:
    """As Home Assistant with the shopping_list integration: a to-do entity todo.shopping_list, and
    the legacy shopping_list.* services only where that integration is loaded."""
    home = home_from_dict(
        {
            "entities": [
                {"name": "Shopping List", "id": "todo.shopping_list", "state": "0"},
                {"name": "Chores", "id": "todo.chores", "state": "0"},
            ]
        }  # fmt: skip
    )
    action = plan(Intent("HassShoppingListAddItem", {"item": "oat milk"}), home, None)
    assert [(c.domain, c.service, c.entity_ids, c.data) for c in action.calls] == [
        ("todo", "add_item", ("todo.shopping_list",), {"item": "oat milk"})
    ]
    store = StateStore.open(tmp_path / "home.sqlite")
    sim = (SimBackend.open(home, store), store)
    assert do(home, sim, "HassShoppingListAddItem", item="oat milk").reply == "Added oat milk"
    do(home, sim, "HassShoppingListCompleteItem", item="Oat milk")
    assert store.items("todo.shopping_list") == [("oat milk", True)] and store.items("todo.chores") == []
    store.close()


def test_lists_and_timers(home, sim) -> None:
    assert do(home, sim, "HassShoppingListAddItem", item="milk").reply == "Added milk"
    assert sim[1].items("shopping_list") == [("milk", False)]
    do(home, sim, "HassShoppingListCompleteItem", item="Milk")
    assert sim[1].items("shopping_list") == [("milk", True)]
    assert do(home, sim, "HassStartTimer", minutes=5, name="pasta").reply == "Timer set for 5 minutes"
    status = do(home, sim, "HassTimerStatus", name="pasta").reply
    assert status.startswith("pasta timer: 4 minutes") or status.startswith("pasta timer: 5 minutes")
    do(home, sim, "HassIncreaseTimer", name="pasta", minutes=2)
    assert Timers(sim[1]).all()[0].remaining > 6 * 60
    assert do(home, sim, "HassCancelTimer", name="pasta").reply == "Timer cancelled"
    assert Timers(sim[1]).all() == []


def test_timers_run_out_once(home, sim) -> None:
    now = [1000.0]
    timers = Timers(sim[1], clock=lambda: now[0])
    timers.start(60, "tea")
    assert timers.due() == []
    now[0] += 61
    assert [t.name for t in timers.due()] == ["tea"]
    assert timers.due() == []


def test_unexposed_and_unknown_entities_are_never_acted_on(home, sim) -> None:
    out = do(home, sim, "HassTurnOff", name="Alarm Panel")
    assert not out.delivered and "no device called Alarm Panel" in out.reply
    assert state(sim, "alarm_control_panel.house")[0] == "armed_home"
    # an area-wide command does not sweep the unexposed entity in either
    assert all(
        e.exposed for e in plan(Intent("HassTurnOff", {"domain": "alarm_control_panel"}), home).targets
    )
    assert not do(home, sim, "HassTurnOn", name="Jacuzzi").delivered


def test_locks_and_doors_are_marked_for_confirmation(home) -> None:
    assert [e.id for e in plan(Intent("HassTurnOff", {"name": "Front Door"}), home).sensitive] == [
        "lock.front_door"
    ]
    assert plan(Intent("HassTurnOn", {"name": "Garage Door"}), home).sensitive
    assert not plan(Intent("HassTurnOn", {"name": "Living Room Blinds"}), home).sensitive
    assert not plan(Intent("HassGetState", {"name": "Front Door"}), home).sensitive  # asking is safe
    # the confirmation question's verb comes with the plan, never read back out of the reply
    assert plan(Intent("HassTurnOff", {"name": "Front Door"}), home).verb == "unlock"
    assert plan(Intent("HassTurnOn", {"name": "Garage Door"}), home).verb == "open"


def test_state_survives_a_restart(home, tmp_path) -> None:
    store = StateStore.open(tmp_path / "s.sqlite")
    backend = SimBackend.open(home, store)
    execute(plan(Intent("HassTurnOn", {"name": "Desk Lamp"}), home), backend, Timers(store))
    store.close()
    store = StateStore.open(tmp_path / "s.sqlite")
    SimBackend.open(home, store)  # reseeding must not overwrite what is there
    assert store.entity("light.desk_lamp")[0] == "on"
    store.close()


def test_a_locked_state_file_is_reported_and_nothing_changes(home, tmp_path) -> None:
    store = StateStore.open(tmp_path / "s.sqlite", lock_timeout_s=0.2)
    backend = SimBackend.open(home, store)
    other = sqlite3.connect(tmp_path / "s.sqlite", isolation_level=None)
    other.execute("BEGIN EXCLUSIVE")
    out = execute(plan(Intent("HassTurnOn", {"name": "Desk Lamp"}), home), backend, Timers(store))
    assert not out.delivered and "locked by another process" in out.reply
    other.execute("ROLLBACK")
    other.close()
    assert store.entity("light.desk_lamp")[0] == "off"
    # the next command works again
    assert execute(plan(Intent("HassTurnOn", {"name": "Desk Lamp"}), home), backend, Timers(store)).delivered
    store.close()


def test_a_read_only_state_is_reported_and_nothing_changes(home, tmp_path) -> None:
    path = tmp_path / "s.sqlite"
    store = StateStore.open(path)
    SimBackend.open(home, store)
    store.close()
    store = StateStore.open(path, read_only=True)  # what `casavox state` uses; works as root too
    backend = SimBackend.open(home, store)
    out = execute(plan(Intent("HassTurnOn", {"name": "Desk Lamp"}), home), backend, Timers(store))
    assert not out.delivered and "read-only" in out.reply
    assert store.entity("light.desk_lamp")[0] == "off"
    store.close()


@pytest.mark.skipif(os.geteuid() == 0, reason="root can write read-only files")
def test_a_read_only_state_file_is_reported(home, tmp_path) -> None:
    path = tmp_path / "s.sqlite"
    store = StateStore.open(path)
    SimBackend.open(home, store)
    store.close()
    path.chmod(0o444)
    tmp_path.chmod(0o555)
    try:
        store = StateStore.open(path)
        backend = SimBackend.open(home, store)
        with pytest.raises(DeliveryError, match="read-only"):
            backend.call(plan(Intent("HassTurnOn", {"name": "Desk Lamp"}), home).calls[0])
        assert store.entity("light.desk_lamp")[0] == "off"
        store.close()
    finally:
        tmp_path.chmod(0o755)
        path.chmod(0o644)


def test_a_state_file_that_is_not_sqlite_is_a_clear_error(tmp_path) -> None:
    path = tmp_path / "s.sqlite"
    path.write_bytes(b"this is not a database" * 100)
    with pytest.raises(StateError, match="unusable"):
        StateStore.open(path)
