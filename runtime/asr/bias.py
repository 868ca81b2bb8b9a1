"""Contextual biasing: nudge the decoder towards the home's own device and area names.

Whisper spells rare names its own way ("Kaley lamp" for "Kaylee lamp"). Given the phrases the home
actually contains, we add a logit bonus to a token when it continues a phrase the transcript has
started, and a smaller one to tokens that start a phrase. This is shallow fusion with a prefix trie,
the standard trick for contextual ASR; no library offers it for a hand-rolled ONNX decoder loop, so
it is written here (about 40 lines).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, field


@dataclass
class _Node:
    children: dict[int, _Node] = field(default_factory=dict)


@dataclass
class PhraseBias:
    """Prefix trie over tokenized phrases; :meth:`bonus` gives token -> logit bonus for a step."""

    root: _Node
    depth: int
    start_bonus: float
    continue_bonus: float

    @classmethod
    def build(
        cls,
        phrases: Iterable[str],
        encode: Callable[[str], list[int]],
        start_bonus: float = 1.0,
        continue_bonus: float = 4.0,
    ) -> PhraseBias:
        root, depth = _Node(), 0
        for phrase in {p.strip() for p in phrases if p and p.strip()}:
            # Mid-sentence form (leading space) in the spelling given and in lower case.
            for variant in {" " + phrase, " " + phrase.lower()}:
                ids = encode(variant)
                node = root
                for tok in ids:
                    node = node.children.setdefault(tok, _Node())
                depth = max(depth, len(ids))
        return cls(root, depth, start_bonus, continue_bonus)

    def bonus(self, generated: list[int]) -> dict[int, float]:
        """Bonuses for the next token given the text tokens generated so far."""
        out = {tok: self.start_bonus for tok in self.root.children}
        for k in range(1, min(self.depth, len(generated)) + 1):
            node = self.root
            for tok in generated[-k:]:
                node = node.children.get(tok)
                if node is None:
                    break
            if node is not None:
                for tok in node.children:
                    out[tok] = max(out.get(tok, 0.0), self.continue_bonus)
        return out
