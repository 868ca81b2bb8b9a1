"""`make benchmark`: latency and accuracy of casavox beside its peers, in one run, with a report.

    python -m benchmarks.run [--bundle bundles/default] [--quick] [--only asr,llm,accuracy,e2e,startup]
                             [--providers cpu|cuda|tensorrt|auto] [--items N] [--compare OLD/results.json]

Writes ``benchmarks/results/<timestamp>-<host>/``: ``results.json`` (every raw timing, the machine,
library versions, bundle hashes), ``report.md`` (tables) and ``plots/*.png``; prints the summary
table and the report's path. ASR and LLM systems each run in their own worker process
(``benchmarks/workers.py``) and are asked item by item in turn, so machine noise hits all of them
equally; the first two items per system are warm-up and excluded. ``--compare`` prints the deltas
against an older ``results.json`` and exits with status 3 when a latency grew by more than
``--max-slowdown`` (default 20%, and at least 2 ms) or an accuracy fell by more than
``--max-accuracy-drop`` (default 2 points): usable as a CI gate on a fixed machine.
"""

from __future__ import annotations

import argparse
import datetime as dt
import hashlib
import json
import os
import platform
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from importlib import metadata
from pathlib import Path

import numpy as np

from benchmarks import report
from benchmarks.workers import ASR_SYSTEMS, LLM_COMMANDS, LLM_SYSTEMS

ROOT = Path(__file__).resolve().parents[1]
HA_TESTS = ROOT.parent / "shared" / "ha-intents-tests" / "en"
PARAPHRASES = ROOT / "tests" / "data" / "paraphrases.yaml"
WARMUP = 2
SECTIONS = ("asr", "llm", "accuracy", "e2e", "startup")


def stats(values: list[float]) -> dict:
    if not values:
        return {"n": 0}
    v = np.asarray(values, dtype=float)
    return {
        "n": int(v.size),
        "median_ms": float(np.median(v)),
        "p95_ms": float(np.percentile(v, 95)),
        "p99_ms": float(np.percentile(v, 99)),
        "mean_ms": float(v.mean()),
    }


def environment(device: str) -> dict:
    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    gpu = ""
    try:
        gpu = subprocess.run(["nvidia-smi", "-L"], capture_output=True, text=True, timeout=10).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        pass
    versions = {}
    for dist in ("casavox", "onnxruntime", "onnxruntime-gpu", "numpy", "hassil", "home-assistant-intents", "llguidance",
                 "faster-whisper", "ctranslate2", "llama_cpp_python", "torch", "transformers", "silero-vad"):  # fmt: skip
        try:
            versions[dist] = metadata.version(dist)
        except metadata.PackageNotFoundError:
            pass
    import onnxruntime

    return {
        "host": socket.gethostname(),
        "cpu": cpu,
        "cores": os.cpu_count(),
        "gpu": gpu,
        "python": platform.python_version(),
        "platform": platform.platform(),
        "onnxruntime_providers": onnxruntime.get_available_providers(),
        "versions": versions,
        "device": device,
    }


def bundle_info(bundle: Path) -> dict:
    from casavox.runtime.bundle import VARIANTS, verify

    manifest = verify(bundle).manifest
    sizes: dict[str, float] = {}
    for comp, body in manifest["components"].items():
        for variant, files in (body.get(VARIANTS) or {}).items():
            rels = [v for k, v in files.items() if k.endswith("file") and isinstance(v, str)]
            rels += [r for k, v in files.items() if k.endswith("_files") for r in v]
            rels += [r for r in manifest["files"] if r.startswith(f"{comp}/{variant}/")]
            sizes[f"{comp}/{variant}"] = (
                sum(manifest["files"][r]["size"] for r in set(rels) if r in manifest["files"]) / 1e6
            )
    return {
        "path": str(bundle),
        "manifest_sha256": hashlib.sha256((bundle / "manifest.json").read_bytes()).hexdigest(),
        "files": {k: v["sha256"] for k, v in manifest["files"].items()},
        "size_mb": sizes,
        "components": sorted(manifest["components"]),
    }


