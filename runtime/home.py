"""The home: floors, areas, entities, timers and media, in Home Assistant's test-fixture YAML format.

The same file format Home Assistant's intent tests use (``tests/en/_fixtures.yaml``), so a home can
be written by hand, exported from a real installation, or borrowed from those tests. Names may be
hassil templates (``"[the] TV"``, ``"(Living Room|Lounge)"``): the first expansion is the name, the
rest are aliases. Unknown keys are ignored; a malformed file is a :class:`HomeError` naming the line.

casavox extensions (optional, per entity): ``exposed: false`` hides an entity from voice control
entirely; ``confirm: true|false`` overrides the default that locks, doors and garage doors need a
spoken confirmation.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from casavox.errors import CasavoxError

LINE = "__line__"
# Domains / device classes that act on the physical security of the house.
CONFIRM_DOMAINS = {"lock"}
CONFIRM_DEVICE_CLASSES = {"door", "garage", "gate"}


class HomeError(CasavoxError, ValueError):
    """A home file that cannot be used; the message names the file and line."""


@dataclass(frozen=True)
class Floor:
    id: str
    name: str
    aliases: tuple[str, ...] = ()


@dataclass(frozen=True)
class Area:
    id: str
    name: str
    aliases: tuple[str, ...] = ()
    floor_id: str | None = None


@dataclass(frozen=True)
class Entity:
    id: str
    name: str
    domain: str
    aliases: tuple[str, ...] = ()
    area_id: str | None = None
    state: str = "off"
    attributes: dict[str, Any] = field(default_factory=dict)
    exposed: bool = True
    confirm: bool = False

    @property
    def names(self) -> tuple[str, ...]:
        return (self.name, *self.aliases)


@dataclass(frozen=True)
class Home:
    floors: tuple[Floor, ...]
    areas: tuple[Area, ...]
    entities: tuple[Entity, ...]
    timers: tuple[dict, ...] = ()
    media: tuple[str, ...] = ()
    language: str = "en"
    source: str = "<memory>"

    @property
    def exposed(self) -> tuple[Entity, ...]:
        return tuple(e for e in self.entities if e.exposed)

    def area(self, name_or_id: str | None) -> Area | None:
        return _lookup(self.areas, name_or_id)

    def floor(self, name_or_id: str | None) -> Floor | None:
        return _lookup(self.floors, name_or_id)

    def entity(self, entity_id: str) -> Entity | None:
        return next((e for e in self.entities if e.id == entity_id), None)

    def entities_named(self, name: str) -> list[Entity]:
        """Exposed entities whose name or alias is ``name`` (case-insensitive)."""
        key = name.strip().casefold()
        return [e for e in self.exposed if key in (n.casefold() for n in e.names)]


def _lookup(items, name_or_id: str | None):
    """The area/floor whose id, name or alias is ``name_or_id`` (case-insensitive)."""
    if not name_or_id:
        return None
    key = name_or_id.strip().casefold()
    for item in items:
        if key == item.id.casefold() or key in (n.casefold() for n in (item.name, *item.aliases)):
            return item
    return None


class _LineLoader(yaml.SafeLoader):
    """SafeLoader that records each mapping's line, so errors can point at it."""

    def construct_mapping(self, node, deep=False):
        mapping = super().construct_mapping(node, deep=deep)
        mapping[LINE] = node.start_mark.line + 1
        return mapping


def expand_name(name: str) -> list[str]:
    """A hassil template name -> its expansions (the plain name -> itself)."""
    from hassil import is_template, parse_sentence, sample_expression

    name = str(name).strip()
    if not is_template(name):
        return [name]
    names = [" ".join(n.split()) for n in sample_expression(parse_sentence(name).expression)]
    return list(dict.fromkeys(n for n in names if n))


def _where(source: str, item: Any) -> str:
    line = item.get(LINE) if isinstance(item, dict) else None
    return f"{source}:{line}" if line else source


