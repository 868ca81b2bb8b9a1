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


def _home(tmp_path: Path, text: str, name: str = "home.yaml") -> Path:
    path = tmp_path / name
    path.write_text(text)
    return path


def _error(path: Path) -> str:
    with pytest.raises(HomeError) as info:
        load_home(path)
    message = str(info.value)
    assert "\n" not in message and message.startswith(str(path))
    return message


# ---- booleans are YAML booleans (a safety switch must not fail open) -------------------------------
@pytest.mark.parametrize(
    ("line", "message"),
    [
        ('    exposed: "false"\n', ":4: 'exposed' must be true or false, not 'false'"),
        ("    exposed: 0\n", ":4: 'exposed' must be true or false, not 0"),
        ('    confirm: "no"\n', ":4: 'confirm' must be true or false, not 'no'"),
        ("    confirm: null\n", ":4: 'confirm' must be true or false, not None"),
    ],
)
def test_flags_must_be_booleans(tmp_path: Path, line: str, message: str) -> None:
    text = "areas:\n  - name: Hall\nentities:\n  - name: Front Door\n    id: lock.front_door\n" + line
    assert message in _error(_home(tmp_path, text))


def test_yaml_booleans_are_flags(tmp_path: Path) -> None:
    path = _home(
        tmp_path,
        "entities:\n  - name: Front Door\n    id: lock.front_door\n    exposed: no\n"
        "  - name: Desk Lamp\n    id: light.desk_lamp\n    confirm: true\n",
    )
    home = load_home(path)
    assert home.entity("lock.front_door").exposed is False
    assert home.entity("light.desk_lamp").confirm is True


# ---- names that are templates, and YAML that is a bomb: bounded, one line --------------------------
def test_template_names_still_expand_into_aliases(tmp_path: Path) -> None:
    home = load_home(_home(tmp_path, 'entities:\n  - name: "(Porch|Deck) [Light]"\n    id: light.porch\n'))
    assert home.entity("light.porch").names == ("Porch Light", "Porch", "Deck Light", "Deck")


@pytest.mark.parametrize(
    ("name", "message"),
    [
        ("(a|b)" * 24, "expands to more than 64 names"),  # was 16.7 M aliases, 48 s, 2.2 GB
        ("(a;b;c;d;e;f;g;h)", "expands to more than 64 names"),  # a permutation: 8! orders
        ("(porch|deck light", "is not a valid template (Unable to find end of group"),
        ("[the lamp", "is not a valid template"),
        ("{name} lamp", "may not use {lists} or <rules>"),
        ("<the> lamp", "may not use {lists} or <rules>"),
        ("x" * 201, "name longer than 200 characters"),
    ],
)
def test_bad_template_names_are_one_line(tmp_path: Path, name: str, message: str) -> None:
    text = f"entities:\n  - id: light.porch\n    name: {name!r}\n"
    error = _error(_home(tmp_path, text))
    assert error.startswith(f"{tmp_path / 'home.yaml'}:2: entity name") and message in error


def test_names_in_all_are_bounded(tmp_path: Path) -> None:
    # 400 entities of 64 names each: every one within bounds, together 25,600 names.
    names = "(a|b)" * 6
    items = "".join(f"  - id: light.l{i}\n    name: 'Lamp {i} {names}'\n" for i in range(400))
    assert "more than 20,000 names and aliases" in _error(_home(tmp_path, "entities:\n" + items))


def test_yaml_alias_bomb_is_refused(tmp_path: Path) -> None:
    # Eight lines stand for 10^6 strings once the aliases are expanded (10^8 with two more lines).
    levels = ["a0: &a0 [x, x, x, x, x, x, x, x, x, x]"]
    levels += [f"a{i}: &a{i} [{', '.join([f'*a{i - 1}'] * 10)}]" for i in range(1, 6)]
    text = "\n".join(levels) + "\nentities:\n  - name: Lamp\n    id: light.lamp\n    attributes: {x: *a5}\n"
    assert "more than 200,000 YAML nodes (with anchors expanded)" in _error(_home(tmp_path, text))


