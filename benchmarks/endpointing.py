"""Semantic endpointing on paused and slow speech: how often acting early cuts a speaker off.

Each command of a pauses file (``tests/data/*_pauses_*.yaml``: a home plus Home Assistant-style
tests whose sentences mark hesitations with " ... ") is spoken three ways: Piper with the pauses
200, 400 or 600 ms long (in turn), Piper slowed by half with 400-ms pauses, and espeak-ng at 120
words a minute with 400-ms pauses. Each part is synthesized on its own and trimmed to its voice,
so a pause is exactly as long as written (and the words before it end as a sentence would, which
makes them sound *more* finished than a real hesitation: a hard case).

The clips go through the real daemon (VAD, speculation, ASR, intents, the simulated home), with
semantic endpointing off (every pause of ``vad.trailing_silence_ms`` ends the utterance), "hold"
(unfinished words are given ``vad.unfinished_silence_ms``) and on (hold, and ``safety.act_early``). Speculative understanding runs on an executor that finishes at
once, as on a machine infinitely faster than this one: every pause of ``vad.speculate_ms`` gets a
finished result before speech can resume, so the share cut early is an upper bound for any box.

Per clip: **cut early** = an action before the speaker finished (an utterance ended early whose
end lies before the clip's last voiced sample); and the verdict of ``casavox eval-intents``
(exact, wrong action, not understood) over everything the daemon did for the clip.

    python -m benchmarks.endpointing tests/data/dev_pauses_*.yaml [--without RULE ...] [--out F]
"""

from __future__ import annotations

import argparse
import json
import tempfile
from concurrent.futures import Executor, Future
from dataclasses import dataclass
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
SR = 16_000
LEAD_S, GAP_S = 0.4, 1.5
VOICE_FLOOR = 0.02  # as benchmarks.e2e.speech_end: the voice's real edges
EDGE_S = 0.03  # kept around each part's voiced samples


class InstantExecutor(Executor):
    """Runs each submitted call at once (the fastest possible machine: see the module docstring)."""

    def submit(self, fn, /, *args, **kwargs) -> Future:
        future: Future = Future()
        try:
            future.set_result(fn(*args, **kwargs))
        except BaseException as exc:  # noqa: BLE001 - handed to the caller through the future
            future.set_exception(exc)
        return future


@dataclass(frozen=True)
class Rendering:
    name: str
    engine: str  # "piper" or "espeak"
    pauses_ms: tuple[int, ...]  # cycled over the commands
    length_scale: float = 1.0
    wpm: int = 160


RENDERINGS = (
    Rendering("piper", "piper", (200, 400, 600)),
    Rendering("piper-slow", "piper", (400,), length_scale=1.5),
    Rendering("espeak-slow", "espeak", (400,), wpm=120),
)


def voiced(audio: np.ndarray) -> np.ndarray:
    """``audio`` trimmed to its voiced samples, EDGE_S kept on each side."""
    loud = np.flatnonzero(np.abs(audio) > VOICE_FLOOR)
    if not loud.size:
        return audio[:0]
    edge = int(EDGE_S * SR)
    return audio[max(0, loud[0] - edge) : loud[-1] + 1 + edge]


def parts_of(sentence: str) -> list[str]:
    return [p.strip(" ,") for p in sentence.split("...") if p.strip(" ,")]


def render(sentence: str, how: Rendering, pause_ms: int, speaker) -> tuple[np.ndarray, int]:
    """The clip (lead-in silence, parts with pauses, a closing gap) and its last voiced sample."""
    from casavox.runtime.audio.io import to_mono_16k
    from casavox.runtime.tts import espeak_say

    chunks = [np.zeros(int(LEAD_S * SR), np.float32)]
    for k, part in enumerate(parts_of(sentence)):
        if k:
            chunks.append(np.zeros(int(pause_ms * SR / 1000), np.float32))
        if how.engine == "piper":
            s = speaker.say(part, length_scale=how.length_scale, deterministic=True)
        else:
            s = espeak_say(part, "en-us", how.wpm)
        chunks.append(voiced(to_mono_16k(s.audio, s.sample_rate)))
    clip = np.concatenate(chunks)
    loud = np.flatnonzero(np.abs(clip) > VOICE_FLOOR)
    end = int(loud[-1]) + 1 if loud.size else len(clip)
    return np.concatenate([clip, np.zeros(int(GAP_S * SR), np.float32)]), end


@dataclass
class Clip:
    case: object  # intent_eval.Case
    rendering: str
    pause_ms: int
    audio: np.ndarray
    speech_end: int  # index in ``audio``


def intents_of(record: dict) -> list:
    from casavox.runtime.intents.result import Intent

    j = record.get("intent") or {}
    if not j.get("understood"):
        return []
    if "name" in j:
        return [Intent(j["name"], j.get("slots") or {})]
    return [Intent(i["name"], i.get("slots") or {}) for i in j.get("intents", [])]


def verdict(case, records: list[dict], home) -> str:
    """eval-intents' verdict over all the clip's utterances: exact when one did what was meant and
    none changed anything else; wrong action when any changed something not meant."""
    from casavox.edge_app.intent_eval import changes_the_home, intent_matches

    matched = other_change = False
    for r in records:
        intents = intents_of(r)
        if not intents or r["outcome"] in ("not_understood", "failed"):
            continue
        if intent_matches(case, intents):
            matched = True
        elif changes_the_home(intents, home, case.area):
            other_change = True
    if other_change:
        return "wrong_action"
    return "exact" if matched else "not_understood"


