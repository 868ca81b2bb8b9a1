"""Spoken replies: Piper speech written to a WAV file and/or played on the output device.

:class:`ReplyPlayer` plays without holding up the listening loop, so a reply can be interrupted
("stop") while it is being spoken: the audio goes to the device in short chunks from a thread that
checks for a stop between them.
"""

from __future__ import annotations

import logging
import threading
from pathlib import Path

import numpy as np

log = logging.getLogger(__name__)

CHUNK_S = 0.05  # a stop takes effect within this much of the reply


def _write_wav(path: str, audio: np.ndarray, rate: int) -> None:
    import soundfile

    Path(path).parent.mkdir(parents=True, exist_ok=True)
    soundfile.write(path, audio, rate, subtype="PCM_16")


class ReplyPlayer:
    """One reply at a time: ``say(text)`` returns the reply's length in seconds at once (the WAV
    is written first); ``stop()`` cuts the one playing. ``play`` uses pyaudio's default output."""

    def __init__(self, speaker, wav_path: str | None = None, play: bool = False) -> None:
        self.speaker, self.wav_path, self.play = speaker, wav_path, play
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    @property
    def playing(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    def say(self, text: str) -> float:
        self.stop()
        speech = self.speaker.say(text)
        if self.wav_path:
            _write_wav(self.wav_path, speech.audio, speech.sample_rate)
        if self.play:
            self._stop.clear()
            self._thread = threading.Thread(
                target=self._play, args=(speech.audio, speech.sample_rate), name="casavox-reply", daemon=True
            )
            self._thread.start()
        return len(speech.audio) / speech.sample_rate

    def stop(self) -> bool:
        """Cut the reply being played; whether one was."""
        was = self.playing
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=1.0)
        return was

    def _play(self, audio: np.ndarray, rate: int) -> None:
        try:
            import pyaudio
        except ImportError:
            log.warning("cannot play replies without pyaudio (pip install 'casavox[audio]')")
            return
        pa = pyaudio.PyAudio()
        try:
            stream = pa.open(format=pyaudio.paInt16, channels=1, rate=rate, output=True)
            pcm = (np.clip(audio, -1, 1) * 32767).astype("<i2")
            step = int(CHUNK_S * rate)
            for i in range(0, len(pcm), step):
                if self._stop.is_set():
                    log.info("reply stopped")
                    break
                stream.write(pcm[i : i + step].tobytes())
            stream.close()
        except OSError as exc:
            log.warning("no audio output device (%s)", exc)
        finally:
            pa.terminate()


def speak(speaker, text: str, wav_path: str | None = None, play: bool = False) -> float:
    """Synthesize ``text`` once and wait for it to be played (the CLI's replies); its length in s."""
    player = ReplyPlayer(speaker, wav_path, play)
    seconds = player.say(text)
    if player._thread is not None:
        player._thread.join()
    return seconds
