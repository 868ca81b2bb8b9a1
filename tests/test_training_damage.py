"""What the training data says around a command and how it damages it (export/llm/augment.py
``whisper_damage``, export/llm/asr_confusions.py, the lexicon's ``context``): the label never
changes, so the damage must leave every value and name a listener could still make out."""

from __future__ import annotations

import random
from pathlib import Path

import yaml

from casavox.export.llm.asr_confusions import CONFUSIONS_FILE, align, count, default_confusions, parse
from casavox.export.llm.augment import label_words, whisper_damage
from casavox.export.llm.paraphrase import default_lexicon, with_context
from casavox.runtime.home import home_from_dict
from casavox.runtime.intents.grounding import Grounding, words

NAMES_FILE = Path(__file__).resolve().parents[1] / "export" / "llm" / "data" / "names.yaml"
TABLE = parse(
    yaml.safe_load(
        """
confusions:
  turn: {pern: 3}
  the: {"": 2, a: 1}
  porta: {port: 2}
  bodega: {world gun: 4}
  "10": {"14": 5}
  ten minutes: {time minutes: 1}
  kitchen light: {kitchen lights: 1}
"""
    )
)


def test_spans_whisper_changed_are_found_and_counted() -> None:
    pairs = align("turn on the porch light", "Pern on the porch light.")
    assert pairs == [("turn", "pern")]
    assert align("set the fan to 50%", "set fan to 50 percent") == [("the", "")]
    assert count([("turn", "pern"), ("turn", "pern"), ("turn", "burn")]) == {"turn": {"pern": 2, "burn": 1}}


def test_damage_comes_from_the_table_and_keeps_numbers() -> None:
    rng = random.Random(0)
    seen = {whisper_damage("set a timer for 10 minutes", rng, set(), TABLE, each=1.0) for _ in range(20)}
    assert seen == {"set a timer for 10 minutes"}  # "10" -> "14" and "ten minutes" are values: never
    out = {whisper_damage("turn on the lamp", rng, set(), TABLE, each=1.0) for _ in range(40)}
    assert out <= {"pern on lamp", "pern on a lamp"} and len(out) == 2


def test_a_name_is_changed_only_into_a_near_miss() -> None:
    rng = random.Random(1)
    names = label_words({"name": "Bodega Porta"})
    assert (
        whisper_damage("play jazz on bodega porta", rng, names, TABLE, each=1.0) == "play jazz on bodega port"
    )
    # The same spans outside a name: any form Whisper wrote.
    assert whisper_damage("bodega", rng, set(), TABLE, each=1.0) == "world gun"


def test_at_most_two_spans_change() -> None:
    for seed in range(10):
        out = whisper_damage(
            "turn the turn the turn the", random.Random(seed), set(), TABLE, each=1.0, most=2
        )
        said = "turn the turn the turn the".split()
        heard = out.split()
        assert heard[-4:] == said[-4:], out  # the first two spans changed, the rest left alone
        assert heard[0] == "pern", out


def test_the_committed_table_was_mined_from_spoken_sentences() -> None:
    table = default_confusions()
    assert CONFUSIONS_FILE.exists() and table.sentences >= 400
    assert 0.0 < table.word_error_rate < 1.0
    assert len(table.table) > 50


def _name_words() -> set[str]:
    found: set[str] = set()

    def walk(x) -> None:
        if isinstance(x, str):
            found.update(words(x))
        elif isinstance(x, dict):
            for v in x.values():
                walk(v)
        elif isinstance(x, list):
            for v in x:
                walk(v)

    walk(yaml.safe_load(NAMES_FILE.read_text(encoding="utf-8")))
    return found


def test_reasons_around_a_command_name_nothing_and_are_not_statements() -> None:
    lex = default_lexicon()
    g = Grounding(home_from_dict({"areas": [], "entities": []}))
    clauses = lex.context_before + lex.context_after
    assert len(clauses) >= 20
    negations = list(g.lexicon.negations)
    names = _name_words() - set(g.lexicon.filler)
    for clause in clauses:
        said = words(clause)
        assert not set(said) & (set(g.lexicon.statements) | set(g.lexicon.not_commands)), clause
        assert not set(said) & names, clause  # no room, device or brand of the training pools
        assert not any(f" {n} " in f" {' '.join(said)} " for n in negations), clause


def test_a_reason_leaves_the_command_to_the_model() -> None:
    g = Grounding(home_from_dict({"areas": [{"name": "Kitchen", "id": "kitchen"}], "entities": []}))
    rng = random.Random(3)
    for _ in range(60):
        text = with_context("turn off the kitchen lights", rng)
        assert "turn off the kitchen lights" in text.lower()
        assert g.refuse_text(text) is None, text
