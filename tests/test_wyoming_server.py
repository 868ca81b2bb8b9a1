"""The Wyoming server as an attacker and an unlucky network see it: many clients at once, malformed
and oversized events, too many connections, clients not on the allow-list, a server that must not
act. A real server on 127.0.0.1 (in this process, over a templates-only engine and a real SQLite
file) driven by the `wyoming` package's own client; raw bytes, where an event is malformed on
purpose, go through a plain socket with the package's own framing functions."""

from __future__ import annotations

import asyncio
import json
import logging
import subprocess
import sys
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
import yaml
from wyoming.asr import Transcribe, Transcript
from wyoming.audio import AudioChunk, AudioStart, AudioStop
from wyoming.client import AsyncTcpClient
from wyoming.error import Error
from wyoming.event import Event, async_read_event, async_write_event
from wyoming.handle import Handled, NotHandled
from wyoming.info import Describe, Info
from wyoming.intent import Intent, Recognize

from casavox.edge_app.assistant import Assistant
from casavox.edge_app.backends.sim import SimBackend
from casavox.edge_app.config import SafetySettings, load_config
from casavox.edge_app.state_store import StateStore
from casavox.edge_app.timers import Timers
from casavox.edge_app.wyoming_server import (
    ACTING_OFF,
    MAX_AUDIO_S,
    Services,
    WyomingError,
    exposure_warning,
    parse_allow,
    run_server,
)
from casavox.runtime.audio.io import SAMPLE_RATE
from casavox.runtime.home import home_from_dict
from casavox.runtime.intents.engine import IntentEngine
from tests.broker import free_port

ROOT = Path(__file__).resolve().parents[1]
HOME = yaml.safe_load(
    """
areas:
  - {name: Garage, id: garage}
  - {name: Kitchen, id: kitchen}
entities:
  - {name: Garage Light, id: light.garage_light, area: garage, state: "off"}
  - {name: Garage Door, id: cover.garage_door, area: garage, state: closed, attributes: {device_class: garage}}
  - {name: Kitchen Light, id: light.kitchen_light, area: kitchen, state: "off"}
"""
)


@dataclass
class Recorder:
    """A speech-to-text stand-in that says how much audio reached it: the bounds are the server's,
    checked before transcription, so no model is needed to test them."""

    samples: int = 0
    calls: int = 0

    def transcribe(self, audio: np.ndarray):
        self.samples, self.calls = len(audio), self.calls + 1
        return type("Text", (), {"text": f"{len(audio)} samples"})()


@pytest.fixture
def home_and_store(tmp_path: Path, ha_intents):
    home = home_from_dict(HOME)
    store = StateStore.open(tmp_path / "home.sqlite")
    engine = IntentEngine.build(home, None, ha_intents)  # templates only
    assistant = Assistant(
        home=home, understand=engine.parse, backend=SimBackend.open(home, store), timers=Timers(store),
        safety=SafetySettings(),
    )  # fmt: skip
    yield assistant, store
    store.close()


@asynccontextmanager
async def serving(services: Services, host: str = "127.0.0.1") -> AsyncIterator[int]:
    port = free_port()
    started = asyncio.Event()
    task = asyncio.create_task(run_server(services, f"tcp://{host}:{port}", started))
    try:
        await asyncio.wait_for(started.wait(), 10)
        yield port
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)


def run(services: Services, body: Callable[[int], object]):
    async def main():
        async with serving(services) as port:
            return await body(port)

    return asyncio.run(main())


async def reply(client, timeout: float = 30) -> Event | None:
    return await asyncio.wait_for(client.read_event(), timeout)


def states(store: StateStore) -> dict[str, str]:
    return {k: s for k, (s, _) in store.entities().items()}


# ---- 1: many clients at once ----------------------------------------------------------------
def test_twenty_clients_at_once_each_reply_matches_the_state(home_and_store) -> None:
    """20 clients x 3 list additions at once: 60 "Added" replies and exactly 60 items (it was 11
    errors, a dropped connection and 7 rows for 6 "Added")."""
    assistant, store = home_and_store

    async def client(port: int, c: int) -> list[str]:
        out = []
        for j in range(3):
            async with AsyncTcpClient("127.0.0.1", port) as wy:
                await wy.write_event(Transcript(text=f"add client {c} item {j} to my shopping list").event())
                event = await reply(wy)
                out.append(f"{event.type}: {event.data.get('text')}")
        return out

    async def body(port: int):
        return await asyncio.gather(*(client(port, c) for c in range(20)))

    replies = run(Services(None, assistant, max_clients=32), body)
    expected = [[f"handled: Added client {c} item {j}" for j in range(3)] for c in range(20)]
    assert replies == expected
    added = sorted(name for name, _ in store.items("shopping_list"))
    assert added == sorted(f"client {c} item {j}" for c in range(20) for j in range(3))
    assert store.read("SELECT count(*) FROM history")[0][0] == 60


