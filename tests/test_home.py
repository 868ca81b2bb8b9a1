"""Homes in Home Assistant's test-fixture format: loading, aliases, exposure, clear errors."""

from __future__ import annotations

from pathlib import Path

import pytest

from casavox.runtime.home import HomeError, load_home

ROOT = Path(__file__).resolve().parents[1]
FIXTURES = ROOT.parent / "shared" / "ha-intents-tests" / "en" / "_fixtures.yaml"


def test_example_home_loads() -> None:
    home = load_home(ROOT / "examples" / "home.yaml")
    assert home.area("kitchen").name == "Kitchen"
    assert home.floor("Upstairs").id == "upstairs"
    assert [e.name for e in home.entities_named("desk lamp")] == ["Desk Lamp"]
    # Exposure and confirmation defaults.
    assert home.entity("alarm_control_panel.house").exposed is False
    assert "alarm_control_panel.house" not in {e.id for e in home.exposed}
    assert home.entity("lock.front_door").confirm is True
    assert home.entity("cover.garage_door").confirm is True
    assert home.entity("cover.living_room_blinds").confirm is False
    assert home.entity("light.desk_lamp").confirm is False


@pytest.mark.skipif(not FIXTURES.exists(), reason="../shared/ha-intents-tests not present")
def test_home_assistant_fixture_home_loads_with_template_names() -> None:
    home = load_home(FIXTURES)
    assert len(home.entities) > 50 and len(home.areas) >= 8
    # Template names expand into a name plus aliases, as Home Assistant's tests do.
    assert any(e.aliases for e in home.entities)
    assert home.entity("light.bedroom_lamp").area_id == "bedroom_id"


def test_unknown_fields_are_ignored(tmp_path: Path) -> None:
    path = tmp_path / "home.yaml"
    path.write_text(
        "areas:\n  - name: Den\n    colour: blue\nentities:\n  - name: Lamp\n    id: light.lamp\n    area: den\n    wattage: 60\nmystery: 1\n"
    )
    home = load_home(path)
    assert home.entity("light.lamp").area_id == "den"


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("areas:\n  - name: Den\n   bad: indent\n", ":3: invalid YAML"),
        ("entities:\n  - id: light.x\n    area: kitchen\n", ":2: entity without 'name'"),
        (
            "areas:\n  - name: Den\nentities:\n  - name: Lamp\n    id: light.lamp\n    area: cellar\n",
            ":4: entity 'Lamp' is in unknown area 'cellar'",
        ),
        ("entities:\n  - name: Thing\n", ":2: entity 'Thing' needs an 'id' like light.x or a 'domain'"),
        ("entities: 3\n", "'entities' must be a list"),
        ("- just\n- a list\n", "must be a mapping"),
    ],
)
def test_malformed_homes_name_the_line(tmp_path: Path, text: str, message: str) -> None:
    path = tmp_path / "home.yaml"
    path.write_text(text)
    with pytest.raises(HomeError) as info:
        load_home(path)
    assert message in str(info.value)
    assert str(path) in str(info.value)


def test_missing_home_file(tmp_path: Path) -> None:
    with pytest.raises(HomeError, match="no such home file"):
        load_home(tmp_path / "nope.yaml")
