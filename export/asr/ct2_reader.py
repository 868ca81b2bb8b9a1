"""Read the variables of a CTranslate2 ``model.bin``.

CTranslate2 ships a writer (``ctranslate2.specs.ModelSpec.save``) but no public reader, and its C++
loader hands no tensors back to Python. The file is a short, documented-by-code binary layout
(``ModelSpec._serialize``), so we read it here with ``struct`` + numpy rather than install a native
engine just to get at its weights.

Layout (little endian): u32 binary version, string spec name, u32 spec revision, u32 variable count,
then per variable: string name, u8 rank, u32 dims..., u8 dtype id, u32 byte count, raw bytes; then
u32 alias count and (alias, target) string pairs. A string is u16 length (including a NUL) + bytes.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from casavox.errors import CasavoxError


class Ct2FormatError(CasavoxError, ValueError):
    """A CTranslate2 model file casavox cannot read; the message names the file or what is wrong."""


# Order of CTranslate2's DataType enum (include/ctranslate2/types.h).
_DTYPES = (np.float32, np.int8, np.int16, np.int32, np.float16, None)  # None: bfloat16
SUPPORTED_BINARY_VERSIONS = (5, 6)


@dataclass
class Ct2Model:
    """The variables of a CTranslate2 model, aliases resolved."""

    spec_name: str
    spec_revision: int
    binary_version: int
    variables: dict[str, np.ndarray]
    aliases: dict[str, str]

    def get(self, name: str) -> np.ndarray:
        return self.variables[self.aliases.get(name, name)]


class _Reader:
    def __init__(self, data: bytes) -> None:
        self.data = data
        self.pos = 0

    def take(self, fmt: str):
        size = struct.calcsize(fmt)
        if self.pos + size > len(self.data):
            raise Ct2FormatError("model.bin is truncated")
        values = struct.unpack_from("<" + fmt, self.data, self.pos)
        self.pos += size
        return values[0] if len(values) == 1 else values

    def string(self) -> str:
        length = self.take("H")
        raw = self.data[self.pos : self.pos + length]
        self.pos += length
        return raw[:-1].decode("utf-8")

    def array(self, dtype_id: int, shape: tuple[int, ...], nbytes: int) -> np.ndarray:
        if self.pos + nbytes > len(self.data):
            raise Ct2FormatError("model.bin is truncated")
        raw = self.data[self.pos : self.pos + nbytes]
        self.pos += nbytes
        if dtype_id == 5:  # bfloat16: widen to float32 through the high half of the bits
            bits = np.frombuffer(raw, dtype=np.uint16).astype(np.uint32) << 16
            return bits.view(np.float32).reshape(shape)
        return np.frombuffer(raw, dtype=_DTYPES[dtype_id]).reshape(shape).copy()


def read_ct2_model(path: Path) -> Ct2Model:
    """Parse ``model.bin`` (a file or the folder holding it) into numpy arrays."""
    path = Path(path)
    if path.is_dir():
        path = path / "model.bin"
    reader = _Reader(path.read_bytes())
    version = reader.take("I")
    if version not in SUPPORTED_BINARY_VERSIONS:
        raise Ct2FormatError(f"unsupported CTranslate2 binary version {version} in {path}")
    spec_name = reader.string()
    revision = reader.take("I")
    variables: dict[str, np.ndarray] = {}
    for _ in range(reader.take("I")):
        name = reader.string()
        rank = reader.take("B")
        shape = tuple(reader.take("I") for _ in range(rank))
        dtype_id = reader.take("B")
        nbytes = reader.take("I")
        variables[name] = reader.array(dtype_id, shape, nbytes)
    aliases = {}
    for _ in range(reader.take("I")):
        alias = reader.string()
        aliases[alias] = reader.string()
    return Ct2Model(spec_name, revision, version, variables, aliases)