def test_the_load_benchmark_runs_small_with_no_errors_and_replies_matching_the_state() -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "benchmarks.wyoming_load", "--clients", "8", "--commands", "5", "--timeout-s", "60"],
        cwd=ROOT, capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    report = json.loads(proc.stdout)
    assert proc.returncode == 0, report
    assert report["commands"] == report["answered"] == 40
    assert report["errors"] == 0 and report["mismatches"] == 0, report
    assert report["latency_ms"]["p95"] >= report["latency_ms"]["p50"] > 0  # reported, not asserted


# ---- 3: bounded audio and connections ---------------------------------------------------------
def _chunk(seconds: float, rate: int = 8000) -> AudioChunk:
    pcm = (np.sin(np.arange(int(seconds * rate)) / 5) * 3000).astype("<i2").tobytes()
    return AudioChunk(rate=rate, width=2, channels=1, audio=pcm)


def test_one_chunk_longer_than_the_cap_is_cut_before_it_is_converted(home_and_store) -> None:
    """A 40-s chunk was converted and transcribed whole; the utterance holds at most 30 s."""
    recorder = Recorder()

    async def body(port: int):
        async with AsyncTcpClient("127.0.0.1", port) as wy:
            for event in (
                Transcribe(),
                AudioStart(rate=8000, width=2, channels=1),
                _chunk(40.0),
                AudioStop(),
            ):
                await wy.write_event(event.event())
            return await reply(wy)

    event = run(Services(recorder, home_and_store[0]), body)
    assert Transcript.is_type(event.type)
    assert 0.99 * MAX_AUDIO_S * SAMPLE_RATE <= recorder.samples <= MAX_AUDIO_S * SAMPLE_RATE


def test_many_chunks_past_the_cap_are_not_kept(home_and_store) -> None:
    recorder = Recorder()

    async def body(port: int):
        async with AsyncTcpClient("127.0.0.1", port) as wy:
            await wy.write_event(AudioStart(rate=8000, width=2, channels=1).event())
            for _ in range(50):  # 50 s in 1-s chunks
                await wy.write_event(_chunk(1.0).event())
            await wy.write_event(AudioStop().event())
            return await reply(wy)

    run(Services(recorder, home_and_store[0]), body)
    assert recorder.calls == 1 and recorder.samples <= MAX_AUDIO_S * SAMPLE_RATE


def test_a_huge_payload_is_refused_before_it_is_read(home_and_store) -> None:
    """A 100 MB chunk was read, converted and transcribed (55-130 s of CPU, +0.9 GB)."""
    recorder = Recorder()

    async def body(port: int):
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        header = {"type": "audio-chunk", "data": {"rate": 16000, "width": 2, "channels": 1}}
        writer.write(json.dumps({**header, "payload_length": 100_000_000}).encode() + b"\n")
        writer.write(b"\0" * 65536)  # the start of it; the server must not wait for the rest
        await writer.drain()
        first = await asyncio.wait_for(async_read_event(reader), 10)
        after = await asyncio.wait_for(async_read_event(reader), 10)
        writer.close()
        return first, after

    first, after = run(Services(recorder, home_and_store[0]), body)
    assert (
        Error.is_type(first.type)
        and "payload_length" in first.data["text"]
        and "\n" not in first.data["text"]
    )
    assert first.data["code"] == "too-large"
    assert after is None  # framing lost: the connection is closed
    assert recorder.calls == 0


def test_connections_over_the_cap_get_an_error_and_are_closed(home_and_store) -> None:
    async def body(port: int):
        first, second = AsyncTcpClient("127.0.0.1", port), AsyncTcpClient("127.0.0.1", port)
        for wy in (first, second):
            await wy.connect()
            await wy.write_event(Describe().event())
            assert Info.is_type((await reply(wy)).type)
        async with AsyncTcpClient("127.0.0.1", port) as third:
            refused = await reply(third)
            closed = await reply(third)
        await first.disconnect()
        await asyncio.sleep(0.1)
        async with AsyncTcpClient("127.0.0.1", port) as again:  # a slot is free again
            await again.write_event(Describe().event())
            later = await reply(again)
        await second.disconnect()
        return refused, closed, later

    refused, closed, later = run(Services(None, home_and_store[0], max_clients=2), body)
    assert Error.is_type(refused.type) and refused.data["code"] == "busy"
    assert "too many connections (at most 2)" in refused.data["text"]
    assert closed is None and Info.is_type(later.type)


