"""Judge an intent engine with Home Assistant's own test files (`casavox eval-intents`).

Files follow Home Assistant's intent "test syntax", judged the way Home Assistant's two test
harnesses judge them (home-assistant/intents ``tests/``):

- top-level files (``light_HassLightSet.yaml``) run against the shared fixture home
  (``_fixtures.yaml``) with the context area the test names, if any;
- files in subfolders (``HassTurnOn/domain_only.yaml``) are *slot-combination* tests: they run
  against only their own ``areas:``/``entities:``/``floors:`` (an empty home when they list none), the
  intent is named by the folder, and the speaker is always in a context area. When the file's header
  says ``# context_area: true`` the area slot that the context filled in is not part of the expected
  answer, so it is removed before comparing (Home Assistant pops it the same way).

A sentence passes when the intent name is right and the slots agree the way Home Assistant checks
them: every slot we produced is expected (a list of expected values accepts any of them), and every
expected slot is produced.

casavox's own held-out files (``tests/data/heldout_*.yaml``) add non-commands: a test with
``expect: nothing`` (and a ``kind``: small talk, absent device, injection, ...) passes when nothing
would be done. Every sentence gets one verdict, since a wrong action is worse than "not understood":

- ``exact``: the expected intent and slots (for a non-command: nothing that changes the home);
- ``wrong_action``: something would change the home that the words did not mean (another entity,
  room, action or value, or any change at all for a non-command), judged by planning the answer on
  the test's home exactly as the daemon would (a lock or door it would ask about counts too);
- ``wrong_answer``: understood as something else that changes nothing (a question answered wrongly);
- ``not_understood``: the engine said so.
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from casavox.errors import CasavoxError
from casavox.runtime.home import Home, home_from_dict, load_home
from casavox.runtime.intents.catalogue import lookup
from casavox.runtime.intents.result import Intent, IntentResult


class SuiteError(CasavoxError, FileNotFoundError):
    """A test file or folder that cannot be judged; the message names it."""


NOTHING = ""  # Case.intent of a non-command (``expect: nothing``)
VERDICTS = ("exact", "wrong_action", "wrong_answer", "not_understood")


@dataclass(frozen=True)
class Case:
    file: str
    sentence: str
    intent: str  # NOTHING for a non-command
    slots: dict[str, Any]
    area: str | None  # context area (the room the speaker is in)
    context_area_slot: bool = False  # an area slot equal to ``area`` came from context: not judged
    kind: str = ""  # a non-command's kind (small_talk, injection, ...), else the intent name

    @property
    def command(self) -> bool:
        return self.intent != NOTHING


@dataclass
class Outcome:
    case: Case
    got: IntentResult
    ok: bool
    verdict: str = ""  # one of VERDICTS


@dataclass
class Report:
    outcomes: list[Outcome] = field(default_factory=list)

    @property
    def accuracy(self) -> float:
        return sum(o.ok for o in self.outcomes) / max(1, len(self.outcomes))

    def verdicts(self, by: str = "file") -> dict[str, dict[str, int]]:
        """Counts of each verdict per ``file`` or per ``kind`` (intent name / non-command kind)."""
        out: dict[str, dict[str, int]] = {}
        for o in self.outcomes:
            key = o.case.file if by == "file" else (o.case.kind or o.case.intent)
            row = out.setdefault(key, dict.fromkeys(VERDICTS, 0))
            row[o.verdict] += 1
        return dict(sorted(out.items()))

    def rates(self, commands: bool | None = None) -> dict[str, float]:
        """Share of each verdict over the commands (True), the non-commands (False) or all (None)."""
        chosen = [o for o in self.outcomes if commands is None or o.case.command == commands]
        return {v: sum(o.verdict == v for o in chosen) / max(1, len(chosen)) for v in VERDICTS} | {
            "n": len(chosen)
        }

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
    if not case.command:
        return False
    if len(intents) != 1 or intents[0].name != case.intent:
        return False
    slots = dict(intents[0].slots)
    if case.context_area_slot and "area" not in case.slots and slots.get("area") == case.area:
        del slots["area"]
    return slots_match(case.slots, slots)


# Home Assistant's slot-combination harness puts the speaker in a placeholder area that no sentence
# names. Our engine ignores a context area the home does not have (it never invents places), so the
# placeholder is added to the file's home as a real area with a name no test sentence uses.
CONTEXT_AREA = "Den"


def _header(text: str) -> dict[str, str]:
    """``# key: value`` comment lines at the top of a test file (its slot-combination metadata)."""
    out = {}
    for line in text.splitlines():
        if line.strip() in ("", "---"):
            continue
        if not line.startswith("#"):
            break
        key, _, value = line[1:].partition(":")
        out[key.strip()] = value.strip()
    return out