def _items(data: dict, key: str, source: str) -> list[dict]:
    value = data.get(key) or []
    if not isinstance(value, list):
        raise HomeError(f"{_where(source, data)}: '{key}' must be a list")
    for item in value:
        if not isinstance(item, dict):
            raise HomeError(f"{source}: every entry of '{key}' must be a mapping (got {item!r})")
    return value


def _required(item: dict, key: str, what: str, source: str) -> str:
    value = item.get(key)
    if value is None or (isinstance(value, str) and not value.strip()):
        raise HomeError(f"{_where(source, item)}: {what} without '{key}'")
    return str(value)


def _slug(name: str) -> str:
    return "_".join("".join(c if c.isalnum() else " " for c in name.casefold()).split())


def home_from_dict(data: dict, source: str = "<memory>") -> Home:
    if not isinstance(data, dict):
        raise HomeError(f"{source}: a home file must be a mapping with floors/areas/entities")
    floors = []
    for item in _items(data, "floors", source):
        names = expand_name(_required(item, "name", "floor", source))
        floors.append(
            Floor(id=str(item.get("id") or _slug(names[0])), name=names[0], aliases=tuple(names[1:]))
        )
    areas = []
    for item in _items(data, "areas", source):
        names = expand_name(_required(item, "name", "area", source))
        areas.append(
            Area(
                id=str(item.get("id") or _slug(names[0])),
                name=names[0],
                aliases=tuple(names[1:]),
                floor_id=item.get("floor"),
            )
        )
    area_ids = {a.id for a in areas}
    entities = []
    for item in _items(data, "entities", source):
        names = expand_name(_required(item, "name", "entity", source))
        entity_id = item.get("id")
        domain = item.get("domain") or (
            str(entity_id).split(".", 1)[0] if entity_id and "." in str(entity_id) else None
        )
        if not domain:
            raise HomeError(
                f"{_where(source, item)}: entity '{names[0]}' needs an 'id' like light.x or a 'domain'"
            )
        entity_id = str(entity_id or f"{domain}.{_slug(names[0])}")
        area = item.get("area")
        if area is not None and areas and str(area) not in area_ids:
            raise HomeError(f"{_where(source, item)}: entity '{names[0]}' is in unknown area '{area}'")
        state = item.get("state", "off")
        if isinstance(state, dict):  # {in: human text, out: HA state}
            state = state.get("out", "off")
        attributes = {k: v for k, v in (item.get("attributes") or {}).items() if k != LINE}
        device_class = attributes.get("device_class")
        confirm_default = domain in CONFIRM_DOMAINS or (
            domain == "cover" and device_class in CONFIRM_DEVICE_CLASSES
        )
        entities.append(
            Entity(
                id=entity_id,
                name=names[0],
                domain=domain,
                aliases=tuple(names[1:]),
                area_id=str(area) if area is not None else None,
                state=str(state),
                attributes=attributes,
                exposed=bool(item.get("exposed", True)),
                confirm=bool(item.get("confirm", confirm_default)),
            )
        )
    timers = tuple({k: v for k, v in t.items() if k != LINE} for t in _items(data, "timers", source))
    media = tuple(str(m["title"]) for m in _items(data, "media", source) if "title" in m)
    return Home(
        floors=tuple(floors),
        areas=tuple(areas),
        entities=tuple(entities),
        timers=timers,
        media=media,
        language=str(data.get("language", "en")),
        source=source,
    )


def load_home(path: str | Path) -> Home:
    """Read a home YAML file; errors name the file and line."""
    path = Path(path)
    if not path.is_file():
        raise HomeError(f"{path}: no such home file")
    try:
        data = yaml.load(path.read_text(), Loader=_LineLoader)  # noqa: S506 (SafeLoader subclass)
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark
        line = f":{mark.line + 1}" if mark is not None else ""
        raise HomeError(f"{path}{line}: invalid YAML ({exc.problem})") from None
    except (yaml.YAMLError, UnicodeDecodeError) as exc:
        raise HomeError(f"{path}: invalid YAML ({exc})") from None
    return home_from_dict(data, str(path))