# ---- 4: who may connect, and a server that does not act --------------------------------------------
def test_a_client_not_on_the_allow_list_gets_an_error_and_is_disconnected(home_and_store) -> None:
    assistant, store = home_and_store

    async def body(port: int):
        async with AsyncTcpClient("127.0.0.1", port) as wy:
            await wy.write_event(Transcript(text="turn on the garage light").event())
            first = await reply(wy)
            return first, (await reply(wy) if Error.is_type(first.type) else None)

    refused, closed = run(Services(None, assistant, allow=parse_allow(["192.0.2.7", "10.0.0.0/8"])), body)
    assert Error.is_type(refused.type) and refused.data["code"] == "not-allowed"
    assert "127.0.0.1 is not allowed" in refused.data["text"]
    assert closed is None and states(store)["light.garage_light"] == "off"
    handled, _ = run(Services(None, assistant, allow=parse_allow(["192.0.2.7", "127.0.0.0/8"])), body)
    assert Handled.is_type(handled.type) and states(store)["light.garage_light"] == "on"


def test_allow_entries_must_be_addresses() -> None:
    with pytest.raises(WyomingError, match="'kitchen-pc' is not an IP address"):
        parse_allow(["kitchen-pc"])
    with pytest.raises(WyomingError, match="1 is not an address"):
        parse_allow([1])
    assert [str(n) for n in parse_allow(["::1", "192.168.1.0/24"])] == ["::1/128", "192.168.1.0/24"]


def test_without_acting_the_server_transcribes_and_recognizes_but_never_acts(home_and_store) -> None:
    assistant, store = home_and_store

    async def body(port: int):
        out = []
        for event in (
            Describe(),
            Transcript(text="turn on the garage light"),
            Recognize(text="turn on the garage light"),
        ):
            async with AsyncTcpClient("127.0.0.1", port) as wy:
                await wy.write_event(event.event())
                out.append(await reply(wy))
        return out

    info, handled, recognized = run(Services(None, assistant, act=False), body)
    assert Info.from_event(info).handle == [] and Info.from_event(info).intent and Info.from_event(info).asr
    assert NotHandled.is_type(handled.type) and NotHandled.from_event(handled).text == ACTING_OFF
    assert Intent.from_event(recognized).name == "HassTurnOn"
    assert states(store)["light.garage_light"] == "off"


def test_a_bind_beyond_loopback_is_warned_about_in_one_line(home_and_store, caplog) -> None:
    for uri in ("tcp://127.0.0.1:10300", "tcp://localhost:10300", "tcp://[::1]:10300", "unix:///run/c.sock"):
        assert exposure_warning(uri) is None, uri
    for uri in ("tcp://0.0.0.0:10300", "tcp://192.168.1.5:10300", "tcp://casavox.local:10300"):
        assert "anyone on the network can operate the home" in exposure_warning(uri), uri
    assert "--allow ADDRESS or --no-act" in exposure_warning("tcp://0.0.0.0:10300")
    quiet = exposure_warning("tcp://0.0.0.0:1", parse_allow(["::1"]), False)
    assert "the allowed clients can use speech-to-text and recognition" in quiet and "restrict" not in quiet
    services = Services(None, home_and_store[0], allow=parse_allow(["127.0.0.1"]))  # nobody else gets in

    async def served(host: str) -> None:
        async with serving(services, host):
            pass

    with caplog.at_level(logging.WARNING, "casavox.edge_app.wyoming_server"):
        asyncio.run(served("127.0.0.1"))
        assert caplog.records == []
        asyncio.run(served("0.0.0.0"))
    (record,) = caplog.records
    assert record.levelno == logging.WARNING and "\n" not in record.getMessage()
    assert "is not loopback-only" in record.getMessage() and "--no-act" in record.getMessage()


def test_the_flags_and_the_config_section_set_the_policy(tmp_path: Path) -> None:
    from casavox.edge_app.cli import build_parser
    from casavox.edge_app.daemon_cli import _wyoming_overrides

    toml = tmp_path / "casavox.toml"
    toml.write_text('[wyoming]\nallow = ["192.168.1.10"]\nact = false\nmax_clients = 4\n')
    assert load_config(toml).wyoming.allow == ("192.168.1.10",) and not load_config(toml).wyoming.act
    args = build_parser().parse_args(
        [
            "serve-wyoming",
            "--allow",
            "192.168.1.10",
            "--allow",
            "10.0.0.0/8",
            "--no-act",
            "--max-clients",
            "3",
        ]
    )
    settings = load_config(None, _wyoming_overrides(args, {})).wyoming
    assert (
        settings.allow == ("192.168.1.10", "10.0.0.0/8")
        and settings.act is False
        and settings.max_clients == 3
    )
    assert load_config(None, _wyoming_overrides(build_parser().parse_args(["serve-wyoming"]), {})).wyoming.act


