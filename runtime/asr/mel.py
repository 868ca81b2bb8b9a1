"""Whisper's log-mel spectrogram in numpy.

log10 of an 80-band (Slaney) mel power spectrum of a 25 ms Hann STFT every 10 ms, clamped to 8
decades below the loudest bin and scaled to roughly [-1, 1]: exactly what Whisper was trained on
(the filter bank itself ships in the bundle, written at export from the reference extractor).
"""

from __future__ import annotations

import numpy as np

N_FFT = 400
HOP = 160


def stft_power(audio: np.ndarray, n_fft: int = N_FFT, hop: int = HOP) -> np.ndarray:
    """|STFT|^2, centred frames (reflect padding), periodic Hann; [n_fft//2+1, frames]."""
    padded = np.pad(audio.astype(np.float32), n_fft // 2, mode="reflect")
    frames = np.lib.stride_tricks.sliding_window_view(padded, n_fft)[::hop]
    window = np.hanning(n_fft + 1)[:-1].astype(np.float32)
    spec = np.fft.rfft(frames * window, axis=-1)
    return (np.abs(spec) ** 2).T.astype(np.float32)


def log_mel(audio: np.ndarray, filters: np.ndarray, n_frames: int | None = None) -> np.ndarray:
    """[n_mels, frames] log-mel of 16 kHz audio; ``n_frames`` pads the audio with silence first."""
    if n_frames is not None:
        need = n_frames * HOP
        audio = np.pad(audio, (0, max(0, need - audio.shape[0])))[:need]
    power = stft_power(audio)[:, :-1]  # Whisper drops the last (centred) frame
    mel = filters @ power
    log_spec = np.log10(np.maximum(mel, 1e-10))
    log_spec = np.maximum(log_spec, log_spec.max() - 8.0)
    return ((log_spec + 4.0) / 4.0).astype(np.float32)


def log_mel_zero_padded(audio: np.ndarray, filters: np.ndarray, n_frames: int) -> np.ndarray:
    """faster-whisper's variant: log-mel of the audio alone (plus one hop of zeros, last frame
    dropped), then padded with zeros *in the log-mel domain* up to ``n_frames``."""
    mel = log_mel(np.pad(audio, (0, HOP)), filters)[:, :-1][:, :n_frames]
    return np.pad(mel, ((0, 0), (0, n_frames - mel.shape[1])))
