"""The fault matrix: each fault, what the user hears, what the log says, and that state and reply agree.

One row per fault in ``FAULTS``, each run against the real part (a real mosquitto, a real Home
Assistant (tests/conftest.py ``home_assistant``), a real SQLite file, a real Wyoming server, real bundles), with a
templates-only intent engine where a conversation turn is needed. The expected strings are the
ones the code really says. ``docs/faults.md`` is :func:`render_table` of the same rows, and
``test_the_doc_is_the_table`` keeps the two from drifting.
"""

from __future__ import annotations

import asyncio
import io
import json
import os
import shutil
import socket
import sqlite3
import subprocess
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pytest
import yaml

from casavox.edge_app.assistant import Assistant
from casavox.edge_app.backends.sim import SimBackend
from casavox.edge_app.state_store import StateStore
from casavox.edge_app.timers import Timers
from casavox.runtime.home import home_from_dict
from casavox.runtime.intents.engine import IntentEngine

ROOT = Path(__file__).resolve().parents[1]
DOC = ROOT / "docs" / "faults.md"

HOME = """
areas:
  - {name: Garage, id: garage}
entities:
  - {name: Garage Light, id: light.garage_light, area: garage, state: "off"}
"""
ON = "turn on the garage light"
HA_HOME = """
areas:
  - {name: Kitchen, id: kitchen}
entities:
  - {name: Coffee Maker, id: switch.coffee_maker, area: kitchen, state: "off"}
"""  # an entity of the real Home Assistant's house (tests/ha_instance.py)
LIGHT_SET = "casavox/light/garage_light/set"
LAMPS = ["Desk", "Floor", "Porch", "Hall", "Attic", "Cellar", "Patio", "Pantry", "Study", "Nursery"]


@dataclass
class Env:
    """What a scenario gets: a folder, the templates-only engine for a home, and clean-up."""

    tmp_path: Path
    ha_intents: object
    monkeypatch: pytest.MonkeyPatch
    request: pytest.FixtureRequest | None = None  # for the rows that need a session fixture
    cleanups: list[Callable[[], None]] = field(default_factory=list)

    def home(self, text: str = HOME):
        return home_from_dict(yaml.safe_load(text))

    def assistant(self, backend, home=None, store: StateStore | None = None) -> Assistant:
        home = home or self.home()
        engine = IntentEngine.build(home, None, self.ha_intents)  # templates only
        store = store or self.store("timers.sqlite")
        return Assistant(
            home=home,
            understand=lambda text, area: engine.parse(text, area),
            backend=backend,
            timers=Timers(store),
        )

    def store(self, name: str, **kwargs) -> StateStore:
        store = StateStore.open(self.tmp_path / name, **kwargs)
        self.cleanups.append(store.close)
        return store

    def sim(self, name: str = "home.sqlite", **kwargs) -> tuple[Assistant, StateStore]:
        home = self.home()
        store = self.store(name, **kwargs)
        return self.assistant(SimBackend.open(home, store), home, store), store


@dataclass
class Observed:
    """What a scenario saw: the replies the user got, whether state and reply agree, and log lines
    written elsewhere than Python's logging (the daemon's JSON log)."""

    replies: list[str]
    agree: bool
    why: str = ""
    extra_log: str = ""


@dataclass(frozen=True)
class Fault:
    id: str
    fault: str
    hears: tuple[str, ...]  # substrings of the replies, in the doc as quoted fragments
    log: tuple[str, ...]  # substrings of the log
    agree: str  # how state and reply agree (in words; the scenario checks it)
    scenario: Callable[[Env], Observed] | None
    hears_note: str = ""  # said in the doc before (or instead of) the fragments
    log_note: str = ""
    skip: str = ""  # why this row is not run here


# ---- MQTT ------------------------------------------------------------------------------------
def _mqtt(env: Env, **settings):
    from casavox.edge_app.backends.mqtt import MqttBackend, MqttSettings
    from tests.broker import Broker, Recorder

    folder = env.tmp_path / "broker"
    folder.mkdir(exist_ok=True)
    broker = Broker(folder).start()
    env.cleanups.append(broker.stop)
    recorder = Recorder(broker.port)
    env.cleanups.append(recorder.close)
    recorder.publish("casavox/light/garage_light/state", "OFF", retain=True)
    home = env.home()
    backend = MqttBackend(home, MqttSettings(port=broker.port, **settings))
    env.cleanups.insert(0, backend.close)
    deadline = time.monotonic() + 5
    while backend.state("light.garage_light") is None and time.monotonic() < deadline:
        time.sleep(0.02)
    return broker, recorder, backend, env.assistant(backend, home)


