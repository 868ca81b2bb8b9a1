"""Noise suppression and automatic gain before the VAD, as Home Assistant's Assist pipeline does.

Two engines, the ones Home Assistant itself uses: ``webrtc`` (``webrtc-noise-gain``: WebRTC's
audio processing, noise suppression level 0-4 and a target level for automatic gain) and ``speex``
(``pyspeex-noise``: speexdsp's preprocessor). Both take 10 ms of 16-bit PCM at a time; this module
only adapts them to the daemon's float frames of any length and keeps the output exactly as long as
the input (10 ms late: the first 160 samples out are silence; speex's preprocessor adds 10 ms of
its own), so the VAD, the wake word and the offsets in the source stay in step within 20 ms. Optional: ``pip install 'casavox[frontend]'``.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from casavox.errors import CasavoxError

SAMPLE_RATE = 16_000
CHUNK = SAMPLE_RATE // 100  # the 10 ms both engines take
NAMES = ("none", "webrtc", "speex")


class FrontEndError(CasavoxError, ValueError):
    """An unknown front end, a bad setting, or its library missing."""


@dataclass
class FrontEnd:
    """A streaming front end: ``process(frame)`` returns as many samples as it was given."""

    name: str
    _step: object = field(repr=False)  # bytes (10 ms of int16) -> bytes
    _pending: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int16), repr=False)
    _ready: np.ndarray = field(default_factory=lambda: np.zeros(CHUNK, np.float32), repr=False)

    def process(self, frame: np.ndarray) -> np.ndarray:
        """Cleaned audio for ``frame`` (float32 in [-1, 1], 16 kHz mono), 10 ms behind it."""
        pcm = (np.clip(np.asarray(frame, np.float32), -1.0, 1.0) * 32767).astype(np.int16)
        pending = np.concatenate([self._pending, pcm])
        whole = len(pending) // CHUNK * CHUNK
        out = [self._ready]
        for start in range(0, whole, CHUNK):
            cleaned = self._step(pending[start : start + CHUNK].tobytes())
            out.append(np.frombuffer(cleaned, np.int16).astype(np.float32) / 32767)
        self._pending = pending[whole:]
        ready = np.concatenate(out)
        self._ready = ready[len(frame) :]
        return ready[: len(frame)]

    def process_all(self, audio: np.ndarray) -> np.ndarray:
        """A whole clip through a fresh state of the same engine and settings, 10 ms delay removed."""
        padded = np.concatenate([np.asarray(audio, np.float32), np.zeros(CHUNK, np.float32)])
        return self.process(padded)[CHUNK:]


def open_front_end(name: str, noise_suppression: int = 2, auto_gain_dbfs: int = 0) -> FrontEnd | None:
    """The front end called ``name`` (None for "none"). ``noise_suppression``: WebRTC's level 0-4
    (speex: -10 dB per level, so 3 is its library's default -30 dB); ``auto_gain_dbfs``: WebRTC's
    target level, 0-31 dB below full scale, 0 = no automatic gain (speex: any value > 0 turns its
    automatic gain on at the library's default level, 4000)."""
    if name not in NAMES:
        raise FrontEndError(f"front end must be one of {', '.join(NAMES)}, not {name!r}")
    if not 0 <= noise_suppression <= 4:
        raise FrontEndError(f"noise_suppression must be 0-4, not {noise_suppression}")
    if not 0 <= auto_gain_dbfs <= 31:
        raise FrontEndError(f"auto_gain_dbfs must be 0-31, not {auto_gain_dbfs}")
    if name == "none":
        return None
    try:
        if name == "webrtc":
            from webrtc_noise_gain import AudioProcessor

            processor = AudioProcessor(auto_gain_dbfs, noise_suppression)
            return FrontEnd(name, lambda pcm: processor.Process10ms(pcm).audio)
        from pyspeex_noise import AudioProcessor as SpeexProcessor

        speex = SpeexProcessor(4000 if auto_gain_dbfs else 0, -10 * noise_suppression)
        return FrontEnd(name, speex.process_10ms)
    except ImportError:
        raise FrontEndError(
            f"front end {name!r} needs its library: pip install 'casavox[frontend]'"
        ) from None
