"""Soak: 1,000 spoken utterances through one daemon; memory must not keep growing. `make soak`."""

from __future__ import annotations

import itertools
import json
from pathlib import Path

import numpy as np
import pytest

from casavox.edge_app.sources import frames_of
from casavox.runtime.audio.io import SAMPLE_RATE

ROOT = Path(__file__).resolve().parents[1]
COMMANDS = [
    "Turn off the lights in the kitchen.", "Turn on the ceiling fan.", "Set the bedroom lamp brightness to 50%.",
    "Close the living room blinds.", "It's way too dark in the office.", "Switch on the coffee maker.",
    "Add bread to my shopping list.", "What is the state of the garage door?", "Open the garage door.", "No.",
]  # fmt: skip
UTTERANCES = 1000


def rss_mb() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


@pytest.mark.slow
def test_soak_1000_utterances(full_bundle, say, tmp_path) -> None:
    from casavox.edge_app.app import build_daemon
    from casavox.edge_app.config import load_config

    config = load_config(
        None,
        {
            "bundle": str(full_bundle),
            "home": str(ROOT / "examples" / "home.yaml"),
            "state": str(tmp_path / "s.sqlite"),
            "log": {"json": str(tmp_path / "log.jsonl"), "quiet": True},
        },
    )
    daemon, store = build_daemon(config)
    gap = np.zeros(int(0.8 * SAMPLE_RATE), np.float32)
    clips = {c: np.concatenate([say(c), gap]) for c in COMMANDS}

    def frames(n: int):
        for command in itertools.islice(itertools.cycle(COMMANDS), n):
            yield from frames_of(clips[command])

    assert daemon.run(frames(100)) == 100  # warm-up: caches, allocator pools
    start = rss_mb()
    samples = []
    for _ in range((UTTERANCES - 100) // 100):
        assert daemon.run(frames(100)) == 100
        samples.append(rss_mb())
    growth = samples[-1] - start
    lines = (tmp_path / "log.jsonl").read_text().splitlines()
    outcomes = [json.loads(line)["outcome"] for line in lines]
    report = {
        "utterances": len(lines),
        "rss_after_warmup_mb": round(start, 1),
        "rss_every_100_mb": [round(s, 1) for s in samples],
        "growth_mb": round(growth, 1),
        "outcomes": {k: outcomes.count(k) for k in sorted(set(outcomes))},
    }
    print("\nsoak:", json.dumps(report))
    out = ROOT / "benchmarks" / "results"
    out.mkdir(parents=True, exist_ok=True)
    (out / "soak.json").write_text(json.dumps(report, indent=2) + "\n")
    store.close()
    assert len(lines) == UTTERANCES
    assert growth < 40, report  # bounded: no per-utterance leak (40 MB over 900 utterances)
    # and the second half grows no faster than noise
    assert samples[-1] - samples[len(samples) // 2] < 20, report
