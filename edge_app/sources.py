"""Audio in: microphone (pyaudio), WAV files, raw 16-bit PCM on stdin -> 16 kHz mono float32 frames.

Every source yields blocks of exactly one VAD frame (512 samples, 32 ms), so the daemon has one
loop whatever the input. Bad input never stops the stream: an unreadable file is reported through
``on_error`` and the next one is played; stdin's odd trailing byte is carried into the next read.
"""

from __future__ import annotations

import logging
import os
import queue
import sys
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import BinaryIO

import numpy as np

from casavox.errors import CasavoxError
from casavox.runtime.audio.io import SAMPLE_RATE, AudioError, load_audio, pcm16_to_float
from casavox.runtime.audio.vad import FRAME

log = logging.getLogger(__name__)

GAP_S = 1.0  # silence played after each file so the endpointer can close its utterance


class InputError(CasavoxError, RuntimeError):
    """An audio source that cannot be opened (no such device, pyaudio missing...)."""


def frames_of(audio: np.ndarray) -> Iterator[np.ndarray]:
    """Split audio into 512-sample frames (the last one zero-padded)."""
    for start in range(0, len(audio), FRAME):
        frame = audio[start : start + FRAME]
        if len(frame) < FRAME:
            frame = np.pad(frame, (0, FRAME - len(frame)))
        yield frame.astype(np.float32, copy=False)


def paced(frames: Iterable[np.ndarray], realtime: bool) -> Iterator[np.ndarray]:
    """Yield frames no faster than they would arrive from a microphone (when ``realtime``)."""
    t0 = time.monotonic()
    for i, frame in enumerate(frames):
        if realtime:
            delay = t0 + i * FRAME / SAMPLE_RATE - time.monotonic()
            if delay > 0:
                time.sleep(delay)
        yield frame


def _offset(sample: int) -> float:
    return round(max(0, sample) / SAMPLE_RATE, 2)


@dataclass
class WavSource:
    """A list of audio files, played one after the other with a short silence between."""

    paths: list[Path]
    realtime: bool = False
    on_error: Callable[[str], None] = log.error
    _starts: list = field(default_factory=list)  # (first stream frame, file) per file played
    _yielded: int = 0

    def _frames(self) -> Iterator[np.ndarray]:
        gap = np.zeros(int(GAP_S * SAMPLE_RATE), np.float32)
        for path in self.paths:
            try:
                audio = load_audio(path)
            except AudioError as exc:
                self.on_error(f"skipping audio file: {exc}")
                continue
            self._starts.append((self._yielded, str(path)))
            for frame in frames_of(np.concatenate([audio, gap])):
                self._yielded += 1
                yield frame

    def position(self) -> int:
        """Samples handed out so far (files are read as fast as they are asked for)."""
        return self._yielded * FRAME

    def where(self, sample: int) -> dict:
        """Which file the stream's ``sample`` came from, and the offset in it (the log names it)."""
        frame = sample // FRAME
        start, path = next(((s, p) for s, p in reversed(self._starts) if s <= frame), (0, ""))
        return {"file": path, "offset_s": _offset(sample - start * FRAME)}

    def __iter__(self) -> Iterator[np.ndarray]:
        return paced(self._frames(), self.realtime)


@dataclass
class PcmSource:
    """Raw little-endian 16-bit PCM from a byte stream (stdin), at any rate, 1 or 2 channels."""

    stream: BinaryIO
    sample_rate: int = SAMPLE_RATE
    channels: int = 1
    block_bytes: int = 4096
    name: str = "stdin"
    _yielded: int = 0

    def where(self, sample: int) -> dict:
        return {"stream": self.name, "offset_s": _offset(sample)}

    def position(self) -> int:
        return self._yielded * FRAME

    def __iter__(self) -> Iterator[np.ndarray]:
        import soxr

        if self.channels not in (1, 2):
            raise InputError(f"raw PCM input supports 1 or 2 channels, not {self.channels}")
        resampler = (
            soxr.ResampleStream(self.sample_rate, SAMPLE_RATE, 1, dtype="float32")
            if self.sample_rate != SAMPLE_RATE
            else None
        )
        width = 2 * self.channels
        carry, pending = b"", np.zeros(0, np.float32)
        while True:
            data = self.stream.read(self.block_bytes)
            last = not data
            data = carry + (data or b"")
            usable = len(data) - len(data) % width
            carry = data[usable:]
            audio = pcm16_to_float(data[:usable])
            if self.channels == 2:
                audio = audio.reshape(-1, 2).mean(axis=1)
            if resampler is not None:
                audio = resampler.resample_chunk(audio, last=last)
            pending = np.concatenate([pending, np.nan_to_num(audio).astype(np.float32)])
            while len(pending) >= FRAME:
                self._yielded += 1
                yield pending[:FRAME]
                pending = pending[FRAME:]
            if last:
                if len(pending):
                    yield np.pad(pending, (0, FRAME - len(pending)))
                return


