"""Whisper's byte-level BPE, from the bundle's tokenizer.json (the `tokenizers` package, no transformers)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from tokenizers import Tokenizer


@dataclass(frozen=True)
class WhisperTokenizer:
    tokenizer: Tokenizer
    eot: int
    first_special: int  # ids >= this are special tokens (<|endoftext|> is the first)

    @classmethod
    def from_file(cls, path: Path, eot: int) -> WhisperTokenizer:
        return cls(Tokenizer.from_file(str(path)), eot=eot, first_special=eot)

    def encode(self, text: str) -> list[int]:
        return self.tokenizer.encode(text, add_special_tokens=False).ids

    def decode(self, ids: list[int]) -> str:
        return self.tokenizer.decode([i for i in ids if i < self.first_special]).strip()

    def token_id(self, token: str) -> int | None:
        return self.tokenizer.token_to_id(token)