class Worker:
    """A benchmarked system in its own process (benchmarks/workers.py)."""

    def __init__(self, system: str, bundle: Path, threads: int, device: str) -> None:
        self.system = system
        cmd = [
            sys.executable,
            "-m",
            "benchmarks.workers",
            system,
            "--bundle",
            str(bundle),
            "--threads",
            str(threads),
            "--device",
            device,
        ]
        self.proc = subprocess.Popen(
            cmd, cwd=ROOT, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True
        )
        first = json.loads(self._line())
        self.skipped = first.get("skipped")
        self.load_s = first.get("ready", 0.0)

    def _line(self) -> str:
        while True:
            line = self.proc.stdout.readline()
            if not line:
                raise RuntimeError(f"{self.system}: worker exited")
            if line.startswith("{"):
                return line

    def ask(self, request: dict) -> dict:
        self.proc.stdin.write(json.dumps(request) + "\n")
        self.proc.stdin.flush()
        return json.loads(self._line())

    def close(self) -> None:
        if self.proc.poll() is None:
            self.proc.stdin.close()
            self.proc.wait(timeout=30)


def interleaved(systems: list[str], items: list[int], args, progress) -> dict[str, dict]:
    """Each item to each system in turn; per-system raw timings, outputs, stages, RSS."""
    workers = {s: Worker(s, args.bundle, args.threads, args.providers) for s in systems}
    out: dict[str, dict] = {}
    try:
        live = {s: w for s, w in workers.items() if not w.skipped}
        for s, w in workers.items():
            out[s] = {"skipped": w.skipped} if w.skipped else {}  # keeps the requested order
        for i in items[:WARMUP]:
            for w in live.values():
                w.ask({"run": i})
        rows = {s: [] for s in live}
        for i in items:
            for s, w in live.items():
                rows[s].append(w.ask({"run": i}))
            progress.update(1)
        for s, w in live.items():
            stages: dict[str, list[float]] = {}
            for r in rows[s]:
                for k, v in r["stages"].items():
                    stages.setdefault(k, []).append(v)
            out[s] = {
                "items": items,
                "outputs": [r["output"] for r in rows[s]],
                "raw_ms": [r["total_ms"] for r in rows[s]],
                "raw_stages": stages,
                "latency": stats([r["total_ms"] for r in rows[s]]),
                "stages": {k: stats(v) for k, v in stages.items()},
                "peak_rss_mb": w.ask({"rss": 1})["peak_rss_mb"],
                "load_s": w.load_s,
            }
    finally:
        for w in workers.values():
            w.close()
    return out


def bench_asr(args, progress) -> dict:
    import soundfile

    from benchmarks.workers import speech_clips
    from casavox.export.speech_set import word_error_rate
    from casavox.runtime.audio.io import load_audio

    clips = speech_clips()
    items = list(range(len(clips)))[: args.items] if args.items else list(range(len(clips)))
    systems = interleaved(args.asr_systems, items, args, progress)
    expected = [clips[i].expected for i in items]
    audio_s = [len(clips[i].audio) / 16000 for i in items]
    base = systems.get("casavox-asr-int8", {}).get("latency", {}).get("median_ms")
    for row in systems.values():
        if "skipped" in row:
            continue
        row["wer"] = word_error_rate(expected, row["outputs"])
        row["rtf"] = sum(row["raw_ms"]) / 1e3 / sum(audio_s)
        if base:
            row["ratio_vs_casavox"] = row["latency"]["median_ms"] / base
    # audio read + resample: the same clips as 22.05 kHz WAV files (the voices' native rate)
    read = []
    with tempfile.TemporaryDirectory() as tmp:
        import soxr

        for i in items:
            path = Path(tmp) / f"{i}.wav"
            soundfile.write(path, soxr.resample(clips[i].audio, 16000, 22050), 22050)
            t = time.perf_counter()
            load_audio(path)
            read.append((time.perf_counter() - t) * 1e3)
    return {"systems": systems, "read_resample_ms": stats(read), "clips": len(items)}


def bench_llm(args, progress) -> dict:
    from casavox.runtime.home import load_home
    from casavox.runtime.intents.engine import IntentEngine

    n = args.items or len(LLM_COMMANDS) * 2
    items = list(range(n))
    systems = interleaved(args.llm_systems, items, args, progress)
    for row in systems.values():
        if "skipped" not in row and "llm_decode_per_token_ms" in row["stages"]:
            row["decode_tok_s"] = 1e3 / row["stages"]["llm_decode_per_token_ms"]["median_ms"]
    base = systems.get("casavox-llm-int8", {}).get("latency", {}).get("median_ms")
    for row in systems.values():
        if base and "latency" in row:
            row["ratio_vs_casavox"] = row["latency"]["median_ms"] / base
    engine = IntentEngine.build(load_home(ROOT / "examples" / "home.yaml"), None)
    texts = ["turn off the lights in the kitchen", "set the bedroom lamp brightness to 50%", "lock the front door",
             "what is the temperature in the living room", "turn on the desk lamp"]  # fmt: skip
    engine.parse(texts[0])
    template = [engine.parse(t).timings_ms["total_ms"] for t in texts * (2 if args.quick else 10)]
    return {"systems": systems, "template_ms": stats(template), "commands": n}


