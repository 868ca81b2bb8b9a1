"""Silero VAD through onnxruntime: 32-ms frames of 16 kHz audio in, speech probabilities out.

The ONNX model ships inside the ``silero-vad`` wheel (installed without its torch dependency); we
only need the file. Silero v5+ wants each 512-sample frame preceded by the last 64 samples of the
previous one, plus a recurrent state carried between calls; the official wrapper is torch code,
so this is the same contract written against numpy.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from importlib.util import find_spec
from pathlib import Path

import numpy as np
import onnxruntime as ort

from casavox.errors import CasavoxError
from casavox.runtime.audio.io import SAMPLE_RATE

FRAME = 512  # samples per VAD decision at 16 kHz (32 ms), fixed by the model
CONTEXT = 64  # samples of the previous frame the model sees again


class VadError(CasavoxError, RuntimeError):
    """The VAD model is missing or unusable."""


def silero_model_path() -> Path:
    """The ONNX file inside the installed ``silero-vad`` package."""
    spec = find_spec("silero_vad")
    if spec is None or not spec.submodule_search_locations:
        raise VadError("silero-vad is not installed (pip install --no-deps silero-vad)")
    path = Path(next(iter(spec.submodule_search_locations))) / "data" / "silero_vad.onnx"
    if not path.is_file():
        raise VadError(f"{path}: silero VAD model missing from the silero-vad package")
    return path


@dataclass
class SileroVad:
    """Stateful frame classifier; ``reset()`` between independent streams."""

    session: ort.InferenceSession
    state: np.ndarray = field(default_factory=lambda: np.zeros((2, 1, 128), np.float32))
    context: np.ndarray = field(default_factory=lambda: np.zeros((1, CONTEXT), np.float32))

    @classmethod
    def load(cls, path: str | Path | None = None) -> SileroVad:
        opts = ort.SessionOptions()
        opts.intra_op_num_threads = 1  # a 32-ms frame is ~0.1 ms of work: threads only add latency
        opts.inter_op_num_threads = 1
        opts.log_severity_level = 3
        session = ort.InferenceSession(
            str(path or silero_model_path()), opts, providers=["CPUExecutionProvider"]
        )
        return cls(session)

    def reset(self) -> None:
        self.state = np.zeros((2, 1, 128), np.float32)
        self.context = np.zeros((1, CONTEXT), np.float32)

    def __call__(self, frame: np.ndarray) -> float:
        """Probability that this 512-sample frame is speech."""
        frame = np.asarray(frame, np.float32).reshape(1, -1)
        if frame.shape[1] != FRAME:
            raise ValueError(f"VAD frames are {FRAME} samples, got {frame.shape[1]}")
        x = np.concatenate([self.context, frame], axis=1)
        prob, self.state = self.session.run(
            None, {"input": x, "state": self.state, "sr": np.array(SAMPLE_RATE, np.int64)}
        )
        self.context = frame[:, -CONTEXT:]
        return float(prob[0, 0])