def _cases(path: Path, root: Path, data: dict, combination: bool, context_area_slot: bool) -> list[Case]:
    folder_intent = path.parent.name if combination else None
    cases = []
    for test in data.get("tests") or []:
        intent = test.get("intent") or {}
        nothing = test.get("expect") == "nothing"
        name = NOTHING if nothing else intent.get("name") or folder_intent or path.stem.rsplit("_", 1)[-1]
        slots = {} if nothing else intent.get("slots", test.get("slots")) or {}
        context = intent.get("context", test.get("context")) or {}
        area = CONTEXT_AREA if combination else context.get("area")
        kind = str(test.get("kind") or "") if nothing else name
        for sentence in test.get("sentences") or []:
            cases.append(
                Case(
                    str(path.relative_to(root)),
                    str(sentence),
                    name,
                    dict(slots),
                    area,
                    context_area_slot,
                    kind,
                )
            )
    return cases


def _combination_home(data: dict, source: str) -> Home:
    areas = list(data.get("areas") or [])
    if not any(str(a.get("name")) == CONTEXT_AREA for a in areas if isinstance(a, dict)):
        areas.append({"name": CONTEXT_AREA})
    return home_from_dict({**data, "areas": areas}, source)


def load_suite(tests: Path, fixtures: Path | None = None) -> list[tuple[Home, list[Case]]]:
    """(home, cases) groups for a test file or folder."""
    tests = Path(tests)
    if not tests.exists():
        raise SuiteError(f"{tests}: no such test file or folder")
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
        text = f.read_text()
        data = yaml.safe_load(text) or {}
        combination = f.parent != root
        context_area_slot = _header(text).get("context_area", "").lower() == "true"
        cases = _cases(f, root, data, combination, context_area_slot)
        if combination:
            groups.append((_combination_home(data, str(f)), cases))
        elif data.get("entities") or data.get("areas"):
            groups.append((home_from_dict(data, str(f)), cases))
        else:
            shared_cases.extend(cases)
    if shared_cases:
        if shared is None:
            raise SuiteError(f"{tests}: tests need a fixture home; pass --fixtures")
        groups.insert(0, (shared, shared_cases))
    return groups


Engine = Callable[[str, str | None], IntentResult]


def changes_the_home(intents: list[Intent], home: Home, area: str | None) -> bool:
    """Whether doing ``intents`` would change anything (a device, a list, a timer), planned as the
    daemon plans them; a lock or door it would first ask about counts as a change."""
    from casavox.edge_app.actions import plan

    for intent in intents:
        action = plan(intent, home, area)
        if action.error:
            continue
        if action.kind == "control" and (action.calls or action.volume_step is not None):
            return True
        if action.kind == "local" and lookup(intent.name).changes_home:  # timers, a broadcast
            return True
    return False


def judge(case: Case, got: IntentResult, home: Home) -> str:
    """The verdict for one sentence (see the module docstring)."""
    if case.command and intent_matches(case, got.intents):
        return "exact"
    if not got.understood:
        return "exact" if not case.command else "not_understood"
    if changes_the_home(got.intents, home, case.area):
        return "wrong_action"
    return "exact" if not case.command else "wrong_answer"


def evaluate(groups: list[tuple[Home, list[Case]]], engine_for: Callable[[Home], Engine]) -> Report:
    report = Report()
    for home, cases in groups:
        engine = engine_for(home)
        for case in cases:
            t0 = time.perf_counter()
            got = engine(case.sentence, case.area)
            got.timings_ms.setdefault("total_ms", (time.perf_counter() - t0) * 1e3)
            verdict = judge(case, got, home)
            report.outcomes.append(Outcome(case, got, verdict == "exact", verdict))
    return report
