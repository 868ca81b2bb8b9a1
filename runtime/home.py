"""The home: floors, areas, entities, timers and media, in Home Assistant's test-fixture YAML format.

The same file format Home Assistant's intent tests use (``tests/en/_fixtures.yaml``), so a home can
be written by hand, exported from a real installation, or borrowed from those tests. Names may be
hassil templates (``"[the] TV"``, ``"(Living Room|Lounge)"``): the first expansion is the name, the
rest are aliases. Unknown keys are ignored; a malformed file is a :class:`HomeError` naming the line.

casavox extensions (optional, per entity): ``exposed: false`` hides an entity from voice control
entirely; ``confirm: true|false`` overrides the default that locks, doors and garage doors need a
spoken confirmation. Both must be YAML booleans: a safety switch never fails open on ``"false"``.

A home file is untrusted input, so everything about it is bounded (file size, YAML nodes after
anchors are expanded, name length, expansions per name and in all) and checked (entity ids unique
and matching their domain, no control characters in ids or names, which would forge log lines and
reach the LLM's prompt): every problem is one :class:`HomeError` line naming the file and line.
"""

from __future__ import annotations

import math
import unicodedata
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from casavox.errors import CasavoxError

LINE = "__line__"
# Domains / device classes that act on the physical security of the house.
CONFIRM_DOMAINS = {"lock"}
CONFIRM_DEVICE_CLASSES = {"door", "garage", "gate"}
# Bounds on an untrusted home file (a real home is far inside them: Home Assistant's test fixture home
# has 107 entities, at most 2 names each, 1,753 YAML events; the large-home benchmark has 1,000).
MAX_FILE_BYTES = 4 * 1024 * 1024
MAX_YAML_NODES = 200_000  # counted with every alias expanded ("billion laughs")
MAX_NAME_CHARS = 200
MAX_NAMES_PER_ITEM = 64  # a name template's expansions: the name plus its aliases
MAX_NAMES_TOTAL = 20_000  # over all floors, areas and entities


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
    """SafeLoader that records each mapping's line, so errors can point at it, and refuses a document
    whose node graph, with every alias expanded, exceeds :data:`MAX_YAML_NODES` (anchors can make a
    few lines stand for 10^8 strings, which code walking the home would then expand)."""

    def construct_mapping(self, node, deep=False):
        mapping = super().construct_mapping(node, deep=deep)
        mapping[LINE] = node.start_mark.line + 1
        return mapping

    def construct_document(self, node):
        _check_node_count(node, self.name)
        return super().construct_document(node)


def _check_node_count(root: yaml.Node, source: str) -> None:
    """Count ``root``'s nodes as if every alias were copied out; a HomeError past the bound or on a
    recursive alias. Each node is sized once (memoised), so the count itself is cheap."""
    sizes: dict[int, int] = {}
    active: set[int] = set()

    def size(node: yaml.Node) -> int:
        key = id(node)
        if key in sizes:
            return sizes[key]
        if key in active:
            raise HomeError(f"{source}:{node.start_mark.line + 1}: a YAML alias refers to itself")
        active.add(key)
        total = 1
        if isinstance(node, yaml.SequenceNode):
            total += sum(size(child) for child in node.value)
        elif isinstance(node, yaml.MappingNode):
            total += sum(size(k) + size(v) for k, v in node.value)
        active.discard(key)
        sizes[key] = total = min(total, MAX_YAML_NODES + 1)
        return total

    if size(root) > MAX_YAML_NODES:
        raise HomeError(f"{source}: more than {MAX_YAML_NODES:,} YAML nodes (with anchors expanded)")


def _check_text(value: str, what: str) -> str:
    """``value`` unless it holds a control or other non-printing (Unicode category C*) character."""
    bad = next((c for c in value if unicodedata.category(c).startswith("C")), None)
    if bad is not None:
        raise HomeError(f"{what} {value!r} contains a control character (U+{ord(bad):04X})")
    return value


def _expansions(expr, cap: int) -> int:
    """How many strings hassil would sample from a name template (at most ``cap + 1``), computed from
    the expression tree without sampling any: sampling first is what took 48 s and 2.2 GB."""
    from hassil.expression import Alternative, Permutation, Sequence, TextChunk

    if isinstance(expr, TextChunk):
        return 1
    if isinstance(expr, Alternative):
        return min(cap + 1, sum(_expansions(item, cap) for item in expr.items))
    if isinstance(expr, (Sequence, Permutation)):
        total = math.factorial(len(expr.items)) if isinstance(expr, Permutation) else 1
        for item in expr.items:
            total = min(cap + 1, total * _expansions(item, cap))
        return total
    raise ValueError("a name may not use {lists} or <rules>")


