"""The daemon's settings: one TOML file for everything, command-line flags on top.

Sections mirror the pipeline (``[input]``, ``[vad]``, ``[wake]``, ``[safety]``, ``[backend]``,
``[mqtt]``, ``[hass]``, ``[reply]``, ``[log]``); every key has a default, so an empty file (or
none) is a working configuration. Unknown keys are an error naming them: a typo in a safety
setting must not be silently ignored. Every number has a range and every list a type for its
elements, checked here, at start, before any model loads (an infinite confirmation window, a port
99999 or ``words = [1]`` would otherwise fail late or never). The range of a key sits next to its
field (:func:`within`, the ``range`` field metadata), or in :data:`RANGES` for the settings
dataclasses that live with their code. See ``examples/casavox.toml`` for every key.
"""

from __future__ import annotations

import dataclasses
import math
import os
import sys
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from casavox.edge_app.backends.hass import HassSettings
from casavox.edge_app.backends.mqtt import MqttSettings
from casavox.edge_app.box_mqtt import DiscoverySettings
from casavox.edge_app.endpointing import VadSettings
from casavox.errors import CasavoxError

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib


class ConfigError(CasavoxError, ValueError):
    """A configuration that cannot be used; the message names the key."""


RANGE = "range"  # field metadata: (lowest, highest) allowed, both included; a third item is a note


def within(default: float, lo: float, hi: float, note: str = "") -> Any:
    """A numeric field whose value must lie in ``[lo, hi]`` (``note`` explains a special value)."""
    return field(default=default, metadata={RANGE: (lo, hi, note)})


@dataclass(frozen=True)
class InputSettings:
    source: str = "mic"  # mic | wav | stdin
    device: str = ""  # microphone by index or part of its name
    files: tuple[str, ...] = ()
    realtime: bool = False  # play files at the speed a microphone would deliver them
    stdin_rate: int = within(16_000, 8_000, 192_000)  # below 8 kHz resampling only inflates the input
    stdin_channels: int = within(1, 1, 8)
    # Noise suppression / automatic gain before the VAD and the wake word (runtime/audio/front_end.py):
    # none | webrtc | speex, as Home Assistant's Assist pipeline offers them.
    front_end: str = "none"
    noise_suppression: int = within(2, 0, 4)  # 0 = off, 4 = strongest
    auto_gain_dbfs: int = within(0, 0, 31, "0 = no automatic gain")


@dataclass(frozen=True)
class WakeSettings:
    # acoustic wake words: built-in names ("okay_nabu", "hey_jarvis", "hey_mycroft", "alexa") or model
    # files (edge_app/wake_word.py); before one is heard only the wake-word model and the VAD run
    models: tuple[str, ...] = ()
    engine: str = "micro"  # micro (microWakeWord) | open (openWakeWord)
    threshold: float = within(0.0, 0.0, 0.99, "0 = each model's own cutoff")
    follow_s: float = within(
        5.0, 0.5, 30.0
    )  # after a wake word said alone, the next utterance this soon is the command
    words: tuple[
        str, ...
    ] = ()  # a phrase matched on the transcript instead ("hey casa"), for boxes without a model
    push_to_talk_s: float = within(10.0, 0.0, 600.0)  # SIGUSR1: commands need no wake word this long


@dataclass(frozen=True)
class SafetySettings:
    confirm: str = "ask"  # ask | refuse | allow, for entities that need confirmation
    confirm_timeout_s: float = within(10.0, 0.0, 600.0)  # a question pending forever is a hazard
    act_early: bool = False  # act on a complete, confident speculative result before the endpoint


@dataclass(frozen=True)
class ReplySettings:
    say_to: str = ""  # write each spoken reply to this WAV file (Piper)
    speak: bool = False  # play replies on the default output device (pyaudio)
    ring_s: float = within(30.0, 0.0, 600.0)  # a finished timer rings this long unless told "stop" (0 = once)
    ring_every_s: float = within(5.0, 1.0, 60.0)  # ... saying it is done again this often


@dataclass(frozen=True)
class LogSettings:
    json: str = "-"  # one JSON line per utterance: "-" = stdout, "" = off, else a file path
    metrics_port: int = within(0, 0, 65_535, "0 = off")  # Prometheus endpoint on 127.0.0.1
    quiet: bool = False  # no human-readable lines on stderr


