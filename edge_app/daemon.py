"""`casavox run`: audio frames in, actions and replies out, for as long as the box is on.

One loop over 32-ms frames: silero VAD -> endpointer. At a short pause the utterance so far is
handed to a worker thread (speculation); at the confirmed endpoint its result is used if no speech
came in between, otherwise the final audio is processed. Then: confirmation rules, plan, backend,
reply, one JSON log line. Nothing here raises out of the loop for a bad utterance: the error is
the reply and the log line, and the next utterance is served.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import signal
import threading
import time
from collections import deque
from collections.abc import Iterable
from concurrent.futures import Executor, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass, field
from typing import TextIO

import numpy as np

from casavox.edge_app.assistant import Assistant, Turn, confirmation
from casavox.edge_app.backends import Backend
from casavox.edge_app.config import Config
from casavox.edge_app.early_action import EarlyContext, early_blocker, may_go_on
from casavox.edge_app.endpointing import Endpointer, Event
from casavox.edge_app.pipeline import SpeechPipeline, Understanding, normalize
from casavox.edge_app.timers import Timers
from casavox.runtime.audio.io import SAMPLE_RATE
from casavox.runtime.audio.vad import FRAME, SileroVad
from casavox.runtime.home import Home

log = logging.getLogger(__name__)

MIN_COMMAND_SAMPLES = SAMPLE_RATE * 3 // 10  # after the wake word: less than 0.3 s is no command
# "Stop" needs no wake word while a reply plays or a timer rings: a tiny closed grammar on a short
# utterance (neither engine ships a stop model). "cancel" and "no" stay a pending question's answers.
STOP_WORDS = frozenset({"stop", "stop it", "stop that", "stop please", "please stop", "okay stop", "ok stop",
                        "quiet", "be quiet", "quiet please", "enough", "that's enough", "shut up", "silence"})  # fmt: skip
MAX_STOP_SAMPLES = 2 * SAMPLE_RATE


def is_stop(text: str) -> bool:
    """Whether ``text`` is a bare "stop" (and its few everyday forms)."""
    return normalize(text) in STOP_WORDS


class Shutdown(BaseException):
    """Raised by the signal handler while the loop waits for audio."""


@dataclass
class Daemon:
    """The microphone/stream adapter around :class:`Assistant`: frames in, one turn per utterance."""

    config: Config
    pipeline: SpeechPipeline
    assistant: Assistant
    vad: SileroVad
    wake: object | None = None  # casavox.edge_app.wake_word.WakeWords: the acoustic wake word, if any
    front_end: object | None = None  # runtime.audio.front_end.FrontEnd: noise suppression before the VAD
    log: TextIO | None = None
    metrics: object | None = None
    speaker: object | None = None  # casavox.runtime.tts.PiperSpeaker for spoken replies
    stopping: threading.Event = field(default_factory=threading.Event)
    armed_until: float = 0.0
    records: list[dict] = field(default_factory=list)
    keep_records: bool = False
    on_record: object | None = None  # callable(record) after each utterance (the demo prints it)
    box: object | None = None  # casavox.edge_app.box_mqtt.BoxAnnouncer: the box in Home Assistant
    controls: object | None = None  # its BoxControls: mute and the speech threshold, set from there
    follower: object | None = None  # hass_home.HomeFollower: the home re-read from Home Assistant
    early_without: tuple[str, ...] = ()  # early-action rules switched off (benchmarks.endpointing)
    _busy: bool = False
    _question_at: int = 0  # source position (samples) when the pending question was delivered
    _position: object = None  # callable: samples the source has captured so far
    _woke_at: int = -1  # source position (samples) where the acoustic wake word last fired, unused
    _open_until: int = 0  # source position: an utterance beginning before it is the command (bare wake word)
    _player: object = None  # reply_audio.ReplyPlayer, made on the first spoken reply
    _playing_until: int = 0  # source position until which the last spoken reply is still playing
    _ringing: list = field(default_factory=list)  # names of finished timers still ringing
    _ring_until: int = 0
    _ring_next: int = 0

    @property
    def backend(self) -> Backend:
        return self.assistant.backend

    @property
    def home(self) -> Home:
        return self.assistant.home

    @property
    def timers(self) -> Timers:
        return self.assistant.timers

    def use_home(self, home: Home) -> None:
        """A new home from Home Assistant: understanding and planning switch to it together."""
        self.pipeline.use_home(home)
        self.assistant.home = home

    # ---- the conversation -------------------------------------------------------------
    def _now(self) -> int:
        return self._position() if self._position is not None else 0

    def _say(self, text: str) -> int:
        """Deliver a reply (printed; spoken when a speaker is configured, without waiting for the
        playback); how many samples of the source it takes to play (0 when not spoken)."""
        if not text:
            return 0
        log.info("reply: %s", text)
        if self.speaker is None or not (self.config.reply.say_to or self.config.reply.speak):
            return 0
        if self._player is None:
            from casavox.edge_app.reply_audio import ReplyPlayer

            self._player = ReplyPlayer(
                self.speaker, self.config.reply.say_to or None, self.config.reply.speak
            )
        played = int(self._player.say(text) * SAMPLE_RATE)
        self._playing_until = self._now() + played
        return played

    def _stoppable(self, start: int) -> bool:
        """A timer is ringing, or this speech began while a reply was still playing."""
        return bool(self._ringing) or start < self._playing_until

    def _stop_sounds(self) -> None:
        stopped = self._player.stop() if self._player is not None else False
        log.info("stopped%s%s", " the reply" if stopped else "", " the timer" if self._ringing else "")
        self._ringing, self._playing_until = [], 0

    def respond(self, heard: Understanding) -> Turn | None:
        """The turn for one understood utterance; None when there was nothing to parse."""
        if heard.result is None and heard.skipped != "answer":
            return None  # silence, no wake word: nothing was said to the box
        return self.assistant.handle(heard.text, self.config.area or None, heard.result)

    # ---- one utterance ----------------------------------------------------------------
    def _accepting_without_wake(self) -> tuple[str, ...]:
        if time.monotonic() < self.armed_until:
            return ()  # push-to-talk: no wake word needed
        return self.config.wake.words  # while a question is pending too: only its answer needs none

    def _gate(self, audio: np.ndarray, start: int, awaiting: bool) -> tuple[np.ndarray | None, str]:
        """What the acoustic wake word lets through of one utterance: (audio to transcribe or None,
        why). Reads the wake state, never changes it (speculation calls this too; :meth:`finish`
        moves the state on once per utterance)."""
        if self.wake is None or time.monotonic() < self.armed_until:
            return audio, ""
        end = start + len(audio)
        if start <= self._woke_at <= end:  # "okay nabu, turn off the lights" in one breath
            rest = audio[self._woke_at - start :]
            return (rest, "") if len(rest) >= MIN_COMMAND_SAMPLES else (None, "wake word only")
        follow = int(self.config.wake.follow_s * SAMPLE_RATE)
        if start < self._open_until or (self._woke_at >= 0 and 0 <= start - self._woke_at <= follow):
            # the command after a wake word said alone (the model may fire just after its
            # utterance was closed: then the wake word lies before this one)
            return audio, ""
        if awaiting:
            return audio, "answer only"  # a pending question's yes/no needs no wake word
        return None, "no wake word"

    def understand(self, audio: np.ndarray, start: int | None = None) -> Understanding:
        """One utterance; ``start`` is the source position (samples) where its audio began.

        With an acoustic wake word nothing is transcribed until it is heard: the command is the rest
        of the utterance it ended in, or the next utterance when it was said alone. While a question
        is pending only a yes/no answers it without the wake word (any other command still needs
        it), and only speech that began after the question was delivered (spoken, or printed) counts:
        a "yes" already under way when it was asked is no answer."""
        awaiting = self.assistant.awaiting_answer()
        answer = (lambda text: confirmation(text) is not None) if awaiting else None
        area = self.config.area or None
        if start is not None and len(audio) <= MAX_STOP_SAMPLES and self._stoppable(start):
            heard = self.pipeline.understand(audio, area, (), is_stop)
            if heard.skipped == "answer":
                return dataclasses.replace(heard, skipped="stopped")
        if self.wake is None:
            heard = self.pipeline.understand(audio, area, self._accepting_without_wake(), answer)
        else:
            gated, why = self._gate(audio, 0 if start is None else start, awaiting)
            if gated is None:
                return Understanding("", "", None, why)
            heard = self.pipeline.understand(gated, area, (), answer)
            if why == "answer only" and heard.skipped != "answer":
                heard = dataclasses.replace(heard, result=None, skipped="no wake word")
        if heard.skipped == "answer" and start is not None and start < self._question_at:
            log.info("an answer that began before the question was delivered: ignored")
            return dataclasses.replace(heard, skipped="answer before the question")
        return heard

    def _write_log(self, record: dict) -> None:
        """One JSON line; a failed write (disk full, file gone) is a warning, never the daemon's end."""
        if self.log is None:
            return
        try:
            self.log.write(json.dumps(record) + "\n")
            self.log.flush()
        except (OSError, ValueError) as exc:  # ValueError: the file was closed
            log.warning("could not write the JSON log (%s); carrying on", exc)

    def finish(
        self,
        event: Event,
        heard: Understanding,
        speculative: str,
        timings: dict,
        t_voiced: float | None,
        source: dict | None = None,
    ) -> dict:
        self._busy = True
        try:
            if heard.skipped == "stopped":
                self._stop_sounds()
            turn = self.respond(heard)
            t_act = time.monotonic()
            outcomes = turn.outcomes if turn is not None else []
            reply = turn.reply if turn is not None else ""
            label = turn.outcome if turn is not None else heard.skipped.replace(" ", "_")
            timings["action_ms"] = sum(o.action_ms for o in outcomes)
            if t_voiced is not None:
                timings["eos_to_action_ms"] = (t_act - t_voiced) * 1e3
            record = {
                "ts": round(time.time(), 3),
                "audio_s": round(len(event.audio) / SAMPLE_RATE, 2),
                "source": source,  # where the utterance began: file and offset, stdin, or the mic
                "end": event.reason,
                "speculative": speculative,
                "heard": heard.heard,
                "text": heard.text,
                "intent": heard.result.to_json() if heard.result is not None else None,
                "outcome": label,
                "reply": reply,
                "delivered": all(o.delivered for o in outcomes),
                "errors": [o.error for o in outcomes if o.error],
                "timings_ms": {k: round(v, 1) for k, v in timings.items()},
            }
            self._after_wake(heard)
            played = self._say(reply)
            if label == "asked" and self._position is not None:
                # delivered once spoken (or printed): only speech beginning after that answers it
                self._question_at = self._position() + played
            self._write_log(record)
            if self.metrics is not None:
                self.metrics.observe(record)
            if self.box is not None:
                self.box.observe(record)
            if self.keep_records:
                self.records.append(record)
            if self.on_record is not None:
                self.on_record(record)
            return record
        finally:
            self._busy = False

    def _after_wake(self, heard: Understanding) -> None:
        """The wake state after one utterance: a wake word said alone opens the next utterance; one
        that was used (or went stale) is spent."""
        if self.wake is None:
            return
        now = self._position() if self._position is not None else 0
        if heard.skipped == "wake word only":
            self._open_until = now + int(self.config.wake.follow_s * SAMPLE_RATE)
            self._woke_at = -1
        elif heard.skipped != "no wake word":
            self._open_until, self._woke_at = 0, -1  # the wake word was used (or a question answered)

    def _judge_pause(self, heard: Understanding) -> tuple[bool, bool]:
        """(act now, the words may go on) for a speculative result at a pause: act now only with
        ``safety.act_early`` and a finished, confident command that names its target and needs no
        confirmation; the words may go on when nothing is understood yet or no target is named
        (edge_app/early_action.py: the rules, each measured)."""
        r = heard.result
        if heard.skipped == "stopped" or self.assistant.pending is not None:
            return False, False  # "stop", or the answer to a question: short, never waited out
        if r is None:
            return False, True
        area = self.config.area or None
        context = EarlyContext(
            result=r,
            heard=heard.heard,
            home=self.assistant.home,
            area=area,
            sensitive=self.assistant.needs_confirmation(r, area),
            question_pending=self.assistant.pending is not None,
        )
        go_on = may_go_on(context)
        if not self.config.safety.act_early or go_on:
            return False, go_on
        blocker = early_blocker(context, self.early_without)
        if blocker:
            log.debug("not acting early on %r: %s", heard.heard, blocker)
        return not blocker, go_on

    # ---- the loop -----------------------------------------------------------------------
    def _check_timers(self) -> None:
        """A finished timer rings: "<name> timer done" now and every ``reply.ring_every_s`` until
        someone says "stop" (no wake word needed) or ``reply.ring_s`` has passed."""
        try:
            due = self.assistant.timers.due()
        except Exception as exc:  # noqa: BLE001 - a locked state file must not stop listening
            log.warning("timers unavailable: %s", exc)
            due = []
        now = self._now()
        if due:
            self._ringing += [f"{t.name + ' timer' if t.name else 'Timer'} done" for t in due]
            self._ring_until = now + int(self.config.reply.ring_s * SAMPLE_RATE)
            self._ring_next = now
        if not self._ringing or now < self._ring_next:
            return
        self._say("; ".join(self._ringing))
        self._ring_next = now + int(self.config.reply.ring_every_s * SAMPLE_RATE)
        if now >= self._ring_until:
            self._ringing = []  # rang out (ring_s 0: said once)

    def run(self, frames: Iterable[np.ndarray], executor: Executor | None = None) -> int:
        """Serve until the frames end or a stop signal; returns the number of utterances.

        ``executor`` runs the speculative understanding (default: one background thread, so
        listening goes on meanwhile); benchmarks pass one that finishes at once, the fastest
        machine there could be, to bound how often acting early cuts a speaker off."""
        endpointer = Endpointer(self.config.vad)
        executor = executor or ThreadPoolExecutor(max_workers=1, thread_name_prefix="casavox-speculate")
        spec: Future | None = None
        judged = False  # the current speculation's result has been looked at (_judge_pause)
        pushed: deque[float] = deque(maxlen=4096)  # wall time each recent frame was pushed
        served = 0
        streamed = 0  # frames taken from the source (muted ones too): offsets in the source's terms
        where = getattr(frames, "where", None) or (
            lambda sample: {"stream": "frames", "offset_s": round(sample / SAMPLE_RATE, 2)}
        )
        self.vad.reset()
        if self.wake is not None:
            self.wake.reset()
        self._woke_at, self._open_until, self._playing_until = -1, 0, 0
        if self._ringing:  # positions restart with the source
            self._ring_until, self._ring_next = int(self.config.reply.ring_s * SAMPLE_RATE), 0

        def start_of(audio: np.ndarray) -> int:
            return max(0, streamed * FRAME - len(audio))

        def source_of(event: Event) -> dict:
            return where(start_of(event.audio))

        # What the source has captured (a microphone's reader runs ahead of the loop while a reply
        # plays); a source without a clock of its own: what the loop has taken from it.
        self._position = getattr(frames, "position", None) or (lambda: streamed * FRAME)
        self._question_at = 0  # a question asked before this source began was asked before its speech

        def wall_of(sample: int) -> float | None:
            index = sample // FRAME - 1  # frame that contained the sample just before ``sample``
            back = endpointer.frames_seen - 1 - index
            return pushed[-1 - back] if 0 <= back < len(pushed) else None

        def handle_end(event: Event) -> None:
            nonlocal spec, served
            t_end = time.monotonic()
            timings = {
                "vad_tail_ms": (endpointer.frames_seen * FRAME - event.last_voiced) / SAMPLE_RATE * 1e3
            }
            if spec is not None:
                heard, label = spec.result(), "hit"
                timings["wait_ms"] = (time.monotonic() - t_end) * 1e3
            else:
                heard, label = (
                    self.understand(event.audio, start_of(event.audio)),
                    ("miss" if self.config.vad.speculate_ms else "off"),
                )
            spec = None
            timings.update(heard.timings_ms)
            self.finish(event, heard, label, timings, wall_of(event.last_voiced), source_of(event))
            served += 1

        try:
            for frame in frames:
                streamed += 1
                if self.controls is not None:
                    if self.controls.muted.is_set():
                        if endpointer.in_speech or spec is not None:  # muted mid-utterance: drop it
                            if spec is not None:
                                spec.cancel()
                            spec, endpointer = None, Endpointer(endpointer.settings)
                            pushed.clear()
                        continue  # muted: the frame is never heard
                    if self.controls.threshold != endpointer.settings.threshold:
                        t = self.controls.threshold
                        endpointer.settings = dataclasses.replace(
                            endpointer.settings,
                            threshold=t,
                            neg_threshold=min(endpointer.settings.neg_threshold, t),
                        )
                pushed.append(time.monotonic())
                if self.front_end is not None:  # what the VAD, the wake word and the ASR all hear
                    frame = self.front_end.process(frame)
                if self.wake is not None and self.wake.push(frame) is not None:
                    self._woke_at = streamed * FRAME  # where the phrase ended, in the source's samples
                for event in endpointer.push(frame, self.vad(frame)):
                    if event.kind == "speculate":
                        spec, judged = (
                            executor.submit(self.understand, event.audio, start_of(event.audio)),
                            False,
                        )
                        endpointer.hold()  # until the words so far are known to be a finished command
                    elif event.kind == "resume":
                        if spec is not None:
                            spec.cancel()  # not started yet: never runs; running: its result is ignored
                        spec = None  # the words go on: whatever it computes is void
                    elif event.kind == "end":
                        handle_end(event)
                if spec is not None and not judged and endpointer.in_speech:
                    # wait for the speculation up to one frame's time (the source buffers meanwhile),
                    # so a result is acted on when it is ready, not at the next frame's boundary
                    wait([spec], timeout=FRAME / SAMPLE_RATE)
                if spec is not None and not judged and spec.done() and endpointer.in_speech:
                    judged = True
                    heard = spec.result()
                    early, go_on = self._judge_pause(heard)
                    ended = None if go_on or early else endpointer.release()
                    if ended is not None:
                        handle_end(ended)
                    elif early:
                        # acting ends the utterance: whatever is said next is a new one
                        event = endpointer.cut("early")
                        timings = {
                            "vad_tail_ms": (endpointer.frames_seen * FRAME - event.last_voiced)
                            / SAMPLE_RATE
                            * 1e3
                        }
                        self.finish(
                            event,
                            heard,
                            "early",
                            {**timings, **heard.timings_ms},
                            wall_of(event.last_voiced),
                            source_of(event),
                        )
                        spec, served = None, served + 1
                if endpointer.frames_seen % 31 == 0:
                    self._check_timers()
                if self.stopping.is_set():
                    break
            else:
                event = endpointer.flush()
                if event is not None and not self.stopping.is_set():
                    handle_end(event)
        except Shutdown:
            pass
        finally:
            executor.shutdown(wait=True, cancel_futures=True)
        return served

    # ---- signals ------------------------------------------------------------------------
    def install_signals(self) -> None:
        """SIGTERM/SIGINT: finish the utterance being acted on, drop one still being spoken, exit.
        SIGUSR1: push-to-talk (accept commands without the wake word for a while)."""

        def stop(_signum, _frame) -> None:
            self.stopping.set()
            if not self._busy:
                raise Shutdown()

        def push_to_talk(_signum, _frame) -> None:
            self.armed_until = time.monotonic() + self.config.wake.push_to_talk_s

        signal.signal(signal.SIGTERM, stop)
        signal.signal(signal.SIGINT, stop)
        if hasattr(signal, "SIGUSR1"):
            signal.signal(signal.SIGUSR1, push_to_talk)
