"""Assemble the daemon from a :class:`Config`: home, state file, backend, models, VAD, logs, metrics.

Every failure a user can fix (missing bundle, bad home file, unreachable state directory, missing
token, unknown input device) surfaces here, at start, as a one-line error.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import TextIO

from casavox.edge_app.assistant import Assistant
from casavox.edge_app.backends import Backend
from casavox.edge_app.config import Config
from casavox.edge_app.state_store import StateStore
from casavox.edge_app.timers import Timers
from casavox.runtime.audio.front_end import open_front_end
from casavox.runtime.home import Home, load_home


def open_backend(config: Config, home: Home, store: StateStore) -> Backend:
    if config.backend == "mqtt":
        from casavox.edge_app.backends.mqtt import MqttBackend

        return MqttBackend(home, config.mqtt)
    if config.backend == "hass":
        from casavox.edge_app.backends.hass import HassBackend

        return HassBackend(config.hass)
    from casavox.edge_app.backends.sim import SimBackend

    return SimBackend.open(home, store)


def load_home_for(config: Config) -> Home:
    """The home a config names: Home Assistant's own (backend ``hass`` with ``read_home``), with the
    YAML home laid over it when one is set; otherwise the YAML home."""
    if config.reads_home_from_hass:
        from casavox.edge_app.backends.hass_home import read_home

        return read_home(config.hass, load_home(config.home) if config.home else None)
    return load_home(config.home)


def follow_home(config: Config, home: Home, on_change):
    """A started :class:`HomeFollower` when the home comes from Home Assistant, else None."""
    if not config.reads_home_from_hass:
        return None
    from casavox.edge_app.backends.hass_home import HomeFollower

    overlay = load_home(config.home) if config.home else None
    return HomeFollower(config.hass, home, on_change, overlay, config.hass.refresh_s).start()


def open_log(config: Config) -> TextIO | None:
    if not config.log.json:
        return None
    if config.log.json == "-":
        return sys.stdout
    path = Path(config.log.json).expanduser()
    path.parent.mkdir(parents=True, exist_ok=True)
    # 0600: the log holds every transcript the box heard
    return os.fdopen(os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600), "a", buffering=1)


def frames_for(config: Config):
    """The configured audio source as an iterator of 512-sample frames."""
    from casavox.edge_app.sources import MicSource, PcmSource, WavSource

    src = config.input
    if src.source == "wav":
        return WavSource([Path(p) for p in src.files], realtime=src.realtime)
    if src.source == "stdin":
        return PcmSource(sys.stdin.buffer, src.stdin_rate, src.stdin_channels)
    return MicSource(src.device or None)


def load_wake(config: Config):
    """The acoustic wake words ``[wake] models`` names (None when there are none)."""
    if not config.wake.models:
        return None
    from casavox.edge_app.wake_word import load_wake_words

    return load_wake_words(config.wake.models, config.wake.engine, config.wake.threshold)


def load_pipeline(config: Config, home: Home):
    """The models the config names (one place for the daemon and the Wyoming server)."""
    from casavox.edge_app.pipeline import SpeechPipeline

    return SpeechPipeline.load(
        config.bundle,
        home,
        device=config.device,
        threads=config.threads or None,
        asr_variant=config.asr_variant,
        llm_variant=config.llm_variant or None,
        use_llm=config.llm,
        allow_unsigned=config.allow_unsigned,
    )


def build_assistant(config: Config, home: Home, pipeline, backend: Backend, store: StateStore) -> Assistant:
    """The conversation turn for a config: the one object every adapter wraps."""
    return Assistant(
        home=home,
        understand=pipeline.parse,
        backend=backend,
        timers=Timers(store),
        safety=config.safety,
        area=config.area or None,
    )


def build_daemon(config: Config, keep_records: bool = False, pipeline=None):
    """(daemon, state store); ``pipeline`` reuses already loaded models (tests, benchmarks)."""
    from casavox.edge_app.daemon import Daemon
    from casavox.runtime.audio.vad import SileroVad

    home = load_home_for(config)
    if config.area and home.area(config.area) is None:
        from casavox.runtime.home import HomeError

        raise HomeError(f"area '{config.area}' is not in {home.source}")
    wake = load_wake(config)  # an unknown wake word: one line before anything opens or loads
    front_end = open_front_end(  # its library missing: one line, before anything opens
        config.input.front_end, config.input.noise_suppression, config.input.auto_gain_dbfs
    )
    store = StateStore.open(config.state_path, config.state_lock_timeout_s)
    backend = open_backend(config, home, store)
    metrics = None
    if config.log.metrics_port:  # listen before the models load: a port in use is a one-line error
        from casavox.edge_app.metrics import Metrics

        metrics = Metrics()
        metrics.serve(config.log.metrics_port)
    try:
        pipeline = pipeline or load_pipeline(config, home)
    except BaseException:
        if metrics is not None:
            metrics.close()
        raise
    speaker = None
    if config.reply.say_to or config.reply.speak:
        from casavox.runtime.tts import PiperSpeaker

        speaker = PiperSpeaker()
    box = controls = None
    if config.discovery.enabled:
        from casavox import __version__
        from casavox.edge_app.box_mqtt import BoxAnnouncer, BoxControls

        controls = BoxControls(threshold=config.vad.threshold)
        box = BoxAnnouncer(config.discovery, config.mqtt, controls, __version__).start()
    daemon = Daemon(
        config=config,
        box=box,
        controls=controls,
        pipeline=pipeline,
        assistant=build_assistant(config, home, pipeline, backend, store),
        vad=SileroVad.load(),
        wake=wake,
        front_end=front_end,
        log=open_log(config),
        metrics=metrics,
        speaker=speaker,
        keep_records=keep_records,
    )
    daemon.follower = follow_home(config, home, daemon.use_home)
    return daemon, store
