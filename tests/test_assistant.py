"""The conversation turn (Assistant.handle): plan whole, apply the safety policy once, say what ran.

Real parts throughout: Home Assistant's templates (hassil + home-assistant-intents) understand the
text, the simulated home acts on a real SQLite file, and the Wyoming test talks to a real Wyoming
server on loopback with the `wyoming` package's own client.
"""

from __future__ import annotations

import asyncio
import socket
from pathlib import Path

import pytest
import yaml

from casavox.edge_app.assistant import Assistant
from casavox.edge_app.backends.sim import SimBackend
from casavox.edge_app.config import SafetySettings
from casavox.edge_app.state_store import StateStore
from casavox.edge_app.timers import Timers
from casavox.runtime.home import home_from_dict
from casavox.runtime.intents.engine import IntentEngine

HOME = yaml.safe_load(
    """
areas:
  - {name: Garage, id: garage}
  - {name: Kitchen, id: kitchen}
entities:
  - {name: Garage Light, id: light.garage_light, area: garage, state: "off"}
  - {name: Garage Door, id: cover.garage_door, area: garage, state: closed, attributes: {device_class: garage}}
  - {name: Kitchen Light, id: light.kitchen_light, area: kitchen, state: "on"}
"""
)
BOTH = "turn on the garage light and open the garage door"


@pytest.fixture(scope="module")
def engine_for(ha_intents):
    def make(home):
        return IntentEngine.build(home, None, ha_intents)  # templates only: the LLM is tested elsewhere

    return make


@pytest.fixture
def make(tmp_path: Path, engine_for):
    stores: list[StateStore] = []

    def _make(confirm: str = "ask", timeout: float = 10.0, clock=None) -> tuple[Assistant, StateStore]:
        home = home_from_dict(HOME)
        store = StateStore.open(tmp_path / f"home{len(stores)}.sqlite")
        stores.append(store)
        engine = engine_for(home)
        assistant = Assistant(
            home=home,
            understand=lambda text, area: engine.parse(text, area),
            backend=SimBackend.open(home, store),
            timers=Timers(store),
            safety=SafetySettings(confirm=confirm, confirm_timeout_s=timeout),
            **({"clock": clock} if clock else {}),
        )
        return assistant, store

    yield _make
    for store in stores:
        store.close()


def states(store: StateStore) -> dict[str, str]:
    return {k: s for k, (s, _) in store.entities().items()}


def test_a_sensitive_part_is_asked_while_the_rest_runs_and_the_reply_says_both(make) -> None:
    assistant, store = make("ask")
    turn = assistant.handle(BOTH)
    assert turn.outcome == "asked"
    assert [e.id for a in turn.acted for e in a.targets] == ["light.garage_light"]
    assert [e.id for a in turn.asked for e in a.targets] == ["cover.garage_door"]
    assert "Garage Light" in turn.reply and "Are you sure you want to open the Garage Door?" in turn.reply
    assert states(store) == {
        "light.garage_light": "on",
        "cover.garage_door": "closed",
        "light.kitchen_light": "on",
    }
    yes = assistant.handle("yes")
    assert yes.outcome == "confirmed" and states(store)["cover.garage_door"] == "open"


def test_no_cancels_and_a_late_answer_is_a_new_command(make) -> None:
    now = [0.0]
    assistant, store = make("ask", timeout=5.0, clock=lambda: now[0])
    assistant.handle("open the garage door")
    assert assistant.handle("no").outcome == "cancelled" and states(store)["cover.garage_door"] == "closed"
    assistant.handle("open the garage door")
    now[0] = 6.0  # the question lapsed
    late = assistant.handle("yes")
    assert late.outcome == "nothing_to_confirm" and states(store)["cover.garage_door"] == "closed"


@pytest.mark.parametrize("can_ask", [True, False])
def test_refuse_runs_the_rest_and_names_what_was_refused(make, can_ask: bool) -> None:
    assistant, store = make("refuse")
    turn = assistant.handle(BOTH, can_ask=can_ask)
    assert turn.outcome == "refused" and turn.handled
    assert [e.id for a in turn.refused for e in a.targets] == ["cover.garage_door"]
    assert "Turned on Garage Light" in turn.reply and "For safety, Garage Door can't be changed" in turn.reply
    assert states(store)["light.garage_light"] == "on" and states(store)["cover.garage_door"] == "closed"
    assert assistant.pending is None


def test_ask_over_a_channel_that_cannot_ask_refuses_instead(make) -> None:
    assistant, store = make("ask")
    turn = assistant.handle("open the garage door", can_ask=False)
    assert turn.outcome == "refused" and assistant.pending is None
    assert states(store)["cover.garage_door"] == "closed"


def test_allow_runs_everything(make) -> None:
    assistant, store = make("allow")
    turn = assistant.handle(BOTH)
    assert turn.outcome == "acted" and not turn.asked and not turn.refused
    assert states(store)["cover.garage_door"] == "open" and states(store)["light.garage_light"] == "on"


def test_yes_with_no_question_pending_does_nothing(make) -> None:
    assistant, store = make("ask")
    before = states(store)
    for text in ("yes", "okay do it"):
        turn = assistant.handle(text)
        assert turn.outcome in ("nothing_to_confirm", "not_understood") and not turn.acted
    assert states(store) == before


def test_the_turn_serializes_what_it_did(make) -> None:
    assistant, _ = make("ask")
    data = assistant.handle(BOTH).to_json()
    assert data["acted"] == ["light.garage_light"] and data["asked"] == ["cover.garage_door"]
    assert data["intent"]["intents"][0]["name"] == "HassTurnOn" and data["delivered"] is True


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_wyoming_handle_says_what_ran_when_part_of_a_sentence_is_refused(make) -> None:
    """Over a real Wyoming connection: the light runs, the door is refused, the answer is handled
    and names both (it used to answer not-handled after the light had already been switched)."""
    from wyoming.asr import Transcript
    from wyoming.client import AsyncTcpClient
    from wyoming.handle import Handled
    from wyoming.server import AsyncServer

    from casavox.edge_app.wyoming_server import CasavoxHandler, Services

    assistant, store = make("ask")
    services = Services(pipeline=None, assistant=assistant)
    port = _free_port()

    async def run() -> object:
        server = AsyncServer.from_uri(f"tcp://127.0.0.1:{port}")
        task = asyncio.create_task(server.run(lambda *a, **k: CasavoxHandler(services, *a, **k)))
        try:
            for _ in range(100):
                try:
                    async with AsyncTcpClient("127.0.0.1", port) as client:
                        await client.write_event(Transcript(text=BOTH).event())
                        return await asyncio.wait_for(client.read_event(), 30)
                except ConnectionRefusedError:
                    await asyncio.sleep(0.05)
            raise AssertionError("Wyoming server did not start")
        finally:
            await server.stop()
            task.cancel()

    event = asyncio.run(run())
    assert Handled.is_type(event.type)
    text = Handled.from_event(event).text
    assert "Turned on Garage Light" in text and "Garage Door can't be changed this way" in text
    assert states(store)["light.garage_light"] == "on" and states(store)["cover.garage_door"] == "closed"
