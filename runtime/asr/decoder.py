"""Greedy Whisper decoding over the ONNX decoder graph with its self-attention KV cache.

The cache grows by one position per call; the cross-attention keys/values come from the encoder
once per utterance. Suppression follows Whisper: the model's suppress list and every special token
but end-of-text on all steps, plus blank and end-of-text on the first step (this reproduces
faster-whisper's greedy transcripts token for token).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import onnxruntime as ort

BiasFn = Callable[[list[int]], dict[int, float]]
StepFn = Callable[[list[int]], np.ndarray]


@dataclass(frozen=True)
class DecodeConfig:
    prompt: tuple[int, ...]  # <|startoftranscript|> [language, task] <|notimestamps|>
    eot: int
    no_speech: int | None
    suppress: np.ndarray  # ids masked on every step
    begin_suppress: np.ndarray  # ids masked on the first text step only
    max_tokens: int = 224
    # Stop when end-of-text gets at least this probability even if another token is likelier
    # (0 = plain argmax). A trimmed encoder input leaves end-of-text a close second rather than
    # first; see README "Trimmed encoder".
    eot_threshold: float = 0.0
    # After a token in ``sentence_end`` ('.', '?', '!'), stop if end-of-text has at least
    # ``eot_after_sentence`` probability: a voice command is one sentence, and a trimmed window
    # otherwise invites the decoder to start reading the audio again.
    sentence_end: frozenset[int] = frozenset()
    eot_after_sentence: float = 0.0


@dataclass(frozen=True)
class Decoded:
    tokens: list[int]
    avg_logprob: float
    no_speech_prob: float
    stop: str  # "eot", "max_tokens" or "repetition"


def log_softmax(x: np.ndarray) -> np.ndarray:
    x = x - x.max()
    return x - np.log(np.exp(x).sum())


def repetition_start(tokens: list[int], max_span: int = 16) -> int | None:
    """Index where a looping tail starts, or None.

    A span of >= 6 tokens said twice in a row, or a shorter span four times, is the decoder looping
    (Whisper's known failure on short inputs), not speech. Returns the index after the first copy.
    """
    n = len(tokens)
    for span in range(1, min(max_span, n // 2) + 1):
        times = 2 if span >= 6 else 4
        if n < span * times:
            continue
        tail = tokens[n - span :]
        if all(tokens[n - span * (r + 1) : n - span * r] == tail for r in range(1, times)):
            return n - span * (times - 1)
    return None


def numpy_stepper(session: ort.InferenceSession, cross_k: np.ndarray, cross_v: np.ndarray) -> StepFn:
    """Plain ``run`` with numpy feeds: on the CPU provider inputs are used in place, so this is
    already copy-free and IO binding would buy nothing."""
    layers, _, heads, _, dim = cross_k.shape
    empty = np.zeros((layers, 1, heads, 0, dim), dtype=np.float32)
    state = {"self_k": empty, "self_v": empty, "cross_k": cross_k, "cross_v": cross_v}

    def step(tokens: list[int]) -> np.ndarray:
        feeds = dict(state, tokens=np.asarray([tokens], dtype=np.int64))
        logits, state["self_k"], state["self_v"] = session.run(None, feeds)
        return logits[0]

    return step


def bound_stepper(
    session: ort.InferenceSession, cross_k: np.ndarray, cross_v: np.ndarray, device: str = "cuda"
) -> StepFn:
    """IO binding: the KV cache and cross-attention K/V stay in device memory between steps, only
    the token goes in and the logits row comes out. This is what pays on CUDA/TensorRT, where
    plain ``run`` would copy the whole cache host<->device every token."""
    layers, _, heads, _, dim = cross_k.shape
    binding = session.io_binding()
    on_device = {
        name: ort.OrtValue.ortvalue_from_numpy(value, device, 0)
        for name, value in (("cross_k", cross_k), ("cross_v", cross_v))
    }
    empty = np.zeros((layers, 1, heads, 0, dim), dtype=np.float32)
    cache = [ort.OrtValue.ortvalue_from_numpy(empty, device, 0) for _ in range(2)]
    for name, value in on_device.items():
        binding.bind_ortvalue_input(name, value)

    def step(tokens: list[int]) -> np.ndarray:
        binding.bind_cpu_input("tokens", np.asarray([tokens], dtype=np.int64))
        binding.bind_ortvalue_input("self_k", cache[0])
        binding.bind_ortvalue_input("self_v", cache[1])
        binding.bind_output("logits", "cpu")
        binding.bind_output("new_self_k", device)
        binding.bind_output("new_self_v", device)
        session.run_with_iobinding(binding)
        logits, cache[0], cache[1] = binding.get_outputs()
        return logits.numpy()[0]

    return step


def greedy_decode(
    step: StepFn,
    config: DecodeConfig,
    bias: BiasFn | None = None,
    max_tokens: int | None = None,
) -> Decoded:
    """Greedy search; ``step(tokens)`` feeds new tokens and returns the last position's logits."""
    # <|startoftranscript|> alone first: its logits carry the no-speech probability.
    first = step(list(config.prompt[:1]))
    no_speech = 0.0
    if config.no_speech is not None:
        no_speech = float(np.exp(log_softmax(first)[config.no_speech]))
    logits = step(list(config.prompt[1:])) if len(config.prompt) > 1 else first

    out: list[int] = []
    logprob_sum, stop = 0.0, "max_tokens"
    limit = max_tokens or config.max_tokens
    for i in range(limit):
        logits = logits.astype(np.float32, copy=True)
        logits[config.suppress] = -np.inf
        if i == 0:
            logits[config.begin_suppress] = -np.inf
        if bias is not None:
            for tok, bonus in bias(out).items():
                logits[tok] += bonus
        token = int(np.argmax(logits))
        logprobs = log_softmax(logits)
        if i > 0:
            threshold = config.eot_threshold
            if out and out[-1] in config.sentence_end and config.eot_after_sentence > 0:
                threshold = min(threshold or 1.0, config.eot_after_sentence)
            if threshold > 0 and logprobs[config.eot] >= np.log(threshold):
                token = config.eot
        logprob_sum += float(logprobs[token])
        if token == config.eot:
            stop = "eot"
            break
        out.append(token)
        cut = repetition_start(out)
        if cut is not None:
            out, stop = out[:cut], "repetition"
            break
        if i + 1 < limit:
            logits = step([token])
    if stop != "eot" and config.eot_after_sentence > 0:
        # Budget or loop ended a one-sentence command: keep it up to its last sentence end.
        ends = [k for k, tok in enumerate(out) if tok in config.sentence_end]
        if ends:
            out = out[: ends[-1] + 1]
    return Decoded(out, logprob_sum / max(1, len(out) + (stop == "eot")), no_speech, stop)
