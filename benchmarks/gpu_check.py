"""What a GPU box with onnxruntime-gpu can check of casavox, in one short run (README "GPU").

    python -m benchmarks.gpu_check prepare --bundle bundles/default --out gpu-inputs   # here, on the CPU
    python -m benchmarks.gpu_check run --bundle GPU_BUNDLE --inputs gpu-inputs --out gpu.json [--device cuda]

``prepare`` writes what the GPU run needs so that the GPU box needs neither Piper, espeak-ng nor the
CPU graphs: the 64 benchmark clips with their texts, the transcripts the CPU gave for them with the
int8 and fp16 graphs (the references), the CPU int8 LLM's answers to the benchmark's LLM commands,
and the spoken commands of the end-to-end benchmark. ``run`` records the GPU and the providers as
casavox sees them; transcribes the clips with the bundle's fp16 graphs on the GPU (IO binding on and
off) and compares them with the CPU; asks the fp16 LLM the benchmark's commands (grammar-constrained,
and 24 free tokens like the peers) and compares the answers with the CPU's; then runs the daemon end
to end in real time (VAD endpointing -> ASR -> templates or LLM -> simulated home). Made for a GPU box with onnxruntime-gpu but no TensorRT, Piper or
faster-whisper (the development one); ``make benchmark-gpu`` is the full harness with the peers.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
WARMUP = 2


def prepare(bundle: Path, out: Path) -> None:
    from benchmarks.e2e import LLM_COMMANDS as E2E_LLM
    from benchmarks.e2e import TEMPLATE_COMMANDS
    from benchmarks.workers import LLM_COMMANDS, load_llm, speech_clips
    from casavox.runtime.asr.transcriber import load_transcriber
    from casavox.runtime.audio.io import to_mono_16k
    from casavox.runtime.tts import PiperSpeaker

    clips = speech_clips()
    references = {}
    for variant in ("int8", "fp16"):
        tr = load_transcriber(bundle, variant, device="cpu")
        references[variant] = [tr.transcribe(c.audio).text for c in clips]
    llm = load_llm("casavox-llm-int8", bundle, len(os.sched_getaffinity(0)), "cpu")
    answers = [llm(i)[0] for i in range(len(LLM_COMMANDS))]
    speaker = PiperSpeaker()
    said = [speaker.say(text, deterministic=True) for text in TEMPLATE_COMMANDS + E2E_LLM]
    commands = [to_mono_16k(s.audio, s.sample_rate) for s in said]
    out.mkdir(parents=True, exist_ok=True)
    arrays = {f"clip{i}": c.audio for i, c in enumerate(clips)} | {
        f"command{i}": a for i, a in enumerate(commands)
    }
    np.savez_compressed(out / "audio.npz", **arrays)
    meta = {
        "clips": [{"expected": c.expected, "voice": c.voice} for c in clips],
        "cpu_transcripts": references,
        "cpu_llm_answers": answers,
        "cpu": platform.processor() or platform.machine(),
        "commands": TEMPLATE_COMMANDS + E2E_LLM,
    }
    (out / "inputs.json").write_text(json.dumps(meta, indent=1) + "\n")


def _stats(values: list[float]) -> dict:
    v = np.asarray(values, dtype=float)
    return {
        "n": int(v.size),
        "median_ms": round(float(np.median(v)), 2),
        "p95_ms": round(float(np.percentile(v, 95)), 2),
    }


def devices_seen() -> dict:
    """The providers and GPU exactly as the runtime sees them (what `auto` would pick, and why not better)."""
    import onnxruntime as ort

    from casavox.runtime.providers import PREFERENCE, resolve_device, unavailable_reason
    from casavox.runtime.trt.device import gpu_facts

    facts = gpu_facts()
    return {
        "onnxruntime": ort.__version__,
        "available_providers": ort.get_available_providers(),
        "unavailable": {d: unavailable_reason(d) for d in PREFERENCE},
        "auto": resolve_device("auto"),
        "gpu": facts.as_dict() if facts else None,
    }


def check_asr(bundle: Path, device: str, audio, meta: dict) -> dict:
    from casavox.export.speech_set import word_error_rate
    from casavox.runtime.asr.transcriber import Transcriber
    from casavox.runtime.bundle import verify

    clips = [audio[f"clip{i}"] for i in range(len(meta["clips"]))]
    expected = [c["expected"] for c in meta["clips"]]
    out: dict = {"clips": len(clips), "audio_s": round(sum(len(c) for c in clips) / 16000, 1)}
    for cpu_variant, texts in meta["cpu_transcripts"].items():
        out[f"wer_cpu_{cpu_variant}"] = word_error_rate(expected, texts)
    b = verify(bundle)
    for io_binding in (True, False):
        started = time.perf_counter()
        tr = Transcriber(b, "fp16", device, io_binding=io_binding)
        load_s = time.perf_counter() - started
        for c in clips[:WARMUP]:
            tr.transcribe(c)
        total, stages, texts = [], {"mel_ms": [], "encoder_ms": [], "decoder_ms": []}, []
        for c in clips:
            t = time.perf_counter()
            r = tr.transcribe(c)
            total.append((time.perf_counter() - t) * 1e3)
            texts.append(r.text)
            for k in stages:
                stages[k].append(r.timings_ms[k])
        cpu = meta["cpu_transcripts"]
        out["io_binding" if io_binding else "plain_run"] = {
            "providers": {"encoder": tr.encoder.get_providers(), "decoder": tr.decoder.get_providers()},
            "load_s": round(load_s, 2),
            "latency": _stats(total),
            "stages": {k: _stats(v) for k, v in stages.items()},
            "wer": word_error_rate(expected, texts),
            "same_text_as_cpu_fp16": sum(a == b for a, b in zip(texts, cpu["fp16"], strict=True)),
            "same_text_as_cpu_int8": sum(a == b for a, b in zip(texts, cpu["int8"], strict=True)),
            "differences_vs_cpu_fp16": [
                {"expected": e, "gpu": a, "cpu": b}
                for e, a, b in zip(expected, texts, cpu["fp16"], strict=True)
                if a != b
            ],
        }
    return out


def check_llm(bundle: Path, device: str, audio, meta: dict) -> dict:
    from benchmarks.workers import LLM_COMMANDS, load_llm

    threads = len(os.sched_getaffinity(0))
    out: dict = {"commands": len(LLM_COMMANDS)}
    for system in ("casavox-llm-fp16", "casavox-llm-fp16-free"):
        started = time.perf_counter()
        run = load_llm(system, bundle, threads, device)
        load_s = time.perf_counter() - started
        for i in range(WARMUP):
            run(i)
        total, per_token, answers = [], [], []
        for _ in range(2):
            for i in range(len(LLM_COMMANDS)):
                t = time.perf_counter()
                answer, stages = run(i)
                total.append((time.perf_counter() - t) * 1e3)
                per_token.append(stages["llm_decode_per_token_ms"])
                answers.append(answer)
        row = {
            "load_s": round(load_s, 2),
            "latency": _stats(total),
            "decode_tok_s": round(1e3 / float(np.median(per_token)), 1),
        }
        if not system.endswith("-free"):
            cpu = meta["cpu_llm_answers"]
            row["same_answer_as_cpu_int8"] = sum(a == b for a, b in zip(answers, cpu + cpu, strict=True))
            row["answers"] = {c: a for c, a in zip(LLM_COMMANDS, answers, strict=False)}
        out[system] = row
    return out


def prompt_shapes(bundle: Path, device: str, profile: Path | None = None) -> dict:
    """What a prompt length never seen before costs the LLM, against the same length again.

    On the GPU a command's LLM time in the daemon (every command a new prompt length) was several
    times the benchmark's repeat-heavy median; this separates first-visit costs (per-shape kernel
    choice, lazy module loading, allocation) from steady state. ``profile`` turns on onnxruntime's
    profiler and reports the op types that account for the difference."""
    import casavox.runtime.providers as providers
    from casavox.runtime.bundle import verify
    from casavox.runtime.intents.llm import load_llm

    if profile is not None:
        profile.mkdir(parents=True, exist_ok=True)
        plain = providers.session_options

        def with_profiler(*args, **kwargs):
            opts = plain(*args, **kwargs)
            opts.enable_profiling = True
            opts.profile_file_prefix = str(profile / "ort")
            return opts

        providers.session_options = with_profiler
    t = time.perf_counter()
    llm = load_llm(verify(bundle, hash_files=False), None, device)
    load_s = time.perf_counter() - t
    words = " ".join(["turn off the kitchen lights and the desk lamp in the office please"] * 20)
    pool = llm.encode(words)

    def timed(ids: list[int], cache) -> tuple[float, list]:
        t = time.perf_counter()
        _, grown = llm._forward(ids, cache)
        return (time.perf_counter() - t) * 1e3, grown

    prefill, labels = [], []
    for n in range(4, 100, 4):
        labels += ["prefill_first", "prefill_repeat"]
        first, _ = timed(pool[:n], llm.prefix_cache)
        again, _ = timed(pool[:n], llm.prefix_cache)
        prefill.append({"tokens": n, "first_ms": round(first, 2), "repeat_ms": round(again, 2)})
    decode = {}
    for visit in ("first", "repeat"):
        _, cache = timed(pool[:41], llm.prefix_cache)
        labels += ["prefill_41"] + [f"decode_{visit}"] * 40
        steps = []
        for tok in pool[41:81]:
            ms, cache = timed([tok], cache)
            steps.append(ms)
        decode[visit] = _stats(steps)
    out = {
        "variant": llm.variant,
        "load_s": round(load_s, 2),
        "prefill": prefill,
        "decode_steps": decode,
        "prefill_first_median_ms": float(np.median([r["first_ms"] for r in prefill])),
        "prefill_repeat_median_ms": float(np.median([r["repeat_ms"] for r in prefill])),
    }
    if profile is not None:
        out["profile_top_ops"] = _profile_summary(Path(llm.session.end_profiling()), labels)
        providers.session_options = plain
    return out


def _profile_summary(trace: Path, labels: list[str], top: int = 10) -> dict:
    """Time per op type in onnxruntime's trace, per kind of run (``labels`` names the runs in the
    order prompt_shapes made them, the earliest ones being the load's)."""
    from collections import Counter, defaultdict

    events = json.loads(trace.read_text())
    runs = sorted((e["ts"], e["ts"] + e["dur"]) for e in events if e.get("name") == "model_run")
    names = ["load"] * (len(runs) - len(labels)) + labels
    per_label: dict[str, Counter] = defaultdict(Counter)
    for e in events:
        if e.get("cat") != "Node" or not e.get("name", "").endswith("_kernel_time"):
            continue
        i = next((k for k, (a, b) in enumerate(runs) if a <= e["ts"] <= b), None)
        if i is not None:
            per_label[names[i]][e.get("args", {}).get("op_name", "?")] += e.get("dur", 0) / 1e3
    count = Counter(names)
    return {
        label: {op: round(ms / count[label], 3) for op, ms in ops.most_common(top)}
        for label, ops in per_label.items()
    } | {"runs": dict(count), "unit": "ms per run"}


