"""Semantic endpointing: unfinished words are waited out, finished commands act at the first pause.

The rules one by one on real results over the example home, the endpointer's hold and release on
the real silero VAD, and the daemon end to end on Piper speech with real models and SQLite.
"""

from __future__ import annotations

import numpy as np
import pytest

from casavox.edge_app.early_action import RULE_NAMES, EarlyContext, early_blocker, may_go_on
from casavox.edge_app.endpointing import Endpointer, VadSettings
from casavox.edge_app.sources import frames_of
from casavox.runtime.audio.io import SAMPLE_RATE
from casavox.runtime.home import load_home
from casavox.runtime.intents.result import Intent, IntentResult
from tests.test_daemon import HOME, states

SR = SAMPLE_RATE


@pytest.fixture(scope="module")
def home():
    return load_home(HOME)


def context(home, intents, text, heard=None, source="template", confidence=1.0, **kw) -> EarlyContext:
    result = IntentResult(text, intents, source, confidence)
    fields = {"sensitive": False, "question_pending": False, "area": None} | kw
    return EarlyContext(result=result, heard=heard if heard is not None else text, home=home, **fields)


DESK_ON = [Intent("HassTurnOn", {"name": "Desk Lamp"})]


def test_a_finished_named_command_may_act_early(home) -> None:
    c = context(home, DESK_ON, "Turn on the desk lamp.")
    assert early_blocker(c) == "" and not may_go_on(c)


def test_each_rule_can_hold_a_result_back_and_be_switched_off(home) -> None:
    cases = {
        "understood": context(home, [], "Turn off the"),
        "confident": context(home, DESK_ON, "Turn on the desk lamp.", source="llm", confidence=0.8),
        "not_sensitive": context(home, DESK_ON, "Turn on the desk lamp.", sensitive=True),
        "sentence_closed": context(home, DESK_ON, "Turn on the desk lamp", heard="Turn on the desk lamp..."),
        "names_target": context(
            home,
            [Intent("HassTurnOn", {"area": "Bedroom", "domain": "light"})],
            "Turn on the light.",
            area="bedroom",
        ),
    }
    assert set(cases) == set(RULE_NAMES)
    for rule, c in cases.items():
        assert early_blocker(c) == rule
        assert early_blocker(c, without=[rule]) != rule
    assert (
        early_blocker(context(home, DESK_ON, "Turn on the desk lamp.", question_pending=True)) == "understood"
    )
    assert (
        early_blocker(context(home, DESK_ON, "Turn on the desk lamp.", source="llm", confidence=0.95)) == ""
    )


def test_a_place_the_words_say_names_the_target_and_the_speakers_room_does_not(home) -> None:
    said = context(
        home,
        [Intent("HassTurnOn", {"area": "Kitchen", "domain": "light"})],
        "Turn on the lights in the kichen.",
    )
    assert not may_go_on(said)  # "kichen": the place as ASR spells it still counts
    speakers = context(
        home, [Intent("HassTurnOn", {"area": "Bedroom", "domain": "light"})], "Turn on the light."
    )
    assert may_go_on(speakers)
    lights = [Intent("HassTurnOff", {"name": "all", "domain": "light"})]
    assert not may_go_on(context(home, lights, "Turn off every light in the house."))
    assert may_go_on(context(home, lights, "Turn off all the lights."))  # "... in the kitchen" may follow
    listed = context(
        home, [Intent("HassShoppingListAddItem", {"item": "bread"})], "Add bread to my shopping list."
    )
    assert not may_go_on(listed)  # the list is implicit: nothing more to name
    timer = context(home, [Intent("HassStartTimer", {"minutes": 5})], "Set a timer for five minutes.")
    assert not may_go_on(timer) and early_blocker(timer) == ""
    assert may_go_on(context(home, [], "Set a timer for"))


# ---- the endpointer's hold, on the real VAD ----------------------------------------------------


def trimmed(audio: np.ndarray) -> np.ndarray:
    loud = np.flatnonzero(np.abs(audio) > 0.01)
    return audio[loud[0] : loud[-1] + 1]