# ---- 5: malformed events are answered, one line, and the connection goes on ---------------------------
BAD = [
    (Event("audio-chunk", {"rate": 0, "width": 2, "channels": 1}, b"\0\0"), "rate must be a whole number"),
    (Event("audio-chunk", {"rate": 16000, "width": 7, "channels": 1}, b"\0" * 14), "width must be"),
    (Event("audio-chunk", {"rate": 16000, "width": 2, "channels": 0}, b"\0\0"), "channels must be"),
    (
        Event("audio-chunk", {"rate": 16000, "width": 2, "channels": 2}, b"\0" * 6),
        "whole number of 4-byte frames",
    ),
    (Event("audio-start", {"rate": "fast", "width": 2, "channels": 1}), "rate must be"),
    (Event("transcript", {"text": 123}), "text must be a string, not int"),
    (Event("transcript", {}), "text must be a string, not NoneType"),
    (
        Event("transcript", {"text": "turn on the garage light", "context": "garage"}),
        "context must be an object",
    ),
    (
        Event("transcript", {"text": "turn on the garage light", "context": {"area": 5}}),
        "area must be a string",
    ),
    (Event("recognize", {"text": ["turn on"]}), "text must be a string, not list"),
    (Event("transcript", {"text": "x" * 5000}), "over 1000 characters"),
    (Event("transcribe", {"context": [1]}), "context must be an object"),
]


def test_each_malformed_event_gets_a_one_line_error_and_the_connection_stays_usable(home_and_store) -> None:
    assistant, store = home_and_store

    async def body(port: int):
        answers = []
        async with AsyncTcpClient("127.0.0.1", port) as wy:
            for event, _ in BAD:
                await wy.write_event(event)
                answers.append(await reply(wy))
            await wy.write_event(Describe().event())  # still the same connection
            answers.append(await reply(wy))
        return answers

    answers = run(Services(Recorder(), assistant), body)
    for (event, expected), answer in zip(BAD, answers[:-1], strict=True):
        assert Error.is_type(answer.type), (event, answer)
        text = Error.from_event(answer).text
        assert expected in text and "\n" not in text, (event, text)
    assert Info.is_type(answers[-1].type)
    assert states(store)["light.garage_light"] == "off"  # `text: 123` and the bad contexts acted on nothing


RAW = [
    (b"this is not json\n", "not JSON"),
    (b"[1, 2, 3]\n", "must be a JSON object"),
    (b'{"data": {}}\n', "type must be a non-empty string"),
    (b'{"type": 5}\n', "type must be a non-empty string"),
    (b'{"type": "transcript", "data": "text"}\n', "data must be a JSON object"),
    (b'{"type": "transcript", "data_length": 5}\nnope!', "event data is not JSON"),
]


def test_garbage_on_the_wire_is_answered_and_the_next_event_is_served(home_and_store) -> None:
    async def body(port: int):
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        answers = []
        for raw, _ in RAW:
            writer.write(raw)
            await writer.drain()
            answers.append(await asyncio.wait_for(async_read_event(reader), 10))
        await async_write_event(Transcript(text="turn on the kitchen light").event(), writer)
        answers.append(await asyncio.wait_for(async_read_event(reader), 10))
        writer.close()
        return answers

    answers = run(Services(None, home_and_store[0]), body)
    for (raw, expected), answer in zip(RAW, answers[:-1], strict=True):
        assert answer is not None and Error.is_type(answer.type), raw
        assert expected in answer.data["text"], (raw, answer.data)
    assert Handled.from_event(answers[-1]).text == "Turned on Kitchen Light"


@pytest.mark.parametrize(
    "header",
    [
        {"type": "audio-chunk", "payload_length": -1},
        {"type": "audio-chunk", "payload_length": "lots"},
        {"type": "transcript", "data_length": 10_000_000},
        {"type": "transcript", "data_length": True},
    ],
)
def test_lengths_that_lose_the_framing_are_answered_then_the_connection_closes(
    home_and_store, header
) -> None:
    async def body(port: int):
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        writer.write(json.dumps(header).encode() + b"\n")
        await writer.drain()
        answer = await asyncio.wait_for(async_read_event(reader), 10)
        closed = await asyncio.wait_for(async_read_event(reader), 10)
        writer.close()
        return answer, closed

    answer, closed = run(Services(None, home_and_store[0]), body)
    assert Error.is_type(answer.type) and closed is None
    assert ("data_length" in answer.data["text"]) or ("payload_length" in answer.data["text"])
