"""The fallback: the fine-tuned LLM decoding a grammar-constrained intent list, on plain onnxruntime.

The graph is onnxruntime-genai's (fused GroupQueryAttention, int8 MatMulNBits), run here with our own
short loop so that we control the three things that make it fast on a CPU:

- the fixed instruction is prefilled once at load; every command starts from a copy of its KV cache;
- llguidance (a Rust JSON-schema/grammar engine) masks the logits at every step, and the tokens the
  grammar forces (``{"name":"``, ``","slots":{``, the rest of a unique name...) are fed to the model
  in one batch instead of one decoding step each (fast-forward);
- the answer is compact JSON with fixed key order, so only real choices cost a model step.

On a GPU (``io_binding``, the default there) the KV cache lives in device memory as OrtValues from
one step to the next and only the ids go in and the last logits row comes out. On the CPU the cache
is one preallocated buffer per layer that GroupQueryAttention writes in place (past and present
bound to the same memory, which the kernel detects), holding the instruction prefix once for good:
each step appends its new positions instead of copying the whole cache into a new present tensor.
"""

from __future__ import annotations

import json
import threading
import time
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import onnxruntime as ort
from tokenizers import Tokenizer

from casavox.runtime.bundle import Bundle, BundleError
from casavox.runtime.components import LlmComponent
from casavox.runtime.providers import open_graph, preferred_variant, resolve_device

COMPILED_GRAMMARS = 4  # compiled grammars kept per loaded LLM (one per home it serves)
# Positions after the instruction prefix in the in-place KV buffers: a command's message (at most
# 300 characters plus the candidate names, ~150 tokens) and its answer (max_new_tokens) fit easily.
SHARED_KV_ROOM = 768


@dataclass
class LlmAnswer:
    intents: list[dict[str, Any]]
    text: str
    confidence: float  # lowest probability of a freely chosen token (under the grammar mask)
    prompt_tokens: int
    generated_tokens: int
    model_steps: int
    forced_tokens: int
    timings_ms: dict[str, float] = field(default_factory=dict)
    error: str = ""
    # Every freely chosen token as (character offset in ``text`` where it starts, its probability):
    # lets the engine leave out choices that the words said settled anyway (``confidence_without``).
    choices: list[tuple[int, float]] = field(default_factory=list)

    def confidence_without(self, spans: list[tuple[int, int]]) -> float:
        """The lowest probability of a free choice outside the character ``spans`` of ``text``."""
        if not spans or not self.choices:
            return self.confidence
        kept = [p for at, p in self.choices if not any(a <= at < b for a, b in spans)]
        return min(kept, default=1.0)


@dataclass
class SharedKv:
    """The KV cache as one buffer per layer (1, kv_heads, capacity, head_dim), written in place by
    the graph; positions [0, length) are valid, the first ``prefix`` of them the instruction's."""

    arrays: list[np.ndarray]
    binding: Any  # onnxruntime IOBinding with every past/present K/V bound to its buffer, once
    prefix: int
    length: int

    @property
    def capacity(self) -> int:
        return self.arrays[0].shape[2]


def _log_softmax(x: np.ndarray) -> np.ndarray:
    x = x - x.max()
    return x - np.log(np.exp(x).sum())


