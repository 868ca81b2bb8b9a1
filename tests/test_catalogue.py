"""The intent catalogue: one definition per intent, read by the grammar, the planner and the sampler."""

from __future__ import annotations

import ast
import dataclasses
import random
import re
from pathlib import Path

import pytest

from casavox.edge_app import actions
from casavox.edge_app.actions import UNSUPPORTED, LocalPlanner, QueryPlanner, plan, planner_for
from casavox.export.llm.sampler import sample_command
from casavox.runtime.home import load_home
from casavox.runtime.intents import catalogue
from casavox.runtime.intents.catalogue import INTENTS, IntentDef, lookup, names_of_kind
from casavox.runtime.intents.result import Intent
from casavox.runtime.intents.schema import answer_schema, or_absent

ROOT = Path(__file__).resolve().parents[1]
SOURCE_DIRS = ("runtime", "edge_app", "export", "benchmarks", "casavox")
INTENT_NAME = re.compile(r"Hass[A-Z]\w+")
# Home Assistant classes of ours whose names look like intents (identifiers, never intent names).
NOT_INTENTS = {"HassBackend", "HassSettings"}


@pytest.fixture()
def home():
    return load_home(ROOT / "examples" / "home.yaml")


def _intent_literals(path: Path) -> set[str]:
    """String constants in a Python file that are exactly an intent name ("HassTurnOn")."""
    tree = ast.parse(path.read_text(), str(path))
    return {
        node.value
        for node in ast.walk(tree)
        if isinstance(node, ast.Constant)
        and isinstance(node.value, str)
        and INTENT_NAME.fullmatch(node.value)
        and node.value not in NOT_INTENTS
    }


def _files(*dirs: str) -> list[Path]:
    return [f for d in dirs if (ROOT / d).is_dir() for f in sorted((ROOT / d).rglob("*.py"))]


def test_intent_names_are_spelled_only_in_the_catalogue() -> None:
    catalogue_file = ROOT / "runtime" / "intents" / "catalogue.py"
    spelled = {
        str(f.relative_to(ROOT)): names for f in _files(*SOURCE_DIRS) if (names := _intent_literals(f))
    }
    assert spelled.pop(str(catalogue_file.relative_to(ROOT))) == set(INTENTS)
    assert spelled == {}  # every other module imports the catalogue's constants


def test_every_intent_used_anywhere_is_catalogued(ha_intents) -> None:
    here = Path(__file__).resolve()  # this file makes up intents on purpose
    used = set().union(*(_intent_literals(f) for f in _files(*SOURCE_DIRS, "tests") if f.resolve() != here))
    assert used <= set(INTENTS), used - set(INTENTS)
    # ...and every intent Home Assistant's templates teach (the sampler draws by their weights)
    assert set(ha_intents.intents) <= set(INTENTS)


def test_no_substring_tests_on_intent_names() -> None:
    substring = re.compile(
        r"""["'](?:Timer|List|AddItem|Hass\w*)["']\s+(?:not\s+)?in\s|\.(?:ends|starts)with\(["']Hass"""
    )
    name_substring = re.compile(r"(?:\bintent\w*\.name|(?<![\w.])n)\.(?:endswith|startswith)\(")
    found = [
        f"{f.relative_to(ROOT)}:{i}: {line.strip()}"
        for f in _files(*SOURCE_DIRS)
        for i, line in enumerate(f.read_text().splitlines(), 1)
        if substring.search(line) or name_substring.search(line)
    ]
    assert found == []


def test_the_registry_plans_every_catalogued_intent() -> None:
    for name, definition in INTENTS.items():
        planner = planner_for(name)
        assert planner is not UNSUPPORTED, name
        if definition.kind == "local":
            assert isinstance(planner, LocalPlanner), name
        elif definition.kind == "query":
            assert isinstance(planner, QueryPlanner), name
        else:
            assert not isinstance(planner, (LocalPlanner, QueryPlanner)), name
    assert set(actions.PLANNERS) <= set(INTENTS)
    assert planner_for("HassNoSuchIntent") is UNSUPPORTED


