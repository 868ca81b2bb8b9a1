"""Endpointing with the real silero VAD on synthesized speech: pauses, resumes, noise, clicks."""

from __future__ import annotations

import numpy as np
import pytest

from casavox.edge_app.endpointing import Endpointer, VadSettings
from casavox.edge_app.sources import frames_of
from casavox.runtime.audio.vad import FRAME, SileroVad

SR = 16_000


@pytest.fixture(scope="module")
def vad() -> SileroVad:
    return SileroVad.load()


def run(vad: SileroVad, audio: np.ndarray, settings: VadSettings | None = None):
    vad.reset()
    ep = Endpointer(settings or VadSettings())
    events = []
    for frame in frames_of(audio):
        events.extend(ep.push(frame, vad(frame)))
    end = ep.flush()
    return events + ([end] if end else [])


def silence(seconds: float) -> np.ndarray:
    return np.zeros(int(seconds * SR), np.float32)


def test_one_command_one_utterance_with_speculation_first(vad, say) -> None:
    speech = say("Turn off the lights in the kitchen.")
    events = run(vad, np.concatenate([silence(0.5), speech, silence(1.0)]))
    kinds = [e.kind for e in events]
    assert kinds == ["speculate", "end"]
    end = events[-1]
    assert end.reason == "silence"
    # the utterance holds the whole command: pre-roll before the onset, the speech, the tail
    assert len(speech) <= len(end.audio) <= len(speech) + 0.32 * SR + 0.35 * SR + FRAME
    # the speculation saw everything the final one did except trailing silence
    spec = events[0].audio
    assert np.array_equal(spec, end.audio[: len(spec)])
    assert np.abs(end.audio[len(spec) :]).max() < 0.05


def trimmed(audio: np.ndarray) -> np.ndarray:
    """Without the voice's own leading/trailing silence, so the pauses below are the real ones."""
    loud = np.flatnonzero(np.abs(audio) > 0.01)
    return audio[loud[0] : loud[-1] + 1]


def test_a_pause_inside_a_command_voids_the_speculation(vad, say) -> None:
    a, b = trimmed(say("Turn off the lights")), trimmed(say("in the kitchen."))
    audio = np.concatenate([silence(0.3), a, silence(0.22), b, silence(1.0)])
    kinds = [e.kind for e in run(vad, audio)]
    # the 220-ms pause is longer than the speculation point (150 ms), shorter than the endpoint
    assert kinds.count("end") == 1
    assert "resume" in kinds and kinds.index("resume") < kinds.index("end")


def test_two_commands_with_a_long_pause_are_two_utterances(vad, say) -> None:
    a, b = say("Turn on the desk lamp."), say("Lock the front door.")
    events = run(vad, np.concatenate([a, silence(1.0), b, silence(1.0)]))
    assert [e.kind for e in events if e.kind == "end"] == ["end", "end"]


def test_silence_and_clicks_make_no_utterance(vad) -> None:
    click = np.zeros(int(0.05 * SR), np.float32)
    click[::40] = 0.9
    audio = np.concatenate([silence(2.0), click, silence(2.0)])
    assert [e for e in run(vad, audio) if e.kind == "end"] == []


def test_endless_speech_is_cut_at_the_maximum_length(vad, say) -> None:
    speech = say("and the lights and the fan and the music and the blinds and the heating")
    endless = np.concatenate([speech] * 4)  # ~16 s with no pause
    events = run(vad, endless, VadSettings(max_utterance_s=5.0))
    ends = [e for e in events if e.kind == "end"]
    assert ends[0].reason == "max_length"
    assert len(ends[0].audio) <= 5.0 * SR + FRAME


def test_speculation_can_be_turned_off(vad, say) -> None:
    speech = say("Turn off the lights in the kitchen.")
    events = run(vad, np.concatenate([speech, silence(1.0)]), VadSettings(speculate_ms=0))
    assert [e.kind for e in events] == ["end"]
