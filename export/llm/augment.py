"""Templated sentences as people say them, and what speech recognition makes of them.

Applied to templated samples with their labels unchanged: synonyms ("kill the lights"), fillers
and politeness, numbers spoken as words, ASR-like damage (no punctuation, dropped articles, a
misheard letter in a name). Phrasings no template has live in the paraphrase lexicon
(``data/paraphrases.yaml``, composed by ``paraphrase.py``).
"""

from __future__ import annotations

import random
import re

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
    if rng.random() < 0.5:
        text = asr_noise(text, rng)
    return Sample(" ".join(text.split()), sample.intent, sample.slots, sample.area)
