"""The frozen held-out sets stay out of the training data: no held-out sentence is a training
phrasing, and no held-out home's name was added to the training name pools after the sets were
frozen (2026-12-01). What overlapped before the sets existed is listed here, so that any new overlap
fails this test."""

from __future__ import annotations

import re
from pathlib import Path

import yaml

from casavox.export.llm.homes import name_pools
from casavox.export.llm.paraphrase import default_lexicon

DATA = Path(__file__).resolve().parent / "data"
# In the training pools and phrasings before the held-out sets were written (git history of
# export/llm/homes.py and augment.py): common names and sentences, kept rather than bent around a test set.
EARLIER_NAMES = {
    "bathroom humidity", "chores", "christmas tree", "den", "espresso machine", "front door",
    "garage door", "garden", "ground floor", "kitchen radio", "loft", "master bedroom",
    "morning routine", "nursery", "patio awning", "playroom", "porch", "roomba", "shopping list",
    "smoke detector", "study", "sunroom", "upstairs", "workshop",
}  # fmt: skip
EARLIER_SENTENCES = {"tell me a joke", "how tall is mount everest"}


def _norm(text: str) -> str:
    return " ".join(re.sub(r"[^\w'{} ]", " ", text.lower()).split())


def _heldout() -> tuple[set[str], set[str]]:
    names, sentences = set(), set()
    for f in DATA.glob("heldout_*.yaml"):
        data = yaml.safe_load(f.read_text())
        for key in ("areas", "floors", "entities"):
            for item in data.get(key) or []:
                names |= {n.casefold() for n in (item["name"], *(item.get("aliases") or []))}
        for test in data.get("tests") or []:
            sentences |= {_norm(s) for s in test.get("sentences") or []}
    return names, sentences


def test_heldout_sets_exist() -> None:
    names, sentences = _heldout()
    assert len(sentences) >= 600 and len(names) >= 100


def test_no_heldout_name_was_added_to_the_training_pools() -> None:
    held, _ = _heldout()
    pools = name_pools()
    ours = {n.casefold() for k in ("areas", "floors", "people", "brands") for n in pools[k]}
    ours |= {n.casefold() for d in pools["devices"] for n in d["names"] if "{" not in n}
    assert ours & held <= EARLIER_NAMES, sorted((ours & held) - EARLIER_NAMES)


def test_no_heldout_sentence_is_a_training_sentence() -> None:
    # Whole sentences only: a phrasing with placeholders ("did I leave the {e} on") is meant to match
    # how people speak, held-out sentences included; a literal sentence copied from a set is not.
    _, held = _heldout()
    lex = default_lexicon()
    literal = {
        _norm(s) for s in (*lex.not_commands, *lex.statements, *(x for p in lex.phrasings for x in p.say))
    }
    literal = {s for s in literal if "{" not in s}
    assert literal & held <= EARLIER_SENTENCES, sorted((literal & held) - EARLIER_SENTENCES)


def test_no_reason_clause_of_the_training_data_occurs_in_a_heldout_sentence() -> None:
    # The lexicon's reasons ("it's cold in here, ...") are laid on any command, so one that a
    # held-out sentence contains would hand that sentence's extra words to the model.
    _, held = _heldout()
    lex = default_lexicon()
    for clause in (*lex.context_before, *lex.context_after):
        said = _norm(clause)
        hits = [s for s in held if f" {said} " in f" {s} "]
        assert not hits, (clause, hits[:3])
