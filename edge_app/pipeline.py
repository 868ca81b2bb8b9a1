"""Speech -> text -> intent for one utterance: the loaded models and nothing else.

Kept apart from the daemon so the daemon, the Wyoming server and the benchmarks share one way of
turning audio into an intent (ASR biased towards the home's names, wake word, intent engine).
"""

from __future__ import annotations

import re
import threading
import time
from dataclasses import dataclass, field

import numpy as np

from casavox.runtime.intents.result import IntentResult

WORD = re.compile(r"[^\w' ]+")


@dataclass
class Understanding:
    text: str  # what was heard (wake word removed)
    heard: str  # the raw transcript
    result: IntentResult | None  # None: nothing to parse (silence, no wake word)
    skipped: str = ""  # why there is no result
    timings_ms: dict[str, float] = field(default_factory=dict)


def normalize(text: str) -> str:
    return " ".join(WORD.sub(" ", text.casefold()).split())


WAKE_SIMILARITY = 70  # rapidfuzz ratio; Whisper spells an invented word freely ("Hey Kasa", "Hay casa")


def strip_wake(text: str, words: tuple[str, ...]) -> str | None:
    """The command after a spoken wake phrase ("hey casa, lights off" -> "lights off"), else None.

    The phrase is compared with the transcript's first words by edit-distance similarity, since
    the wake word is usually a made-up name that ASR has no fixed spelling for."""
    from rapidfuzz import fuzz

    spoken = normalize(text).split()
    for wake in words:
        n = len(normalize(wake).split())
        if n and len(spoken) >= n and fuzz.ratio(" ".join(spoken[:n]), normalize(wake)) >= WAKE_SIMILARITY:
            # cut the same number of words from the original text, keeping its casing/punctuation
            rest = text.split()[n:]
            return " ".join(rest).lstrip(",.!? ") if rest else ""
    return None


def _bias(home, transcriber):
    """The ASR's bias towards the home's exposed names and areas (None for a home without any)."""
    from casavox.runtime.asr.bias import PhraseBias

    names = [n for e in home.exposed for n in e.names] + [a.name for a in home.areas]
    return PhraseBias.build(names, transcriber.tokenizer.encode) if names else None


@dataclass
class SpeechPipeline:
    transcriber: object  # casavox.runtime.asr.transcriber.Transcriber
    engine: object  # casavox.runtime.intents.engine.IntentEngine
    bias: object | None = None  # casavox.runtime.asr.bias.PhraseBias
    lock: threading.Lock = field(default_factory=threading.Lock)

    @classmethod
    def load(
        cls,
        bundle_dir: str,
        home,
        device: str = "cpu",
        threads: int | None = None,
        asr_variant: str = "",
        llm_variant: str | None = None,
        use_llm: bool = True,
        allow_unsigned: bool = False,
    ) -> SpeechPipeline:
        """``asr_variant``/``llm_variant`` empty: int8 on the CPU, fp16 on a GPU; ``allow_unsigned``
        loads a bundle not signed by a trusted key (runtime/signing.py)."""
        from casavox.runtime.asr.transcriber import Transcriber
        from casavox.runtime.bundle import verify
        from casavox.runtime.components import AsrComponent
        from casavox.runtime.intents.engine import IntentEngine
        from casavox.runtime.intents.llm import llm_available, load_llm
        from casavox.runtime.providers import preferred_variant

        bundle = verify(bundle_dir, allow_unsigned=allow_unsigned)
        asr_variant = asr_variant or preferred_variant(device, AsrComponent.from_bundle(bundle).variants)
        transcriber = Transcriber(bundle, asr_variant, device, threads)
        llm = load_llm(bundle, llm_variant, device, threads) if use_llm and llm_available(bundle) else None
        engine = IntentEngine.build(home, llm)
        return cls(transcriber, engine, _bias(home, transcriber))

    def use_home(self, home) -> None:
        """Serve another home (Home Assistant renamed, exposed or hid something): the templates'
        slot lists, the LLM's grammar and the ASR bias are rebuilt outside the lock, then swapped
        in at once; an utterance in progress finishes on the old ones."""
        from casavox.runtime.intents.engine import IntentEngine

        old = self.engine
        engine = IntentEngine.build(home, old.llm, old.templates.intents, old.min_confidence)
        engine.disabled = old.disabled
        bias = _bias(home, self.transcriber)
        with self.lock:
            self.engine, self.bias = engine, bias

    def transcribe(self, audio: np.ndarray):
        with self.lock:
            return self.transcriber.transcribe(audio, bias=self.bias.bonus if self.bias else None)

    def parse(self, text: str, area: str | None = None) -> IntentResult:
        with self.lock:
            return self.engine.parse(text, area or None)

    def understand(
        self, audio: np.ndarray, area: str | None = None, wake: tuple[str, ...] = (), answer=None
    ) -> Understanding:
        """ASR, then the wake-word check, then the intent engine. ``answer(text)`` true means the
        text answers a question the box asked ("yes"): no intent parsing needed."""
        t0 = time.perf_counter()
        heard = self.transcribe(audio)
        asr_ms = (time.perf_counter() - t0) * 1e3
        timings = {
            "asr_ms": asr_ms,
            **{f"asr_{k}": v for k, v in heard.timings_ms.items() if k != "total_ms"},
        }
        if not heard.text.strip():
            return Understanding("", "", None, heard.skipped or "no speech", timings)
        text = heard.text.strip()
        if answer is not None and answer(text):  # an answer to the box's question needs no wake word
            return Understanding(text, heard.text, None, "answer", timings)
        if wake:
            command = strip_wake(text, wake)
            if command is None:
                return Understanding(text, heard.text, None, "no wake word", timings)
            text = command
        if answer is not None and answer(text):
            return Understanding(text, heard.text, None, "answer", timings)
        t1 = time.perf_counter()
        result = self.parse(text, area)
        timings["intent_ms"] = (time.perf_counter() - t1) * 1e3
        return Understanding(text, heard.text, result, "", timings)