def bench_accuracy(args, progress) -> dict:
    """Exact match on HA's suite (text; and a spoken subset) and our paraphrases, per quant and path."""
    from casavox.edge_app.intent_eval import evaluate, load_suite
    from casavox.runtime.bundle import verify
    from casavox.runtime.components import LlmComponent
    from casavox.runtime.intents.engine import IntentEngine
    from casavox.runtime.intents.llm import load_llm

    bundle = verify(args.bundle, hash_files=False)
    has_llm = LlmComponent.NAME in bundle.manifest["components"]
    quants = sorted(LlmComponent.from_bundle(bundle).variants) if has_llm else []
    quants = [q for q in quants if q != "fp16" or args.providers != "cpu"]  # fp16 graphs are for GPUs
    sets = {"paraphrases": PARAPHRASES}
    if HA_TESTS.exists():
        sets["ha_suite"] = HA_TESTS
    out: dict = {}

    def subset(groups):
        if not args.items:
            return groups
        return [(home, cases[: args.items]) for home, cases in groups[:1]]

    for quant in quants or [None]:
        llm = load_llm(bundle, quant, device=args.providers, threads=args.threads) if quant else None
        for set_name, path in sets.items():
            groups = subset(load_suite(path))
            for label, templates, use_llm in (
                ("merged", True, True),
                ("templates", True, False),
                ("llm", False, True),
            ):
                if (not use_llm and quant != (quants[0] if quants else None)) or (use_llm and llm is None):
                    continue  # the template path does not depend on the LLM's quant: measure it once
                engines = {}

                def engine_for(home, templates=templates, use_llm=use_llm, engines=engines, llm=llm):
                    if id(home) not in engines:
                        engines[id(home)] = IntentEngine.build(home, llm if use_llm else None)
                    engine = engines[id(home)]
                    return lambda text, area: engine.parse(text, area, templates=templates, use_llm=use_llm)

                rep = evaluate(groups, engine_for)
                times = [o.got.timings_ms.get("total_ms", 0.0) for o in rep.outcomes]
                out[f"{set_name}.{label}.{quant if use_llm else '-'}"] = {
                    "set": set_name, "path": label, "quant": quant if use_llm else "-", "accuracy": rep.accuracy,
                    "n": len(rep.outcomes), "median_ms": statistics.median(times) if times else 0.0,
                }  # fmt: skip
                progress.update(1)
    if HA_TESTS.exists() and quants:
        out.update(spoken_suite(args, bundle, quants[0], progress))
    return out