def check_shapes(bundle: Path, device: str, audio, meta: dict) -> dict:
    """prompt_shapes in fresh processes, plain and with onnxruntime's profiler. (CUDA's eager module
    loading, CUDA_MODULE_LOADING=EAGER, was tried on the H200 too and changed nothing.)"""
    import subprocess
    import tempfile

    out = {}
    for name, env, profile in (("plain", {}, False), ("profiled", {}, True)):
        with tempfile.TemporaryDirectory() as tmp:
            cmd = [
                sys.executable,
                "-m",
                "benchmarks.gpu_check",
                "shapes",
                "--bundle",
                str(bundle),
                "--device",
                device,
                "--out",
                f"{tmp}/r.json",
            ]
            if profile:
                cmd += ["--profile", tmp]
            done = subprocess.run(cmd, env={**os.environ, **env}, capture_output=True, text=True, timeout=240)
            out[name] = (
                json.loads(Path(f"{tmp}/r.json").read_text())
                if done.returncode == 0
                else {"error": done.stderr[-2000:]}
            )
    return out


def check_e2e(bundle: Path, device: str, audio, meta: dict) -> dict:
    from benchmarks.e2e import run_pass, summarize
    from casavox.edge_app.pipeline import SpeechPipeline
    from casavox.runtime.home import load_home

    clips = [(text, audio[f"command{i}"]) for i, text in enumerate(meta["commands"])]
    pipeline = SpeechPipeline.load(str(bundle), load_home(ROOT / "examples" / "home.yaml"), device)
    pipeline.understand(clips[0][1])
    out = {}
    for speculate in (True, False):
        rows = run_pass(pipeline, str(bundle), clips, speculate)
        out["speculation_on" if speculate else "speculation_off"] = {"summary": summarize(rows), "rows": rows}
    return out


