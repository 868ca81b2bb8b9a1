"""`casavox serve-wyoming` as Home Assistant sees it, driven by the `wyoming` client library."""

from __future__ import annotations

import asyncio
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from wyoming.asr import Transcribe, Transcript
from wyoming.audio import AudioChunk, AudioStart, AudioStop
from wyoming.client import AsyncTcpClient
from wyoming.handle import Handled
from wyoming.info import Describe, Info
from wyoming.intent import Intent, NotRecognized, Recognize

from tests.broker import free_port, wait_port

ROOT = Path(__file__).resolve().parents[1]
HOME = ROOT / "examples" / "home.yaml"


@pytest.fixture(scope="module")
def server(full_bundle, tmp_path_factory):
    port = free_port()
    state = tmp_path_factory.mktemp("wyoming") / "s.sqlite"
    cmd = [
        sys.executable, "-m", "casavox.edge_app.cli", "serve-wyoming", str(full_bundle), "--home", str(HOME),
        "--state", str(state), "--uri", f"tcp://127.0.0.1:{port}",
    ]  # fmt: skip
    proc = subprocess.Popen(cmd, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        wait_port(port, timeout=120)
        yield port, state
    finally:
        proc.terminate()
        proc.wait(timeout=30)


async def exchange(port: int, events: list, reply_type: str | tuple):
    async with AsyncTcpClient("127.0.0.1", port) as client:
        for event in events:
            await client.write_event(event.event())
        while True:
            event = await asyncio.wait_for(client.read_event(), timeout=60)
            assert event is not None, "server closed the connection"
            if event.type in ((reply_type,) if isinstance(reply_type, str) else reply_type):
                return event


def test_describe(server) -> None:
    event = asyncio.run(exchange(server[0], [Describe()], "info"))
    info = Info.from_event(event)
    assert info.asr[0].models[0].languages == ["en"] and info.asr[0].installed
    assert info.intent and info.handle


def test_transcribe_audio(server, say) -> None:
    audio = say("Turn off the lights in the kitchen.")
    pcm = (audio * 32767).astype("<i2").tobytes()
    chunks = [
        AudioChunk(rate=16000, width=2, channels=1, audio=pcm[i : i + 2048]) for i in range(0, len(pcm), 2048)
    ]
    events = [Transcribe(language="en"), AudioStart(rate=16000, width=2, channels=1), *chunks, AudioStop()]
    event = asyncio.run(exchange(server[0], events, "transcript"))
    assert Transcript.from_event(event).text == "Turn off the lights in the kitchen."


def test_transcribe_resamples_other_formats(server, say) -> None:
    import soxr

    audio = soxr.resample(say("Turn on the ceiling fan."), 16000, 44100)
    stereo = np.repeat((audio * 32767).astype("<i2")[:, None], 2, axis=1).tobytes()
    chunks = [
        AudioChunk(rate=44100, width=2, channels=2, audio=stereo[i : i + 8192])
        for i in range(0, len(stereo), 8192)
    ]
    events = [Transcribe(), AudioStart(rate=44100, width=2, channels=2), *chunks, AudioStop()]
    text = Transcript.from_event(asyncio.run(exchange(server[0], events, "transcript"))).text
    assert text.lower().rstrip(".") == "turn on the ceiling fan"


def test_recognize(server) -> None:
    event = asyncio.run(
        exchange(server[0], [Recognize(text="set the bedroom lamp to 40%")], ("intent", "not-recognized"))
    )
    intent = Intent.from_event(event)
    assert intent.name == "HassLightSet"
    assert {e.name: e.value for e in intent.entities} == {"name": "Bedroom Lamp", "brightness": 40}
    event = asyncio.run(
        exchange(server[0], [Recognize(text="what is the meaning of life")], ("intent", "not-recognized"))
    )
    assert NotRecognized.is_type(event.type)


def test_handle_acts_on_the_home_and_refuses_locks(server) -> None:
    import sqlite3

    port, state = server
    event = asyncio.run(
        exchange(port, [Transcript(text="turn on the desk lamp")], ("handled", "not-handled"))
    )
    assert Handled.is_type(event.type) and Handled.from_event(event).text == "Turned on Desk Lamp"
    conn = sqlite3.connect(state)
    assert conn.execute("SELECT state FROM entities WHERE entity_id='light.desk_lamp'").fetchone() == ("on",)
    event = asyncio.run(
        exchange(port, [Transcript(text="unlock the front door")], ("handled", "not-handled"))
    )
    assert event.type == "not-handled"
    assert conn.execute("SELECT state FROM entities WHERE entity_id='lock.front_door'").fetchone() == (
        "locked",
    )
    conn.close()


async def series(port: int, events: list, last: str) -> list:
    """Every event the server sends until one of type ``last``."""
    got = []
    async with AsyncTcpClient("127.0.0.1", port) as client:
        for event in events:
            await client.write_event(event.event())
        while not got or got[-1].type != last:
            event = await asyncio.wait_for(client.read_event(), timeout=60)
            assert event is not None, "server closed the connection"
            got.append(event)
    return got


def test_describe_says_handling_controls_the_home_and_transcripts_are_not_streamed(server) -> None:
    info = Info.from_event(asyncio.run(exchange(server[0], [Describe()], "info")))
    assert info.handle[0].supports_home_control is True
    assert info.asr[0].supports_transcript_streaming is False


def test_a_sentence_with_two_commands_is_recognized_as_an_intents_series(server) -> None:
    got = asyncio.run(
        series(
            server[0], [Recognize(text="turn on the desk lamp and turn off the ceiling fan")], "intents-stop"
        )
    )
    assert [e.type for e in got] == ["intents-start", "intent", "intent", "intents-stop"]
    assert [Intent.from_event(e).name for e in got[1:3]] == ["HassTurnOn", "HassTurnOff"]


def _lock_state(state: Path) -> str:
    import sqlite3

    with sqlite3.connect(state) as conn:
        return conn.execute("SELECT state FROM entities WHERE entity_id='lock.front_door'").fetchone()[0]


def test_a_lock_is_confirmed_by_the_next_turn_of_the_same_conversation(server) -> None:
    port, state = server
    asked = asyncio.run(
        exchange(port, [Transcript("unlock the front door", context={"conversation_id": "c-1"})], "handled")
    )
    assert Handled.from_event(asked).text == "Are you sure you want to unlock the Front Door?"
    assert asked.data["context"] == {"conversation_id": "c-1"}
    # another conversation's "yes" answers nothing, and does not use up c-1's question
    other = asyncio.run(
        exchange(port, [Transcript("yes", context={"conversation_id": "c-2"})], ("handled", "not-handled"))
    )
    assert other.type == "not-handled" and _lock_state(state) == "locked"
    done = asyncio.run(
        exchange(port, [Transcript("yes", context={"conversation_id": "c-1"})], ("handled", "not-handled"))
    )
    assert done.type == "handled" and _lock_state(state) == "unlocked"
    asyncio.run(exchange(port, [Transcript("lock the front door")], ("handled", "not-handled")))
    assert _lock_state(state) == "unlocked"  # without a conversation: refused, not asked
    asyncio.run(
        exchange(port, [Transcript("lock the front door", context={"conversation_id": "c-3"})], "handled")
    )
    asyncio.run(exchange(port, [Transcript("yes", context={"conversation_id": "c-3"})], "handled"))
    assert _lock_state(state) == "locked"
