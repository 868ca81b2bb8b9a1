"""What the intent engine returns: Home Assistant intents (name + slots), or "not understood"."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any


@dataclass(frozen=True)
class Intent:
    """One Home Assistant intent, e.g. HassLightSet {name: "Bedroom Lamp", brightness: 50}."""

    name: str
    slots: dict[str, Any] = field(default_factory=dict)


@dataclass
class IntentResult:
    text: str
    intents: list[Intent]  # in execution order; empty = not understood
    source: str  # "template", "llm" or "none"
    confidence: float = 1.0
    reason: str = ""  # why nothing was understood, when empty
    reply: str = ""  # what to say when nothing was understood ("Turn off what?"), if more than "sorry"
    timings_ms: dict[str, float] = field(default_factory=dict)

    @property
    def understood(self) -> bool:
        return bool(self.intents)

    @property
    def intent(self) -> Intent | None:
        return self.intents[0] if self.intents else None

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {"text": self.text, "source": self.source, "understood": self.understood}
        if len(self.intents) == 1:
            out.update(asdict(self.intents[0]))
        elif self.intents:
            out["intents"] = [asdict(i) for i in self.intents]
        if not self.understood:
            out["reason"] = self.reason
            if self.reply:
                out["reply"] = self.reply
        out["confidence"] = round(self.confidence, 3)
        out["timings_ms"] = {k: round(v, 2) for k, v in self.timings_ms.items()}
        return out
