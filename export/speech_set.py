"""Spoken smart-home commands made on the spot with two very different synthetic voices.

No recorded speech ships with casavox, so the export parity check, the tests and the benchmarks
all synthesize the same sentences: Piper (neural, en_US joe; its random noise turned off so every
run and machine hears the same audio) and espeak-ng (formant). ``expected``
is written the way Whisper writes it (digits, "%"), and scoring normalizes case and punctuation.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np

COMMANDS = [
    "Turn off the lights in the kitchen.",
    "Turn on the living room lamp.",
    "Set the bedroom lights to 50%.",
    "Dim the office light.",
    "Switch off the TV.",
    "Open the garage door.",
    "Lock the front door.",
    "Unlock the back door.",
    "Close the blinds in the living room.",
    "Set the thermostat to 21 degrees.",
    "What is the temperature in the bedroom?",
    "Turn on the fan.",
    "Turn off all the lights.",
    "Start the vacuum.",
    "Is the front door locked?",
    "Turn the hallway light red.",
    "Set the kitchen lights to 20% brightness.",
    "Open the curtains in the bedroom.",
    "Turn off the coffee maker.",
    "Turn on the porch light.",
    "Pause the music.",
    "Set a timer for 10 minutes.",
    "Turn up the volume on the speaker.",
    "Turn off the heater in the bathroom.",
    "It is too dark in the office.",
    "Turn on the lights upstairs.",
    "Switch on the dishwasher.",
    "Close the garage door.",
    "Turn off the ceiling fan in the bedroom.",
    "Brighten the lights in the dining room.",
    "Turn on the reading lamp.",
    "Stop the washing machine.",
]
CALIBRATION = COMMANDS[:8]


@dataclass(frozen=True)
class Utterance:
    expected: str
    voice: str
    audio: np.ndarray  # 16 kHz mono float32


def normalize(text: str) -> str:
    """Lower case, '%' spelled out, punctuation dropped, spaces collapsed."""
    text = text.lower().replace("%", " percent")
    text = re.sub(r"[^a-z0-9' ]+", " ", text)
    return " ".join(text.split())


def word_error_rate(references: list[str], hypotheses: list[str]) -> float:
    """Corpus WER over normalized texts (jiwer)."""
    import jiwer

    refs = [normalize(r) or "<empty>" for r in references]
    hyps = [normalize(h) for h in hypotheses]
    return float(jiwer.wer(refs, hyps))


def synthesize(
    text: str, voice: str, cache_dir: Path | None = None, _speakers: dict | None = None
) -> np.ndarray:
    """16 kHz audio of ``text`` in ``voice`` ("piper" or "espeak"), cached as WAV when asked."""
    import soundfile

    from casavox.runtime.audio.io import SAMPLE_RATE, to_mono_16k

    path = None
    if cache_dir is not None:
        key = hashlib.sha1(f"{voice}|det|{text}".encode()).hexdigest()[:16]
        path = Path(cache_dir) / voice / f"{key}.wav"
        if path.exists():
            audio, _ = soundfile.read(path, dtype="float32")
            return audio
    if voice == "piper":
        from casavox.runtime.tts import PiperSpeaker

        speakers = _speakers if _speakers is not None else {}
        speaker = speakers.setdefault("piper", PiperSpeaker())
        speech = speaker.say(text, deterministic=True)
    elif voice == "espeak":
        from casavox.runtime.tts import espeak_say

        speech = espeak_say(text)
    else:
        raise ValueError(f"unknown voice {voice}")
    audio = to_mono_16k(speech.audio, speech.sample_rate)
    if path is not None:
        path.parent.mkdir(parents=True, exist_ok=True)
        soundfile.write(path, audio, SAMPLE_RATE, subtype="FLOAT")
    return audio


def speech_set(
    sentences: list[str] = COMMANDS,
    voices: tuple[str, ...] = ("piper", "espeak"),
    cache_dir: Path | None = None,
) -> list[Utterance]:
    speakers: dict = {}
    return [
        Utterance(text, voice, synthesize(text, voice, cache_dir, speakers))
        for voice in voices
        for text in sentences
    ]
