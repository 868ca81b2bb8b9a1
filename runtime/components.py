"""Typed bundle components: the entries of ``manifest["components"]``, one class per kind.

The exporters build an :class:`AsrComponent` / :class:`LlmComponent` and write its
:meth:`~_Entry.to_manifest`; the runtime reads it back with :meth:`~_Entry.from_manifest` (or
``from_bundle``). Every component key is spelled once, as a dataclass field name here, so the
writer and the reader cannot drift apart, and a malformed entry fails at load with one line naming
the key (``components.asr.eot: expected an integer, got str``) instead of a ``KeyError`` inside a
session.

The JSON is the one the untyped dicts had (format_version 1), key for key and in the same order:
keys the exporters always wrote are required; keys the runtime used to read with a default keep
that default when absent; keys this runtime does not know (a note a tool added, a newer minor
addition) are kept in ``extra`` and written back after the known ones, so a manifest round-trips.
Generic parts of the format (``variants``, ``default_variant``, file references) stay in
:mod:`casavox.runtime.bundle`, which handles components of any kind.
"""

from __future__ import annotations

import copy
from collections.abc import Callable, Mapping
from dataclasses import MISSING, dataclass, field, fields
from typing import Any, ClassVar, TypeVar

from casavox.runtime.bundle import Bundle, BundleError

_E = TypeVar("_E", bound="_Entry")


@dataclass(frozen=True)
class _Kind:
    """How one manifest value is checked, turned into its Python value and written back."""

    name: str  # for messages: "expected <name>"
    check: Callable[[Any], bool]
    load: Callable[[Any, str], Any] = lambda value, where: value
    dump: Callable[[Any], Any] = lambda value: value


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


STR = _Kind("a string", lambda v: isinstance(v, str))
INT = _Kind("an integer", _is_int)
NUMBER = _Kind("a number", _is_number)
BOOL = _Kind("true or false", lambda v: isinstance(v, bool))
# Free-form objects (parity figures, trim policy): kept as a private copy, written back as they came.
OBJECT = _Kind(
    "an object",
    lambda v: isinstance(v, dict),
    lambda v, where: copy.deepcopy(v),
    lambda v: copy.deepcopy(dict(v)),
)
INTS = _Kind(
    "a list of integers",
    lambda v: isinstance(v, list) and all(_is_int(x) for x in v),
    lambda v, where: tuple(v),
    list,
)
STRS = _Kind(
    "a list of strings",
    lambda v: isinstance(v, list) and all(isinstance(x, str) for x in v),
    lambda v, where: tuple(v),
    list,
)


def _optional(kind: _Kind) -> _Kind:
    """``kind`` or JSON null (``None``)."""
    return _Kind(
        f"{kind.name} or null",
        lambda v: v is None or kind.check(v),
        lambda v, where: None if v is None else kind.load(v, where),
        lambda v: None if v is None else kind.dump(v),
    )


def _part(cls: type[_Entry]) -> _Kind:
    """A nested typed object (its own keys checked with their full path)."""
    return _Kind("an object", lambda v: isinstance(v, dict), cls.from_manifest, lambda v: v.to_manifest())


def _variants(cls: type[_Entry]) -> _Kind:
    """``{variant name: typed variant}``, in the manifest's order."""
    return _Kind(
        "an object",
        lambda v: isinstance(v, dict),
        lambda v, where: {name: cls.from_manifest(body, f"{where}.{name}") for name, body in v.items()},
        lambda v: {name: body.to_manifest() for name, body in v.items()},
    )


def _key(kind: _Kind, default: Any = MISSING, *, omit_none: bool = False) -> Any:
    """A manifest key (the field's name) of ``kind``. ``default``: the value when the key is absent
    (for keys the runtime always read with a default); ``omit_none``: not written while ``None``
    (keys only some bundles have, e.g. parity figures added after the first write)."""
    meta = {"kind": kind, "omit_none": omit_none}
    if isinstance(default, (dict, list)):
        return field(default_factory=lambda: copy.deepcopy(default), metadata=meta)
    return field(default=default, metadata=meta)


def _extra() -> Any:
    """The keys of an entry that this runtime does not know, kept to be written back unchanged."""
    return field(default_factory=dict, metadata={"extra": True})


def _describe(value: Any) -> str:
    return "null" if value is None else type(value).__name__


@dataclass(frozen=True)
class _Entry:
    """A manifest object whose keys are the dataclass's fields (see :func:`_key`)."""

    WHERE: ClassVar[str] = "component"  # how messages name an entry read without a path

    @classmethod
    def from_manifest(cls: type[_E], data: Any, where: str | None = None) -> _E:
        """Check and read a manifest object; :class:`BundleError` names the first bad key."""
        where = where or cls.WHERE
        if not isinstance(data, dict):
            raise BundleError(f"{where}: expected an object, got {_describe(data)}")
        values: dict[str, Any] = {}
        known = set()
        extra_field = None
        for f in fields(cls):
            if f.metadata.get("extra"):
                extra_field = f.name
                continue
            known.add(f.name)
            kind: _Kind = f.metadata["kind"]
            if f.name not in data:
                if f.default is MISSING and f.default_factory is MISSING:
                    raise BundleError(f"{where}.{f.name}: missing")
                continue  # the field's default, as the runtime always assumed
            value = data[f.name]
            if not kind.check(value):
                raise BundleError(f"{where}.{f.name}: expected {kind.name}, got {_describe(value)}")
            values[f.name] = kind.load(value, f"{where}.{f.name}")
        if extra_field is not None:
            values[extra_field] = {k: copy.deepcopy(v) for k, v in data.items() if k not in known}
        return cls(**values)

    def to_manifest(self) -> dict[str, Any]:
        """The JSON object for manifest.json: known keys in field order, then the kept unknown ones."""
        out: dict[str, Any] = {}
        extra: Mapping[str, Any] = {}
        for f in fields(self):
            value = getattr(self, f.name)
            if f.metadata.get("extra"):
                extra = value
            elif not (value is None and f.metadata["omit_none"]):
                kind: _Kind = f.metadata["kind"]
                out[f.name] = kind.dump(value)
                if not kind.check(out[f.name]):  # an exporter bug: refuse to write what no one can read
                    raise BundleError(
                        f"{self.WHERE}.{f.name}: expected {kind.name}, got {_describe(out[f.name])}"
                    )
        for k, v in extra.items():
            out.setdefault(k, copy.deepcopy(v))
        return out