@dataclass(frozen=True)
class WyomingSettings:
    """`casavox serve-wyoming`: the protocol has no authentication, so the server's own policy."""

    allow: tuple[str, ...] = ()  # client addresses or networks that may connect; empty = any
    act: bool = True  # false: speech-to-text and recognition only, transcripts are never acted on
    max_clients: int = within(16, 1, 256)  # connections at once; more are refused with an error
    zeroconf: bool = False  # advertise the server over mDNS (_wyoming._tcp) for Home Assistant to find
    name: str = ""  # the advertised name; "" = casavox-<host name>


@dataclass(frozen=True)
class Config:
    bundle: str = ""  # "" = $CASAVOX_BUNDLE, else $XDG_DATA_HOME/casavox/bundle (default_bundle())
    home: str = ""  # "" = the example home shipped with the package
    state: str = "~/.local/state/casavox/home.sqlite"
    area: str = ""  # the room the box stands in (commands without a place act here)
    device: str = "cpu"  # cpu | cuda | tensorrt
    threads: int = within(0, 0, 1024, "0 = onnxruntime's default")
    asr_variant: str = ""  # "" = int8 on the CPU, fp16 on a GPU
    llm_variant: str = ""  # "" = the bundle's default on the CPU (int8), fp16 on a GPU
    llm: bool = True  # the LLM fallback (off = templates only)
    allow_unsigned: bool = False  # load a bundle not signed by a trusted key (runtime/signing.py)
    backend: str = "sim"  # sim | mqtt | hass
    state_lock_timeout_s: float = within(2.0, 0.0, 60.0)
    input: InputSettings = field(default_factory=InputSettings)
    vad: VadSettings = field(default_factory=VadSettings)
    wake: WakeSettings = field(default_factory=WakeSettings)
    safety: SafetySettings = field(default_factory=SafetySettings)
    mqtt: MqttSettings = field(default_factory=MqttSettings)
    hass: HassSettings = field(default_factory=HassSettings)
    reply: ReplySettings = field(default_factory=ReplySettings)
    log: LogSettings = field(default_factory=LogSettings)
    wyoming: WyomingSettings = field(default_factory=WyomingSettings)
    discovery: DiscoverySettings = field(default_factory=DiscoverySettings)  # the box in Home Assistant

    @property
    def reads_home_from_hass(self) -> bool:
        """The home comes from Home Assistant (``home``, if set, is laid over it)."""
        return self.backend == "hass" and self.hass.read_home

    @property
    def state_path(self) -> Path:
        return Path(self.state).expanduser()


# Ranges of the settings whose dataclasses live with their code (endpointing, MQTT), which need not
# know about configuration files; (lowest, highest, note), both included.
RANGES: dict[tuple[type, str], tuple[float, float, str]] = {
    (VadSettings, "threshold"): (0.01, 0.99, ""),
    (VadSettings, "neg_threshold"): (0.0, 0.99, "at most vad.threshold"),
    (VadSettings, "pre_roll_ms"): (0.0, 2_000.0, ""),
    (VadSettings, "min_speech_ms"): (0.0, 5_000.0, ""),
    (VadSettings, "speculate_ms"): (0.0, 5_000.0, "0 = off"),
    (VadSettings, "trailing_silence_ms"): (32.0, 10_000.0, "at least one 32-ms frame"),
    (VadSettings, "unfinished_silence_ms"): (0.0, 10_000.0, "0 = off"),
    (VadSettings, "max_utterance_s"): (1.0, 30.0, "Whisper hears at most 30 s"),
    (MqttSettings, "port"): (1, 65_535, ""),
    (MqttSettings, "ack_timeout_s"): (0.1, 60.0, ""),
    (MqttSettings, "alive_window_s"): (0.0, 5.0, "0 = probe before every lock/door command"),
    (MqttSettings, "connect_timeout_s"): (0.1, 120.0, ""),
}


def bounds(cls: type, f: dataclasses.Field) -> tuple[float, float, str] | None:
    """The range of a numeric setting: its field metadata, else :data:`RANGES`."""
    return f.metadata.get(RANGE) or RANGES.get((cls, f.name))


def _number(cls: type, f: dataclasses.Field, value: Any, key: str) -> float:
    """``value`` checked against the field's type (a whole number for an int) and range."""
    default = f.default
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise ConfigError(f"{key} must be a number, not {value!r}")
    if isinstance(default, int) and not isinstance(value, int):
        raise ConfigError(f"{key} must be a whole number, not {value!r}")
    value = float(value) if isinstance(default, float) else value
    limits = bounds(cls, f)
    if limits is not None:
        lo, hi, note = limits
        if not (math.isfinite(value) and lo <= value <= hi):
            extra = f" ({note})" if note else ""
            raise ConfigError(f"{key} must be between {lo:g} and {hi:g}{extra}, not {value!r}")
    return value


