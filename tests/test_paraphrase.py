"""The paraphrase lexicon (export/llm/data/paraphrases.yaml): every phrasing can be composed over
random homes and its canonical sentence is matched by Home Assistant's own templates."""

from __future__ import annotations

import random

import pytest
from hassil import recognize_best

from casavox.export.llm.homes import random_home
from casavox.export.llm.paraphrase import _fill, compose, default_lexicon, parse_lexicon, statement
from casavox.runtime.intents.templates import slot_lists

LEXICON = default_lexicon()


@pytest.fixture(scope="module")
def homes() -> list:
    rng = random.Random(11)
    return [random_home(rng) for _ in range(60)]


@pytest.mark.parametrize("index", range(len(LEXICON.phrasings)), ids=lambda i: LEXICON.phrasings[i].means)
def test_every_phrasing_is_labelled_by_home_assistant(index: int, homes, ha_intents) -> None:
    phrasing = LEXICON.phrasings[index]
    rng = random.Random(index)
    for home in homes:
        said, means = _fill(phrasing, home, rng, LEXICON)
        if said is None:
            continue
        assert "{" not in said and "{" not in means, (said, means)
        if recognize_best(means, ha_intents, slot_lists=slot_lists(home), best_slot_name="name"):
            return
    pytest.fail(f"no home gave a labelled example of {phrasing.means!r}")


def test_numbers_and_amounts_are_said_as_people_say_them() -> None:
    lex = parse_lexicon(
        {
            "words": {},
            "amounts": {"halfway": 50},
            "phrasings": [
                {"for": "timer", "say": ["{m} minutes"], "means": "{m}"},
                {"for": "timer", "say": ["{amount}"], "means": "{amount}"},
            ],
        }
    )
    home = random_home(random.Random(1))
    rng = random.Random(3)
    said = [_fill(lex.phrasings[0], home, rng, lex) for _ in range(60)]
    assert any(s.split()[0].isalpha() for s, _ in said) and any(s.split()[0].isdigit() for s, _ in said)
    assert all(m.isdigit() for _, m in said)  # the canonical sentence always has the digits
    assert _fill(lex.phrasings[1], home, rng, lex) == ("halfway", "50")


def test_statements_name_the_homes_own_devices_and_rooms() -> None:
    rng = random.Random(5)
    home = random_home(rng)
    names = {n.lower() for e in home.exposed for n in e.names} | {a.name.lower() for a in home.areas}
    made = [s for _ in range(40) if (s := statement(home, rng))]
    assert made and all(any(n in s.lower() for n in names) for s in made)


def test_compose_skips_what_the_home_lacks() -> None:
    lex = parse_lexicon(
        {
            "words": {},
            "amounts": {},
            "phrasings": [{"for": "vacuum", "say": ["{e} go"], "means": "start {e}"}],
        }
    )
    home = random_home(random.Random(2), n_entities=(1, 1))
    has_vacuum = any(e.domain == "vacuum" for e in home.exposed)
    assert (compose(home, random.Random(0), lex) is not None) == has_vacuum
