"""Audio in: rates, channels, formats and garbage; silence and endless noise stay bounded."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import soundfile

from casavox.export.speech_set import normalize
from casavox.runtime.audio.io import SAMPLE_RATE, AudioError, load_audio, pcm16_to_float, to_mono_16k


def tone(rate: int, seconds: float = 1.0, freq: float = 440.0) -> np.ndarray:
    t = np.arange(int(rate * seconds)) / rate
    return (0.5 * np.sin(2 * np.pi * freq * t)).astype(np.float32)


@pytest.mark.parametrize("rate", [8000, 22050, 44100, 48000])
def test_resampling_keeps_duration_and_pitch(rate: int) -> None:
    out = to_mono_16k(tone(rate), rate)
    assert abs(out.shape[0] - SAMPLE_RATE) <= 2
    spectrum = np.abs(np.fft.rfft(out))
    assert abs(np.argmax(spectrum) * SAMPLE_RATE / out.shape[0] - 440.0) < 2.0


def test_stereo_int16_file_is_averaged(tmp_path: Path) -> None:
    left = (tone(48000) * 32767).astype(np.int16)
    stereo = np.stack([left, np.zeros_like(left)], axis=1)
    path = tmp_path / "stereo.wav"
    soundfile.write(path, stereo, 48000, subtype="PCM_16")
    audio = load_audio(path)
    assert audio.dtype == np.float32 and audio.ndim == 1
    assert abs(audio.shape[0] - SAMPLE_RATE) <= 2
    assert 0.2 < np.max(np.abs(audio)) < 0.3  # half of the left channel's 0.5


def test_bad_files_give_clear_errors(tmp_path: Path) -> None:
    empty = tmp_path / "empty.wav"
    empty.write_bytes(b"")
    text = tmp_path / "notes.wav"
    text.write_text("this is not audio at all")
    with pytest.raises(AudioError, match="empty audio data"):
        load_audio(empty)
    with pytest.raises(AudioError, match="not a readable audio file"):
        load_audio(text)
    with pytest.raises(AudioError, match="no such file"):
        load_audio(tmp_path / "missing.wav")
    with pytest.raises(AudioError, match="NaN"):
        to_mono_16k(np.array([0.0, np.nan], np.float32), SAMPLE_RATE)


def test_pcm16_odd_trailing_byte_is_dropped() -> None:
    data = np.array([0, 16384, -32768], dtype="<i2").tobytes() + b"\x01"
    assert pcm16_to_float(data).tolist() == [0.0, 0.5, -1.0]


def test_wrong_rate_speech_is_still_understood(transcriber_int8, clips) -> None:
    """The same utterance stored at 8 kHz and as 48 kHz float stereo transcribes like the 16 kHz one."""
    clip = clips[0]
    expected = normalize(transcriber_int8.transcribe(clip.audio).text)
    import soxr

    for rate in (8000, 48000):
        at_rate = soxr.resample(clip.audio, SAMPLE_RATE, rate)
        if rate == 48000:
            at_rate = np.stack([at_rate, at_rate], axis=1)
        text = transcriber_int8.transcribe(to_mono_16k(at_rate, rate)).text
        assert normalize(text) == expected, rate


def test_silence_gives_empty_text_without_decoding(transcriber_int8) -> None:
    result = transcriber_int8.transcribe(np.zeros(3 * SAMPLE_RATE, np.float32))
    assert result.text == "" and result.skipped == "silence"


def test_empty_array_is_an_error(transcriber_int8) -> None:
    with pytest.raises(AudioError, match="no audio samples"):
        transcriber_int8.transcribe(np.zeros(0, np.float32))


def test_sixty_seconds_of_noise_is_bounded(transcriber_int8) -> None:
    rng = np.random.default_rng(0)
    noise = (0.1 * rng.standard_normal(60 * SAMPLE_RATE)).astype(np.float32)
    result = transcriber_int8.transcribe(noise)
    # Two 30-s windows, each with a token budget of at most 16 + 8 tokens/s of audio.
    assert len(result.tokens) <= 2 * (16 + 8 * 30)
    assert len(result.text) < 2000
    assert result.timings_ms["encoder_ms"] > 0


def test_cli_transcribe_reports_bad_file_and_goes_on(asr_bundle: Path, tmp_path: Path, clips) -> None:
    good = tmp_path / "good.wav"
    soundfile.write(good, clips[0].audio, SAMPLE_RATE)
    bad = tmp_path / "bad.wav"
    bad.write_text("garbage")
    out = subprocess.run(
        [
            sys.executable,
            "-m",
            "casavox.edge_app.cli",
            "transcribe",
            str(asr_bundle),
            str(bad),
            str(good),
            "--json",
        ],
        capture_output=True,
        text=True,
    )
    assert out.returncode == 1  # one file failed
    assert "bad.wav: not a readable audio file" in out.stderr and "Traceback" not in out.stderr
    import json

    row = json.loads(out.stdout.strip().splitlines()[-1])
    assert normalize(row["text"]) == normalize(clips[0].expected)
    assert set(row["timings_ms"]) >= {"mel_ms", "encoder_ms", "decoder_ms", "total_ms"}