def _commands(recorder) -> list[tuple[str, str]]:
    return [m for m in recorder.messages if m[0].endswith("/set")]


def broker_killed(env: Env) -> Observed:
    broker, recorder, backend, assistant = _mqtt(env)
    recorder.close()
    env.cleanups.remove(recorder.close)
    broker.stop()
    time.sleep(0.3)
    turn = assistant.handle(ON)
    left = len(backend.client._out_messages)  # paho's resend queue: dropped, cannot fire later
    agree = turn.outcome == "failed" and not turn.delivered and left == 0
    agree = agree and backend.state("light.garage_light").state == "off"
    return Observed([turn.reply], agree, f"{turn.to_json()}, {left} queued")


def broker_hung(env: Env) -> Observed:
    broker, recorder, _backend, assistant = _mqtt(env, ack_timeout_s=0.5)
    broker.pause()
    turn = assistant.handle(ON)
    broker.resume()
    recorder.wait_for(2, timeout=2)
    got = _commands(recorder)
    # "not sure" is the truth: the broker's host had acknowledged the bytes, so it may still act
    agree = turn.outcome == "unknown" and not turn.delivered and len(got) <= 1
    return Observed([turn.reply], agree, f"{turn.to_json()}, broker got {got}")


def broker_restarted(env: Env) -> Observed:
    from tests.broker import Recorder

    broker, recorder, backend, assistant = _mqtt(env)
    first = assistant.handle(ON)
    recorder.close()
    env.cleanups.remove(recorder.close)
    broker.stop()
    time.sleep(0.3)
    during = assistant.handle("turn off the garage light")
    broker.start()
    recorder = Recorder(broker.port)
    env.cleanups.append(recorder.close)
    deadline = time.monotonic() + 40  # paho's reconnect backoff
    while not backend._connected.is_set() and time.monotonic() < deadline:
        time.sleep(0.1)
    after = assistant.handle(ON)
    recorder.wait_for(2, timeout=2)  # the one new command, and time for a replay to show up
    got = _commands(recorder)
    # the "turn off" that failed during the outage is not replayed: only the new command arrives
    agree = (
        first.delivered
        and not during.delivered
        and after.delivered
        and got == [(LIGHT_SET, '{"state": "ON"}')]
    )
    return Observed([first.reply, during.reply, after.reply], agree, f"new broker got {got}")


# ---- Home Assistant ---------------------------------------------------------------------------
def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]  # closed when the socket is: nothing listens there


def hass_unreachable(env: Env) -> Observed:
    from casavox.edge_app.backends.hass import HassBackend, HassSettings

    env.monkeypatch.setenv("CASAVOX_HASS_TOKEN", "a-token")
    backend = HassBackend(HassSettings(url=f"http://127.0.0.1:{_closed_port()}", timeout_s=1))
    turn = env.assistant(backend).handle(ON)
    return Observed([turn.reply], turn.outcome == "failed" and not turn.delivered, str(turn.to_json()))


def hass_token_rejected(env: Env) -> Observed:
    """Against the session's real Home Assistant (tests/conftest.py ``home_assistant``)."""
    from casavox.edge_app.backends.hass import HassBackend, HassSettings

    ha = env.request.getfixturevalue("home_assistant")
    before = ha.state("switch.coffee_maker")["state"]
    env.monkeypatch.setenv("CASAVOX_HASS_TOKEN", "wrong-token")
    backend = HassBackend(HassSettings(url=ha.url))
    turn = env.assistant(backend, env.home(HA_HOME)).handle("turn on the coffee maker")
    after = ha.state("switch.coffee_maker")["state"]
    agree = turn.outcome == "failed" and after == before and "wrong-token" not in turn.reply
    return Observed([turn.reply], agree, f"{turn.to_json()}, coffee maker {before} -> {after}")


# ---- the state file ---------------------------------------------------------------------------
def _light(path: Path) -> str:
    conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    try:
        return conn.execute("SELECT state FROM entities WHERE entity_id = 'light.garage_light'").fetchone()[0]
    finally:
        conn.close()