def spoken_suite(args, bundle, quant: str, progress) -> dict:
    """A fixed subset of Home Assistant's suite spoken by Piper, through ASR and the merged engine."""
    from casavox.edge_app.intent_eval import intent_matches, load_suite
    from casavox.runtime.asr.bias import PhraseBias
    from casavox.runtime.asr.transcriber import Transcriber
    from casavox.runtime.audio.io import to_mono_16k
    from casavox.runtime.intents.engine import IntentEngine
    from casavox.runtime.intents.llm import load_llm
    from casavox.runtime.tts import PiperSpeaker

    groups = load_suite(HA_TESTS)
    home, cases = groups[0]  # the shared fixture home holds most of the suite
    step = max(1, len(cases) // (args.items or 60))
    cases = cases[::step][: (args.items or 60)]
    transcriber = Transcriber(bundle, "int8", args.providers, args.threads)
    engine = IntentEngine.build(home, load_llm(bundle, quant, device=args.providers, threads=args.threads))
    names = [n for e in home.exposed for n in e.names] + [a.name for a in home.areas]
    bias = PhraseBias.build(names, transcriber.tokenizer.encode)
    speaker = PiperSpeaker()
    ok, times = 0, []
    for case in cases:
        speech = speaker.say(case.sentence, deterministic=True)
        t = time.perf_counter()
        text = transcriber.transcribe(to_mono_16k(speech.audio, speech.sample_rate), bias=bias.bonus).text
        result = engine.parse(text, case.area)
        times.append((time.perf_counter() - t) * 1e3)
        ok += intent_matches(case, result.intents)
    progress.update(1)
    return {
        f"ha_suite_spoken.merged.{quant}": {
            "set": "ha_suite_spoken",
            "path": "merged",
            "quant": quant,
            "accuracy": ok / max(1, len(cases)),
            "n": len(cases),
            "median_ms": statistics.median(times) if times else 0.0,
        }  # fmt: skip
    }


def bench_e2e(args, progress) -> dict:
    from benchmarks.e2e import LLM_COMMANDS as E2E_LLM
    from benchmarks.e2e import TEMPLATE_COMMANDS, run_pass
    from casavox.edge_app.pipeline import SpeechPipeline
    from casavox.runtime.audio.io import to_mono_16k
    from casavox.runtime.home import load_home
    from casavox.runtime.tts import PiperSpeaker

    k = min(args.items, 2) if args.quick else (args.items or None)
    commands = (TEMPLATE_COMMANDS[:k] + E2E_LLM[:k]) if k else TEMPLATE_COMMANDS + E2E_LLM
    speaker = PiperSpeaker()
    clips = []
    for text in commands:
        s = speaker.say(text, deterministic=True)
        clips.append((text, to_mono_16k(s.audio, s.sample_rate)))
    pipeline = SpeechPipeline.load(
        str(args.bundle), load_home(ROOT / "examples" / "home.yaml"), args.providers, args.threads
    )
    pipeline.understand(clips[0][1])
    out: dict = {}
    for mode, speculate, semantic in (("semantic", True, True), ("on", True, False), ("off", False, False)):
        rows = run_pass(pipeline, str(args.bundle), clips, speculate, semantic)
        out[mode] = {}
        for path in ("template", "llm"):
            sel = [r for r in rows if r["source"] == path]
            out[mode][path] = {
                "eos_to_action": stats([r["eos_to_action_ms"] for r in sel]),
                "raw_ms": [r["eos_to_action_ms"] for r in sel],
                "vad_tail": stats([r["vad_tail_ms"] for r in sel]),
                "silence_wait": stats([r["silence_wait_ms"] for r in sel]),
                "after_endpoint": stats([r["after_endpoint_ms"] for r in sel]),
                "asr": stats([r["asr_ms"] for r in sel if r["asr_ms"] is not None]),
                "intent": stats([r["intent_ms"] for r in sel if r["intent_ms"] is not None]),
                "action": stats([r["action_ms"] for r in sel if r["action_ms"] is not None]),
                "rows": sel,
            }
        progress.update(1)
    return out


def bench_startup(args, progress) -> dict:
    """`casavox run` from process start to listening, twice (the second with files in the page cache);
    each run then handles one spoken LLM-path command, so its peak RSS is that of a working daemon."""
    times, peaks = [], []
    with tempfile.TemporaryDirectory() as tmp:
        import soundfile

        from casavox.runtime.tts import PiperSpeaker

        silence = Path(tmp) / "command.wav"
        speech = PiperSpeaker().say("It's way too dark in the office.", deterministic=True)
        soundfile.write(silence, speech.audio, speech.sample_rate)
        for _ in range(2):
            cmd = [sys.executable, "-m", "casavox.edge_app.cli", "run", str(args.bundle), "--home", str(ROOT / "examples" / "home.yaml"),
                   "--state", f"{tmp}/s.sqlite", "--audio", str(silence), "--log", "", "--device", args.providers]  # fmt: skip
            t0 = time.monotonic()
            proc = subprocess.Popen(cmd, cwd=ROOT, stderr=subprocess.PIPE, text=True)
            ready, peak = float("nan"), float("nan")
            for line in proc.stderr:
                if "listening" in line and ready != ready:
                    ready = time.monotonic() - t0
                if "peak RSS" in line:  # the daemon's own VmHWM (getrusage of a child counts our RSS at fork)
                    peak = float(line.rsplit("peak RSS", 1)[1].split()[0])
            proc.wait()
            times.append(ready)
            peaks.append(peak)
    progress.update(1)
    return {"cold_s": times[0], "warm_s": times[1], "peak_rss_mb": max(peaks)}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--bundle", type=Path, default=Path("bundles/default"))
    parser.add_argument("--quick", action="store_true", help="a ~2-minute subset")
    parser.add_argument("--only", default="", help=f"comma list of {', '.join(SECTIONS)}")
    parser.add_argument(
        "--providers", default="cpu", help="cpu, cuda, tensorrt or auto (casavox and peers where they can)"
    )
    parser.add_argument("--threads", type=int, default=len(os.sched_getaffinity(0)))
    parser.add_argument("--items", type=int, default=0, help="items per section (0 = all; tests use 3)")
    parser.add_argument(
        "--asr-systems",
        help=f"comma list (default: the bundle's CPU variants + peers: {','.join(ASR_SYSTEMS)})",
    )
    parser.add_argument(
        "--llm-systems", help=f"comma list (default: the bundle's variants + peers: {','.join(LLM_SYSTEMS)})"
    )
    parser.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results")
    parser.add_argument(
        "--compare", type=Path, help="an older results.json: print deltas, exit 3 on a regression"
    )
    parser.add_argument(
        "--results", type=Path, help="with --compare: compare this results.json instead of measuring"
    )
    parser.add_argument("--max-slowdown", type=float, default=0.20)
    parser.add_argument("--max-accuracy-drop", type=float, default=0.02)
    args = parser.parse_args(argv)
    if args.results:
        if not args.compare:
            parser.error("--results needs --compare")
        return compare_and_exit(report.load(args.results), args)
    from casavox.runtime.bundle import BundleError, variant_names, verify
    from casavox.runtime.providers import DeviceError, resolve_device

    try:
        args.providers = resolve_device(args.providers)
    except DeviceError as exc:
        print(f"benchmark: {exc}", file=sys.stderr)
        return 1
    try:
        components = verify(args.bundle, hash_files=False).manifest["components"]
    except BundleError as exc:
        print(f"benchmark: {exc}", file=sys.stderr)
        return 1

    def ours(kind: str) -> list[str]:
        variants = sorted(variant_names(components.get(kind) or {}), key=lambda v: (v != "int8", v))
        return [f"casavox-{kind}-{v}" for v in variants if v != "fp16" or args.providers != "cpu"]

    args.asr_systems = (
        args.asr_systems.split(",")
        if args.asr_systems
        else ours("asr") + [s for s in ASR_SYSTEMS if not s.startswith("casavox")]
    )
    # casavox-llm-int8-free: our graph asked what the peers are asked (24 free tokens), the like-for-like decode rate
    free = [f"{s}-free" for s in ours("llm") if s == "casavox-llm-int8"]
    args.llm_systems = (
        args.llm_systems.split(",")
        if args.llm_systems
        else ours("llm") + free + [s for s in LLM_SYSTEMS if not s.startswith("casavox")]
    )
    if args.quick and not args.items:
        args.items = 5
    only = set(args.only.split(",")) - {""} or set(SECTIONS)
    if unknown := only - set(SECTIONS):
        parser.error(f"--only: unknown {', '.join(sorted(unknown))}")

    from tqdm import tqdm

    started = dt.datetime.now().astimezone()
    results: dict = {
        "started": started.isoformat(timespec="seconds"),
        "settings": {
            "quick": args.quick,
            "items": args.items,
            "device": args.providers,
            "threads": args.threads,
            "only": sorted(only),
        },
        "environment": environment(args.providers),
        "bundle": bundle_info(args.bundle),
    }
    n_items = args.items or 64
    total = ((n_items if "asr" in only else 0) + ((args.items or 20) if "llm" in only else 0)
             + (8 if "accuracy" in only else 0) + (3 if "e2e" in only else 0) + (1 if "startup" in only else 0))  # fmt: skip
    with tqdm(total=total, desc="benchmark", unit="step", file=sys.stderr) as progress:
        for name, fn in (
            ("asr", bench_asr),
            ("llm", bench_llm),
            ("accuracy", bench_accuracy),
            ("e2e", bench_e2e),
            ("startup", bench_startup),
        ):
            if name in only:
                progress.set_postfix_str(name)
                results[name] = fn(args, progress)
    results["finished"] = dt.datetime.now().astimezone().isoformat(timespec="seconds")
    folder = args.out / f"{started.strftime('%Y%m%d-%H%M%S')}-{results['environment']['host']}"
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "results.json").write_text(json.dumps(results, indent=1, default=str) + "\n")
    report.plots(results, folder)
    path = report.render(results, folder)
    print("\n".join(report.summary_lines(results)))
    print(f"\nreport: {path}")
    return compare_and_exit(results, args) if args.compare else 0


def compare_and_exit(results: dict, args) -> int:
    lines, regressed = report.compare(
        results, report.load(args.compare), args.max_slowdown, args.max_accuracy_drop
    )
    print(f"\ncompared with {args.compare}:")
    print("\n".join(lines))
    if regressed:
        print("benchmark: REGRESSION beyond the thresholds", file=sys.stderr)
        return 3
    return 0


if __name__ == "__main__":
    sys.exit(main())
