"""The frozen held-out commands and non-commands spoken, with noise, through the daemon's speech
pipeline (``SpeechPipeline``: Whisper with the home's phrase bias, then the intent engine).

    python -m benchmarks.spoken BUNDLE [--every 4] [--json OUT] [--voices piper,en-us,en-gb,...]
                                       [--sets FILE...] [--front-end none|webrtc|speex]

Every ``--every``-th sentence of each frozen set (tests/data/heldout_*.yaml) is said by Piper (joe,
deterministic) and by every English espeak-ng voice that is installed, each utterance mixed with one
kind of noise drawn with a fixed seed: pink noise at 10-25 dB SNR or babble (other sentences said by
another voice) at 15-25 dB, with half a second of the noise before and after the speech. The
judgement is ``casavox eval-intents``' (exact / wrong_action / wrong_answer / not_understood).
Endpointing and the wake word are not part of this: the utterance is given whole. ``--front-end``
puts the daemon's noise suppression (``[input] front_end``) in front of the ASR; it is chosen on the
development sets (``--sets tests/data/dev_commands_*.yaml``), never on the frozen ones.
"""

from __future__ import annotations

import argparse
import glob
import json
import random
import shutil
import statistics
import subprocess
import time
from collections import defaultdict
from pathlib import Path

import numpy as np

from casavox.edge_app.intent_eval import judge, load_suite
from casavox.edge_app.pipeline import SpeechPipeline
from casavox.runtime.audio.front_end import CHUNK, NAMES, open_front_end
from casavox.runtime.audio.io import to_mono_16k
from casavox.runtime.intents.result import IntentResult
from casavox.runtime.tts import PiperSpeaker, Speech, espeak_say

ROOT = Path(__file__).resolve().parents[1]
SETS = (
    "tests/data/heldout_*commands_*.yaml"  # the paused sets (heldout_pauses_*) are benchmarks.endpointing's
)
SR = 16_000
# espeak-ng's own English voices (gmw/); the mbrola ones need the mbrola package and are left out.
ESPEAK = ["en-us", "en-gb", "en-gb-scotland", "en-gb-x-rp", "en-gb-x-gbclan", "en-gb-x-gbcwmd", "en-029"]
BABBLE_LINES = [
    "and then she told me the whole story about the trip to the coast",
    "the weather tomorrow looks mostly cloudy with a chance of showers",
    "I think we should leave a little earlier to avoid the traffic",
    "coming up after the break, the latest scores from tonight's games",
]


def espeak_voices() -> list[str]:
    """The ESPEAK voices this machine's espeak-ng has."""
    if shutil.which("espeak-ng") is None:
        return []
    listing = subprocess.run(["espeak-ng", "--voices=en"], capture_output=True, text=True).stdout
    have = {line.split()[1] for line in listing.splitlines()[1:] if len(line.split()) > 1}
    return [v for v in ESPEAK if v in have]


def pink(n: int, rng: np.random.Generator) -> np.ndarray:
    """Pink (1/f) noise, unit RMS: white noise shaped in the frequency domain."""
    spectrum = np.fft.rfft(rng.standard_normal(n))
    spectrum /= np.sqrt(np.maximum(np.arange(len(spectrum)), 1))
    x = np.fft.irfft(spectrum, n)
    return (x / (np.sqrt(np.mean(x**2)) + 1e-12)).astype(np.float32)


def mix(speech: np.ndarray, noise: np.ndarray, snr_db: float) -> np.ndarray:
    """``speech`` with ``noise`` (at least as long) under it at ``snr_db``, clipped to [-1, 1]."""
    power = np.mean(speech**2) + 1e-12
    noise = noise[: len(speech)]
    scale = np.sqrt(power / (np.mean(noise**2) + 1e-12) / 10 ** (snr_db / 10))
    return np.clip(speech + scale * noise, -1, 1).astype(np.float32)