def state_locked(env: Env) -> Observed:
    assistant, store = env.sim(lock_timeout_s=0.2)
    other = sqlite3.connect(store.path, isolation_level=None)
    other.execute("BEGIN IMMEDIATE")  # another process holds the write lock
    try:
        turn = assistant.handle(ON)
    finally:
        other.execute("ROLLBACK")
        other.close()
    agree = turn.outcome == "failed" and _light(store.path) == "off"
    return Observed([turn.reply], agree, str(turn.to_json()))


def state_read_only(env: Env) -> Observed:
    assistant, store = env.sim()
    path = store.path
    store.close()
    env.cleanups.remove(store.close)
    for extra in path.parent.glob(path.name + "-*"):
        extra.unlink()
    if os.geteuid() != 0:
        path.chmod(0o400)
    else:  # root ignores file modes; an immutable file is read-only even to root
        done = subprocess.run(["chattr", "+i", str(path)], capture_output=True, text=True)
        if done.returncode != 0:
            pytest.skip(f"running as root and chattr +i is unavailable here ({done.stderr.strip()})")
        env.cleanups.append(lambda: subprocess.run(["chattr", "-i", str(path)], check=False))
    home = env.home()
    ro = env.store(path.name)
    turn = env.assistant(SimBackend.open(home, ro), home, ro).handle(ON)
    agree = turn.outcome == "failed" and _light(path) == "off"
    return Observed([turn.reply], agree, str(turn.to_json()))


def state_deleted(env: Env) -> Observed:
    assistant, store = env.sim()
    for f in [store.path, *store.path.parent.glob(store.path.name + "-*")]:
        f.unlink()
    turn = assistant.handle(ON)
    # nothing went into the unlinked inode as if done, and no fresh file pretends to be the home
    agree = turn.outcome == "failed" and not store.path.exists()
    return Observed([turn.reply], agree, str(turn.to_json()))


def state_replaced_by_directory(env: Env) -> Observed:
    assistant, store = env.sim()
    for f in [store.path, *store.path.parent.glob(store.path.name + "-*")]:
        f.unlink()
    store.path.mkdir()
    turn = assistant.handle(ON)
    agree = turn.outcome == "failed" and store.path.is_dir() and not any(store.path.iterdir())
    return Observed([turn.reply], agree, str(turn.to_json()))


