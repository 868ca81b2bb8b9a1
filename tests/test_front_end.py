"""Noise suppression before the VAD (runtime/audio/front_end.py) on the real libraries Home
Assistant uses, and the daemon hearing through it."""

from __future__ import annotations

import numpy as np
import pytest

from casavox.edge_app.config import ConfigError, load_config
from casavox.edge_app.sources import frames_of
from casavox.runtime.audio.front_end import CHUNK, FrontEndError, open_front_end
from casavox.runtime.audio.io import SAMPLE_RATE


def hiss(seconds: float, level: float = 0.02, seed: int = 0) -> np.ndarray:
    return (np.random.default_rng(seed).standard_normal(int(seconds * SAMPLE_RATE)) * level).astype(
        np.float32
    )


def db(x: np.ndarray) -> float:
    return float(10 * np.log10(np.mean(np.square(x)) + 1e-12))


@pytest.mark.parametrize(("name", "size"), [("webrtc", 512), ("webrtc", 333), ("webrtc", 1), ("speex", 512)])
def test_every_frame_comes_back_as_long_as_it_went_in_and_a_fixed_delay_late(name: str, size: int) -> None:
    fe = open_front_end(name, noise_suppression=0)  # no suppression: the signal passes almost unchanged
    x = hiss(0.5, level=0.1, seed=1)
    out = [fe.process(x[i : i + size]) for i in range(0, len(x), size)]
    assert [len(o) for o in out] == [len(x[i : i + size]) for i in range(0, len(x), size)]
    y = np.concatenate(out)
    assert np.all(y[:CHUNK] == 0)  # the first 10 ms out are our delay
    lag = max(range(400), key=lambda k: np.corrcoef(y[k + 1000 : k + 7000], x[1000:7000])[0, 1])
    assert lag == {"webrtc": CHUNK, "speex": 2 * CHUNK}[name]  # speex's preprocessor adds 10 ms of its own
    assert np.corrcoef(y[lag + 1000 : lag + 7000], x[1000:7000])[0, 1] > 0.95


@pytest.mark.parametrize("name", ["webrtc", "speex"])
def test_steady_noise_is_pushed_down_once_the_engine_has_heard_it(name: str) -> None:
    fe = open_front_end(name, noise_suppression=3)
    x = hiss(3.0)
    y = np.concatenate([fe.process(x[i : i + 512]) for i in range(0, len(x), 512)])
    assert db(y[-SAMPLE_RATE:]) < db(x[-SAMPLE_RATE:]) - 8


def test_a_whole_clip_comes_back_aligned() -> None:
    fe = open_front_end("webrtc", noise_suppression=0)
    x = hiss(0.5, level=0.1, seed=2)
    y = fe.process_all(x)
    assert len(y) == len(x) and np.corrcoef(y[1600:], x[1600:])[0, 1] > 0.95


def test_bad_names_and_settings_are_one_line_errors(tmp_path) -> None:
    with pytest.raises(FrontEndError, match="front end must be one of none, webrtc, speex, not 'rnnoise'"):
        open_front_end("rnnoise")
    with pytest.raises(FrontEndError, match="noise_suppression must be 0-4"):
        open_front_end("webrtc", noise_suppression=7)
    assert open_front_end("none") is None
    cfg = tmp_path / "c.toml"
    cfg.write_text('[input]\nfront_end = "rnnoise"\n')
    with pytest.raises(ConfigError, match="input.front_end must be none, webrtc or speex, not 'rnnoise'"):
        load_config(cfg)
    cfg.write_text("[input]\nnoise_suppression = 9\n")
    with pytest.raises(ConfigError, match="input.noise_suppression must be between 0 and 4"):
        load_config(cfg)


@pytest.mark.parametrize("name", ["webrtc", "speex"])
def test_the_daemon_hears_a_command_through_the_front_end_in_hiss(make, say, name: str) -> None:
    daemon, store = make(input={"front_end": name, "noise_suppression": 2})
    assert daemon.front_end is not None and daemon.front_end.name == name
    assert store.entity("light.kitchen_ceiling")[0] == "on"
    speech = say("Turn off the lights in the kitchen.")
    audio = np.concatenate([np.zeros(SAMPLE_RATE * 2, np.float32), speech, np.zeros(SAMPLE_RATE, np.float32)])
    audio = audio + hiss(len(audio) / SAMPLE_RATE + 0.01, level=0.01)[: len(audio)]
    assert daemon.run(frames_of(audio)) == 1
    assert store.entity("light.kitchen_ceiling")[0] == "off"
    (record,) = daemon.records
    assert record["outcome"] == "acted"