def expand_name(name: str) -> list[str]:
    """A hassil template name -> its expansions (the plain name -> itself).

    Bounded: at most :data:`MAX_NAME_CHARS` characters and :data:`MAX_NAMES_PER_ITEM` expansions;
    syntax errors, ``{list}`` and ``<rule>`` references are a HomeError (the caller adds file and line).
    """
    from hassil import is_template, parse_sentence, sample_expression

    name = _check_text(str(name).strip(), "name")
    if len(name) > MAX_NAME_CHARS:
        raise HomeError(f"name longer than {MAX_NAME_CHARS} characters")
    if not is_template(name):
        return [name]
    try:
        expr = parse_sentence(name).expression
        if _expansions(expr, MAX_NAMES_PER_ITEM) > MAX_NAMES_PER_ITEM:
            raise HomeError(f"name {name!r} expands to more than {MAX_NAMES_PER_ITEM} names")
        names = [" ".join(n.split()) for n in sample_expression(expr)]
    except HomeError:
        raise
    except (Exception, RecursionError) as exc:  # hassil's ParseError and friends, too deep nesting
        why = " ".join(str(exc).split())[:120] or type(exc).__name__
        raise HomeError(f"name {name!r} is not a valid template ({why})") from None
    names = list(dict.fromkeys(n for n in names if n))
    if not names:
        raise HomeError(f"name {name!r} expands to no name")
    return names


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


def _flag(item: dict, key: str, default: bool, source: str) -> bool:
    """A yes/no setting, which must be a YAML boolean: ``bool("false")`` is True, and a safety switch
    (``exposed``, ``confirm``) must never fail open."""
    value = item.get(key, default)
    if not isinstance(value, bool):
        raise HomeError(f"{_where(source, item)}: '{key}' must be true or false, not {value!r}")
    return value


@dataclass
class _Names:
    """Expands names and aliases for one home, with the whole home's bound on their number."""

    source: str
    total: int = 0

    def of(self, item: dict, what: str) -> list[str]:
        """``item``'s name and aliases; every problem names the item's line."""
        name = _required(item, "name", what, self.source)
        try:
            names = expand_name(name)
        except HomeError as exc:
            raise HomeError(f"{_where(self.source, item)}: {what} {exc}") from None
        self.total += len(names)
        if self.total > MAX_NAMES_TOTAL:
            raise HomeError(f"{_where(self.source, item)}: more than {MAX_NAMES_TOTAL:,} names and aliases")
        return names


def _item_id(item: dict, names: list[str], what: str, source: str, seen: set[str]) -> str:
    """The explicit id or one made from the name; unique (case-insensitively) among its kind."""
    value = item.get("id")
    item_id = str(value) if value is not None and str(value).strip() else _slug(names[0])
    _where_text(item_id, f"{what} id", source, item)
    if item_id.casefold() in seen:
        raise HomeError(f"{_where(source, item)}: {what} id '{item_id}' is used twice")
    seen.add(item_id.casefold())
    return item_id


def _where_text(value: str, what: str, source: str, item: dict) -> str:
    """:func:`_check_text` with the item's file and line in the message."""
    try:
        return _check_text(value, what)
    except HomeError as exc:
        raise HomeError(f"{_where(source, item)}: {exc}") from None


def _entity_domain_and_id(item: dict, names: list[str], source: str) -> tuple[str, str]:
    """(domain, id) from ``id: light.x`` and/or ``domain: light``; they must agree, or an entity
    shown as a light could act on a lock."""
    where = _where(source, item)
    raw_id = item.get("id")
    entity_id = str(raw_id).strip() if raw_id is not None else ""
    id_domain, dot, object_id = entity_id.partition(".")
    if entity_id and not (dot and id_domain and object_id):
        raise HomeError(f"{where}: entity id '{entity_id}' must look like domain.name (light.porch)")
    domain = str(item.get("domain") or id_domain).strip()
    if not domain:
        raise HomeError(f"{where}: entity '{names[0]}' needs an 'id' like light.x or a 'domain'")
    if entity_id and domain != id_domain:
        raise HomeError(f"{where}: entity '{entity_id}' has domain '{domain}', but its id says '{id_domain}'")
    return domain, entity_id or f"{domain}.{_slug(names[0])}"


