"""The one catalogue of the intents casavox knows: what each intent is, read by every module that cares.

Modelled on Home Assistant core's intent component (``homeassistant/components/intent``): there,
every intent is one registered handler, most of them a generic service handler set up with data.
Here the *definition* of an intent (which domains it may act on, which slot the words decide, what
kind of intent it is, whether a state change may need a spoken confirmation, which service a plain
service intent calls and what it replies, how often the training data asks it) is one frozen
:class:`IntentDef` in :data:`INTENTS`. The grammar (``schema.py``), the answer rules
(``said_values.py``, ``engine.py``), the planner and executor (``edge_app/actions.py``,
``edge_app/execute.py``) and the training-data sampler and spec (``export/llm``) all read the same
entry, and import the name constants below instead of spelling intent names. Adding an intent is
one entry here (plus a planner in ``edge_app/actions.py`` when it is not a plain service call,
query or local intent).

Device side: no numpy, onnxruntime or torch; nothing is computed at import beyond the registry.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

Kind = Literal["control", "query", "local"]
# What a timer intent's durations mean (``said_values.durations_said``): "new" the new timer's
# length, "change" an amount to add or remove (unless the words name the timer by it), "names" the
# timer meant by its starting length; "" for an intent that is not about a timer.
Durations = Literal["", "new", "change", "names"]

TURN_ON = "HassTurnOn"
TURN_OFF = "HassTurnOff"
TOGGLE = "HassToggle"
LIGHT_SET = "HassLightSet"
SET_POSITION = "HassSetPosition"
CLIMATE_SET_TEMPERATURE = "HassClimateSetTemperature"
CLIMATE_GET_TEMPERATURE = "HassClimateGetTemperature"
GET_STATE = "HassGetState"
GET_WEATHER = "HassGetWeather"
MEDIA_PAUSE = "HassMediaPause"
MEDIA_UNPAUSE = "HassMediaUnpause"
MEDIA_NEXT = "HassMediaNext"
MEDIA_PREVIOUS = "HassMediaPrevious"
MEDIA_SEARCH_AND_PLAY = "HassMediaSearchAndPlay"
SET_VOLUME = "HassSetVolume"
SET_VOLUME_RELATIVE = "HassSetVolumeRelative"
MEDIA_PLAYER_MUTE = "HassMediaPlayerMute"
MEDIA_PLAYER_UNMUTE = "HassMediaPlayerUnmute"
LAWN_MOWER_START_MOWING = "HassLawnMowerStartMowing"
LAWN_MOWER_DOCK = "HassLawnMowerDock"
VACUUM_START = "HassVacuumStart"
VACUUM_RETURN_TO_BASE = "HassVacuumReturnToBase"
LIST_ADD_ITEM = "HassListAddItem"
LIST_COMPLETE_ITEM = "HassListCompleteItem"
SHOPPING_LIST_ADD_ITEM = "HassShoppingListAddItem"
SHOPPING_LIST_COMPLETE_ITEM = "HassShoppingListCompleteItem"
FAN_SET_SPEED = "HassFanSetSpeed"
START_TIMER = "HassStartTimer"
CANCEL_TIMER = "HassCancelTimer"
CANCEL_ALL_TIMERS = "HassCancelAllTimers"
INCREASE_TIMER = "HassIncreaseTimer"
DECREASE_TIMER = "HassDecreaseTimer"
PAUSE_TIMER = "HassPauseTimer"
UNPAUSE_TIMER = "HassUnpauseTimer"
TIMER_STATUS = "HassTimerStatus"
GET_CURRENT_TIME = "HassGetCurrentTime"
GET_CURRENT_DATE = "HassGetCurrentDate"
NEVERMIND = "HassNevermind"
RESPOND = "HassRespond"
BROADCAST = "HassBroadcast"

# Share of the training data for an intent without its own ``sample_weight``.
DEFAULT_SAMPLE_WEIGHT = 0.7
# The question asked before a held state change: "Are you sure you want to {verb} the Front Door?"
DEFAULT_CONFIRM_VERB = "change"


@dataclass(frozen=True)
class IntentDef:
    """What one Home Assistant intent is, for every module that plans, parses or teaches it.

    ``domains``: the only domains it may act on (the grammar offers only their entities, the planner
    resolves targets among them; Home Assistant's handlers filter the same way); empty for any
    domain the slots name. ``sensitive``: a state change, so targets marked ``confirm`` (locks,
    doors, garage doors by default) wait for a spoken yes. ``changes_home``: doing it changes
    something (every control intent; of the box's own, the timers and a broadcast), so a wrong one
    is a wrong action, not a wrong answer. ``confirm_verbs``: (target domain,
    infinitive) for that question ("unlock"); other domains are asked to "change".
    """

    name: str
    kind: Kind
    domains: frozenset[str] = frozenset()
    sensitive: bool = False
    changes_home: bool = False
    confirm_verbs: tuple[tuple[str, str], ...] = ()
    # A plain service intent (Home Assistant's ServiceIntentHandler): (domain, service) called on
    # every target with ``service_data``, answered with ``done``. Others have a planner of their own.
    service: tuple[str, str] | None = None
    service_data: tuple[tuple[str, Any], ...] = ()
    done: str = ""
    # The name slot: "entity" (one of the home's names) or "text" (a timer's own name), in the spec;
    # ``name_checked``: checked against the home's exposed names before acting (not a timer's or a
    # list's name, which are not entity names the engine knows).
    name_kind: Literal["entity", "text"] = "entity"
    name_checked: bool = True
    # The slot whose value the words decide through Home Assistant's own lists ("are any batteries
    # *low*?" -> state "on"), and whether those phrases depend on the asked device's domain and class.
    said_slot: str = ""
    said_by_device: bool = False
    durations: Durations = ""
    # On/off over a whole domain: the grammar offers name "all" ("turn off all the fans"), and a
    # command said in a room is that room's only when it names a domain.
    over_domain: bool = False
    # Where the LLM answered with a domain but the words name one entity, the answer names it,
    # keeping these slots (Home Assistant's templates carry them with a name); () = never.
    keeps_with_name: tuple[str, ...] = ()
    # A question: an area or floor the words do not say is dropped (it is never the speaker's).
    drops_unsaid_places: bool = False
    sample_weight: float = DEFAULT_SAMPLE_WEIGHT  # relative share of the LLM's training sentences

    @property
    def is_timer(self) -> bool:
        return bool(self.durations)

    def confirm_verb(self, domain: str) -> str:
        """The infinitive for a confirmation question about changing an entity of ``domain``."""
        return dict(self.confirm_verbs).get(domain, DEFAULT_CONFIRM_VERB)


def _control(name: str, *domains: str, **kw: Any) -> IntentDef:
    return IntentDef(name, "control", frozenset(domains), sensitive=True, changes_home=True, **kw)


def _query(name: str, *domains: str, **kw: Any) -> IntentDef:
    return IntentDef(name, "query", frozenset(domains), **kw)


def _local(name: str, **kw: Any) -> IntentDef:
    return IntentDef(name, "local", **kw)


def _media(name: str, service: str, done: str, **kw: Any) -> IntentDef:
    return _control(name, "media_player", service=("media_player", service), done=done, **kw)


def _timer(name: str, durations: Durations, changes_home: bool = True, **kw: Any) -> IntentDef:
    kw.update(durations=durations, name_kind="text", name_checked=False, changes_home=changes_home)
    return _local(name, **kw)


# Sample weights measured on Home Assistant's suite with the first adapter (LLM alone 53.5%): state
# questions (sensors, binary sensors by device class), timers (durations read as names) and media
# commands failed most, so they get more examples than their share of templates would give them.
_DEFS = (
    _control(
        TURN_ON,
        confirm_verbs=(("cover", "open"), ("valve", "open"), ("lock", "lock")),
        over_domain=True,
        keeps_with_name=("area", "floor"),
        sample_weight=8,
    ),
    _control(
        TURN_OFF,
        confirm_verbs=(("cover", "close"), ("valve", "close"), ("lock", "unlock")),
        over_domain=True,
        keeps_with_name=("area", "floor"),
        sample_weight=8,
    ),
    _control(TOGGLE),
    _control(LIGHT_SET, "light", sample_weight=5),
    _control(SET_POSITION, "cover", "valve", sample_weight=2),
    _control(CLIMATE_SET_TEMPERATURE, "climate", sample_weight=2),
    _query(CLIMATE_GET_TEMPERATURE, "climate", "sensor", sample_weight=1),
    _query(
        GET_STATE,
        said_slot="state",
        said_by_device=True,
        keeps_with_name=("area", "floor", "domain", "state"),
        drops_unsaid_places=True,
        sample_weight=10,
    ),
    _query(GET_WEATHER),
    _media(MEDIA_PAUSE, "media_pause", "Paused", sample_weight=1.2),
    _media(MEDIA_UNPAUSE, "media_play", "Resumed", sample_weight=1.2),
    _media(MEDIA_NEXT, "media_next_track", "Playing the next track", sample_weight=1.2),
    _media(MEDIA_PREVIOUS, "media_previous_track", "Playing the previous track", sample_weight=1.2),
    _media(MEDIA_PLAYER_MUTE, "volume_mute", "Muted", service_data=(("is_volume_muted", True),)),
    _media(MEDIA_PLAYER_UNMUTE, "volume_mute", "Unmuted", service_data=(("is_volume_muted", False),)),
    _control(MEDIA_SEARCH_AND_PLAY, "media_player", said_slot="media_class", sample_weight=4),
    # "turn the volume down to 90 percent" was read as a step down (12 of 18): more examples
    _control(SET_VOLUME, "media_player", sample_weight=2.5),
    _control(SET_VOLUME_RELATIVE, "media_player"),
    _control(
        LAWN_MOWER_START_MOWING, "lawn_mower", service=("lawn_mower", "start_mowing"), done="Started mowing"
    ),
    _control(LAWN_MOWER_DOCK, "lawn_mower", service=("lawn_mower", "dock"), done="Returning to the dock"),
    _control(VACUUM_START, "vacuum", service=("vacuum", "start"), done="Started", sample_weight=1),
    _control(VACUUM_RETURN_TO_BASE, "vacuum", service=("vacuum", "return_to_base"), done="Returning to base"),
    _control(LIST_ADD_ITEM, "todo", name_checked=False, sample_weight=1.5),
    _control(LIST_COMPLETE_ITEM, "todo", name_checked=False, sample_weight=1.5),
    _control(SHOPPING_LIST_ADD_ITEM, name_checked=False, sample_weight=1),
    _control(SHOPPING_LIST_COMPLETE_ITEM, name_checked=False, sample_weight=1),
    _control(FAN_SET_SPEED),
    _timer(START_TIMER, "new", sample_weight=4),
    _timer(CANCEL_TIMER, "names", sample_weight=1.2),
    _timer(CANCEL_ALL_TIMERS, "names"),
    _timer(INCREASE_TIMER, "change", sample_weight=1.5),
    _timer(DECREASE_TIMER, "change", sample_weight=1.5),
    _timer(PAUSE_TIMER, "names"),
    _timer(UNPAUSE_TIMER, "names"),
    _timer(TIMER_STATUS, "names", changes_home=False, sample_weight=1.5),
    # Answered by the box itself, whatever the backend (as Home Assistant's satellites do).
    _local(GET_CURRENT_TIME),
    _local(GET_CURRENT_DATE),
    _local(NEVERMIND),
    _local(RESPOND),
    _local(BROADCAST, changes_home=True),
)
INTENTS: dict[str, IntentDef] = {d.name: d for d in _DEFS}


def lookup(name: str) -> IntentDef:
    """The definition of intent ``name``; an intent not in the catalogue (a name the LLM or a newer
    template set could give) is a control intent on any domain with nothing special about it."""
    found = INTENTS.get(name)
    return found if found is not None else IntentDef(name, "control")


def names_of_kind(kind: Kind) -> frozenset[str]:
    """The catalogued intents of one kind (control, query or local)."""
    return frozenset(n for n, d in INTENTS.items() if d.kind == kind)


def sample_weight(name: str) -> float:
    """Relative share of intent ``name`` among the LLM's training sentences."""
    return lookup(name).sample_weight
