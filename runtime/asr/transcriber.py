"""Speech to text from a bundle: log-mel -> ONNX encoder -> greedy ONNX decoder.

Commands are short, so the encoder runs on a *trimmed* window by default: the utterance plus a
little silence, rounded up to a bucket, instead of Whisper's fixed 30 s (see README "Trimmed
encoder" for the measured accuracy). Audio longer than 30 s is cut into 30-s windows. Every
decode is bounded by a token budget that scales with the audio length, so endless noise cannot
produce endless text.
"""

from __future__ import annotations

import math
import time
from collections.abc import Mapping
from dataclasses import dataclass, field, fields, replace
from pathlib import Path
from typing import Any

import numpy as np

from casavox.runtime.asr.decoder import BiasFn, DecodeConfig, bound_stepper, greedy_decode, numpy_stepper
from casavox.runtime.asr.mel import HOP, log_mel, log_mel_zero_padded
from casavox.runtime.asr.tokenizer import WhisperTokenizer
from casavox.runtime.audio.io import SAMPLE_RATE, AudioError
from casavox.runtime.bundle import Bundle, BundleError, verify
from casavox.runtime.components import BOOL, NUMBER, STR, AsrComponent, read_value
from casavox.runtime.providers import open_graph, resolve_device

WINDOW_S = 30.0
SILENCE_PEAK = 1e-4  # digital silence: nothing to transcribe
NO_SPEECH_PROB = 0.6  # Whisper's own thresholds (no_speech and average log-probability)
LOGPROB_FLOOR = -1.0


@dataclass(frozen=True)
class TrimPolicy:
    """How the encoder window is chosen: None/0 bucket means Whisper's full 30-s window."""

    enabled: bool = True
    pad_s: float = 0.5  # silence appended after the speech before rounding up
    bucket_s: float = 6.0  # window length is a multiple of this (fewer distinct shapes)
    eot_threshold: float = 0.1  # see DecodeConfig.eot_threshold; applies to trimmed windows only
    eot_after_sentence: float = 0.01  # see DecodeConfig.eot_after_sentence; trimmed windows only
    # "silence": pad the audio with zeros, then compute log-mel (OpenAI Whisper, Hugging Face).
    # "zeros": log-mel of the audio alone, padded with zeros in the log-mel domain (faster-whisper;
    # reproduces its transcripts exactly, but measured 2 points worse WER, README).
    pad_mode: str = "silence"

    @classmethod
    def from_manifest(cls, data: Mapping[str, Any], where: str = "components.asr.trim") -> TrimPolicy:
        """The policy an export recorded (``asdict`` of one, so its keys are this class's fields);
        a field the bundle lacks keeps its default. Every exporter wrote the default ``pad_mode``,
        so reading it too changes nothing for existing bundles."""
        kinds = {bool: BOOL, float: NUMBER, str: STR}
        values = {
            f.name: read_value(data, f.name, kinds[type(f.default)], where)
            for f in fields(cls)
            if f.name in data
        }
        return cls(**values)

    def window_frames(self, n_samples: int) -> int:
        if not self.enabled:
            return int(WINDOW_S * SAMPLE_RATE / HOP)
        seconds = n_samples / SAMPLE_RATE + self.pad_s
        seconds = min(WINDOW_S, math.ceil(seconds / self.bucket_s) * self.bucket_s)
        frames = int(round(seconds * SAMPLE_RATE / HOP))
        return frames + (frames % 2)  # the encoder's stride-2 conv wants an even count


@dataclass
class Transcript:
    text: str
    tokens: list[int]
    audio_s: float
    no_speech_prob: float = 0.0
    avg_logprob: float = 0.0
    skipped: str | None = None  # "silence" / "no_speech" when we chose not to return text
    stop: str = ""
    timings_ms: dict[str, float] = field(default_factory=dict)