def test_recursive_alias_deep_nesting_and_huge_files_are_one_line(tmp_path: Path) -> None:
    assert ":1: a YAML alias refers to itself" in _error(_home(tmp_path, "a: &a [*a]\n", "loop.yaml"))
    deep = _home(tmp_path, "a: " + "[" * 5000 + "]" * 5000 + "\n", "deep.yaml")
    assert "invalid YAML (nested too deeply)" in _error(deep)
    big = _home(tmp_path, "# padding\n" * 500_000, "big.yaml")
    assert "larger than 4 MiB" in _error(big)


def test_small_aliases_still_load(tmp_path: Path) -> None:
    text = "x: &attrs {device_class: garage}\nentities:\n  - name: Garage Door\n    id: cover.garage\n    attributes: *attrs\n"
    assert load_home(_home(tmp_path, text)).entity("cover.garage").confirm is True


# ---- ids: unique, and agreeing with the domain ----------------------------------------------------
@pytest.mark.parametrize(
    ("entities", "message"),
    [
        (
            "  - name: Front Door\n    id: lock.front_door\n    exposed: false\n"
            "  - name: Porch Light\n    id: lock.front_door\n",
            ":5: entity id 'lock.front_door' is already used at",
        ),
        (
            "  - name: Porch Light\n    id: light.porch\n  - {name: Porch Lamp, domain: light}\n"
            "  - {name: Deck, id: Light.Porch}\n",
            "entity id 'Light.Porch' is already used at",
        ),
        (
            "  - name: Porch Light\n    id: lock.front_door\n    domain: light\n",
            ":2: entity 'lock.front_door' has domain 'light', but its id says 'lock'",
        ),
        (
            "  - name: Porch Light\n    id: porch\n    domain: light\n",
            ":2: entity id 'porch' must look like domain.name",
        ),
    ],
)
def test_entity_ids_are_unique_and_match_the_domain(tmp_path: Path, entities: str, message: str) -> None:
    assert message in _error(_home(tmp_path, "entities:\n" + entities))


def test_area_and_floor_ids_are_unique(tmp_path: Path) -> None:
    text = "areas:\n  - name: Den\n  - name: Study\n    id: den\n"
    assert ":3: area id 'den' is used twice" in _error(_home(tmp_path, text))
    text = "floors:\n  - {name: Up, id: f1}\n  - {name: Down, id: f1}\n"
    assert "floor id 'f1' is used twice" in _error(_home(tmp_path, text))


# ---- names: no control characters (log lines, the LLM's prompt) -----------------------------------
@pytest.mark.parametrize(
    ("text", "message"),
    [
        (
            'entities:\n  - name: "Porch\\nINFO acted lock.front_door unlocked"\n    id: light.porch\n',
            ":2: entity name 'Porch\\nINFO acted lock.front_door unlocked' contains a control character (U+000A)",
        ),
        (
            'areas:\n  - name: "Den\\e[31m"\n',
            ":2: area name 'Den\\x1b[31m' contains a control character (U+001B)",
        ),
        (
            'floors:\n  - name: "Up\\tstairs"\n',
            ":2: floor name 'Up\\tstairs' contains a control character (U+0009)",
        ),
        ('entities:\n  - name: "Lamp\\u202e"\n    id: light.x\n', "contains a control character (U+202E)"),
        (
            'entities:\n  - name: Lamp\n    id: "light.x\\ny"\n',
            ":2: entity id 'light.x\\ny' contains a control",
        ),
        ('areas:\n  - name: Den\n    id: "den\\r"\n', ":2: area id 'den\\r' contains a control character"),
    ],
)
def test_control_characters_in_names_and_ids_are_refused(tmp_path: Path, text: str, message: str) -> None:
    assert message in _error(_home(tmp_path, text))


def test_control_characters_are_stripped_from_input_text() -> None:
    from casavox.runtime.intents.engine import IntentEngine

    engine = IntentEngine.build(load_home(ROOT / "examples" / "home.yaml"))
    result = engine.parse("turn on the\x1b[0m desk\u202e lamp\x00")
    assert result.text == "turn on the[0m desk lamp"
    assert not any(ord(c) < 32 or c == "\u202e" for c in result.text)
    result = engine.parse("turn on\x07 the desk lamp\n")
    assert result.text == "turn on the desk lamp"
    assert [(i.name, i.slots.get("name")) for i in result.intents] == [("HassTurnOn", "Desk Lamp")]
