"""Spoken replies: Piper speech written to a WAV file and/or played on the output device."""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np

log = logging.getLogger(__name__)


def speak(speaker, text: str, wav_path: str | None = None, play: bool = False) -> None:
    """Synthesize ``text``; ``wav_path`` gets the latest reply (overwritten), ``play`` uses pyaudio."""
    import soundfile

    speech = speaker.say(text)
    if wav_path:
        Path(wav_path).parent.mkdir(parents=True, exist_ok=True)
        soundfile.write(wav_path, speech.audio, speech.sample_rate, subtype="PCM_16")
    if play:
        try:
            import pyaudio
        except ImportError:
            log.warning("cannot play replies without pyaudio (pip install 'casavox[audio]')")
            return
        pa = pyaudio.PyAudio()
        try:
            stream = pa.open(format=pyaudio.paInt16, channels=1, rate=speech.sample_rate, output=True)
            stream.write((np.clip(speech.audio, -1, 1) * 32767).astype("<i2").tobytes())
            stream.close()
        except OSError as exc:
            log.warning("no audio output device (%s)", exc)
        finally:
            pa.terminate()