class IntentLLM:
    """A loaded LLM variant with its cached instruction prefix."""

    def __init__(
        self,
        bundle: Bundle,
        variant: str = "int8",
        device: str = "cpu",
        threads: int | None = None,
        io_binding: bool | None = None,
        shared_kv: bool = True,
    ):
        import llguidance

        comp = LlmComponent.from_bundle(bundle)
        if variant not in comp.variants:
            have = ", ".join(sorted(comp.variants))
            raise BundleError(f"{bundle.root}: no LLM variant '{variant}' (have: {have})")
        self.variant = variant
        self.device = resolve_device(device)
        self.io_binding = self.device != "cpu" if io_binding is None else io_binding
        self._ort_device = "cuda" if self.device != "cpu" else "cpu"
        self.config = comp
        self.session = open_graph(bundle, comp.variants[variant].file, self.device, threads, spinning=True)
        # The external-data file must be present and verified too.
        for extra in comp.variants[variant].data_files:
            bundle.path(extra)
        tok_path = bundle.path(comp.tokenizer_file)
        self.tokenizer = Tokenizer.from_file(str(tok_path))
        self.eos = comp.eos_token_id
        self.ll_tokenizer = llguidance.LLTokenizer(str(tok_path), eos_token=self.eos)
        self.spec = json.loads(bundle.path(comp.intent_spec_file).read_text())
        self.layers = comp.num_layers
        self.kv_heads = comp.num_kv_heads
        self.head_dim = comp.head_dim
        self.max_new_tokens = comp.max_new_tokens
        self._outputs = [o.name for o in self.session.get_outputs()]
        past_type = next(i.type for i in self.session.get_inputs() if i.name == "past_key_values.0.key")
        self._vocab = next(o.shape[2] for o in self.session.get_outputs() if o.name == "logits")
        self._kv_dtype = np.float16 if "float16" in past_type else np.float32
        self._compiled: dict[str, Any] = {}  # grammar -> compiled matcher (see _matcher)
        self.prefix_text = comp.prompt.prefix
        self.suffix_text = comp.prompt.suffix
        t0 = time.perf_counter()
        self.prefix_ids = self.encode(self.prefix_text)
        _, self.prefix_cache = self._forward(self.prefix_ids, self._empty_cache())
        self.prefill_prefix_ms = (time.perf_counter() - t0) * 1e3
        self._shared = self._shared_kv(self.prefix_cache) if shared_kv and not self.io_binding else None
        self.command_lock = threading.Lock()  # one command at a time owns the in-place buffers

    def _shared_kv(self, prefix_cache: list[np.ndarray]) -> SharedKv:
        """In-place KV buffers with the instruction prefix written once."""
        length = prefix_cache[0].shape[2]
        shape = (1, self.kv_heads, length + SHARED_KV_ROOM, self.head_dim)
        arrays = []
        for part in prefix_cache:
            buf = np.zeros(shape, dtype=self._kv_dtype)
            buf[:, :, :length] = part
            arrays.append(buf)
        binding = self.session.io_binding()
        for i, buf in enumerate(arrays):
            kind = "key" if i % 2 == 0 else "value"
            value = ort.OrtValue.ortvalue_from_numpy(buf)
            binding.bind_ortvalue_input(f"past_key_values.{i // 2}.{kind}", value)
            binding.bind_ortvalue_output(f"present.{i // 2}.{kind}", value)
        return SharedKv(arrays, binding, length, length)

    def encode(self, text: str) -> list[int]:
        return self.tokenizer.encode(text, add_special_tokens=False).ids

    def _empty_cache(self) -> list:
        empty = np.zeros((1, self.kv_heads, 0, self.head_dim), dtype=self._kv_dtype)
        if self.io_binding:
            return [
                ort.OrtValue.ortvalue_from_numpy(empty, self._ort_device, 0) for _ in range(2 * self.layers)
            ]
        return [empty] * (2 * self.layers)

    def _forward(self, ids: list[int], cache: list) -> tuple[np.ndarray, list]:
        """Feed ``ids`` after ``cache``; returns the last position's logits and the grown cache."""
        if isinstance(cache, SharedKv):
            return self._forward_in_place(ids, cache)
        if self.io_binding:
            return self._forward_bound(ids, cache)
        past = cache[0].shape[2]
        feeds: dict[str, np.ndarray] = {
            "input_ids": np.asarray([ids], dtype=np.int64),
            "attention_mask": np.ones((1, past + len(ids)), dtype=np.int64),
        }
        for i in range(self.layers):
            feeds[f"past_key_values.{i}.key"] = cache[2 * i]
            feeds[f"past_key_values.{i}.value"] = cache[2 * i + 1]
        out = dict(zip(self._outputs, self.session.run(self._outputs, feeds), strict=True))
        grown = []
        for i in range(self.layers):
            grown += [out[f"present.{i}.key"], out[f"present.{i}.value"]]
        return out["logits"][0, -1], grown

    def _forward_bound(self, ids: list[int], cache: list) -> tuple[np.ndarray, list]:
        """The same step with IO binding: past K/V are bound in place, present K/V stay on the device."""
        past = cache[0].shape()[2]
        binding = self.session.io_binding()
        binding.bind_cpu_input("input_ids", np.asarray([ids], dtype=np.int64))
        binding.bind_cpu_input("attention_mask", np.ones((1, past + len(ids)), dtype=np.int64))
        for i in range(self.layers):
            binding.bind_ortvalue_input(f"past_key_values.{i}.key", cache[2 * i])
            binding.bind_ortvalue_input(f"past_key_values.{i}.value", cache[2 * i + 1])
        for name in self._outputs:
            binding.bind_output(name, "cpu" if name == "logits" else self._ort_device)
        self.session.run_with_iobinding(binding)
        out = dict(zip(self._outputs, binding.get_outputs(), strict=True))
        grown = []
        for i in range(self.layers):
            grown += [out[f"present.{i}.key"], out[f"present.{i}.value"]]
        return np.asarray(out["logits"].numpy()[0, -1], dtype=np.float32), grown

    def _forward_in_place(self, ids: list[int], cache: SharedKv) -> tuple[np.ndarray, SharedKv]:
        """The same step on the in-place buffers: past and present K/V are the same memory, so
        GroupQueryAttention only writes the new positions (it compares the two pointers)."""
        total = cache.length + len(ids)
        if total > cache.capacity:
            raise ValueError(f"in-place KV cache full ({total} > {cache.capacity} positions)")
        binding = cache.binding  # K/V stay bound; only the ids, the mask and the logits change
        binding.bind_cpu_input("input_ids", np.asarray([ids], dtype=np.int64))
        binding.bind_cpu_input("attention_mask", np.ones((1, total), dtype=np.int64))
        logits = np.empty((1, len(ids), self._vocab), dtype=np.float32)
        binding.bind_ortvalue_output("logits", ort.OrtValue.ortvalue_from_numpy(logits))
        self.session.run_with_iobinding(binding)
        cache.length = total
        return logits[0, -1], cache

    def begin(self, ids: list[int]) -> tuple[np.ndarray, list | SharedKv]:
        """Feed a command's ``ids`` after the cached instruction prefix: the in-place buffers when
        they have room (the caller holds ``command_lock``), else a grown copy of the prefix cache."""
        shared = self._shared
        if shared is not None and len(ids) + 2 * self.max_new_tokens <= shared.capacity - shared.prefix:
            shared.length = shared.prefix  # what a previous command wrote after it is masked out
            return self._forward(ids, shared)
        return self._forward(ids, self.prefix_cache)

    def decode_rate(self, steps: int = 32) -> float:
        """Raw model decoding speed (tokens/s): one token per step on top of the cached prefix."""
        with self.command_lock:
            logits, cache = self.begin(self.encode("hello"))
            t0 = time.perf_counter()
            for _ in range(steps):
                logits, cache = self._forward([int(np.argmax(logits))], cache)
            return steps / (time.perf_counter() - t0)

    def grammar(self, schema: dict[str, Any]) -> str:
        import llguidance

        return llguidance.LLMatcher.grammar_from_json_schema(
            schema, defaults={"whitespace_flexible": False, "item_separator": ",", "key_separator": ":"}
        )

    def generate(self, user_message: str, grammar: str, reuse_prefix: bool = True) -> LlmAnswer:
        """Decode the answer to one command under ``grammar`` (from :meth:`grammar`).

        ``reuse_prefix=False`` prefills the instruction again (for measuring what the cache saves)."""
        with self.command_lock:
            return self._generate(user_message, grammar, reuse_prefix)

    def _generate(self, user_message: str, grammar: str, reuse_prefix: bool) -> LlmAnswer:
        import llguidance.numpy as llnp

        t0 = time.perf_counter()
        ids = self.encode(user_message + self.suffix_text)
        matcher = self._matcher(grammar)
        if reuse_prefix:
            logits, cache = self.begin(ids)
        else:
            logits, cache = self._forward(self.prefix_ids + ids, self._empty_cache())
        t1 = time.perf_counter()
        mask = llnp.allocate_token_bitmask(1, self.ll_tokenizer.vocab_size)
        out: list[int] = []
        steps, forced, confidence, error = 1, 0, 1.0, ""
        chosen: list[tuple[int, float]] = []  # (index in out, probability) of each free choice
        while len(out) < self.max_new_tokens:
            llnp.fill_next_token_bitmask(matcher, mask)
            row = logits[None, : self.ll_tokenizer.vocab_size].astype(np.float32, copy=True)
            llnp.apply_token_bitmask_inplace(row, mask)
            allowed = int(np.isfinite(row[0]).sum())
            token = int(np.argmax(row[0]))
            if allowed > 1:
                p = float(np.exp(_log_softmax(row[0])[token]))
                confidence = min(confidence, p)
                chosen.append((len(out), p))
            if not matcher.consume_token(token):
                error = matcher.get_error() or "grammar rejected a token"
                break
            if token == self.eos:
                break
            out.append(token)
            if matcher.is_stopped():
                break
            ff = matcher.compute_ff_tokens()
            if ff:
                if not matcher.consume_tokens(ff):
                    error = matcher.get_error() or "grammar rejected forced tokens"
                    break
                forced += len(ff)
                out.extend(t for t in ff if t != self.eos)
                if self.eos in ff or matcher.is_stopped():
                    break
            if matcher.is_accepting() and self._only_eos(matcher, mask):
                break
            logits, cache = self._forward([token, *ff], cache)
            steps += 1
        text = self.tokenizer.decode(out)
        t2 = time.perf_counter()
        intents: list[dict[str, Any]] = []
        if not error:
            try:
                parsed = json.loads(text)
                intents = parsed if isinstance(parsed, list) else []
            except json.JSONDecodeError as exc:
                error = f"incomplete answer ({exc.msg})"
        return LlmAnswer(
            intents=intents if not error else [],
            text=text,
            confidence=confidence,
            prompt_tokens=len(self.prefix_ids) + len(ids),
            generated_tokens=len(out),
            model_steps=steps,
            forced_tokens=forced,
            timings_ms={"llm_prefill_ms": (t1 - t0) * 1e3, "llm_decode_ms": (t2 - t1) * 1e3},
            error=error,
            choices=[(len(self.tokenizer.decode(out[:i])), p) for i, p in chosen],
        )

    def _matcher(self, grammar: str):
        """A fresh matcher for ``grammar``. Compiling a home's grammar costs 7-45 ms (measured on the
        example and fixture homes), copying a compiled one microseconds, so each grammar is compiled
        once and copied per command; the few most recent grammars are kept (one per home in use)."""
        import llguidance

        compiled = self._compiled.pop(grammar, None)
        if compiled is None:
            compiled = llguidance.LLMatcher(self.ll_tokenizer, grammar, log_level=0)
        self._compiled[grammar] = compiled  # most recently used last
        while len(self._compiled) > COMPILED_GRAMMARS:
            self._compiled.pop(next(iter(self._compiled)))
        return compiled.deep_copy()

    def _only_eos(self, matcher, mask: np.ndarray) -> bool:
        """True when the grammar is complete and allows nothing but end-of-answer."""
        import llguidance.numpy as llnp

        llnp.fill_next_token_bitmask(matcher, mask)
        bits = np.unpackbits(mask.view(np.uint8), bitorder="little")[: self.ll_tokenizer.vocab_size]
        return int(bits.sum()) == 1 and bool(bits[self.eos])


def load_llm(
    bundle: Bundle,
    variant: str | None = None,
    device: str = "cpu",
    threads: int | None = None,
    io_binding: bool | None = None,
) -> IntentLLM:
    comp = LlmComponent.from_bundle(bundle)
    if not variant:  # the bundle's default on the CPU, the fp16 graph on a GPU
        on_cpu = resolve_device(device) == "cpu"
        variant = comp.default_variant if on_cpu else preferred_variant(device, comp.variants)
    return IntentLLM(bundle, variant, device, threads, io_binding)


def llm_available(bundle: Bundle) -> bool:
    return LlmComponent.NAME in bundle.manifest.get("components", {})
