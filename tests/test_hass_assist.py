"""casavox inside a REAL Home Assistant's Assist pipeline: `casavox serve-wyoming` added through Home
Assistant's own Wyoming config flow, then pipelines run over Home Assistant's websocket API from
audio (casavox as speech-to-text) and with casavox as the conversation agent, judged by the states
Home Assistant shows. casavox reads the home from Home Assistant and acts through it (``backend =
"hass"``, no home file). Skipped with the reason where Home Assistant cannot run here; the
conversation-agent tests also where the installed Home Assistant registers no Wyoming agent
(before 2024.9).
"""

from __future__ import annotations

import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest

from tests.broker import free_port, wait_port
from tests.ha_instance import RunningHa

ROOT = Path(__file__).resolve().parents[1]


@dataclass
class Wyoming:
    port: int
    entry_id: str
    stt: str  # Home Assistant's speech-to-text entity for casavox
    agent: str | None  # its conversation entity (None: this Home Assistant registers none)
    log: Path


def _add_wyoming(ha: RunningHa, port: int) -> str:
    """Home Assistant's Wyoming config flow pointed at casavox; the loaded entry's id."""
    flow = ha.rest("POST", "/api/config/config_entries/flow", {"handler": "wyoming"})
    done = ha.rest(
        "POST", f"/api/config/config_entries/flow/{flow['flow_id']}", {"host": "127.0.0.1", "port": port}
    )
    assert done.get("type") == "create_entry", done
    entry_id = done["result"]["entry_id"]

    def loaded():
        entries = ha.rest("GET", "/api/config/config_entries/entry")
        return next(
            (e["state"] for e in entries if e["entry_id"] == entry_id and e["state"] == "loaded"), None
        )

    ha.wait_for(loaded, 60, "the Wyoming entry loaded")
    return entry_id


@pytest.fixture(scope="module")
def wyoming(home_assistant: RunningHa, full_bundle: Path, tmp_path_factory):
    ha = home_assistant
    work = tmp_path_factory.mktemp("casavox-wyoming")
    config = work / "casavox.toml"
    config.write_text(
        f'backend = "hass"\nstate = "{work / "state.sqlite"}"\n'
        f'[hass]\nurl = "{ha.url}"\ntoken_file = "{ha.token_file}"\nread_home = true\n'
    )
    port, log = free_port(), work / "casavox.log"
    cmd = [sys.executable, "-m", "casavox.edge_app.cli", "serve-wyoming", str(full_bundle), "--config", str(config),
           "--uri", f"tcp://127.0.0.1:{port}"]  # fmt: skip
    with open(log, "wb") as out:
        proc = subprocess.Popen(cmd, cwd=ROOT, stdout=out, stderr=subprocess.STDOUT)
    entry_id = None
    try:
        wait_port(port, timeout=180)
        entry_id = _add_wyoming(ha, port)
        registry = ha.ws_call({"type": "config/entity_registry/list"})
        mine = [e["entity_id"] for e in registry if e.get("config_entry_id") == entry_id]
        stt = next(e for e in mine if e.startswith("stt."))
        agent = next((e for e in mine if e.startswith("conversation.")), None)
        yield Wyoming(port, entry_id, stt, agent, log)
    finally:
        if entry_id is not None:
            ha.rest("DELETE", f"/api/config/config_entries/entry/{entry_id}")
        proc.terminate()
        proc.wait(timeout=30)


@pytest.fixture()
def house(home_assistant: RunningHa) -> RunningHa:
    home_assistant.reset()
    return home_assistant


def pipeline(ha: RunningHa, name: str, stt: str | None, agent: str) -> str:
    """A pipeline (created, or updated when it exists) with this speech-to-text and agent."""
    with ha.ws() as ws:
        listing = ws.call({"type": "assist_pipeline/pipeline/list"})["pipelines"]
        fields = {"name": name, "language": "en", "conversation_engine": agent, "conversation_language": "en",
                  "stt_engine": stt, "stt_language": "en" if stt else None, "tts_engine": None,
                  "tts_language": None, "tts_voice": None, "wake_word_entity": None, "wake_word_id": None}  # fmt: skip
        if any("prefer_local_intents" in p for p in listing):
            fields["prefer_local_intents"] = False  # every sentence to the agent, none to HA's own first
        same = next((p["id"] for p in listing if p["name"] == name), None)
        if same is None:
            return ws.call({"type": "assist_pipeline/pipeline/create", **fields})["id"]
        ws.call({"type": "assist_pipeline/pipeline/update", "pipeline_id": same, **fields})
        return same


def run(ha: RunningHa, pipeline_id: str, text: str | None = None, audio=None, conversation_id=None) -> dict:
    """One Assist pipeline run to its intent stage; what Home Assistant reported."""
    with ha.ws() as ws:
        mid, ws.next_id = ws.next_id, ws.next_id + 1
        message = {"type": "assist_pipeline/run", "id": mid, "pipeline": pipeline_id, "end_stage": "intent",
                   "timeout": 60}  # fmt: skip
        if text is not None:
            message.update(start_stage="intent", input={"text": text})
        else:
            message.update(start_stage="stt", input={"sample_rate": 16000})
        if conversation_id is not None:
            message["conversation_id"] = conversation_id
        ws.send(message)
        got: dict = {"events": []}
        while True:
            m = ws.recv()
            if m.get("id") != mid:
                continue
            if m["type"] == "result":
                assert m.get("success"), m
                continue
            event, data = m["event"]["type"], m["event"].get("data") or {}
            got["events"].append(event)
            if event == "run-start" and audio is not None:
                handler = data["runner_data"]["stt_binary_handler_id"]
                # the room before and after the words, as a satellite streams it: Home Assistant's own
                # voice activity detection needs a moment of quiet to find where speech starts
                quiet = b"\0\0" * 8000
                pcm = quiet * 2 + (np.asarray(audio) * 32767).astype("<i2").tobytes() + quiet * 2
                for i in range(0, len(pcm), 640):  # 20 ms chunks, as a satellite streams them
                    ws.send_bytes(bytes([handler]) + pcm[i : i + 640])
                ws.send_bytes(bytes([handler]))  # the end of the audio
            elif event == "stt-end":
                got["stt"] = data["stt_output"]["text"]
            elif event == "intent-end":
                output = data["intent_output"]
                got["response"] = output["response"]
                got["speech"] = output["response"].get("speech", {}).get("plain", {}).get("speech")
                got["conversation_id"] = output.get("conversation_id")
            elif event == "error":
                pytest.fail(f"pipeline error {data}")
            elif event == "run-end":
                return got