def _pyaudio():
    try:
        import pyaudio
    except ImportError as exc:
        raise InputError("microphone input needs pyaudio: pip install 'casavox[audio]'") from exc
    return pyaudio


@contextmanager
def _quiet_stderr() -> Iterator[None]:
    """PortAudio's ALSA/JACK probing prints dozens of C-level lines on a box without a sound card;
    they say nothing the error we raise does not, so file descriptor 2 is muted while it probes."""
    sys.stderr.flush()
    saved = os.dup(2)
    devnull = os.open(os.devnull, os.O_WRONLY)
    try:
        os.dup2(devnull, 2)
        yield
    finally:
        os.dup2(saved, 2)
        os.close(saved)
        os.close(devnull)


def _open_portaudio():
    pyaudio = _pyaudio()
    with _quiet_stderr():
        return pyaudio, pyaudio.PyAudio()


def list_devices() -> list[dict]:
    """Input devices PortAudio sees: index, name, channels, default rate."""
    _, pa = _open_portaudio()
    try:
        out = []
        for i in range(pa.get_device_count()):
            info = pa.get_device_info_by_index(i)
            if int(info.get("maxInputChannels", 0)) > 0:
                out.append(
                    {
                        "index": i,
                        "name": info["name"],
                        "channels": int(info["maxInputChannels"]),
                        "rate": int(info["defaultSampleRate"]),
                    }
                )
        return out
    finally:
        pa.terminate()


def pick_device(devices: list[dict], wanted: str | int | None) -> dict:
    """A device by index or by (part of its) name; a clear error listing the choices otherwise."""
    if not devices:
        raise InputError("no audio input device found")
    if wanted is None or wanted == "":
        return devices[0]
    for d in devices:
        if str(d["index"]) == str(wanted):
            return d
    matches = [d for d in devices if str(wanted).casefold() in d["name"].casefold()]
    if len(matches) == 1:
        return matches[0]
    names = ", ".join(f"{d['index']}: {d['name']}" for d in devices)
    problem = "matches several" if matches else "matches none"
    raise InputError(f"input device '{wanted}' {problem} of: {names}")


@dataclass
class MicSource:
    """A microphone through PortAudio; a reader thread keeps up while the pipeline thinks."""

    device: str | int | None = None
    block_ms: int = 32
    _name: str = ""
    _captured: int = 0  # samples at 16 kHz the reader thread has taken from the device

    def where(self, sample: int) -> dict:
        """The device, and the offset since listening began (the record's ``ts`` is the wall clock)."""
        return {"mic": self._name, "offset_s": _offset(sample)}

    def position(self) -> int:
        """What the microphone has captured, including blocks still queued behind the loop (while
        a reply plays): the moment a question is delivered, in the stream's own samples."""
        return self._captured

    def __iter__(self) -> Iterator[np.ndarray]:
        device = pick_device(list_devices(), self.device)
        self._name = f"{device['index']}: {device['name']}"
        rate, channels = device["rate"], min(device["channels"], 2)
        pyaudio, pa = _open_portaudio()
        blocks: queue.Queue = queue.Queue(maxsize=1000)
        stop = threading.Event()
        stream = pa.open(
            format=pyaudio.paInt16,
            channels=channels,
            rate=rate,
            input=True,
            input_device_index=device["index"],
            frames_per_buffer=int(rate * self.block_ms / 1000),
        )

        block = int(rate * self.block_ms / 1000)

        def reader() -> None:
            while not stop.is_set():
                blocks.put(stream.read(block, exception_on_overflow=False))
                self._captured += block * SAMPLE_RATE // rate
            blocks.put(b"")

        thread = threading.Thread(target=reader, name="casavox-mic", daemon=True)
        thread.start()

        class _Queue:
            def read(self, _n: int) -> bytes:
                return blocks.get()

        try:
            yield from PcmSource(_Queue(), rate, channels)
        finally:
            stop.set()
            thread.join(timeout=1)
            stream.close()
            pa.terminate()
