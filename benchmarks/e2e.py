"""End of speech -> action applied, through the whole daemon, in real time.

Spoken commands (Piper, deterministic) are fed to the daemon at microphone speed with pauses
between them, against the simulated home. For each command we know where its speech really ends
(the last sample above the voice's noise floor in the clean synthesized audio); the clock runs from
the moment the frame holding that sample arrives to the moment the action was applied. Template
and LLM commands are reported apart, with speculative endpointing on and off, and the time is
split into silence wait, processing left after the endpoint, and the action.

    python -m benchmarks.e2e --bundle bundles/default [--quick] [--out benchmarks/results/e2e.json]
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
TEMPLATE_COMMANDS = [
    "Turn off the lights in the kitchen.", "Turn on the ceiling fan.", "Set the bedroom lamp brightness to 50%.",
    "Close the living room blinds.", "Switch on the coffee maker.", "Turn on the desk lamp.",
    "Add bread to my shopping list.", "Is the front door locked?", "Set a timer for five minutes.",
    "Turn off the night light.",
]  # fmt: skip
LLM_COMMANDS = [
    "It's way too dark in the office.", "Kill the kitchen lights.", "Fire up the coffee maker.",
    "Get the robot vacuum cleaning.", "Roll up the living room blinds.", "Make the bedroom lamp a bit dimmer, like 20%.",
    "Lights out in the kids room.", "I want the fan going in the living room.",
]  # fmt: skip
GAP_S = 1.5
# (name, speculation, semantic endpointing): the modes each command is timed in
MODES = (("semantic", True, True), ("speculation_on", True, False), ("speculation_off", False, False))
SR = 16_000


def speech_end(audio: np.ndarray, floor: float = 0.02) -> int:
    """Index just after the last sample louder than ``floor`` (the voice's real end of speech)."""
    loud = np.flatnonzero(np.abs(audio) > floor)
    return int(loud[-1]) + 1 if loud.size else len(audio)


def pct(values: list[float]) -> dict:
    if not values:
        return {"n": 0}
    return {
        "n": len(values),
        "median_ms": round(statistics.median(values), 1),
        "p95_ms": round(float(np.percentile(values, 95)), 1),
        "mean_ms": round(statistics.fmean(values), 1),
    }


def run_pass(
    pipeline,
    bundle: str,
    clips: list[tuple[str, np.ndarray]],
    speculate: bool,
    semantic: bool = False,
    speculate_ms: float | None = None,
) -> list[dict]:
    """Feed every clip in real time; return one row per command with its true EoS->action time.
    ``semantic``: semantic endpointing (unfinished words waited out, finished ones acted on at the
    first pause: edge_app/early_action.py); otherwise every pause ends at the trailing silence."""
    from casavox.edge_app.app import build_daemon
    from casavox.edge_app.config import load_config
    from casavox.runtime.audio.vad import FRAME

    with tempfile.TemporaryDirectory() as tmp:
        overrides = {
            "bundle": bundle,
            "home": str(ROOT / "examples" / "home.yaml"),
            "state": f"{tmp}/home.sqlite",
            "log": {"json": "", "quiet": True},
            "vad": ({"speculate_ms": speculate_ms} if speculate and speculate_ms else {})
            | ({} if speculate else {"speculate_ms": 0.0})
            | ({} if semantic else {"unfinished_silence_ms": 0.0}),
            "safety": {"act_early": semantic},
        }
        daemon, store = build_daemon(load_config(None, overrides), pipeline=pipeline)
        acted: list[tuple[float, dict]] = []
        daemon.on_record = lambda record: acted.append((time.monotonic(), record))
        eos_wall: list[float] = []
        gap = np.zeros(int(GAP_S * SR), np.float32)

        def frames():
            t0 = time.monotonic()
            i = 0
            for _, audio in clips:
                end = speech_end(audio)
                stream = np.concatenate([audio, gap])
                for start in range(0, len(stream) - FRAME + 1, FRAME):
                    due = t0 + (i + 1) * FRAME / SR  # a frame exists once its last sample is captured
                    delay = due - time.monotonic()
                    if delay > 0:
                        time.sleep(delay)
                    if start <= end - 1 < start + FRAME:
                        eos_wall.append(time.monotonic())
                    i += 1
                    yield stream[start : start + FRAME]

        daemon.run(frames())
        store.close()
    rows = []
    for (text, _), eos, (t_act, record) in zip(clips, eos_wall, acted, strict=False):
        t = record["timings_ms"]
        after_endpoint = (
            t.get("wait_ms", 0.0)
            if record["speculative"] == "hit"
            else t.get("asr_ms", 0) + t.get("intent_ms", 0)
        )
        total = (t_act - eos) * 1e3
        rows.append(
            {
                "said": text,
                "heard": record["heard"],
                "source": (record["intent"] or {}).get("source", "none"),
                "outcome": record["outcome"],
                "speculative": record["speculative"],
                "eos_to_action_ms": round(total, 1),
                "silence_wait_ms": round(total - after_endpoint - t.get("action_ms", 0.0), 1),
                "after_endpoint_ms": round(after_endpoint, 1),
                "vad_tail_ms": t.get("vad_tail_ms"),
                "asr_ms": t.get("asr_ms"),
                "intent_ms": t.get("intent_ms"),
                "action_ms": t.get("action_ms"),
            }
        )
    if len(acted) != len(clips):
        print(f"warning: {len(clips)} commands but {len(acted)} utterances handled")
    return rows


def summarize(rows: list[dict]) -> dict:
    out = {}
    for path in ("template", "llm"):
        sel = [r for r in rows if r["source"] == path]
        if not sel:
            continue
        out[path] = {
            "eos_to_action": pct([r["eos_to_action_ms"] for r in sel]),
            "silence_wait": pct([r["silence_wait_ms"] for r in sel]),
            "after_endpoint": pct([r["after_endpoint_ms"] for r in sel]),
            "asr": pct([r["asr_ms"] for r in sel]),
            "intent": pct([r["intent_ms"] for r in sel]),
            "action": pct([r["action_ms"] for r in sel]),
        }
    return out


def daemon_process(bundle: str, clips: list[tuple[str, np.ndarray]], folder: Path) -> dict:
    """`casavox run` as its own process on the same commands: cold start and peak RSS."""
    import subprocess
    import sys

    import soundfile

    files = []
    for i, (_, audio) in enumerate(clips):
        files.append(folder / f"{i:02d}.wav")
        soundfile.write(files[-1], audio, SR)
    cmd = [
        sys.executable, "-m", "casavox.edge_app.cli", "run", bundle, "--home", str(ROOT / "examples" / "home.yaml"),
        "--state", str(folder / "home.sqlite"), "--audio", *map(str, files), "--log", "",
    ]  # fmt: skip
    t0 = time.monotonic()
    proc = subprocess.Popen(cmd, cwd=ROOT, stderr=subprocess.PIPE, text=True)
    ready, peak = None, float("nan")
    for line in proc.stderr:
        if ready is None and "listening" in line:
            ready = time.monotonic() - t0
        if "peak RSS" in line:  # the daemon's own VmHWM (getrusage of a child counts our RSS at fork)
            peak = float(line.rsplit("peak RSS", 1)[1].split()[0])
    proc.wait()
    return {"cold_start_s": round(ready or float("nan"), 2), "peak_rss_mb": peak, "rc": proc.returncode}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--bundle", default="bundles/default")
    parser.add_argument("--quick", action="store_true", help="3 template + 3 LLM commands")
    parser.add_argument(
        "--speculate-ms", type=float, default=None, help="vad.speculate_ms (default: the config's)"
    )
    parser.add_argument("--out", default=str(ROOT / "benchmarks" / "results" / "e2e.json"))
    args = parser.parse_args(argv)

    from casavox.edge_app.pipeline import SpeechPipeline
    from casavox.runtime.audio.io import to_mono_16k
    from casavox.runtime.home import load_home
    from casavox.runtime.tts import PiperSpeaker

    commands = (TEMPLATE_COMMANDS[:3] + LLM_COMMANDS[:3]) if args.quick else TEMPLATE_COMMANDS + LLM_COMMANDS
    speaker = PiperSpeaker()
    clips = []
    for text in commands:
        s = speaker.say(text, deterministic=True)
        clips.append((text, to_mono_16k(s.audio, s.sample_rate)))
    pipeline = SpeechPipeline.load(args.bundle, load_home(ROOT / "examples" / "home.yaml"))
    pipeline.understand(clips[0][1])  # warm-up outside the measurement
    result = {
        "machine": {"cpu": platform.processor() or platform.machine(), "cores": __import__("os").cpu_count()}
    }
    for key, speculate, semantic in MODES:
        rows = run_pass(pipeline, args.bundle, clips, speculate, semantic, args.speculate_ms)
        result[key] = {"summary": summarize(rows), "rows": rows}
    with tempfile.TemporaryDirectory() as tmp:
        result["daemon_process"] = daemon_process(args.bundle, clips, Path(tmp))
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(result, indent=2) + "\n")
    print("| path | mode | n | EoS->action median | p95 | silence wait | after endpoint | action |")
    print("|---|---|---|---|---|---|---|---|")
    for key, _, _ in MODES:
        for path, s in result[key]["summary"].items():
            e = s["eos_to_action"]
            print(
                f"| {path} | {key} | {e['n']} | {e['median_ms']:.0f} ms | {e['p95_ms']:.0f} ms | "
                f"{s['silence_wait']['median_ms']:.0f} ms | {s['after_endpoint']['median_ms']:.0f} ms | "
                f"{s['action']['median_ms']:.1f} ms |"
            )
    misheard = [r for k in ("speculation_on",) for r in result[k]["rows"] if r["outcome"] != "acted"]
    for r in misheard:
        print(f"  not acted: said {r['said']!r}, heard {r['heard']!r} -> {r['outcome']} ({r['source']})")
    d = result["daemon_process"]
    print(
        f"daemon process: ready {d['cold_start_s']} s after start (bundle verified), peak RSS {d['peak_rss_mb']} MB"
    )
    print(f"raw rows: {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
