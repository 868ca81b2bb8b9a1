"""One conversation turn: understood text -> plan -> safety policy -> execute -> reply.

:class:`Assistant` is the only place where a sentence's intents become actions on the home and the
only place the ``[safety] confirm = ask | refuse | allow`` policy is applied. The microphone daemon,
the Wyoming server and the CLI are thin adapters: they turn their input into one
:meth:`Assistant.handle` call and their output from the returned :class:`Turn` (the way
wyoming-faster-whisper's handler wraps one injected model).

A sentence is planned whole before anything runs. Parts that need a confirmation (locks, doors,
garage doors) are held: with ``ask`` they become the pending question and the rest runs; with
``refuse`` (or ``ask`` over a channel that cannot ask back, such as Wyoming's handle) they are
refused and the rest runs; with ``allow`` everything runs. Either way the reply says exactly what
ran and what did not, and the turn records it, so the reply and the state always agree.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from casavox.edge_app.actions import Action, plan
from casavox.edge_app.backends import Backend
from casavox.edge_app.config import SafetySettings
from casavox.edge_app.execute import Outcome, execute
from casavox.edge_app.pipeline import normalize
from casavox.edge_app.timers import Timers
from casavox.runtime.home import Home
from casavox.runtime.intents.result import IntentResult

log = logging.getLogger(__name__)

YES = {"yes", "yeah", "yep", "sure", "confirm", "confirmed", "do it", "go ahead", "ok", "okay", "yes please"}
NO = {"no", "nope", "cancel", "stop", "don't", "do not", "never mind", "no thanks"}
NOT_UNDERSTOOD = "Sorry, I didn't understand that"

# Turn.outcome values (the per-utterance log's "outcome")
ACTED, FAILED, ASKED, REFUSED, UNKNOWN = "acted", "failed", "asked", "refused", "unknown"
CONFIRMED, CANCELLED, NOT_UNDERSTOOD_LABEL, NOTHING_TO_CONFIRM = (
    "confirmed",
    "cancelled",
    "not_understood",
    "nothing_to_confirm",
)


def confirmation(text: str) -> str | None:
    """'yes' / 'no' when the utterance is an answer to "are you sure?", else None."""
    words = normalize(text)
    if words in YES or any(words.startswith(y + " ") for y in ("yes", "yeah", "yep", "sure")):
        return "yes"
    if words in NO or words.startswith("no "):
        return "no"
    return None


@dataclass
class Pending:
    """A question asked and not yet answered: the held actions and when the question lapses."""

    actions: list[Action]
    expires: float


MAX_QUESTIONS = 64  # open questions kept for other conversations (Wyoming clients) at once


@dataclass
class Turn:
    """What one turn understood, planned and did; every adapter renders its answer from this."""

    text: str
    area: str | None
    result: IntentResult | None  # None: the turn answered a question (or had nothing to parse)
    outcome: str  # acted | failed | unknown | asked | refused | confirmed | cancelled | not_understood | ...
    reply: str
    planned: list[Action] = field(default_factory=list)  # the whole sentence, planned before acting
    acted: list[Action] = field(default_factory=list)  # executed, in order...
    outcomes: list[Outcome] = field(default_factory=list)  # ...and what each did (delivered or not)
    asked: list[Action] = field(default_factory=list)  # held: the pending question is about these
    refused: list[Action] = field(default_factory=list)  # held and refused by the policy

    @property
    def delivered(self) -> bool:
        return all(o.delivered for o in self.outcomes)

    @property
    def errors(self) -> list[str]:
        return [o.error for o in self.outcomes if o.error]

    @property
    def handled(self) -> bool:
        """Wyoming's handled vs not-handled: what ran was carried out, and something ran (or a question
        was asked or answered). A sentence refused whole did nothing: not handled, the reply says why."""
        return self.delivered and (bool(self.outcomes) or self.outcome in (ASKED, CANCELLED))

    def to_json(self) -> dict:
        """The turn as the CLI and logs show it: what was understood, done, asked and refused."""

        def ids(actions: list[Action]) -> list[str]:
            return [e.id for a in actions for e in a.targets]

        return {
            "text": self.text,
            "area": self.area,
            "intent": self.result.to_json() if self.result is not None else None,
            "outcome": self.outcome,
            "reply": self.reply,
            "acted": ids(self.acted),
            "asked": ids(self.asked),
            "refused": ids(self.refused),
            "delivered": self.delivered,
            "errors": self.errors,
        }


def _names(actions: list[Action]) -> str:
    return " and ".join(e.name for a in actions for e in a.sensitive)


def _join(replies: list[str]) -> str:
    return "; ".join(r for r in replies if r)


@dataclass
class Assistant:
    """Owns the conversation: the home, what understands text, the backend, timers and the policy.

    ``understand(text, area)`` is the intent engine (``SpeechPipeline.parse``); it is injected so
    that the adapters can hand over a result they already computed (the daemon's speculation).
    One turn runs at a time (``lock``): concurrent Wyoming clients cannot interleave a plan with
    another turn's execution, so every reply describes the state it left.
    """

    home: Home
    understand: Callable[[str, str | None], IntentResult]
    backend: Backend
    timers: Timers
    safety: SafetySettings = field(default_factory=SafetySettings)
    area: str | None = None  # the room the box stands in
    clock: Callable[[], float] = time.monotonic
    # Open questions per conversation: None is the box's own microphone; a Wyoming client names its
    # conversation (Home Assistant's conversation_id), so one client's "yes" never answers another's.
    questions: dict[str | None, Pending] = field(default_factory=dict)
    lock: threading.RLock = field(default_factory=threading.RLock)

    @property
    def pending(self) -> Pending | None:
        """The question asked through the box's own microphone, if one is open."""
        return self.questions.get(None)

    # ---- planning -----------------------------------------------------------------------
    def plan(self, result: IntentResult, area: str | None = None) -> list[Action]:
        """The whole sentence's actions, planned before anything runs."""
        return [plan(i, self.home, area or self.area) for i in result.intents]

    def needs_confirmation(self, result: IntentResult, area: str | None = None) -> bool:
        """Whether acting on ``result`` would touch a lock, door or garage door."""
        return result.understood and any(a.sensitive for a in self.plan(result, area))

    def awaiting_answer(self) -> bool:
        """A question is pending and has not lapsed (the daemon then accepts yes/no without wake word)."""
        pending = self.pending
        return pending is not None and self.clock() <= pending.expires

    # ---- the turn -----------------------------------------------------------------------
    def handle(
        self,
        text: str,
        area: str | None = None,
        result: IntentResult | None = None,
        can_ask: bool = True,
        conversation: str | None = None,
    ) -> Turn:
        """One turn for ``text`` heard in ``area``.

        ``result`` is an already computed understanding of ``text`` (else ``understand`` is called).
        ``can_ask=False``: the channel cannot ask a follow-up question, so ``confirm = "ask"``
        refuses instead (a Wyoming client that names no conversation). ``conversation``: whose turn
        this is; a question asked in it is answered only by the next turn of the same conversation.
        """
        with self.lock:
            area = area or self.area
            answered = self._answer_pending(text, area, conversation)
            if answered is not None:
                return answered
            if result is None:
                result = self.understand(text, area)
            if not result.understood:
                if confirmation(text) == "yes":  # "okay do it" with no question asked: do nothing
                    return Turn(text, area, result, NOTHING_TO_CONFIRM, "There is nothing to confirm")
                return Turn(text, area, result, NOT_UNDERSTOOD_LABEL, result.reply or NOT_UNDERSTOOD)
            return self._act(text, area, result, can_ask, conversation)

    def _answer_pending(self, text: str, area: str | None, conversation: str | None) -> Turn | None:
        pending = self.questions.pop(conversation, None)
        if pending is None:
            return None
        if self.clock() > pending.expires:
            log.info("the confirmation question lapsed")
            return None  # too late: this is a new command
        answer = confirmation(text)
        if answer == "yes":
            outcomes = [self._execute(a) for a in pending.actions]
            reply = _join([o.reply for o in outcomes])
            return Turn(
                text, area, None, CONFIRMED, reply, list(pending.actions), list(pending.actions), outcomes
            )
        if answer == "no":
            return Turn(text, area, None, CANCELLED, "Okay, I won't", list(pending.actions))
        return None  # anything else: the question lapses and this is a new command

    def _ask(self, conversation: str | None, held: list[Action]) -> None:
        now = self.clock()
        for key in [k for k, q in self.questions.items() if q.expires < now]:
            del self.questions[key]  # lapsed questions of conversations that never came back
        while len(self.questions) >= MAX_QUESTIONS:
            del self.questions[next(k for k in self.questions if k is not None)]  # oldest first
        self.questions[conversation] = Pending(held, now + self.safety.confirm_timeout_s)

    def _act(
        self, text: str, area: str | None, result: IntentResult, can_ask: bool, conversation: str | None
    ) -> Turn:
        actions = self.plan(result, area)
        now = [a for a in actions if not a.sensitive]
        held = [a for a in actions if a.sensitive]
        outcomes = [self._execute(a) for a in now]
        replies = [o.reply for o in outcomes]
        outcome = ACTED if all(o.delivered for o in outcomes) else FAILED
        turn = Turn(text, area, result, outcome, "", actions, now, outcomes)
        if held:
            policy = self.safety.confirm
            if policy == "ask" and not can_ask:
                policy = "refuse"
            if policy == "allow":
                extra = [self._execute(a) for a in held]
                turn.acted += held
                turn.outcomes += extra
                replies += [o.reply for o in extra]
                turn.outcome = ACTED if turn.delivered else FAILED
            elif policy == "refuse":
                how = "by voice" if can_ask else "this way"
                replies.append(f"For safety, {_names(held)} can't be changed {how}")
                turn.refused = held
                turn.outcome = REFUSED if turn.delivered else FAILED
            else:
                self._ask(conversation, held)
                verb = held[0].verb  # the planner's infinitive ("unlock", "open")
                replies.append(f"Are you sure you want to {verb} the {_names(held)}?")
                turn.asked = held
                turn.outcome = ASKED if turn.delivered else FAILED
        if any(o.unknown for o in turn.outcomes):
            turn.outcome = UNKNOWN  # sent, not confirmed: the reply says so ("I'm not sure ...")
        turn.reply = _join(replies)
        return turn

    def _execute(self, action: Action) -> Outcome:
        outcome = execute(action, self.backend, self.timers)
        if outcome.error:
            log.warning("%s: %s", action.intent.name, outcome.error)
        return outcome