def needs_agent(wyoming: Wyoming, ha: RunningHa) -> str:
    if wyoming.agent is None:
        pytest.skip(
            f"Home Assistant {ha.version} registers no Wyoming conversation agent (2024.9 and later do)"
        )
    return wyoming.agent


def test_casavox_is_home_assistants_speech_to_text(wyoming, house, say) -> None:
    agents = [a["id"] for a in house.ws_call({"type": "conversation/agent/list"})["agents"]]
    own = next(a for a in ("conversation.home_assistant", "homeassistant") if a in agents)
    pid = pipeline(house, "casavox speech, Home Assistant agent", wyoming.stt, own)
    # (Whisper tiny.en hears this Piper voice's bare "Turn on the kitchen light." as "on the kitchen
    # light": an ASR miss the spoken benchmark counts, not what this test is about)
    got = run(house, pid, audio=say("Please turn on the kitchen light."))
    assert got["stt"].lower().rstrip(".") == "please turn on the kitchen light", got
    house.shows("light.kitchen_light", "on")


def test_casavox_as_the_agent_acts_from_audio_through_home_assistant(wyoming, house, say) -> None:
    agent = needs_agent(wyoming, house)
    pid = pipeline(house, "casavox", wyoming.stt, agent)
    got = run(house, pid, audio=say("Set the kitchen light to 40 percent."))
    assert "40" in got["stt"], got
    light = house.shows("light.kitchen_light", "on")
    assert light["attributes"]["brightness"] == 102, light  # 40% of 255, as Home Assistant rounds it
    got = run(house, pid, text="set the living room blinds to 50%")
    assert got["response"]["response_type"] == "action_done", got
    assert house.shows("cover.living_room_blinds", "open")["attributes"]["current_position"] == 50
    assert got["speech"], got


def sends_conversation_id(ha: RunningHa) -> bool:
    """Whether this Home Assistant's Wyoming library puts the conversation id on the wire: its agent
    always passes ``context={"conversation_id": ...}``, but wyoming 1.5.4 (Home Assistant 2025.4)
    drops the context when it writes a transcript, so casavox cannot know the next turn's speaker."""
    code = "from wyoming.asr import Transcript; print('context' in Transcript('x', context={'a': 1}).event().data)"
    out = subprocess.run([str(ha.python), "-c", code], capture_output=True, text=True, timeout=60)
    return out.stdout.strip() == "True"


def test_a_lock_is_refused_where_home_assistant_cannot_ask_back(wyoming, house) -> None:
    pid = pipeline(house, "casavox", wyoming.stt, needs_agent(wyoming, house))
    if sends_conversation_id(house):
        pytest.skip(f"Home Assistant {house.version} sends its conversation id: the follow-up test applies")
    got = run(house, pid, text="unlock the front door")
    assert got["speech"] == "For safety, Front Door can't be changed this way", got
    assert got["response"]["response_type"] == "error"
    time.sleep(0.5)
    assert house.state("lock.front_door")["state"] == "locked"


def test_a_lock_is_asked_about_and_confirmed_in_the_next_turn(wyoming, house) -> None:
    pid = pipeline(house, "casavox", wyoming.stt, needs_agent(wyoming, house))
    if not sends_conversation_id(house):
        pytest.skip(
            f"Home Assistant {house.version}'s Wyoming library drops the conversation id from what it sends, "
            "so no follow-up turn can be matched (refused instead: the test above); the protocol path is "
            "tests/test_wyoming.py::test_a_lock_is_confirmed_by_the_next_turn_of_the_same_conversation"
        )
    asked = run(house, pid, text="unlock the front door")
    assert asked["speech"] == "Are you sure you want to unlock the Front Door?", asked
    time.sleep(0.5)
    assert house.state("lock.front_door")["state"] == "locked"
    elsewhere = run(house, pid, text="yes")  # a new conversation: nothing is pending there
    assert elsewhere["speech"] == "There is nothing to confirm", elsewhere
    assert house.state("lock.front_door")["state"] == "locked"
    run(house, pid, text="yes", conversation_id=asked["conversation_id"])
    house.shows("lock.front_door", "unlocked")


def test_small_talk_and_absent_devices_change_nothing(wyoming, house) -> None:
    pid = pipeline(house, "casavox", wyoming.stt, needs_agent(wyoming, house))
    before = {e: house.state(e)["state"] for e in house.entities}
    for text in ("what a lovely day it is", "turn on the hot tub", "okay do it"):
        got = run(house, pid, text=text)
        assert got["response"]["response_type"] == "error", (text, got)
    time.sleep(0.5)
    assert {e: house.state(e)["state"] for e in house.entities} == before
