"""The acoustic wake word: 16 kHz frames in, "the wake word was said, here" out.

Two engines made for this, both shipping their models and a TFLite runtime in their wheels:
``micro`` (pymicro-wakeword: Home Assistant's microWakeWord, the one ESPHome satellites run) and
``open`` (pyopen-wakeword: openWakeWord's models). ``micro`` is the default, chosen by measurement
(``python -m benchmarks.wake_word``; docs/experiments.md "Wake word"). A wake word is named by a
built-in model (``okay_nabu``, ``hey_jarvis``, ``hey_mycroft``, ``alexa``; openWakeWord also
``hey_rhasspy``) or given as a file (a microWakeWord ``.json`` config, or an openWakeWord
``.tflite``); several may listen at once.

The detector only reports where in the stream a wake word ended (:class:`WakeHit`); the daemon
decides what that opens (the rest of the utterance, or the next one).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from casavox.errors import CasavoxError

log = logging.getLogger(__name__)

ENGINES = ("micro", "open")
REFRACTORY_S = 2.0  # after a detection the same model is not heard again this long (one "okay nabu")
SAMPLE_RATE = 16_000


class WakeWordError(CasavoxError, ValueError):
    """A wake word that cannot be loaded (unknown name, missing file, unknown engine)."""


@dataclass(frozen=True)
class WakeHit:
    """A wake word heard: its name and the stream position (samples) where the model fired."""

    name: str
    sample: int
    probability: float


def builtin_names(engine: str) -> list[str]:
    """The wake words an engine ships models for."""
    if engine not in ENGINES:
        raise WakeWordError(f"wake engine must be one of {', '.join(ENGINES)}, not {engine!r}")
    try:
        if engine == "micro":
            from pymicro_wakeword import Model
        else:
            from pyopen_wakeword import Model
    except ImportError:
        package, extra = (
            ("pymicro-wakeword", "wake") if engine == "micro" else ("pyopen-wakeword", "wake-open")
        )
        hint = " (on a Jetson: --wake-engine open)" if engine == "micro" else ""
        raise WakeWordError(
            f"wake engine {engine} needs {package}: pip install 'casavox[{extra}]'{hint}"
        ) from None
    return [m.value for m in Model]


@dataclass
class _Listener:
    name: str
    model: object
    cutoff: float
    quiet_until: int = 0  # samples: refractory period after a detection


@dataclass
class WakeWords:
    """Every configured wake word over one shared feature front end.

    ``push(frame)`` takes float32 samples in [-1, 1] and returns the first :class:`WakeHit` it
    completes, or None. ``threshold`` (0-1) replaces each model's own cutoff (microWakeWord's are
    in its JSON, 0.85 for okay_nabu; openWakeWord's is 0.5): higher means fewer false wakes and
    more misses."""

    engine: str
    listeners: list[_Listener]
    features: object
    position: int = 0  # samples pushed so far
    _buffer: bytearray = field(default_factory=bytearray)

    @property
    def names(self) -> list[str]:
        return [x.name for x in self.listeners]

    def push(self, frame: np.ndarray) -> WakeHit | None:
        pcm = (np.clip(np.asarray(frame, dtype=np.float32), -1.0, 1.0) * 32767).astype("<i2").tobytes()
        self.position += len(pcm) // 2
        hit: WakeHit | None = None
        for features in self.features.process_streaming(pcm):
            for x in self.listeners:
                for p in self._probabilities(x, features):
                    if p > x.cutoff and self.position >= x.quiet_until and hit is None:
                        hit = WakeHit(x.name, self.position, float(p))
                        x.quiet_until = self.position + int(REFRACTORY_S * SAMPLE_RATE)
                        x.model.reset()  # start the next detection from a clean state
        if hit is not None:
            log.info("wake word %s (p=%.2f)", hit.name, hit.probability)
        return hit

    def _probabilities(self, x: _Listener, features) -> list[float]:
        if self.engine == "micro":
            p = x.model.process_streaming_prob(features)
            return [] if p is None else [p]
        return list(x.model.process_streaming(features))

    def reset(self) -> None:
        """Forget the audio so far (a new stream)."""
        self.features.reset()
        for x in self.listeners:
            x.model.reset()
            x.quiet_until = 0
        self.position = 0


def load_wake_words(
    specs: tuple[str, ...] | list[str], engine: str = "micro", threshold: float = 0.0
) -> WakeWords:
    """The wake words named by ``specs`` (built-in names or model files) for ``engine``.

    ``threshold`` 0 keeps each model's own cutoff."""
    if not specs:
        raise WakeWordError("no wake word given")
    if not 0.0 <= threshold < 1.0:
        raise WakeWordError(f"wake threshold must be from 0 to below 1, not {threshold}")
    known = builtin_names(engine)
    listeners = []
    for spec in specs:
        model, cutoff = _load_one(str(spec), engine, known)
        listeners.append(_Listener(Path(str(spec)).stem, model, threshold or cutoff))
    if engine == "micro":
        from pymicro_wakeword import MicroWakeWordFeatures

        features = MicroWakeWordFeatures()
    else:
        from pyopen_wakeword import OpenWakeWordFeatures

        features = OpenWakeWordFeatures.from_builtin()
    return WakeWords(engine, listeners, features)


def _load_one(spec: str, engine: str, known: list[str]) -> tuple[object, float]:
    path = Path(spec).expanduser()
    is_file = path.suffix in (".json", ".tflite")
    if is_file and not path.is_file():
        raise WakeWordError(f"wake word model {spec}: no such file")
    if not is_file and spec not in known:
        raise WakeWordError(
            f"wake word {spec!r}: not a model file and not one of {', '.join(known)} ({engine})"
        )
    if engine == "micro":
        from pymicro_wakeword import MicroWakeWord, Model

        if is_file and path.suffix != ".json":
            raise WakeWordError(f"wake word model {spec}: microWakeWord takes its .json config")
        model = MicroWakeWord.from_config(path) if is_file else MicroWakeWord.from_builtin(Model(spec))
        return model, float(model.probability_cutoff)
    from pyopen_wakeword import Model, OpenWakeWord

    if is_file and path.suffix != ".tflite":
        raise WakeWordError(f"wake word model {spec}: openWakeWord takes a .tflite model")
    model = OpenWakeWord.from_model(path) if is_file else OpenWakeWord.from_builtin(Model(spec))
    return model, 0.5
