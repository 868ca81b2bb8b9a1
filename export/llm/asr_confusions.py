"""What Whisper really makes of spoken commands, mined as a confusion table for training data.

The rule-based damage in ``augment.asr_noise`` (a dropped article, a doubled letter) is a guess of
what speech recognition does. This module measures it instead: it draws training sentences over
random training homes (``homes.random_home``: name pools of ``data/names.yaml``, never a held-out
home), speaks them with Piper and espeak-ng's English voices at several speeds, transcribes them with
the bundle's own Whisper and the home's ASR bias exactly as the daemon does, aligns the words heard
with the words said (difflib) and counts each replaced or dropped span of up to three words. The
table (``data/asr_confusions.yaml``, committed, with the command that made it) is then sampled by
``augment.whisper_damage`` so the model sees "pern on the porch light" when it was trained on "turn on
the porch light".

Clean speech only: noise mostly drops words (which ``asr_noise`` already does) and its damage is
the front end's business (issue "The box in a room"). Rerun:
``python -m casavox.export.llm.asr_confusions --bundle bundles/default --sentences 480``.
"""

from __future__ import annotations

import argparse
import difflib
import logging
import random
import re
from collections import Counter, defaultdict
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import yaml

log = logging.getLogger(__name__)

CONFUSIONS_FILE = Path(__file__).resolve().parent / "data" / "asr_confusions.yaml"
VOICES = ("piper", "en-us", "en-gb", "en-gb-scotland", "en-gb-x-rp", "en-029", "en-gb-x-gbcwmd")
MAX_SPAN = 3  # longer differences are a different sentence, not a misheard word
WORD = re.compile(r"[a-z0-9']+")


def _words(text: str) -> list[str]:
    return WORD.findall(text.lower().replace("%", " percent"))


@dataclass(frozen=True)
class Confusions:
    """Spans said -> what Whisper wrote instead, with counts ("" = the span was dropped)."""

    table: dict[str, dict[str, int]]
    sentences: int = 0
    word_error_rate: float = 0.0

    def longest_first(self) -> list[str]:
        return sorted(self.table, key=lambda s: (-len(s.split()), s))


def align(said: str, heard: str) -> list[tuple[str, str]]:
    """The (said, heard) spans where the transcript differs from the sentence, up to MAX_SPAN words a
    side; an insertion (nothing said) is not kept: there is no span to replace in a training text."""
    a, b = _words(said), _words(heard)
    out = []
    for op, i1, i2, j1, j2 in difflib.SequenceMatcher(a=a, b=b, autojunk=False).get_opcodes():
        if op in ("replace", "delete") and i2 - i1 <= MAX_SPAN and j2 - j1 <= MAX_SPAN:
            out.append((" ".join(a[i1:i2]), " ".join(b[j1:j2])))
    return out


def count(pairs: list[tuple[str, str]]) -> dict[str, dict[str, int]]:
    table: dict[str, Counter] = defaultdict(Counter)
    for said, heard in pairs:
        table[said][heard] += 1
    return {s: dict(c.most_common()) for s, c in sorted(table.items())}


def _edits(a: list[str], b: list[str]) -> int:
    sm = difflib.SequenceMatcher(a=a, b=b, autojunk=False)
    return sum(max(i2 - i1, j2 - j1) for op, i1, i2, j1, j2 in sm.get_opcodes() if op != "equal")


def mine(bundle: str, sentences: int, seed: int = 11) -> Confusions:
    """Speak ``sentences`` training sentences (voices in turn) and count what Whisper changed."""
    from casavox.edge_app.pipeline import _bias
    from casavox.export.llm.homes import random_home
    from casavox.export.llm.paraphrase import compose
    from casavox.export.llm.sampler import sample_command
    from casavox.runtime.asr.transcriber import Transcriber
    from casavox.runtime.audio.io import to_mono_16k
    from casavox.runtime.bundle import verify
    from casavox.runtime.intents.templates import load_language_intents
    from casavox.runtime.tts import PiperSpeaker, espeak_say

    transcriber = Transcriber(verify(bundle, allow_unsigned=True), "int8", "cpu", None)
    intents = load_language_intents()
    piper = PiperSpeaker()
    rng = random.Random(seed)
    pairs: list[tuple[str, str]] = []
    errors = said_words = done = 0
    while done < sentences:
        home = random_home(rng)
        if rng.random() < 0.5:
            s = sample_command(rng, intents, home, None)
            text = s.text if s is not None else None
        else:
            composed = compose(home, rng)
            text = composed[0] if composed is not None else None
        if not text:
            continue
        voice = VOICES[done % len(VOICES)]
        if voice == "piper":
            speech = piper.say(text, length_scale=rng.choice([0.9, 1.0, 1.2]), deterministic=True)
        else:
            speech = espeak_say(text, voice, words_per_minute=rng.choice([140, 160, 185]))
        heard = transcriber.transcribe(
            to_mono_16k(speech.audio, speech.sample_rate), bias=_bias(home, transcriber).bonus
        ).text
        pairs += align(text, heard)
        errors += _edits(_words(text), _words(heard))
        said_words += len(_words(text))
        done += 1
        if done % 50 == 0:
            log.info(
                "%d/%d sentences, word error rate so far %.1f%%", done, sentences, 100 * errors / said_words
            )
    return Confusions(count(pairs), done, errors / max(1, said_words))


def write(c: Confusions, path: Path, command: str) -> None:
    doc = {
        "made_by": command,
        "sentences": c.sentences,
        "voices": list(VOICES),
        "word_error_rate": round(c.word_error_rate, 4),
        "confusions": c.table,
    }
    header = (
        "# What Whisper (the bundle's tiny.en, int8, with the home's ASR bias) wrote for spoken training\n"
        "# sentences: span said -> {what was written: times}; '' = dropped. Made by the command in\n"
        "# made_by (export/llm/asr_confusions.py); sampled by export/llm/augment.py whisper_damage.\n"
    )
    path.write_text(
        header + yaml.safe_dump(doc, sort_keys=False, allow_unicode=True, width=110), encoding="utf-8"
    )


def parse(doc: dict) -> Confusions:
    table = {str(k): {str(h): int(n) for h, n in v.items()} for k, v in (doc.get("confusions") or {}).items()}
    return Confusions(table, int(doc.get("sentences", 0)), float(doc.get("word_error_rate", 0.0)))


@lru_cache(maxsize=1)
def default_confusions() -> Confusions:
    """The committed table (empty when the file is absent: a checkout that never mined one)."""
    if not CONFUSIONS_FILE.exists():
        return Confusions({})
    return parse(yaml.safe_load(CONFUSIONS_FILE.read_text(encoding="utf-8")) or {})


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--bundle", default="bundles/default")
    ap.add_argument("--sentences", type=int, default=480)
    ap.add_argument("--seed", type=int, default=11)
    ap.add_argument("--out", type=Path, default=CONFUSIONS_FILE)
    args = ap.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    c = mine(args.bundle, args.sentences, args.seed)
    command = f"python -m casavox.export.llm.asr_confusions --sentences {args.sentences} --seed {args.seed}"
    write(c, args.out, command)
    log.info(
        "%d sentences, word error rate %.1f%%, %d spans -> %s",
        c.sentences,
        100 * c.word_error_rate,
        len(c.table),
        args.out,
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