def _floors(data: dict, source: str, names: _Names) -> list[Floor]:
    floors, seen = [], set()
    for item in _items(data, "floors", source):
        found = names.of(item, "floor")
        floor_id = _item_id(item, found, "floor", source, seen)
        floors.append(Floor(id=floor_id, name=found[0], aliases=tuple(found[1:])))
    return floors


def _areas(data: dict, source: str, names: _Names) -> list[Area]:
    areas, seen = [], set()
    for item in _items(data, "areas", source):
        found = names.of(item, "area")
        area_id = _item_id(item, found, "area", source, seen)
        floor = item.get("floor")
        floor_id = _where_text(str(floor), "floor", source, item) if floor is not None else None
        areas.append(Area(id=area_id, name=found[0], aliases=tuple(found[1:]), floor_id=floor_id))
    return areas


def _entity(item: dict, source: str, names: _Names, area_ids: set[str]) -> Entity:
    found = names.of(item, "entity")
    domain, entity_id = _entity_domain_and_id(item, found, source)
    _where_text(entity_id, "entity id", source, item)
    area = item.get("area")
    if area is not None and area_ids and str(area) not in area_ids:
        raise HomeError(f"{_where(source, item)}: entity '{found[0]}' is in unknown area '{area}'")
    state = item.get("state", "off")
    if isinstance(state, dict):  # {in: human text, out: HA state}
        state = state.get("out", "off")
    attributes = {k: v for k, v in (item.get("attributes") or {}).items() if k != LINE}
    device_class = attributes.get("device_class")
    confirm_default = domain in CONFIRM_DOMAINS or (
        domain == "cover" and device_class in CONFIRM_DEVICE_CLASSES
    )
    return Entity(
        id=entity_id,
        name=found[0],
        domain=domain,
        aliases=tuple(found[1:]),
        area_id=str(area) if area is not None else None,
        state=str(state),
        attributes=attributes,
        exposed=_flag(item, "exposed", True, source),
        confirm=_flag(item, "confirm", confirm_default, source),
    )


def _entities(data: dict, source: str, names: _Names, area_ids: set[str]) -> list[Entity]:
    entities: list[Entity] = []
    seen: dict[str, str] = {}  # casefolded id -> where it was first used
    for item in _items(data, "entities", source):
        entity = _entity(item, source, names, area_ids)
        where = _where(source, item)
        if entity.id.casefold() in seen:
            raise HomeError(
                f"{where}: entity id '{entity.id}' is already used at {seen[entity.id.casefold()]}"
            )
        seen[entity.id.casefold()] = where
        entities.append(entity)
    return entities


def home_from_dict(data: dict, source: str = "<memory>") -> Home:
    """A :class:`Home` from parsed YAML (or a dict built in code); a HomeError names file and line."""
    if not isinstance(data, dict):
        raise HomeError(f"{source}: a home file must be a mapping with floors/areas/entities")
    names = _Names(source)
    floors = _floors(data, source, names)
    areas = _areas(data, source, names)
    entities = _entities(data, source, names, {a.id for a in areas})
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


def _parse_yaml(text: str, source: str) -> Any:
    """``text`` parsed with :class:`_LineLoader`; errors (also nesting too deep) are one line."""
    loader = _LineLoader(text)
    loader.name = source
    try:
        return loader.get_single_data()
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark
        line = f":{mark.line + 1}" if mark is not None else ""
        raise HomeError(f"{source}{line}: invalid YAML ({exc.problem})") from None
    except yaml.YAMLError as exc:
        raise HomeError(f"{source}: invalid YAML ({exc})") from None
    except RecursionError:
        raise HomeError(f"{source}: invalid YAML (nested too deeply)") from None
    finally:
        loader.dispose()


def load_home(path: str | Path) -> Home:
    """Read a home YAML file (at most :data:`MAX_FILE_BYTES`); errors name the file and line."""
    path = Path(path)
    if not path.is_file():
        raise HomeError(f"{path}: no such home file")
    if path.stat().st_size > MAX_FILE_BYTES:
        raise HomeError(f"{path}: larger than {MAX_FILE_BYTES // 2**20} MiB; not a home file")
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError as exc:
        raise HomeError(f"{path}: invalid YAML ({exc})") from None
    return home_from_dict(_parse_yaml(text, str(path)), str(path))