def run(bundle: Path, inputs: Path, device: str, out: Path, only: set[str] = frozenset()) -> dict:
    from casavox.runtime.providers import resolve_device

    meta = json.loads((inputs / "inputs.json").read_text())
    audio = np.load(inputs / "audio.npz")
    results: dict = {
        "started": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "host": platform.node(),
        "cpus": len(os.sched_getaffinity(0)),
    }
    results["devices"] = devices_seen()
    device = resolve_device(device)
    results["device"] = device
    for name, fn in (("asr", check_asr), ("llm", check_llm), ("shapes", check_shapes), ("e2e", check_e2e)):
        if only and name not in only:
            continue
        t = time.perf_counter()
        try:
            results[name] = fn(bundle, device, audio, meta)
        except Exception as exc:  # noqa: BLE001 - one failing section must not lose the others' figures
            results[name] = {"error": f"{type(exc).__name__}: {exc}"}
        results[name]["section_s"] = round(time.perf_counter() - t, 1)
        print(f"{name}: done in {results[name]['section_s']} s", file=sys.stderr, flush=True)
        out.write_text(
            json.dumps(results, indent=1, default=str) + "\n"
        )  # what is measured survives a timeout
    return results


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks.gpu_check", description=__doc__.split("\n\n")[0]
    )
    sub = parser.add_subparsers(dest="step", required=True)
    p = sub.add_parser("prepare", help="here, on the CPU: clips, texts and CPU transcripts for the GPU run")
    p.add_argument("--bundle", type=Path, default=ROOT / "bundles" / "default")
    p.add_argument("--out", type=Path, required=True)
    p = sub.add_parser("run", help="on the GPU box")
    p.add_argument("--bundle", type=Path, required=True, help="a bundle with the fp16 graphs")
    p.add_argument("--inputs", type=Path, required=True, help="the folder `prepare` wrote")
    p.add_argument("--out", type=Path, required=True, help="results JSON")
    p.add_argument("--device", default="cuda")
    p.add_argument("--only", default="", help="comma list of asr, llm, shapes, e2e (default all)")
    p = sub.add_parser("shapes", help="one process: the LLM's first-visit vs repeat cost per prompt length")
    p.add_argument("--bundle", type=Path, required=True)
    p.add_argument("--device", default="cuda")
    p.add_argument("--out", type=Path, required=True)
    p.add_argument("--profile", type=Path, help="folder for onnxruntime's trace (profiler on)")
    args = parser.parse_args(argv)
    if args.step == "prepare":
        prepare(args.bundle, args.out)
        return 0
    if args.step == "shapes":
        args.out.write_text(
            json.dumps(prompt_shapes(args.bundle, args.device, args.profile), indent=1) + "\n"
        )
        return 0
    results = run(args.bundle, args.inputs, args.device, args.out, set(args.only.split(",")) - {""})
    print(json.dumps({k: v for k, v in results.items() if k != "e2e"}, indent=1, default=str)[:9000])
    for mode, section in results.get("e2e", {}).items():
        if isinstance(section, dict) and "summary" in section:
            print(mode, json.dumps(section["summary"]))
    return 0


if __name__ == "__main__":
    sys.exit(main())
