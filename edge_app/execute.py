"""Carry out planned actions on a backend and say what happened, Home Assistant style.

State changes go to the backend; questions are answered from the backend's state; timers, the
time and the date are answered by the box. Every outcome says whether it was delivered, so an
undeliverable command is reported now and never retried later.
"""

from __future__ import annotations

import datetime as dt
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from casavox.edge_app.actions import Action, ServiceCall
from casavox.edge_app.backends import Backend, DeliveryError, EntityState
from casavox.edge_app.timers import Timer, Timers, duration, spoken
from casavox.runtime.home import Entity
from casavox.runtime.intents import catalogue as c

log = logging.getLogger(__name__)


@dataclass
class Outcome:
    reply: str
    delivered: bool = True
    calls: list[ServiceCall] = field(default_factory=list)
    error: str = ""
    action_ms: float = 0.0
    unknown: bool = False  # sent, but never acknowledged: it may or may not have happened


def _describe(state: str, attrs: dict, domain: str) -> str:
    if domain == "sensor" or domain == "climate" and "current_temperature" in attrs:
        unit = attrs.get("unit_of_measurement", "")
        value = attrs.get("current_temperature", state)
        return f"{value} {unit}".strip() if unit else str(value)
    return state.replace("_", " ")


def _temperature(known: list[tuple[Entity, EntityState]]) -> str:
    e, s = known[0]
    value = s.attributes.get("current_temperature", s.state)
    return (
        f"It is {value} degrees in the {e.name}"
        if value not in (None, "")
        else f"I don't know the temperature of {e.name}"
    )


def _weather(known: list[tuple[Entity, EntityState]]) -> str:
    e, s = known[0]
    temp = s.attributes.get("temperature")
    return f"{s.state.replace('_', ' ').capitalize()}" + (f", {temp} degrees" if temp is not None else "")


# Questions answered in their own words; every other query is a state question (``answer``).
ANSWERS: dict[str, Callable[[list[tuple[Entity, EntityState]]], str]] = {
    c.CLIMATE_GET_TEMPERATURE: _temperature,
    c.GET_WEATHER: _weather,
}


def answer(action: Action, backend: Backend) -> str:
    """The reply to a state question (HassGetState, temperatures, weather)."""
    slots = action.intent.slots
    states = [(e, backend.state(e.id)) for e in action.targets]
    known = [(e, s) for e, s in states if s is not None]
    if not known:
        return "I don't know the state of " + ", ".join(e.name for e, _ in states)
    if action.intent.name in ANSWERS:
        return ANSWERS[action.intent.name](known)
    wanted = slots.get("state")
    if wanted is None:
        if len(known) == 1:
            e, s = known[0]
            return f"{e.name} is {_describe(s.state, s.attributes, e.domain)}"
        return "; ".join(f"{e.name} is {_describe(s.state, s.attributes, e.domain)}" for e, s in known)
    matching = [e for e, s in known if s.state == str(wanted)]
    if len(known) == 1:
        e, s = known[0]
        return "Yes" if matching else f"No, {e.name} is {_describe(s.state, s.attributes, e.domain)}"
    if matching:
        return "Yes, " + ", ".join(e.name for e in matching)
    return "No"


# A local intent's answer: (the action's slots, the box's timers, now) -> the reply.
LocalAnswer = Callable[[dict, Timers, dt.datetime], str]
# An answer about the timers the command means (``Timers.find``), given they exist.
TimerAnswer = Callable[[dict, Timers, list[Timer]], str]


def _about_timers(reply: TimerAnswer) -> LocalAnswer:
    """``reply`` about the timers the slots mean, or the reply that there are none."""

    def local_answer(slots: dict, timers: Timers, now: dt.datetime) -> str:
        found = timers.find(slots)
        if not found:
            return "No timer is running" if not slots.get("name") else f"There is no {slots['name']} timer"
        return reply(slots, timers, found)

    return local_answer


def _start_timer(slots: dict, timers: Timers, now: dt.datetime) -> str:
    seconds = duration(slots)
    if seconds <= 0:
        return "How long should the timer be?"
    timers.start(seconds, slots.get("name"), slots.get("conversation_command"))
    return f"Timer set for {spoken(seconds)}"


def _cancel_all_timers(slots: dict, timers: Timers, now: dt.datetime) -> str:
    found = timers.all()
    timers.cancel(found)
    return (
        f"Cancelled {len(found)} timer{'s' if len(found) != 1 else ''}" if found else "No timers are running"
    )


def _cancel_timer(slots: dict, timers: Timers, found: list[Timer]) -> str:
    timers.cancel(found)
    return "Timer cancelled"


def _pause_timer(paused: bool) -> TimerAnswer:
    def pause(slots: dict, timers: Timers, found: list[Timer]) -> str:
        timers.pause(found, paused)
        return "Timer paused" if paused else "Timer resumed"

    return pause