def silence(seconds: float) -> np.ndarray:
    return np.zeros(int(seconds * SR), np.float32)


@pytest.fixture(scope="module")
def vad():
    from casavox.runtime.audio.vad import SileroVad

    return SileroVad.load()


def endpoints(vad, audio, on_speculate) -> list[str]:
    """Event kinds; ``on_speculate(endpointer)`` is called at each speculation (the daemon's part)."""
    vad.reset()
    ep = Endpointer(VadSettings())
    kinds = []
    for frame in frames_of(audio):
        for e in ep.push(frame, vad(frame)):
            kinds.append(e.kind)
            if e.kind == "speculate":
                ended = on_speculate(ep)
                kinds += ["end"] if ended is not None else []
    return kinds


def test_a_held_pause_outlasts_the_trailing_silence_and_a_released_one_does_not(vad, say) -> None:
    a, b = trimmed(say("Turn off the")), trimmed(say("kitchen lights."))
    audio = np.concatenate([silence(0.3), a, silence(0.5), b, silence(1.2)])
    assert endpoints(vad, audio, lambda ep: None).count("end") == 2  # 500 ms > 250 ms: split
    held = endpoints(vad, audio, lambda ep: ep.hold())
    assert held.count("end") == 1 and "resume" in held  # 500 ms < 800 ms: one utterance
    # released at once: the plain trailing silence ends it, as without a hold
    assert endpoints(vad, audio, lambda ep: (ep.hold(), ep.release())[1]).count("end") == 2


def test_release_after_a_long_speculation_ends_the_utterance_at_once(vad, say) -> None:
    audio = np.concatenate([silence(0.3), trimmed(say("Turn on the desk lamp.")), silence(0.4)])
    vad.reset()
    ep = Endpointer(VadSettings())
    ended = None
    for frame in frames_of(audio):
        for e in ep.push(frame, vad(frame)):
            if e.kind == "speculate":
                ep.hold()
            assert e.kind != "end"  # held: 400 ms of silence do not end it
    ended = ep.release()  # the speculation finished only now: the silence is already long enough
    assert ended is not None and ended.reason == "silence" and not ep.in_speech


# ---- the daemon ---------------------------------------------------------------------------------


def test_a_hesitation_after_a_function_word_is_one_command(make, say) -> None:
    audio = np.concatenate(
        [
            silence(0.5),
            trimmed(say("Turn off the")),
            silence(0.5),
            trimmed(say("kitchen lights.")),
            silence(1.5),
        ]
    )
    daemon, store = make()
    before = states(store)
    assert daemon.run(frames_of(audio)) == 1
    after = states(store)
    assert after["light.kitchen_ceiling"] == "off" and after["light.kitchen_counter"] == "off"
    assert {k for k in after if after[k] != before[k]} == {"light.kitchen_ceiling", "light.kitchen_counter"}
    # without semantic endpointing the pause splits it: "Turn off the" is asked about, then the rest
    plain, _ = make(vad={"unfinished_silence_ms": 0}, state=str(store.path) + ".plain")
    assert plain.run(frames_of(audio)) == 2
    assert plain.records[0]["outcome"] != "acted"


def test_act_early_acts_at_the_first_pause_but_not_on_the_speakers_room(make, say) -> None:
    daemon, store = make(safety={"act_early": True}, area="bedroom")
    audio = np.concatenate(
        [
            silence(0.5), trimmed(say("Turn on the desk lamp.")), silence(1.5),
            trimmed(say("Turn on the light.")), silence(0.45), trimmed(say("in the kids room.")), silence(1.5),
        ]
    )  # fmt: skip
    before = states(store)
    daemon.run(frames_of(audio))
    after = states(store)
    assert [r["end"] for r in daemon.records][0] == "early"
    assert after["light.desk_lamp"] == "on"
    # "Turn on the light." names no room: not acted on early in the bedroom; the kids room it was
    assert after["light.night_light"] == "on"
    assert after["light.bedroom_lamp"] == before["light.bedroom_lamp"]
    assert daemon.records[-1]["end"] != "early"
