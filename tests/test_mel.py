"""The numpy log-mel front end matches the reference extractors it replaces."""

from __future__ import annotations

import numpy as np
import pytest

from casavox.runtime.asr.mel import log_mel


@pytest.fixture(scope="module")
def audio() -> np.ndarray:
    rng = np.random.default_rng(1)
    t = np.arange(3 * 16000) / 16000
    return (0.3 * np.sin(2 * np.pi * 300 * t) + 0.05 * rng.standard_normal(t.size)).astype(np.float32)


def test_matches_transformers_whisper_feature_extractor(audio: np.ndarray) -> None:
    from transformers import WhisperFeatureExtractor

    fe = WhisperFeatureExtractor(feature_size=80)
    ref = fe(audio, sampling_rate=16000, return_tensors="np").input_features[0]
    ours = log_mel(audio, np.asarray(fe.mel_filters, np.float32).T, n_frames=3000)
    assert ours.shape == ref.shape == (80, 3000)
    assert np.abs(ours - ref).max() < 1e-4


def test_matches_faster_whisper_feature_extractor(audio: np.ndarray) -> None:
    from faster_whisper.feature_extractor import FeatureExtractor

    fe = FeatureExtractor(feature_size=80)
    ref = fe(audio, padding=0)  # no padding: the trimmed input our encoder runs on
    ours = log_mel(audio, fe.mel_filters.astype(np.float32))
    n = min(ref.shape[1], ours.shape[1])
    assert abs(ref.shape[1] - ours.shape[1]) <= 1
    assert np.abs(ours[:, :n] - ref[:, :n]).max() < 1e-4


def test_padding_to_frames(audio: np.ndarray) -> None:
    from transformers import WhisperFeatureExtractor

    filters = np.asarray(WhisperFeatureExtractor(feature_size=80).mel_filters, np.float32).T
    assert log_mel(audio, filters, n_frames=600).shape == (80, 600)
    assert log_mel(audio[:1000], filters, n_frames=600).shape == (80, 600)