def _elements(cls: type, f: dataclasses.Field, value: Any, key: str) -> tuple:
    """A list setting as a tuple, each element of the declared type (and, for text, not blank):
    ``[wake] words = [1]`` used to pass here and kill the daemon at the first utterance."""
    items = tuple(value) if isinstance(value, (list, tuple)) else (value,)
    kind = (typing.get_args(typing.get_type_hints(cls)[f.name]) or (str,))[0]
    for i, item in enumerate(items):
        if not isinstance(item, kind) or (isinstance(item, str) and not item.strip()):
            what = "a non-empty string" if kind is str else kind.__name__
            raise ConfigError(f"{key}[{i}] must be {what}, not {item!r}")
    return items


def _build(cls, data: dict[str, Any], where: str):
    fields = {f.name: f for f in dataclasses.fields(cls)}
    unknown = sorted(set(data) - set(fields))
    if unknown:
        raise ConfigError(
            f"unknown setting{'s' if len(unknown) > 1 else ''} {', '.join(where + k for k in unknown)}"
        )
    values = {}
    for key, value in data.items():
        default = getattr(cls(), key)
        if dataclasses.is_dataclass(default):
            if not isinstance(value, dict):
                raise ConfigError(f"[{where}{key}] must be a table")
            value = _build(type(default), value, f"{where}{key}.")
        elif isinstance(default, tuple):
            value = _elements(cls, fields[key], value, where + key)
        elif isinstance(default, bool):
            if not isinstance(value, bool):
                raise ConfigError(f"{where}{key} must be true or false, not {value!r}")
        elif isinstance(default, (int, float)):
            value = _number(cls, fields[key], value, where + key)
        elif isinstance(default, str) or default is None:
            value = None if value is None else str(value)
        values[key] = value
    return cls(**values)


def _check_together(config: Config) -> None:
    """Settings that are only wrong in combination."""
    if config.vad.neg_threshold > config.vad.threshold:
        raise ConfigError(
            f"vad.neg_threshold must be at most vad.threshold ({config.vad.threshold:g}), "
            f"not {config.vad.neg_threshold:g}"
        )


def merge(base: dict, overrides: dict) -> dict:
    out = dict(base)
    for key, value in overrides.items():
        out[key] = merge(out.get(key, {}), value) if isinstance(value, dict) else value
    return out


def default_bundle() -> Path:
    """Where a box keeps its bundle when none is named: never relative to the current directory."""
    if os.environ.get("CASAVOX_BUNDLE"):
        return Path(os.environ["CASAVOX_BUNDLE"]).expanduser()
    data = Path(os.environ.get("XDG_DATA_HOME") or Path.home() / ".local" / "share")
    return data / "casavox" / "bundle"


def load_config(path: str | Path | None = None, overrides: dict | None = None) -> Config:
    """Defaults <- TOML file <- overrides (from the command line), validated."""
    data: dict[str, Any] = {}
    if path:
        path = Path(path)
        if not path.is_file():
            raise ConfigError(f"{path}: no such config file")
        try:
            data = tomllib.loads(path.read_text())
        except tomllib.TOMLDecodeError as exc:
            raise ConfigError(f"{path}: invalid TOML ({exc})") from None
    config = _build(Config, merge(data, overrides or {}), "")
    if not config.bundle:
        config = dataclasses.replace(config, bundle=str(default_bundle()))
    if not config.home and not config.reads_home_from_hass:
        from casavox.examples import example_path

        config = dataclasses.replace(config, home=str(example_path("home.yaml")))
    if config.backend not in ("sim", "mqtt", "hass"):
        raise ConfigError(f"backend must be sim, mqtt or hass, not {config.backend!r}")
    if config.input.source not in ("mic", "wav", "stdin"):
        raise ConfigError(f"input.source must be mic, wav or stdin, not {config.input.source!r}")
    if config.input.front_end not in ("none", "webrtc", "speex"):
        raise ConfigError(f"input.front_end must be none, webrtc or speex, not {config.input.front_end!r}")
    if config.wake.engine not in ("micro", "open"):
        raise ConfigError(f"wake.engine must be micro or open, not {config.wake.engine!r}")
    if config.safety.confirm not in ("ask", "refuse", "allow"):
        raise ConfigError(f"safety.confirm must be ask, refuse or allow, not {config.safety.confirm!r}")
    _check_together(config)
    return config
