"""Audio in: any file or bytes libsndfile reads, to 16 kHz mono float32.

Whisper and silero VAD both want 16 kHz mono. Other rates are resampled with soxr (high quality,
small, no torch); channels are averaged. Anything we cannot decode becomes an :class:`AudioError`
with a one-line reason, never a library traceback.
"""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np

from casavox.errors import CasavoxError

SAMPLE_RATE = 16_000


class AudioError(CasavoxError, ValueError):
    """Audio that cannot be used: unreadable, empty or malformed."""


def to_mono_16k(audio: np.ndarray, sample_rate: int) -> np.ndarray:
    """Average channels, resample to 16 kHz, return contiguous float32 in [-1, 1]."""
    audio = np.asarray(audio)
    if audio.ndim == 2:
        audio = audio.mean(axis=1)
    elif audio.ndim != 1:
        raise AudioError(f"audio must be 1-D or (frames, channels), got shape {audio.shape}")
    if audio.dtype.kind in "iu":
        audio = audio.astype(np.float32) / float(np.iinfo(audio.dtype).max)
    audio = audio.astype(np.float32, copy=False)
    if sample_rate <= 0:
        raise AudioError(f"invalid sample rate {sample_rate}")
    if sample_rate != SAMPLE_RATE and audio.size:
        import soxr

        audio = soxr.resample(audio, sample_rate, SAMPLE_RATE, quality="HQ").astype(np.float32)
    if not np.all(np.isfinite(audio)):
        raise AudioError("audio contains NaN or infinite samples")
    return np.ascontiguousarray(np.clip(audio, -1.0, 1.0))


def decode_audio_bytes(data: bytes) -> tuple[np.ndarray, int]:
    """Decode a whole audio file held in memory; returns (float32 samples, native rate)."""
    import soundfile

    if not data:
        raise AudioError("empty audio data")
    try:
        audio, rate = soundfile.read(io.BytesIO(data), dtype="float32", always_2d=False)
    except (soundfile.LibsndfileError, RuntimeError, TypeError) as exc:
        raise AudioError(f"not a readable audio file ({exc})") from None
    return audio, int(rate)


def load_audio(path: str | Path) -> np.ndarray:
    """Read an audio file (WAV, FLAC, OGG, ...) as 16 kHz mono float32."""
    path = Path(path)
    if not path.is_file():
        raise AudioError(f"{path}: no such file")
    try:
        data = path.read_bytes()
        audio, rate = decode_audio_bytes(data)
    except AudioError as exc:
        raise AudioError(f"{path}: {exc}") from None
    return to_mono_16k(audio, rate)


def pcm16_to_float(data: bytes) -> np.ndarray:
    """Raw little-endian signed 16-bit PCM to float32 (an odd trailing byte is dropped)."""
    usable = len(data) - (len(data) % 2)
    return np.frombuffer(data[:usable], dtype="<i2").astype(np.float32) / 32768.0
