"""Accuracy and latency of encoder window policies (README "Trimmed encoder").

python -m benchmarks.trim_sweep --bundle bundles/default [--variant int8]
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

from casavox.export.speech_set import speech_set, word_error_rate
from casavox.runtime.asr.transcriber import TrimPolicy, load_transcriber

ROOT = Path(__file__).resolve().parents[1]
POLICIES = {
    "30 s (Whisper)": TrimPolicy(enabled=False),
    "audio + 1 s, no stop rule": TrimPolicy(
        pad_s=1.0, bucket_s=1.0, eot_threshold=0.0, eot_after_sentence=0.0
    ),
    "audio + 1 s, EOT p >= 0.05": TrimPolicy(
        pad_s=1.0, bucket_s=1.0, eot_threshold=0.05, eot_after_sentence=0.0
    ),
    "audio + 0.5 s -> 4 s buckets, EOT p >= 0.1": TrimPolicy(bucket_s=4.0, eot_after_sentence=0.0),
    "audio + 0.5 s -> 6 s buckets, EOT p >= 0.1, >= 0.01 after sentence end (default)": TrimPolicy(),
    "audio -> 8 s buckets, EOT p >= 0.1": TrimPolicy(pad_s=0.0, bucket_s=8.0, eot_after_sentence=0.0),
}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--bundle", default="bundles/default")
    parser.add_argument("--variant", default="int8")
    args = parser.parse_args(argv)
    clips = speech_set(cache_dir=ROOT / ".cache" / "speech")
    expected = [c.expected for c in clips]
    print("| window policy | WER | median ms |\n|---|---:|---:|")
    for name, policy in POLICIES.items():
        tr = load_transcriber(args.bundle, args.variant, trim=policy)
        tr.transcribe(clips[0].audio)
        results = [tr.transcribe(c.audio) for c in clips]
        ms = np.median([r.timings_ms["total_ms"] for r in results])
        print(
            f"| {name} | {word_error_rate(expected, [r.text for r in results]):.1%} | {ms:.0f} |", flush=True
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