def test_planned_kind_is_the_catalogues(home) -> None:
    assert plan(Intent(catalogue.START_TIMER, {"minutes": 5}), home).kind == "local"
    assert plan(Intent(catalogue.GET_STATE, {"name": "Front Door"}), home).kind == "query"
    assert plan(Intent(catalogue.TURN_ON, {"name": "Desk Lamp"}), home).kind == "control"
    assert (
        plan(Intent("HassNoSuchIntent", {"name": "Desk Lamp"}), home).error
        == "I can't do HassNoSuchIntent yet"
    )


def test_definitions_are_consistent() -> None:
    for name, d in INTENTS.items():
        assert d.name == name
        assert d.sensitive == (d.kind == "control"), name  # any state change may need a yes
        assert not d.confirm_verbs or d.sensitive, name
        assert (d.service is None) == (d.done == ""), name
        assert not d.durations or (d.kind == "local" and d.name_kind == "text" and not d.name_checked), name
        assert not d.said_by_device or d.said_slot, name
        assert d.sample_weight > 0, name
        assert d.changes_home == (d.kind == "control") or d.kind == "local", name
    assert names_of_kind("local") >= {catalogue.START_TIMER, catalogue.GET_CURRENT_TIME}
    stateful = {n for n in names_of_kind("local") if INTENTS[n].changes_home}
    assert stateful == {
        catalogue.START_TIMER,
        catalogue.CANCEL_TIMER,
        catalogue.CANCEL_ALL_TIMERS,
        catalogue.INCREASE_TIMER,
        catalogue.DECREASE_TIMER,
        catalogue.PAUSE_TIMER,
        catalogue.UNPAUSE_TIMER,
        catalogue.BROADCAST,
    }
    assert lookup("HassNoSuchIntent") == IntentDef("HassNoSuchIntent", "control")


def test_confirmation_verbs_come_with_the_plan(home) -> None:
    def verb(intent: str, name: str, **slots) -> tuple[str, bool]:
        action = plan(Intent(intent, {"name": name, **slots}), home)
        return action.verb, bool(action.sensitive)

    assert verb(catalogue.TURN_OFF, "Front Door") == ("unlock", True)
    assert verb(catalogue.TURN_ON, "Front Door") == ("lock", True)
    assert verb(catalogue.TURN_ON, "Garage Door") == ("open", True)
    assert verb(catalogue.TURN_OFF, "Garage Door") == ("close", True)
    assert verb(catalogue.SET_POSITION, "Garage Door", position=30) == ("change", True)
    assert verb(catalogue.TURN_ON, "Living Room Blinds") == ("open", False)  # blinds need no yes
    assert verb(catalogue.GET_STATE, "Front Door") == ("change", False)  # asking is safe


def test_an_intent_defined_in_one_place_reaches_grammar_planner_and_sampler(
    home, monkeypatch, ha_intents
) -> None:
    feed = IntentDef(
        "HassFeedPet",
        "control",
        frozenset({"switch"}),
        sensitive=True,
        service=("switch", "turn_on"),
        done="Fed",
        sample_weight=1000.0,
    )
    monkeypatch.setitem(INTENTS, feed.name, feed)

    schema = answer_schema({"intents": {feed.name: {"name": {"kind": "entity"}}}}, home)
    option = schema["items"]["anyOf"][0]
    assert option["properties"]["name"] == {"const": feed.name}
    # The home's one device of the intent's domain (no "all"), or a name the home does not have.
    assert option["properties"]["slots"]["properties"]["name"] == or_absent({"enum": ["Coffee Maker"]})

    action = plan(Intent(feed.name, {"name": "Coffee Maker"}), home)
    assert action.reply == "Fed" and [(c.domain, c.service, c.entity_ids) for c in action.calls] == [
        ("switch", "turn_on", ("switch.coffee_maker",))
    ]
    assert plan(Intent(feed.name, {"name": "Desk Lamp"}), home).error == "there is no Desk Lamp"

    # the sampler weighs Home Assistant's intents by the catalogue: a heavy StartTimer dominates
    heavy = dataclasses.replace(lookup(catalogue.START_TIMER), sample_weight=1e6)
    monkeypatch.setitem(INTENTS, catalogue.START_TIMER, heavy)
    rng = random.Random(0)
    drawn = [s.intent for s in (sample_command(rng, ha_intents, home, None) for _ in range(20)) if s]
    assert drawn and set(drawn) == {catalogue.START_TIMER}