# ---- audio ------------------------------------------------------------------------------------
def corrupt_audio(env: Env) -> Observed:
    import soundfile

    from casavox.edge_app.sources import GAP_S, WavSource
    from casavox.runtime.audio.io import SAMPLE_RATE
    from casavox.runtime.audio.vad import FRAME

    bad, good = env.tmp_path / "bad.wav", env.tmp_path / "good.wav"
    bad.write_bytes(b"RIFF\x00\x00\x00\x00WAVEgarbage" + os.urandom(200))
    tone = (0.3 * np.sin(np.arange(SAMPLE_RATE // 2) * 2 * np.pi * 440 / SAMPLE_RATE)).astype(np.float32)
    soundfile.write(good, tone, SAMPLE_RATE)
    frames = list(WavSource([bad, good]))
    expected = -(-(len(tone) + int(GAP_S * SAMPLE_RATE)) // FRAME)
    served = np.concatenate(frames)[: len(tone)]
    agree = len(frames) == expected and np.allclose(served, tone, atol=1e-3)
    return Observed([], agree, f"{len(frames)} frames, expected {expected} (the good file's)")


def endless_speech(env: Env) -> Observed:
    from casavox.edge_app.config import Config
    from casavox.edge_app.daemon import Daemon
    from casavox.edge_app.endpointing import Endpointer, VadSettings
    from casavox.edge_app.pipeline import Understanding
    from casavox.runtime.audio.io import SAMPLE_RATE
    from casavox.runtime.audio.vad import FRAME

    settings = VadSettings()
    endpointer = Endpointer(settings)
    ends = []
    frame = np.full(FRAME, 0.1, np.float32)
    per_cut = -(-int(settings.max_utterance_s * SAMPLE_RATE) // FRAME)
    for _ in range(2 * per_cut + 5):  # just over 20 s of speech, never a pause
        ends += [e for e in endpointer.push(frame, 1.0) if e.kind == "end"]
    assistant, store = env.sim()
    json_log = io.StringIO()
    daemon = Daemon(config=Config(), pipeline=None, assistant=assistant, vad=None, log=json_log)
    heard = Understanding(ON, ON, assistant.understand(ON, None))
    record = daemon.finish(ends[0], heard, "off", {}, None)
    cut_at = len(ends[0].audio) / SAMPLE_RATE
    agree = (
        [e.reason for e in ends] == ["max_length", "max_length"]
        and settings.max_utterance_s <= cut_at < settings.max_utterance_s + FRAME / SAMPLE_RATE
        and record["outcome"] == "acted"
        and _light(store.path) == "on"
    )
    return Observed([record["reply"]], agree, f"cut at {cut_at:.2f} s: {record}", json_log.getvalue())


# ---- Wyoming ----------------------------------------------------------------------------------
def wyoming_concurrent(env: Env) -> Observed:
    from wyoming.asr import Transcript
    from wyoming.client import AsyncTcpClient
    from wyoming.handle import Handled
    from wyoming.server import AsyncServer

    from casavox.edge_app.wyoming_server import CasavoxHandler, Services

    lights = "\n".join(
        f'  - {{name: {n} Light, id: light.{n.lower()}_light, area: hall, state: "{("off", "on")[i % 2]}"}}'
        for i, n in enumerate(LAMPS)
    )
    home = env.home(f"areas:\n  - {{name: Hall, id: hall}}\nentities:\n{lights}\n")
    store = env.store("wyoming.sqlite")
    assistant = env.assistant(SimBackend.open(home, store), home, store)
    services = Services(pipeline=None, assistant=assistant)
    port = _closed_port()
    sentences = [f"turn {('on', 'off')[i % 2]} the {n} Light" for i, n in enumerate(LAMPS)]

    async def one(text: str) -> object:
        for _ in range(100):
            try:
                async with AsyncTcpClient("127.0.0.1", port) as client:
                    await client.write_event(Transcript(text=text).event())
                    return await asyncio.wait_for(client.read_event(), 30)
            except ConnectionRefusedError:
                await asyncio.sleep(0.05)
        raise AssertionError("Wyoming server did not start")

    async def run() -> list:
        server = AsyncServer.from_uri(f"tcp://127.0.0.1:{port}")
        task = asyncio.create_task(server.run(lambda *a, **k: CasavoxHandler(services, *a, **k)))
        try:
            return await asyncio.gather(*(one(s) for s in sentences))
        finally:
            await server.stop()
            task.cancel()

    events = asyncio.run(run())
    replies = [Handled.from_event(e).text if Handled.is_type(e.type) else f"not handled: {e}" for e in events]
    states = {k: s for k, (s, _) in store.entities().items()}
    agree = all(
        reply == f"Turned {('on', 'off')[i % 2]} {n} Light"
        and states[f"light.{n.lower()}_light"] == ("on", "off")[i % 2]
        for i, (n, reply) in enumerate(zip(LAMPS, replies, strict=True))
    )
    return Observed(replies, agree, f"{replies} / {states}")


# ---- bundles ----------------------------------------------------------------------------------
def _bundle(env: Env) -> Path:
    from tests.test_signing import make_bundle

    return make_bundle(env.tmp_path / "bundle")  # signed with the test key (trusted)


def bundle_tampered(env: Env) -> Observed:
    from casavox.runtime import bundle as fmt

    root = _bundle(env)
    fmt.verify(root)  # as exported: accepted
    manifest = json.loads((root / "manifest.json").read_text())
    tokens = root / "asr" / "tokenizer.json"
    tokens.write_text(json.dumps({"model": {"vocab": {"turn": 0, "off": 1, "on": 2}}}))  # same size
    manifest["files"]["asr/tokenizer.json"]["sha256"] = fmt.sha256_file(tokens)  # re-hashed
    (root / "manifest.json").write_text(json.dumps(manifest, indent=2) + "\n")
    with pytest.raises(fmt.BundleError) as refused:
        fmt.verify(root)
    message = str(refused.value)
    return Observed([message], "\n" not in message, message)


def bundle_unsigned(env: Env) -> Observed:
    from casavox.runtime import bundle as fmt

    root = _bundle(env)
    (root / "manifest.sig").unlink()
    with pytest.raises(fmt.BundleError) as refused:
        fmt.verify(root)
    allowed = fmt.verify(root, allow_unsigned=True)
    message = str(refused.value)
    agree = "\n" not in message and not allowed.signature.trusted and allowed.signed_by is None
    return Observed([message], agree, f"{message} / {allowed.signature}")


# ---- the table --------------------------------------------------------------------------------
NOT_DELIVERED = "Sorry, that did not work: "
FAULTS = [
    Fault(
        "mqtt-broker-killed",
        "MQTT broker killed",
        (NOT_DELIVERED + "MQTT broker 127.0.0.1:", "unreachable", "command not delivered"),
        ("HassTurnOn: MQTT broker 127.0.0.1:", "unreachable"),
        "failed, not delivered; dropped from paho's resend queue, the light's known state is still off",
        broker_killed,
    ),
    Fault(
        "mqtt-broker-hung",
        "MQTT broker hung (SIGSTOP)",
        ("I'm not sure the Garage Light got the command: the MQTT broker did not confirm it in time",),
        (
            "did not acknowledge casavox/light/garage_light/set within 0.5 s: outcome unknown; resetting the link",
        ),
        'outcome "unknown": the command may still arrive when the broker resumes (at most once), as the reply says',
        broker_hung,
    ),
    Fault(
        "mqtt-broker-restarted",
        "MQTT broker restarted (nothing replayed)",
        ("Turned on Garage Light", "unreachable", "Turned on Garage Light"),
        ("HassTurnOff: MQTT broker 127.0.0.1:", "unreachable"),
        "the command refused during the outage never reaches the new broker; only the next one does",
        broker_restarted,
        hears_note="before, during, after: ",
    ),
    Fault(
        "hass-unreachable",
        "Home Assistant unreachable (closed port)",
        (NOT_DELIVERED + "Home Assistant at http://127.0.0.1:", "unreachable (", "Connection refused"),
        ("HassTurnOn: Home Assistant at http://127.0.0.1:", "unreachable"),
        "failed, not delivered",
        hass_unreachable,
    ),
    Fault(
        "hass-token-rejected",
        "Home Assistant token rejected (401, a real Home Assistant)",
        (
            NOT_DELIVERED
            + "Home Assistant POST /api/services/switch/turn_on: token rejected; command not delivered",
        ),
        ("HassTurnOn: Home Assistant POST /api/services/switch/turn_on: token rejected",),
        "failed; the switch is unchanged in Home Assistant; the token is in neither reply nor log",
        hass_token_rejected,
    ),
    Fault(
        "state-locked",
        "state file locked by another process (BEGIN IMMEDIATE)",
        (NOT_DELIVERED, "home state is locked by another process (nothing changed)"),
        ("HassTurnOn: ", "home state is locked by another process (nothing changed)"),
        "failed; the file still says off",
        state_locked,
    ),
    Fault(
        "state-read-only",
        "state file read-only (chmod; chattr +i as root)",
        (NOT_DELIVERED, "home state file is read-only (nothing changed)"),
        ("HassTurnOn: ", "home state file is read-only (nothing changed)"),
        "failed; the file still says off",
        state_read_only,
    ),
    Fault(
        "state-deleted",
        "state file deleted while running",
        (
            NOT_DELIVERED + "the state file ",
            "was removed or replaced while casavox ran (nothing changed); restart casavox",
        ),
        ("HassTurnOn: the state file ", "was removed or replaced while casavox ran"),
        "failed; nothing written to the unlinked file, no new file created",
        state_deleted,
    ),
    Fault(
        "state-replaced-by-directory",
        "state file replaced by a directory",
        (
            NOT_DELIVERED + "the state file ",
            "was removed or replaced while casavox ran (nothing changed); restart casavox",
        ),
        ("HassTurnOn: the state file ", "was removed or replaced while casavox ran"),
        "failed; the directory is left empty",
        state_replaced_by_directory,
    ),
    Fault(
        "corrupt-audio",
        "corrupt audio file, then a good one (WavSource)",
        (),
        ("skipping audio file: ", "bad.wav"),
        "the bad file yields no frames; the good file's frames follow, sample for sample",
        corrupt_audio,
        hears_note="nothing for the bad file; the next file is served",
    ),
    Fault(
        "endless-speech",
        "endless speech (VadSettings.max_utterance_s = 10 s)",
        ("Turned on Garage Light",),
        ('"end": "max_length"', "reply: Turned on Garage Light"),
        "the endpointer cuts every 10 s; the cut utterance is one turn, and the light is on as the reply says",
        endless_speech,
        log_note="JSON log and log: ",
    ),
    Fault(
        "wyoming-concurrent",
        "10 concurrent Wyoming clients (in-process server)",
        ("Turned on Desk Light", "Turned off Floor Light"),
        (),
        "each client's reply names its own light and that light's state is what the reply says",
        wyoming_concurrent,
        hears_note="each its own: ",
        log_note="nothing at WARNING or above",
    ),
    Fault(
        "bundle-tampered",
        "tampered bundle (file edited, manifest re-hashed)",
        ("manifest.json does not match its signature",),
        (),
        "refused in one line; nothing is loaded",
        bundle_tampered,
        hears_note="BundleError: ",
        log_note="nothing logged: the one-line BundleError is the message",
    ),
    Fault(
        "bundle-unsigned",
        "unsigned bundle (no manifest.sig)",
        ("unsigned bundle (no manifest.sig)", "pass --allow-unsigned (config: allow_unsigned = true)"),
        ("loading it anyway (unsigned bundles allowed)",),
        "refused in one line unless allow_unsigned; then loaded, marked untrusted and logged",
        bundle_unsigned,
        hears_note="BundleError: ",
        log_note="with allow_unsigned: ",
    ),
    Fault(
        "sigterm-mid-utterance",
        "SIGTERM mid-utterance",
        (),
        (),
        "covered by tests/test_daemon.py",
        None,
        hears_note="covered by tests/test_daemon.py",
        log_note="covered by tests/test_daemon.py",
        skip="needs the model bundles: test_sigterm_during_an_utterance_exits_cleanly_and_keeps_state",
    ),
]


def _quoted(note: str, fragments: tuple[str, ...]) -> str:
    text = note + " … ".join(f"`{f}`" for f in fragments)
    return text.replace("|", "\\|")


def render_table() -> str:
    """docs/faults.md: the rows of ``FAULTS`` as a Markdown table."""
    lines = [
        "# Fault matrix",
        "",
        "Generated from `FAULTS` in `tests/test_fault_matrix.py` by `render_table()`; that test checks",
        "each row against the real part and that this file equals the table. Edit the test, then run",
        "`python -c 'from tests.test_fault_matrix import render_table; print(render_table(), end=\"\")' > docs/faults.md`.",
        "",
        "| fault | what the user hears | what the log says | state and reply agree |",
        "| --- | --- | --- | --- |",
    ]
    for f in FAULTS:
        lines.append(
            f"| {f.fault} | {_quoted(f.hears_note, f.hears)} | {_quoted(f.log_note, f.log)} | {f.agree} |"
        )
    return "\n".join(lines) + "\n"


@pytest.mark.parametrize("fault", FAULTS, ids=[f.id for f in FAULTS])
def test_fault(fault: Fault, tmp_path: Path, ha_intents, monkeypatch, caplog, request) -> None:
    if fault.skip:
        pytest.skip(fault.skip)
    if fault.scenario in (broker_killed, broker_hung, broker_restarted) and not (
        shutil.which("mosquitto") or Path("/usr/sbin/mosquitto").exists()
    ):
        pytest.skip("mosquitto is not installed")
    caplog.set_level("INFO")
    env = Env(tmp_path, ha_intents, monkeypatch, request)
    try:
        seen = fault.scenario(env)
    finally:
        for cleanup in env.cleanups:
            cleanup()
    replies = " | ".join(seen.replies)
    for fragment in fault.hears:
        assert fragment in replies, f"{fault.id}: {fragment!r} not in what the user hears: {replies!r}"
    logged = caplog.text + seen.extra_log
    for fragment in fault.log:
        assert fragment in logged, f"{fault.id}: {fragment!r} not in the log:\n{logged}"
    if not fault.log:
        loud = [r.getMessage() for r in caplog.records if r.levelname in ("WARNING", "ERROR", "CRITICAL")]
        assert not loud, f"{fault.id}: nothing should be logged at WARNING or above: {loud}"
    assert seen.agree, f"{fault.id}: state and reply disagree: {seen.why}"


def test_the_doc_is_the_table() -> None:
    assert DOC.read_text() == render_table(), "docs/faults.md is stale: regenerate it with render_table()"
