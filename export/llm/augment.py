"""Templated sentences as people say them, and what speech recognition makes of them.

Applied to templated samples with their labels unchanged: synonyms ("kill the lights"), fillers
and politeness, numbers spoken as words, ASR-like damage (no punctuation, dropped articles, a
misheard letter in a name) and Whisper's own mistakes on spoken training sentences
(``whisper_damage``, from the mined table ``data/asr_confusions.yaml``). Phrasings no template has live in the paraphrase lexicon
(``data/paraphrases.yaml``, composed by ``paraphrase.py``).
"""

from __future__ import annotations

import difflib
import random
import re

from casavox.export.llm.asr_confusions import Confusions, default_confusions
from casavox.export.llm.paraphrase import number_words
from casavox.export.llm.sampler import Sample
from casavox.runtime.intents.catalogue import TURN_OFF, TURN_ON

OFF_VERBS = ["kill", "shut off", "cut", "switch off", "power down", "douse", "turn off"]
ON_VERBS = ["switch on", "fire up", "power up", "put on", "start", "turn on"]
PREFIXES = [
    "",
    "",
    "",
    "um ",
    "uh ",
    "ah ",
    "oh ",
    "alright ",
    "hey ",
    "okay ",
    "so ",
    "please ",
    "could you ",
    "can you please ",
    "I want you to ",
    "would you mind, ",
    "quick, ",
]
SUFFIXES = ["", "", "", " please", " thanks", " now", " right now", " for me", " thank you"]


def asr_noise(text: str, rng: random.Random) -> str:
    text = text.lower() if rng.random() < 0.6 else text
    text = re.sub(r"[?.!,]", "", text) if rng.random() < 0.7 else text
    if rng.random() < 0.2:
        text = re.sub(r"\bthe\b ?", "", text, count=1)
    if rng.random() < 0.15:
        words = text.split()
        long_words = [i for i, w in enumerate(words) if len(w) > 4]
        if long_words:
            i = rng.choice(long_words)
            w = words[i]
            j = rng.randrange(1, len(w) - 1)
            words[i] = w[:j] + w[j + 1 :] if rng.random() < 0.5 else w[:j] + w[j] + w[j:]
            text = " ".join(words)
    return text


NUMBER_WORDS = re.compile(
    r"\d|\b(?:zero|one|two|three|four|five|six|seven|eight|nine|ten|eleven|twelve|\w+teen|twenty|thirty|"
    r"forty|fifty|sixty|seventy|eighty|ninety|hundred|half|quarter|percent|degrees?)\b"
)
WORD = re.compile(r"[a-z0-9']+")


def _usable(said: str, heard: str, names: set[str]) -> bool:
    """Whether a mined confusion may be laid on a training text. Never on a number (a value must
    be one the words say: the engine's values_said refuses others, and the model must not learn to
    guess them); a drop only of a short function word; in a name the text's label holds, only a
    near miss ("porta" -> "port"), since a name heard as unrelated words ("bodega" -> "world gun") would
    teach the model to pick a device the words do not name."""
    if NUMBER_WORDS.search(said) or NUMBER_WORDS.search(heard):
        return False
    if not heard:
        return len(said) <= 3 and " " not in said
    if set(said.split()) & names:
        return difflib.SequenceMatcher(a=said, b=heard).ratio() >= 0.6
    return True


def whisper_damage(
    text: str,
    rng: random.Random,
    names: set[str] = frozenset(),
    confusions: Confusions | None = None,
    each: float = 0.3,
    most: int = 2,
) -> str:
    """``text`` with some spans replaced by what Whisper wrote for them when they were spoken
    (``each``: the chance a matching span is replaced, drawn by how often Whisper wrote each form;
    at most ``most`` spans, so the command stays one a listener could still make out: a text damaged
    past that would teach the model to guess).
    ``names``: lower-case words of the label's names, which only near misses may change."""
    table = (confusions or default_confusions()).table
    ws = WORD.findall(text.lower())
    if not table or not ws:
        return text
    out: list[str] = []
    i = changed = 0
    while i < len(ws):
        for n in (3, 2, 1):
            span = " ".join(ws[i : i + n])
            forms = table.get(span) if i + n <= len(ws) and changed < most else None
            if forms and rng.random() < each:
                usable = {h: c for h, c in forms.items() if _usable(span, h, names)}
                if usable:
                    heard = rng.choices(list(usable), list(usable.values()))[0]
                    out += heard.split()
                    i += n
                    changed += 1
                    break
        else:
            out.append(ws[i])
            i += 1
    return " ".join(out) if out else text


def label_words(slots: dict) -> set[str]:
    """Lower-case words of a label's text slots (names, areas, floors, items)."""
    return {w for v in slots.values() if isinstance(v, str) for w in WORD.findall(v.lower())}


def augment(sample: Sample, rng: random.Random) -> Sample:
    text = sample.text
    if sample.intent == TURN_OFF and rng.random() < 0.35:
        text = re.sub(r"^(turn off|switch off|deactivate|turn)\b", rng.choice(OFF_VERBS), text, count=1)
    if sample.intent == TURN_ON and rng.random() < 0.25:
        text = re.sub(r"^(turn on|switch on|activate|turn)\b", rng.choice(ON_VERBS), text, count=1)
    if rng.random() < 0.3:
        text = re.sub(r"\b(\d{1,3})\b", lambda m: number_words(int(m.group(1))), text)
        text = text.replace("%", " percent")
    text = rng.choice(PREFIXES) + text + rng.choice(SUFFIXES)
    if rng.random() < 0.3:
        text = whisper_damage(text, rng, label_words(sample.slots))
    elif rng.random() < 0.5:
        text = asr_noise(text, rng)
    return Sample(" ".join(text.split()), sample.intent, sample.slots, sample.area)