def _adjust_timer(sign: int) -> TimerAnswer:
    def adjust(slots: dict, timers: Timers, found: list[Timer]) -> str:
        delta = duration(slots) * sign
        timers.adjust(found, delta)
        return f"Timer {'increased' if delta > 0 else 'decreased'} by {spoken(abs(delta))}"

    return adjust


def _timer_status(slots: dict, timers: Timers, found: list[Timer]) -> str:
    return "; ".join(
        f"{(t.name + ' timer') if t.name else 'Timer'}: {spoken(t.remaining)} left{' (paused)' if t.paused else ''}"
        for t in found
    )


LOCAL_ANSWERS: dict[str, LocalAnswer] = {
    c.GET_CURRENT_TIME: lambda slots, timers, now: now.strftime("It is %-I:%M %p"),
    c.GET_CURRENT_DATE: lambda slots, timers, now: now.strftime("Today is %A, %B %-d"),
    c.NEVERMIND: lambda slots, timers, now: "",
    c.RESPOND: lambda slots, timers, now: str(slots.get("response", "")),
    c.BROADCAST: lambda slots, timers, now: f"Broadcasting: {slots.get('message', '')}",
    c.START_TIMER: _start_timer,
    c.CANCEL_ALL_TIMERS: _cancel_all_timers,
    c.CANCEL_TIMER: _about_timers(_cancel_timer),
    c.PAUSE_TIMER: _about_timers(_pause_timer(True)),
    c.UNPAUSE_TIMER: _about_timers(_pause_timer(False)),
    c.INCREASE_TIMER: _about_timers(_adjust_timer(1)),
    c.DECREASE_TIMER: _about_timers(_adjust_timer(-1)),
    c.TIMER_STATUS: _about_timers(_timer_status),
}


def local(action: Action, timers: Timers, now: dt.datetime | None = None) -> str:
    """Intents the box answers itself: timers, time, date, nevermind, canned responses."""
    n = action.intent.name
    unsupported = _about_timers(lambda slots, timers, found: f"I can't do {n} yet")
    return LOCAL_ANSWERS.get(n, unsupported)(action.intent.slots, timers, now or dt.datetime.now())


def relative_volume(action: Action, backend: Backend) -> list[ServiceCall]:
    """volume_set calls moving each target player's level by ``action.volume_step`` points (0-100%)."""
    calls = []
    for e in action.targets:
        current = backend.state(e.id)
        level = float((current.attributes if current else {}).get("volume_level", 0.5) or 0.0)
        new = max(0.0, min(1.0, level + (action.volume_step or 0.0) / 100))
        calls.append(ServiceCall("media_player", "volume_set", (e.id,), {"volume_level": round(new, 3)}))
    return calls


def execute(action: Action, backend: Backend, timers: Timers) -> Outcome:
    """Do one planned action now; failures are reported in the outcome, not raised."""
    t0 = time.perf_counter()

    def done(outcome: Outcome) -> Outcome:
        outcome.action_ms = (time.perf_counter() - t0) * 1e3
        return outcome

    if action.error:
        return done(Outcome(action.error[0].upper() + action.error[1:], delivered=False, error=action.error))
    sent: list[ServiceCall] = []
    calls = action.calls
    try:
        if action.kind == "local":
            from casavox.edge_app.state_store import StateError

            try:
                return done(Outcome(local(action, timers)))
            except StateError as exc:
                return done(Outcome(f"Sorry, {exc}", delivered=False, error=str(exc)))
        if action.kind == "query":
            return done(Outcome(answer(action, backend)))
        if action.volume_step is not None:
            calls = relative_volume(action, backend)
        for call in calls:
            backend.call(call)
            sent.append(call)
    except DeliveryError as exc:
        return done(_undelivered(action, exc, sent, len(calls)))
    except Exception as exc:  # a bug in one action must not take the daemon down: a failed outcome
        log.warning("action %s failed unexpectedly: %s: %s", action.intent.name, type(exc).__name__, exc)
        log.debug("traceback of the failed action", exc_info=True)
        unexpected = DeliveryError(f"unexpected error ({type(exc).__name__})")
        return done(_undelivered(action, unexpected, sent, len(calls)))
    return done(Outcome(action.reply, calls=sent))


def _undelivered(action: Action, exc: DeliveryError, sent: list[ServiceCall], total: int) -> Outcome:
    """The outcome of an action whose calls stopped at ``exc``; says whether the outcome is unknown."""
    partly = (
        f" (done before the failure: {len(sent)} of {total})" if action.kind == "control" and sent else ""
    )
    if exc.unknown:  # the backend's message says what is unknown ("I'm not sure the ... got the command")
        return Outcome(f"{exc}{partly}", delivered=False, calls=sent, error=str(exc), unknown=True)
    return Outcome(f"Sorry, that did not work: {exc}{partly}", delivered=False, calls=sent, error=str(exc))
