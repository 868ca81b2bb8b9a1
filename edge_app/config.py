"""The daemon's settings: one TOML file for everything, command-line flags on top.

Sections mirror the pipeline (``[input]``, ``[vad]``, ``[wake]``, ``[safety]``, ``[backend]``,
``[mqtt]``, ``[hass]``, ``[reply]``, ``[log]``); every key has a default, so an empty file (or
none) is a working configuration. Unknown keys are an error naming them: a typo in a safety
setting must not be silently ignored. See ``examples/casavox.toml`` for every key.
"""

from __future__ import annotations

import dataclasses
import os
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from casavox.edge_app.backends.hass import HassSettings
from casavox.edge_app.backends.mqtt import MqttSettings
from casavox.edge_app.endpointing import VadSettings
from casavox.errors import CasavoxError

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib


class ConfigError(CasavoxError, ValueError):
    """A configuration that cannot be used; the message names the key."""


@dataclass(frozen=True)
class InputSettings:
    source: str = "mic"  # mic | wav | stdin
    device: str = ""  # microphone by index or part of its name
    files: tuple[str, ...] = ()
    realtime: bool = False  # play files at the speed a microphone would deliver them
    stdin_rate: int = 16_000
    stdin_channels: int = 1


@dataclass(frozen=True)
class WakeSettings:
    words: tuple[str, ...] = ()  # e.g. ("hey casa",); empty = every utterance is a command
    push_to_talk_s: float = 10.0  # SIGUSR1 accepts commands without the wake word this long


@dataclass(frozen=True)
class SafetySettings:
    confirm: str = "ask"  # ask | refuse | allow, for entities that need confirmation
    confirm_timeout_s: float = 10.0
    act_early: bool = False  # act on a complete, confident speculative result before the endpoint


@dataclass(frozen=True)
class ReplySettings:
    say_to: str = ""  # write each spoken reply to this WAV file (Piper)
    speak: bool = False  # play replies on the default output device (pyaudio)


@dataclass(frozen=True)
class LogSettings:
    json: str = "-"  # one JSON line per utterance: "-" = stdout, "" = off, else a file path
    metrics_port: int = 0  # Prometheus endpoint on 127.0.0.1 (0 = off)
    quiet: bool = False  # no human-readable lines on stderr


@dataclass(frozen=True)
class Config:
    bundle: str = ""  # "" = $CASAVOX_BUNDLE, else $XDG_DATA_HOME/casavox/bundle (default_bundle())
    home: str = ""  # "" = the example home shipped with the package
    state: str = "~/.local/state/casavox/home.sqlite"
    area: str = ""  # the room the box stands in (commands without a place act here)
    device: str = "cpu"  # cpu | cuda | tensorrt
    threads: int = 0  # 0 = onnxruntime's default
    asr_variant: str = ""  # "" = int8 on the CPU, fp16 on a GPU
    llm_variant: str = ""  # "" = the bundle's default on the CPU (int8), fp16 on a GPU
    llm: bool = True  # the LLM fallback (off = templates only)
    backend: str = "sim"  # sim | mqtt | hass
    state_lock_timeout_s: float = 2.0
    input: InputSettings = field(default_factory=InputSettings)
    vad: VadSettings = field(default_factory=VadSettings)
    wake: WakeSettings = field(default_factory=WakeSettings)
    safety: SafetySettings = field(default_factory=SafetySettings)
    mqtt: MqttSettings = field(default_factory=MqttSettings)
    hass: HassSettings = field(default_factory=HassSettings)
    reply: ReplySettings = field(default_factory=ReplySettings)
    log: LogSettings = field(default_factory=LogSettings)

    @property
    def state_path(self) -> Path:
        return Path(self.state).expanduser()


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
            value = tuple(value) if isinstance(value, (list, tuple)) else (value,)
        elif isinstance(default, bool):
            if not isinstance(value, bool):
                raise ConfigError(f"{where}{key} must be true or false, not {value!r}")
        elif isinstance(default, (int, float)) and not isinstance(default, bool):
            if isinstance(value, bool) or not isinstance(value, (int, float)):
                raise ConfigError(f"{where}{key} must be a number, not {value!r}")
            value = type(default)(value) if isinstance(default, float) else value
        elif isinstance(default, str) or default is None:
            value = None if value is None else str(value)
        values[key] = value
    return cls(**values)


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
    if not config.home:
        from casavox.examples import example_path

        config = dataclasses.replace(config, home=str(example_path("home.yaml")))
    if config.backend not in ("sim", "mqtt", "hass"):
        raise ConfigError(f"backend must be sim, mqtt or hass, not {config.backend!r}")
    if config.input.source not in ("mic", "wav", "stdin"):
        raise ConfigError(f"input.source must be mic, wav or stdin, not {config.input.source!r}")
    if config.safety.confirm not in ("ask", "refuse", "allow"):
        raise ConfigError(f"safety.confirm must be ask, refuse or allow, not {config.safety.confirm!r}")
    return config