def noisy(clean: np.ndarray, rng: random.Random, babble: np.ndarray) -> tuple[np.ndarray, str]:
    pad = np.zeros(SR // 2, np.float32)
    speech = np.concatenate([pad, clean, pad])
    if rng.random() < 0.5:
        snr = rng.uniform(10, 25)
        noise = pink(len(speech), np.random.default_rng(rng.randrange(2**31)))
        return mix(speech, noise, snr), f"pink {snr:.0f} dB"
    snr = rng.uniform(15, 25)
    start = rng.randrange(max(1, len(babble) - len(speech)))
    noise = np.resize(babble[start:], len(speech))
    return mix(speech, noise, snr), f"babble {snr:.0f} dB"


def measure(
    bundle: Path, sets: list[Path], every: int, voices: list[str], seed: int = 7, front_end: str = "none"
) -> dict:
    """``front_end``: noise suppression the daemon would apply before the VAD (runtime/audio/
    front_end.py); one instance per voice, kept across its clips as a box hears one room."""
    piper = PiperSpeaker() if "piper" in voices else None
    ends = {v: open_front_end(front_end) for v in voices}

    def heard_through(audio: np.ndarray, voice: str) -> np.ndarray:
        fe = ends[voice]
        return audio if fe is None else fe.process(np.concatenate([audio, np.zeros(2 * CHUNK, np.float32)]))

    def say(text: str, voice: str) -> np.ndarray:
        speech: Speech = piper.say(text, deterministic=True) if voice == "piper" else espeak_say(text, voice)
        return to_mono_16k(speech.audio, speech.sample_rate)

    babble_voice = "en-gb" if "en-gb" in voices or espeak_voices() else "piper"
    babble = np.concatenate([say(line, babble_voice) for line in BABBLE_LINES])
    rng = random.Random(seed)
    rows = []
    for path in sets:
        for home, cases in load_suite(path):
            pipeline = SpeechPipeline.load(str(bundle), home)
            for case in cases[::every]:
                for voice in voices:
                    audio, condition = noisy(say(case.sentence, voice), rng, babble)
                    audio = heard_through(audio, voice)
                    t0 = time.perf_counter()
                    heard = pipeline.understand(audio, case.area)
                    ms = (time.perf_counter() - t0) * 1e3
                    result = heard.result or IntentResult(
                        heard.text, [], "none", 0.0, heard.skipped or "no speech"
                    )
                    rows.append(
                        {
                            "file": path.name,
                            "sentence": case.sentence,
                            "command": case.command,
                            "voice": voice,
                            "noise": condition,
                            "heard": heard.text,
                            "verdict": judge(case, result, home),
                            "ms": ms,
                        }
                    )
    return summarize(rows) | {"rows": rows}


def _rates(rows: list[dict]) -> dict:
    n = max(1, len(rows))
    out = {
        v: sum(r["verdict"] == v for r in rows) / n
        for v in ("exact", "wrong_action", "wrong_answer", "not_understood")
    }
    return out | {"n": len(rows)}


def summarize(rows: list[dict]) -> dict:
    commands = [r for r in rows if r["command"]]
    others = [r for r in rows if not r["command"]]
    by_voice: dict[str, list[dict]] = defaultdict(list)
    by_noise: dict[str, list[dict]] = defaultdict(list)
    for r in commands:
        by_voice[r["voice"]].append(r)
        by_noise[r["noise"].split()[0]].append(r)
    return {
        "commands": _rates(commands),
        "non_commands_acted": sum(r["verdict"] == "wrong_action" for r in others) / max(1, len(others)),
        "non_commands": len(others),
        "by_voice": {k: _rates(v) for k, v in sorted(by_voice.items())},
        "by_noise": {k: _rates(v) for k, v in sorted(by_noise.items())},
        "median_ms": statistics.median(r["ms"] for r in rows) if rows else 0.0,
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("bundle", type=Path)
    parser.add_argument("--sets", nargs="*", help=f"test files (default {SETS})")
    parser.add_argument("--every", type=int, default=4, help="every N-th sentence of each set")
    parser.add_argument("--voices", help="comma-separated: piper and espeak-ng voice names (default: all)")
    parser.add_argument("--front-end", choices=NAMES, default="none", help="noise suppression before ASR")
    parser.add_argument("--json", type=Path)
    args = parser.parse_args(argv)
    sets = [Path(s) for s in (args.sets or sorted(glob.glob(str(ROOT / SETS))))]
    voices = args.voices.split(",") if args.voices else ["piper", *espeak_voices()]
    result = measure(args.bundle, sets, args.every, voices, front_end=args.front_end)
    if args.json:
        args.json.write_text(json.dumps(result, indent=1) + "\n")
    c = result["commands"]
    print(
        f"commands: {c['n']} utterances, exact {c['exact']:.1%}, wrong action {c['wrong_action']:.1%},"
        f" not understood {c['not_understood']:.1%}; non-commands acted on:"
        f" {result['non_commands_acted']:.1%} of {result['non_commands']}"
    )
    for k, v in {**result["by_voice"], **result["by_noise"]}.items():
        print(f"  {k:<16} exact {v['exact']:.1%}  wrong {v['wrong_action']:.1%}  n={v['n']}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
