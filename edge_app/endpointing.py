"""Endpointing: silero VAD probabilities -> utterances, with a speculative early look.

The wait for trailing silence is most of the latency a user feels. So at the first short pause
(``speculate_ms``) the daemon is told to start ASR + intent on the audio so far; if the pause
grows into a confirmed endpoint (``trailing_silence_ms``) with no speech in between, that work is
already done; if speech resumes, the speculation is void. What the speculation found also sets
the endpoint (semantic endpointing, edge_app/early_action.py): the daemon holds a pause open to
``unfinished_silence_ms`` from the moment it speculates, releases it to ``trailing_silence_ms``
once the words so far are a finished command, or cuts the utterance at once (``cut``) to act early.

State machine, one decision per 32-ms frame:
  idle --(prob >= threshold)--> speech --(prob < neg_threshold for N frames)--> end
with a pre-roll ring buffer (the onset Silero needs a frame to notice), a minimum speech length
(clicks and coughs are dropped) and a maximum utterance length (endless noise is cut off).
"""

from __future__ import annotations

import collections
from dataclasses import dataclass, field

import numpy as np

from casavox.runtime.audio.io import SAMPLE_RATE
from casavox.runtime.audio.vad import FRAME

FRAME_MS = FRAME * 1000 / SAMPLE_RATE


@dataclass(frozen=True)
class VadSettings:
    threshold: float = 0.5  # speech starts / resumes at this probability
    neg_threshold: float = 0.35  # and counts as silence below this one (hysteresis)
    pre_roll_ms: float = 320.0
    min_speech_ms: float = 200.0
    speculate_ms: float = 100.0  # first short pause: start ASR + intent early (0 = off)
    trailing_silence_ms: float = 250.0  # confirmed end of speech (README "Endpointing": the trade-off)
    # Semantic endpointing (edge_app/early_action.py): while the words so far may go on (not
    # understood, or a command that names no target), a pause ends the utterance only after this
    # much silence; 0 = off (every pause ends at trailing_silence_ms).
    unfinished_silence_ms: float = 800.0
    max_utterance_s: float = 10.0

    def frames(self, ms: float) -> int:
        return max(1, round(ms / FRAME_MS))


@dataclass(frozen=True)
class Event:
    """``speculate``: a pause, audio so far; ``resume``: speech again, drop the speculation;
    ``end``: the utterance (reason "silence", "max_length" or "end_of_stream")."""

    kind: str
    audio: np.ndarray | None = None
    reason: str = ""
    last_voiced: int = 0  # stream sample index just after the last voiced frame


@dataclass
class Endpointer:
    settings: VadSettings = field(default_factory=VadSettings)
    frames_seen: int = 0
    _pre: collections.deque = field(default_factory=collections.deque)
    _speech: list = field(default_factory=list)
    _voiced_frames: int = 0
    _silent_run: int = 0
    _speculated: bool = False
    _last_voiced: int = 0
    _hold: int = 0  # frames of silence this pause needs instead of trailing_silence_ms (0: those)

    @property
    def in_speech(self) -> bool:
        return bool(self._speech)

    def _audio(self) -> np.ndarray:
        return np.concatenate(self._speech)

    def _finish(self, reason: str) -> Event | None:
        enough = self._voiced_frames >= self.settings.frames(self.settings.min_speech_ms)
        event = Event("end", self._audio(), reason, self._last_voiced) if enough else None
        self._speech, self._voiced_frames, self._silent_run, self._speculated = [], 0, 0, False
        self._hold = 0
        self._pre.clear()
        return event

    def hold(self) -> None:
        """The words so far may go on: this pause ends the utterance only after
        ``unfinished_silence_ms`` (when longer than ``trailing_silence_ms``)."""
        s = self.settings
        if self._speech and s.unfinished_silence_ms > s.trailing_silence_ms:
            self._hold = s.frames(s.unfinished_silence_ms)

    def release(self) -> Event | None:
        """The words so far are a finished command: the pause ends at ``trailing_silence_ms``; the
        end, when the silence is already that long (the speculation took longer than the wait)."""
        self._hold = 0
        if self._speech and self._silent_run >= self.settings.frames(self.settings.trailing_silence_ms):
            return self._finish("silence")
        return None

    def push(self, frame: np.ndarray, prob: float) -> list[Event]:
        """One 512-sample frame and its speech probability -> zero or more events."""
        s = self.settings
        self.frames_seen += 1
        events: list[Event] = []
        if not self._speech:
            self._pre.append(frame)
            while len(self._pre) > s.frames(s.pre_roll_ms):
                self._pre.popleft()
            if prob >= s.threshold:
                self._speech = list(self._pre)
                self._pre.clear()
                self._voiced_frames, self._silent_run = 1, 0
                self._last_voiced = self.frames_seen * FRAME
            return events
        self._speech.append(frame)
        if prob >= s.threshold or (prob >= s.neg_threshold and self._silent_run == 0):
            self._voiced_frames += 1
            self._last_voiced = self.frames_seen * FRAME
            if self._silent_run and self._speculated:
                events.append(Event("resume"))
            self._silent_run, self._speculated, self._hold = 0, False, 0
        else:
            self._silent_run += 1
            enough = self._voiced_frames >= s.frames(s.min_speech_ms)
            if (
                s.speculate_ms > 0
                and enough
                and not self._speculated
                and self._silent_run == s.frames(s.speculate_ms)
                and s.frames(s.speculate_ms) < s.frames(s.trailing_silence_ms)
            ):
                self._speculated = True
                events.append(Event("speculate", self._audio(), last_voiced=self._last_voiced))
            if self._silent_run >= (self._hold or s.frames(s.trailing_silence_ms)):
                end = self._finish("silence")
                return events + ([end] if end else [])
        if len(self._speech) * FRAME >= s.max_utterance_s * SAMPLE_RATE:
            end = self._finish("max_length")
            events.extend([end] if end else [])
        return events

    def cut(self, reason: str) -> Event:
        """End the current utterance now (the daemon acted early on it)."""
        event = Event("end", self._audio(), reason, self._last_voiced)
        self._speech, self._voiced_frames, self._silent_run, self._speculated = [], 0, 0, False
        self._hold = 0
        self._pre.clear()
        return event

    def flush(self) -> Event | None:
        """The stream ended: whatever speech is pending becomes an utterance."""
        return self._finish("end_of_stream") if self._speech else None
