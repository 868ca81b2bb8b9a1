"""`casavox selftest`: prove on the box itself that an installed casavox can do its job.

Run by the offline installer (deploy/install.py) before it switches to a new release, and by hand
after a change to the box. It loads the bundle the way the daemon does (signature and every file's
hash checked), reports the execution providers this onnxruntime offers and which device the
configured one resolves to, transcribes a packed clip and parses the transcript on the example home,
once through the whole engine (templates first) and once through the LLM alone, so a broken graph
of either model fails here, not in the first real command. What each step must produce is in the
pack's ``selftest/expect.json`` (written by `casavox pack` from the same sentence on the workstation).
"""

from __future__ import annotations

import json
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from casavox.errors import CasavoxError


class SelfTestError(CasavoxError, RuntimeError):
    """The self-test could not start (a missing clip or expectation file)."""


@dataclass(frozen=True)
class Expectation:
    """What the packed clip must become: the sentence said, and its Home Assistant intent."""

    sentence: str
    intent: str
    slots: dict[str, Any]

    @classmethod
    def read(cls, path: Path) -> Expectation:
        try:
            data = json.loads(Path(path).read_text())
            return cls(str(data["sentence"]), str(data["intent"]), dict(data["slots"]))
        except (OSError, ValueError, KeyError, TypeError) as exc:
            raise SelfTestError(f"self-test expectation {path}: unreadable ({exc})") from None

    def write(self, path: Path) -> None:
        Path(path).write_text(json.dumps(asdict(self), indent=2) + "\n")


@dataclass
class SelfTestReport:
    """One line per check, and whether every check passed."""

    providers: list[str]
    devices: list[str]
    device: str
    checks: list[dict[str, Any]] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return bool(self.checks) and all(c["ok"] for c in self.checks)

    def add(self, name: str, ok: bool, detail: str, **extra: Any) -> bool:
        self.checks.append({"check": name, "ok": ok, "detail": detail, **extra})
        return ok

    def to_json(self) -> dict[str, Any]:
        return {"ok": self.ok, **asdict(self)}


def _same_intent(result, expect: Expectation) -> bool:
    intent = result.intent
    return len(result.intents) == 1 and intent.name == expect.intent and dict(intent.slots) == expect.slots


def _describe(result) -> str:
    if not result.understood:
        return f"not understood ({result.reason})"
    return "; ".join(f"{i.name} {json.dumps(i.slots, ensure_ascii=False)}" for i in result.intents)


def run_selftest(
    bundle_dir: str | Path,
    clip: str | Path,
    expect: Expectation,
    device: str = "cpu",
    home_path: str | Path | None = None,
) -> SelfTestReport:
    """Every check of the self-test; a failed check is recorded, not raised, so the report is whole.

    ``device``: as the daemon's ``device`` setting (``auto`` picks the best provider that works)."""
    import onnxruntime as ort

    from casavox.runtime.asr.transcriber import Transcriber
    from casavox.runtime.audio.io import load_audio
    from casavox.runtime.bundle import verify
    from casavox.runtime.home import load_home
    from casavox.runtime.intents.engine import IntentEngine
    from casavox.runtime.intents.llm import llm_available, load_llm
    from casavox.runtime.intents.templates import load_language_intents
    from casavox.runtime.providers import available_devices, preferred_variant, resolve_device

    report = SelfTestReport(list(ort.get_available_providers()), available_devices(), device)
    try:
        resolved = resolve_device(device)
    except CasavoxError as exc:
        report.add("device", False, str(exc))
        return report
    report.device = resolved
    report.add("device", True, f"{device} -> {resolved}")

    t0 = time.perf_counter()
    try:
        bundle = verify(bundle_dir, hash_files=True)
    except CasavoxError as exc:
        report.add("bundle", False, str(exc))
        return report
    report.add("bundle", True, f"{bundle.root}: {bundle.signature.describe()}", ms=_ms(t0))

    from casavox.runtime.components import AsrComponent

    t0 = time.perf_counter()
    try:
        variant = preferred_variant(resolved, AsrComponent.from_bundle(bundle).variants)
        text = Transcriber(bundle, variant, resolved).transcribe(load_audio(str(clip))).text
    except CasavoxError as exc:
        report.add("transcribe", False, str(exc))
        return report
    heard = text.strip()
    report.add("transcribe", bool(heard), f"{variant} on {resolved}: {heard!r}", ms=_ms(t0))

    from casavox.examples import example_path

    home = load_home(home_path or example_path("home.yaml"))
    llm = None
    if llm_available(bundle):
        t0 = time.perf_counter()
        try:
            llm = load_llm(bundle, None, resolved)
        except CasavoxError as exc:
            report.add("llm", False, str(exc))
            return report
        report.add("llm", True, f"{llm.variant} on {resolved}", ms=_ms(t0))
    engine = IntentEngine.build(home, llm, load_language_intents())

    t0 = time.perf_counter()
    result = engine.parse(heard)
    report.add(
        "understand",
        _same_intent(result, expect),
        f"{heard!r} -> {_describe(result)} (expected {expect.intent} {json.dumps(expect.slots)})",
        ms=_ms(t0),
    )
    if llm is not None:
        t0 = time.perf_counter()
        result = engine.parse(expect.sentence, templates=False)
        report.add(
            "llm-understand",
            _same_intent(result, expect),
            f"LLM alone: {expect.sentence!r} -> {_describe(result)}",
            ms=_ms(t0),
        )
    return report


def _ms(t0: float) -> float:
    return round((time.perf_counter() - t0) * 1000, 1)
