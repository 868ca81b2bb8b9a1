"""The acoustic wake-word detector (edge_app/wake_word.py) on real models and synthesized speech."""

from __future__ import annotations

import numpy as np
import pytest

from casavox.edge_app.wake_word import WakeWordError, builtin_names, load_wake_words
from casavox.runtime.audio.io import SAMPLE_RATE


def hits(wake, audio: np.ndarray) -> list[tuple[str, float]]:
    wake.reset()
    lead = np.zeros(SAMPLE_RATE, np.float32)
    x = np.concatenate([lead, audio, lead])
    found = []
    for i in range(0, len(x) - 511, 512):
        h = wake.push(x[i : i + 512])
        if h is not None:
            found.append((h.name, h.sample / SAMPLE_RATE))
    return found


@pytest.mark.parametrize("engine", ["micro", "open"])
def test_the_wake_word_is_heard_and_other_speech_is_not(engine, say) -> None:
    wake = load_wake_words(["okay_nabu", "hey_jarvis"], engine)
    said = say("Okay Nabu, turn off the lights in the kitchen.")
    found = hits(wake, said)
    assert [n for n, _ in found] == ["okay_nabu"], found
    assert 1.0 < found[0][1] < 1.0 + len(said) / SAMPLE_RATE  # inside the speech, not at its start
    assert hits(wake, say("Hey Jarvis, what time is it?"))[:1] == [
        ("hey_jarvis", pytest.approx(1.9, abs=1.0))
    ]
    assert hits(wake, say("Turn off the lights in the kitchen, it is late.")) == []


def test_each_model_keeps_its_own_cutoff_unless_a_threshold_is_set() -> None:
    assert [x.cutoff for x in load_wake_words(["okay_nabu", "hey_jarvis"]).listeners] == [0.85, 0.97]
    assert [x.cutoff for x in load_wake_words(["okay_nabu"], threshold=0.6).listeners] == [0.6]
    with pytest.raises(WakeWordError, match="threshold"):
        load_wake_words(["okay_nabu"], threshold=1.5)


def test_bad_wake_words_are_one_clear_line(tmp_path) -> None:
    with pytest.raises(WakeWordError, match="not a model file and not one of .*okay_nabu"):
        load_wake_words(["hey_casa"])
    with pytest.raises(WakeWordError, match="no such file"):
        load_wake_words([str(tmp_path / "mine.json")])
    (tmp_path / "mine.tflite").write_bytes(b"")
    with pytest.raises(WakeWordError, match="takes its .json config"):
        load_wake_words([str(tmp_path / "mine.tflite")], "micro")
    with pytest.raises(WakeWordError, match="engine must be one of"):
        load_wake_words(["okay_nabu"], "snowboy")
    assert "okay_nabu" in builtin_names("micro") and "hey_rhasspy" in builtin_names("open")