@dataclass(frozen=True, kw_only=True)
class _Component(_Entry):
    """An entry of ``manifest["components"]``, stored under :attr:`NAME`."""

    NAME: ClassVar[str]

    @classmethod
    def from_bundle(cls: type[_E], bundle: Bundle) -> _E:
        """The bundle's component of this kind; a missing or malformed one is a one-line error."""
        raw = bundle.component(cls.NAME)  # type: ignore[attr-defined]
        try:
            return cls.from_manifest(raw)
        except BundleError as exc:
            raise BundleError(f"{bundle.root}: {exc}") from None


@dataclass(frozen=True, kw_only=True)
class AsrVariant(_Entry):
    """One quantization of the Whisper graphs (``components.asr.variants.<name>``)."""

    WHERE: ClassVar[str] = "components.asr.variants.<variant>"

    encoder_file: str = _key(STR)
    decoder_file: str = _key(STR)
    quant: str = _key(STR)
    # Measured against PyTorch after the graphs were written (absent until then).
    parity: Mapping[str, Any] | None = _key(_optional(OBJECT), None, omit_none=True)
    extra: Mapping[str, Any] = _extra()


@dataclass(frozen=True, kw_only=True)
class AsrComponent(_Component):
    """Whisper speech recognition: decoding rules, mel front end and the exported variants."""

    NAME: ClassVar[str] = "asr"
    WHERE: ClassVar[str] = "components.asr"

    model: str = _key(STR)
    source: str = _key(STR)
    sample_rate: int = _key(INT)
    n_mels: int = _key(INT)
    n_fft: int = _key(INT)
    hop_length: int = _key(INT)
    prompt: tuple[int, ...] = _key(INTS)
    eot: int = _key(INT)
    no_speech: int | None = _key(_optional(INT), None)
    suppress: tuple[int, ...] = _key(INTS)
    begin_suppress: tuple[int, ...] = _key(INTS)
    max_tokens: int = _key(INT, 224)
    # The recorded TrimPolicy (its fields as keys; TrimPolicy.from_manifest reads it).
    trim: Mapping[str, Any] = _key(OBJECT, {})
    tokenizer_file: str = _key(STR)
    mel_filters_file: str = _key(STR)
    variants: Mapping[str, AsrVariant] = _key(_variants(AsrVariant))
    # Only in subsets (bundle.subset records the variant it kept first).
    default_variant: str | None = _key(_optional(STR), None, omit_none=True)
    extra: Mapping[str, Any] = _extra()


@dataclass(frozen=True, kw_only=True)
class LlmPrompt(_Entry):
    """The chat framing the model was fine-tuned with (``components.llm.prompt``)."""

    WHERE: ClassVar[str] = "components.llm.prompt"

    prefix: str = _key(STR)
    suffix: str = _key(STR)
    end: str = _key(STR)
    extra: Mapping[str, Any] = _extra()


@dataclass(frozen=True, kw_only=True)
class LlmVariant(_Entry):
    """One quantization of the intent LLM graph (``components.llm.variants.<name>``)."""

    WHERE: ClassVar[str] = "components.llm.variants.<variant>"

    file: str = _key(STR)
    data_files: tuple[str, ...] = _key(STRS, ())  # external weights beside the graph
    quant: str = _key(STR)
    provider: str = _key(STR)  # the execution provider the graph was built for
    parity: Mapping[str, Any] | None = _key(_optional(OBJECT), None, omit_none=True)
    # What a tool changed after the export (benchmarks/lm_head_int4.py re-quantizes the lm_head).
    note: str | None = _key(_optional(STR), None, omit_none=True)
    extra: Mapping[str, Any] = _extra()


@dataclass(frozen=True, kw_only=True)
class LlmComponent(_Component):
    """The fine-tuned intent LLM: tokenizer, intent spec, cache geometry and the variants."""

    NAME: ClassVar[str] = "llm"
    WHERE: ClassVar[str] = "components.llm"

    model: str = _key(STR)
    source: str = _key(STR)
    adapter_sha256: str | None = _key(_optional(STR), None)
    tokenizer_file: str = _key(STR)
    intent_spec_file: str = _key(STR)
    eos_token_id: int = _key(INT)
    num_layers: int = _key(INT)
    num_kv_heads: int = _key(INT)
    head_dim: int = _key(INT)
    max_new_tokens: int = _key(INT, 96)
    prompt: LlmPrompt = _key(_part(LlmPrompt))
    default_variant: str = _key(STR, "int8")
    variants: Mapping[str, LlmVariant] = _key(_variants(LlmVariant))
    extra: Mapping[str, Any] = _extra()


def read_value(data: Mapping[str, Any], key: str, kind: _Kind, where: str) -> Any:
    """``data[key]`` checked against ``kind`` (for sub-objects typed outside this module, such as
    the ASR trim policy); :class:`BundleError` names ``where.key``."""
    value = data[key]
    if not kind.check(value):
        raise BundleError(f"{where}.{key}: expected {kind.name}, got {_describe(value)}")
    return kind.load(value, f"{where}.{key}")