MODES = {  # semantic endpointing off, waiting out unfinished words only, and acting early too
    "off": {"vad": {"unfinished_silence_ms": 0.0}, "safety": {"act_early": False}},
    "hold": {"vad": {}, "safety": {"act_early": False}},
    "on": {"vad": {}, "safety": {"act_early": True}},
}


def run_clips(
    pipeline, bundle: str, home_file: Path, home, clips: list[Clip], mode: str, without
) -> list[dict]:
    """All clips of one home through one daemon per speaker's room; one row per clip."""
    from casavox.edge_app.app import build_daemon
    from casavox.edge_app.config import load_config
    from casavox.runtime.audio.vad import FRAME

    rows = []
    for area in sorted({c.case.area or "" for c in clips}):
        group = [c for c in clips if (c.case.area or "") == area]
        with tempfile.TemporaryDirectory() as tmp:
            overrides = {
                "bundle": bundle, "home": str(home_file), "state": f"{tmp}/home.sqlite", "area": area,
                "log": {"json": "", "quiet": True}, "vad": MODES[mode]["vad"],
                "safety": {**MODES[mode]["safety"], "confirm": "allow"},
            }  # fmt: skip
            pipeline.use_home(home)
            daemon, store = build_daemon(load_config(None, overrides), pipeline=pipeline)
            daemon.early_without = tuple(without)
            records: list[dict] = []
            daemon.on_record = records.append
            spans, stream = [], []
            at = 0
            for c in group:
                n = (len(c.audio) // FRAME) * FRAME
                stream.append(c.audio[:n])
                spans.append((at, at + c.speech_end, at + n))
                at += n
            audio = np.concatenate(stream)
            daemon.run(
                (audio[i : i + FRAME] for i in range(0, len(audio), FRAME)), executor=InstantExecutor()
            )
            store.close()
        for c, (start, end, stop) in zip(group, spans, strict=True):
            mine = [r for r in records if start <= round(r["source"]["offset_s"] * SR) < stop]
            cut = any(
                r["end"] == "early" and round((r["source"]["offset_s"] + r["audio_s"]) * SR) < end - SR // 50
                for r in mine
            )
            rows.append(
                {
                    "said": c.case.sentence, "rendering": c.rendering, "pause_ms": c.pause_ms,
                    "heard": [r["heard"] for r in mine], "ends": [r["end"] for r in mine],
                    "cut_early": cut, "early": any(r["end"] == "early" for r in mine),
                    "verdict": verdict(c.case, mine, home),
                }
            )  # fmt: skip
    return rows


def summary(rows: list[dict]) -> dict:
    n = len(rows)
    out = {"clips": n}
    out["cut_early"] = sum(r["cut_early"] for r in rows) / max(1, n)
    out["acted_early"] = sum(r["early"] for r in rows) / max(1, n)
    for v in ("exact", "wrong_action", "not_understood"):
        out[v] = sum(r["verdict"] == v for r in rows) / max(1, n)
    out["by_rendering"] = {
        name: {
            "clips": sum(r["rendering"] == name for r in rows),
            "cut_early": sum(r["cut_early"] for r in rows if r["rendering"] == name),
            "exact": sum(r["verdict"] == "exact" for r in rows if r["rendering"] == name),
        }
        for name in sorted({r["rendering"] for r in rows})
    }
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("files", nargs="+", type=Path, help="pauses files (home + tests)")
    parser.add_argument("--bundle", default="bundles/default")
    parser.add_argument("--without", nargs="*", default=[], help="early-action rules switched off")
    parser.add_argument("--limit", type=int, default=0, help="first N sentences of each file")
    parser.add_argument("--modes", default=",".join(MODES), help=f"comma list of {', '.join(MODES)}")
    parser.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results" / "endpointing.json")
    args = parser.parse_args(argv)

    from casavox.edge_app.early_action import RULE_NAMES
    from casavox.edge_app.intent_eval import load_suite
    from casavox.edge_app.pipeline import SpeechPipeline
    from casavox.runtime.tts import PiperSpeaker

    modes = [m for m in args.modes.split(",") if m]
    if not modes or set(modes) - set(MODES):
        parser.error(f"--modes takes {', '.join(MODES)}, not {args.modes!r}")
    unknown = sorted(set(args.without) - set(RULE_NAMES))
    if unknown:
        parser.error(f"no early-action rule {', '.join(unknown)} (have: {', '.join(RULE_NAMES)})")
    speaker = PiperSpeaker()
    pipeline = None
    result: dict = {"without": args.without, "files": {}}
    for path in args.files:
        ((home, cases),) = load_suite(path)
        cases = cases[: args.limit] if args.limit else cases
        clips = []
        for i, case in enumerate(cases):
            for how in RENDERINGS:
                pause = how.pauses_ms[i % len(how.pauses_ms)]
                audio, end = render(case.sentence, how, pause, speaker)
                clips.append(Clip(case, how.name, pause, audio, end))
        if pipeline is None:
            pipeline = SpeechPipeline.load(args.bundle, home)
        per_mode = {}
        for mode in modes:
            rows = run_clips(pipeline, args.bundle, path, home, clips, mode, args.without)
            per_mode[mode] = {"summary": summary(rows), "rows": rows}
            s = per_mode[mode]["summary"]
            print(
                f"{path.name} semantic endpointing {mode}: {s['clips']} clips, cut early {s['cut_early']:.1%}, "
                f"acted early {s['acted_early']:.1%}, exact {s['exact']:.1%}, "
                f"wrong action {s['wrong_action']:.1%}, not understood {s['not_understood']:.1%}"
            )
        result["files"][str(path)] = per_mode
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=1) + "\n")
    print(f"rows: {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
