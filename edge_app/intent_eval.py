"""Judge an intent engine with Home Assistant's own test files (`casavox eval-intents`).

Files follow Home Assistant's intent "test syntax": top-level files (``light_HassLightSet.yaml``)
use the shared fixture home (``_fixtures.yaml``); files in subfolders (``HassTurnOn/name_only.yaml``)
carry their own small ``areas:``/``entities:`` home and the intent named by the folder. A sentence
passes when the intent name is right and the slots agree the way Home Assistant's test suite checks
them: every slot we produced is expected (a list of expected values accepts any of them), and every
expected slot is produced.
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from runtime.home import Home, home_from_dict, load_home
from runtime.intents.result import Intent, IntentResult


@dataclass(frozen=True)
class Case:
    file: str
    sentence: str
    intent: str
    slots: dict[str, Any]
    area: str | None  # context area (the room the speaker is in)


@dataclass
class Outcome:
    case: Case
    got: IntentResult
    ok: bool


@dataclass
class Report:
    outcomes: list[Outcome] = field(default_factory=list)

    @property
    def accuracy(self) -> float:
        return sum(o.ok for o in self.outcomes) / max(1, len(self.outcomes))

    def per_file(self) -> dict[str, tuple[int, int]]:
        out: dict[str, list[int]] = {}
        for o in self.outcomes:
            stats = out.setdefault(o.case.file, [0, 0])
            stats[0] += o.ok
            stats[1] += 1
        return {k: (v[0], v[1]) for k, v in sorted(out.items())}

    def latency(self) -> dict[str, dict[str, float]]:
        """Median/p95 ms per path that answered (template, llm, none)."""
        paths: dict[str, list[float]] = {}
        for o in self.outcomes:
            paths.setdefault(o.got.source, []).append(o.got.timings_ms.get("total_ms", 0.0))
        return {
            k: {"n": len(v), "median_ms": statistics.median(v), "p95_ms": sorted(v)[int(0.95 * (len(v) - 1))]}
            for k, v in paths.items()
        }


def _same(a: Any, b: Any) -> bool:
    if isinstance(a, (int, float)) and isinstance(b, (int, float)) and not isinstance(a, bool):
        return float(a) == float(b)
    return a == b


def slots_match(expected: dict[str, Any], got: dict[str, Any]) -> bool:
    for name, value in got.items():
        want = expected.get(name)
        if want is None:
            return False
        if isinstance(want, list):
            if isinstance(value, list):
                if not set(map(str, want)) <= set(map(str, value)):
                    return False
            elif not any(_same(value, w) for w in want):
                return False
        elif isinstance(value, list):
            if not any(_same(want, v) for v in value):
                return False
        elif not _same(value, want):
            return False
    return all(name in got for name in expected)


def intent_matches(case: Case, intents: list[Intent]) -> bool:
    return len(intents) == 1 and intents[0].name == case.intent and slots_match(case.slots, intents[0].slots)


def _cases(path: Path, root: Path, data: dict) -> list[Case]:
    folder_intent = path.parent.name if path.parent != root else None
    cases = []
    for test in data.get("tests") or []:
        intent = test.get("intent") or {}
        name = intent.get("name") or folder_intent or path.stem.rsplit("_", 1)[-1]
        slots = intent.get("slots", test.get("slots")) or {}
        context = intent.get("context", test.get("context")) or {}
        for sentence in test.get("sentences") or []:
            cases.append(
                Case(str(path.relative_to(root)), str(sentence), name, dict(slots), context.get("area"))
            )
    return cases


def load_suite(tests: Path, fixtures: Path | None = None) -> list[tuple[Home, list[Case]]]:
    """(home, cases) groups for a test file or folder."""
    tests = Path(tests)
    root = tests if tests.is_dir() else tests.parent
    files = sorted(tests.rglob("*.yaml")) if tests.is_dir() else [tests]
    files = [f for f in files if not f.name.startswith("_")]
    if fixtures is None:
        candidates = [root / "_fixtures.yaml", root.parent / "_fixtures.yaml"]
        fixtures = next((c for c in candidates if c.exists()), None)
    shared = load_home(fixtures) if fixtures else None
    groups: list[tuple[Home, list[Case]]] = []
    shared_cases: list[Case] = []
    for f in files:
        data = yaml.safe_load(f.read_text()) or {}
        cases = _cases(f, root, data)
        if data.get("entities") or data.get("areas"):
            groups.append((home_from_dict(data, str(f)), cases))
        else:
            shared_cases.extend(cases)
    if shared_cases:
        if shared is None:
            raise FileNotFoundError(f"{tests}: tests need a fixture home; pass --fixtures")
        groups.insert(0, (shared, shared_cases))
    return groups


Engine = Callable[[str, str | None], IntentResult]


def evaluate(groups: list[tuple[Home, list[Case]]], engine_for: Callable[[Home], Engine]) -> Report:
    report = Report()
    for home, cases in groups:
        engine = engine_for(home)
        for case in cases:
            t0 = time.perf_counter()
            got = engine(case.sentence, case.area)
            got.timings_ms.setdefault("total_ms", (time.perf_counter() - t0) * 1e3)
            report.outcomes.append(Outcome(case, got, intent_matches(case, got.intents)))
    return report