class Transcriber:
    """One loaded ASR variant (sessions + tokenizer + decoding rules)."""

    def __init__(
        self,
        bundle: Bundle,
        variant: str = "int8",
        device: str = "cpu",
        threads: int | None = None,
        trim: TrimPolicy | None = None,
        io_binding: bool | None = None,
    ) -> None:
        asr = AsrComponent.from_bundle(bundle)
        variants = asr.variants
        if variant not in variants:
            raise BundleError(
                f"{bundle.root}: no ASR variant '{variant}' (have: {', '.join(sorted(variants))})"
            )
        self.device = resolve_device(device)
        self.variant = variant
        # IO binding keeps the KV cache on the GPU; on the CPU provider plain run() is copy-free.
        self.io_binding = self.device != "cpu" if io_binding is None else io_binding
        files = variants[variant]
        self.encoder = open_graph(bundle, files.encoder_file, self.device, threads)
        self.decoder = open_graph(bundle, files.decoder_file, self.device, threads)
        self.tokenizer = WhisperTokenizer.from_file(bundle.path(asr.tokenizer_file), eot=asr.eot)
        self.filters = np.load(bundle.path(asr.mel_filters_file), allow_pickle=False)
        self.config = DecodeConfig(
            prompt=asr.prompt,
            eot=asr.eot,
            no_speech=asr.no_speech,
            suppress=np.asarray(asr.suppress, dtype=np.int64),
            begin_suppress=np.asarray(asr.begin_suppress, dtype=np.int64),
            max_tokens=asr.max_tokens,
        )
        self.trim = trim or TrimPolicy.from_manifest(asr.trim)
        ends = {self.tokenizer.token_id(t) for t in (".", "?", "!")}
        self.config = replace(self.config, sentence_end=frozenset(i for i in ends if i is not None))

    def _window(self, audio: np.ndarray, bias: BiasFn | None) -> tuple[list[int], dict, dict]:
        t0 = time.perf_counter()
        frames = self.trim.window_frames(audio.shape[0])
        if self.trim.pad_mode == "zeros":
            mel = log_mel_zero_padded(audio, self.filters, frames)
        else:
            mel = log_mel(audio, self.filters, frames)
        t1 = time.perf_counter()
        cross_k, cross_v = self.encoder.run(None, {"mel": mel[None]})
        t2 = time.perf_counter()
        # Token budget: ~8 tokens per second of audio plus slack; speech is ~3-4 tokens/s.
        budget = min(self.config.max_tokens, 16 + int(8 * audio.shape[0] / SAMPLE_RATE))
        config = self.config
        if self.trim.enabled:
            config = replace(
                config, eot_threshold=self.trim.eot_threshold, eot_after_sentence=self.trim.eot_after_sentence
            )
        if self.io_binding:
            step = bound_stepper(self.decoder, cross_k, cross_v, "cuda" if self.device != "cpu" else "cpu")
        else:
            step = numpy_stepper(self.decoder, cross_k, cross_v)
        decoded = greedy_decode(step, config, bias=bias, max_tokens=budget)
        t3 = time.perf_counter()
        timings = {"mel_ms": (t1 - t0) * 1e3, "encoder_ms": (t2 - t1) * 1e3, "decoder_ms": (t3 - t2) * 1e3}
        info = {
            "no_speech_prob": decoded.no_speech_prob,
            "avg_logprob": decoded.avg_logprob,
            "stop": decoded.stop,
        }
        return decoded.tokens, timings, info

    def transcribe(self, audio: np.ndarray, bias: BiasFn | None = None) -> Transcript:
        """16 kHz mono float32 in, text out; silence and non-speech give empty text with a reason."""
        audio = np.asarray(audio, dtype=np.float32)
        if audio.ndim != 1:
            raise AudioError(f"expected mono audio, got shape {audio.shape}")
        if audio.size == 0:
            raise AudioError("no audio samples")
        t0 = time.perf_counter()
        seconds = audio.shape[0] / SAMPLE_RATE
        if float(np.max(np.abs(audio))) < SILENCE_PEAK:
            return Transcript("", [], seconds, skipped="silence", timings_ms={"total_ms": 0.0})
        step = int(WINDOW_S * SAMPLE_RATE)
        tokens: list[int] = []
        timings = {"mel_ms": 0.0, "encoder_ms": 0.0, "decoder_ms": 0.0}
        infos = []
        for start in range(0, audio.shape[0], step):
            window_tokens, t, info = self._window(audio[start : start + step], bias)
            for k in timings:
                timings[k] += t[k]
            infos.append(info)
            if info["no_speech_prob"] > NO_SPEECH_PROB and info["avg_logprob"] < LOGPROB_FLOOR:
                continue  # Whisper's rule: this window holds no speech
            tokens.extend(window_tokens)
        text = self.tokenizer.decode(tokens)
        timings["total_ms"] = (time.perf_counter() - t0) * 1e3
        return Transcript(
            text=text,
            tokens=tokens,
            audio_s=seconds,
            no_speech_prob=max(i["no_speech_prob"] for i in infos),
            avg_logprob=float(np.mean([i["avg_logprob"] for i in infos])),
            skipped=None if text else "no_speech",
            stop=",".join(i["stop"] for i in infos),
            timings_ms=timings,
        )


def load_transcriber(
    bundle_dir: str | Path,
    variant: str = "int8",
    device: str = "cpu",
    threads: int | None = None,
    verify_hashes: bool = True,
    trim: TrimPolicy | None = None,
) -> Transcriber:
    """Verify the bundle (hashes unless ``verify_hashes=False``) and load one ASR variant."""
    bundle = verify(bundle_dir, hash_files=verify_hashes)
    return Transcriber(bundle, variant=variant, device=device, threads=threads, trim=trim)
