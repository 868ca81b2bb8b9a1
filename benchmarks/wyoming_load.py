"""Load test of `casavox serve-wyoming`: N concurrent Wyoming clients x M commands on loopback.

``python -m benchmarks.wyoming_load --clients 8 --commands 100`` serves the example home (templates
only, the simulated backend on a fresh SQLite file) on 127.0.0.1 and runs every client at once, each
sending its commands one after the other, one connection per command as Home Assistant does. Each
client adds its own items to the shopping list and, where the home has a light for it, switches
its own light on and off, so every reply can be checked against the state it claims: each "Added X"
is exactly one X on the list, each light ends as its client's last reply said, and the history has
one row per command. Prints one JSON object: counts, errors, mismatches, p50/p95 latency. Bounded:
at most 64 clients x 1,000 commands, and the whole run is cut off after ``--timeout-s``.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import socket
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from wyoming.asr import Transcript
from wyoming.client import AsyncTcpClient
from wyoming.handle import Handled

log = logging.getLogger(__name__)

DEFAULT_CLIENTS = 8
DEFAULT_COMMANDS = 100
MAX_CLIENTS = 64
MAX_COMMANDS = 1000
REPLY_TIMEOUT_S = 30.0
SAMPLES = 5  # error and mismatch examples kept in the report


@dataclass(frozen=True)
class Command:
    """One command and the state change its reply must match."""

    client: int
    text: str
    reply: str  # the expected reply
    item: str | None = None  # a shopping-list item it adds
    light: str | None = None  # or the light it switches ...
    state: str | None = None  # ... to this state


@dataclass
class Tally:
    latencies_ms: list[float] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    replies: dict[tuple[int, int], str] = field(default_factory=dict)


def plan(lights: list[tuple[str, str]], clients: int, commands: int) -> list[list[Command]]:
    """Each client's commands: list additions, alternating with switching its own light."""
    out = []
    for c in range(clients):
        own = lights[c] if c < len(lights) else None
        mine = []
        for j in range(commands):
            if own is not None and j % 2:
                state = "on" if j % 4 == 1 else "off"
                mine.append(
                    Command(c, f"turn {state} the {own[1]}", f"Turned {state} {own[1]}", None, own[0], state)
                )
            else:
                item = f"client {c} item {j}"
                mine.append(Command(c, f"add {item} to my shopping list", f"Added {item}", item))
        out.append(mine)
    return out


async def _one(port: int, command: Command) -> tuple[str, str]:
    """(event type, reply text) for one command over a fresh connection."""
    async with AsyncTcpClient("127.0.0.1", port) as client:
        await client.write_event(Transcript(text=command.text).event())
        while True:
            event = await asyncio.wait_for(client.read_event(), REPLY_TIMEOUT_S)
            if event is None:
                return "closed", ""
            if event.type in ("handled", "not-handled", "error"):
                return event.type, str(event.data.get("text", ""))


async def _client(port: int, commands: list[Command], tally: Tally) -> None:
    for j, command in enumerate(commands):
        t0 = time.perf_counter()
        try:
            kind, text = await _one(port, command)
        except (OSError, asyncio.TimeoutError) as exc:
            kind, text = "failed", f"{type(exc).__name__}: {exc}"
        tally.latencies_ms.append((time.perf_counter() - t0) * 1e3)
        tally.replies[(command.client, j)] = text
        if kind != Handled().event().type:
            tally.errors.append(f"client {command.client} #{j} {command.text!r}: {kind} {text!r}")


def check(store, planned: list[list[Command]], tally: Tally) -> list[str]:
    """Every way the replies and the final state disagree (empty when they all agree)."""
    wrong = []
    for mine in planned:
        for j, command in enumerate(mine):
            got = tally.replies.get((command.client, j))
            if got != command.reply:
                wrong.append(f"client {command.client} #{j}: replied {got!r}, expected {command.reply!r}")
    items = [name for name, _ in store.items("shopping_list")]
    expected = sorted(c.item for mine in planned for c in mine if c.item)
    if sorted(items) != expected:
        wrong.append(f"shopping list has {len(items)} items, {len(expected)} were added")
    for mine in planned:
        switched = [c for c in mine if c.light]
        if switched:
            state = store.entity(switched[-1].light)[0]
            if state != switched[-1].state:
                wrong.append(f"{switched[-1].light} is {state}, the last reply said {switched[-1].state}")
    history = store.read("SELECT count(*) FROM history")[0][0]
    total = sum(len(mine) for mine in planned)
    if history != total:
        wrong.append(f"history has {history} rows for {total} commands")
    return wrong


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def build(state_path: Path):
    """(assistant, store) over the example home: templates only, the simulated backend."""
    from casavox.edge_app.assistant import Assistant
    from casavox.edge_app.backends.sim import SimBackend
    from casavox.edge_app.config import SafetySettings
    from casavox.edge_app.state_store import StateStore
    from casavox.edge_app.timers import Timers
    from casavox.examples import example_path
    from casavox.runtime.home import load_home
    from casavox.runtime.intents.engine import IntentEngine
    from casavox.runtime.intents.templates import load_language_intents

    home = load_home(example_path("home.yaml"))
    engine = IntentEngine.build(home, None, load_language_intents())
    store = StateStore.open(state_path)
    assistant = Assistant(
        home=home,
        understand=engine.parse,
        backend=SimBackend.open(home, store),
        timers=Timers(store),
        safety=SafetySettings(),
    )
    return assistant, store


async def _serve_and_load(assistant, planned: list[list[Command]], timeout_s: float) -> tuple[Tally, float]:
    from casavox.edge_app.wyoming_server import Services, run_server

    port = _free_port()
    services = Services(None, assistant, max_clients=max(len(planned), 16))
    started = asyncio.Event()
    server = asyncio.create_task(run_server(services, f"tcp://127.0.0.1:{port}", started))
    tally = Tally()
    try:
        await asyncio.wait_for(started.wait(), 30)
        t0 = time.perf_counter()
        clients = asyncio.gather(*(_client(port, mine, tally) for mine in planned))
        try:
            await asyncio.wait_for(clients, timeout_s)
        except asyncio.TimeoutError:
            tally.errors.append(f"the run did not finish within {timeout_s:g} s")
        return tally, time.perf_counter() - t0
    finally:
        server.cancel()
        await asyncio.gather(server, return_exceptions=True)


def _percentiles(latencies_ms: list[float]) -> dict[str, float]:
    if not latencies_ms:
        return {}
    a = np.asarray(latencies_ms)
    return {k: round(float(v), 2) for k, v in {"p50": np.percentile(a, 50), "p95": np.percentile(a, 95),
            "max": a.max(), "mean": a.mean()}.items()}  # fmt: skip


def run_load(
    clients: int = DEFAULT_CLIENTS, commands: int = DEFAULT_COMMANDS, timeout_s: float = 300.0
) -> dict:
    """Run the load test and return the report (see the module docstring)."""
    if not (1 <= clients <= MAX_CLIENTS and 1 <= commands <= MAX_COMMANDS):
        raise ValueError(f"clients must be 1..{MAX_CLIENTS} and commands 1..{MAX_COMMANDS}")
    with tempfile.TemporaryDirectory(prefix="casavox-load-") as tmp:
        assistant, store = build(Path(tmp) / "home.sqlite")
        try:
            lights = [(e.id, e.name) for e in assistant.home.entities if e.domain == "light"]
            planned = plan(lights, clients, commands)
            tally, wall_s = asyncio.run(_serve_and_load(assistant, planned, timeout_s))
            wrong = check(store, planned, tally)
        finally:
            store.close()
    total = clients * commands
    return {
        "clients": clients,
        "commands_per_client": commands,
        "commands": total,
        "answered": len(tally.latencies_ms),
        "errors": len(tally.errors),
        "error_samples": tally.errors[:SAMPLES],
        "mismatches": len(wrong),
        "mismatch_samples": wrong[:SAMPLES],
        "latency_ms": _percentiles(tally.latencies_ms),
        "wall_s": round(wall_s, 3),
        "commands_per_s": round(len(tally.latencies_ms) / wall_s, 1) if wall_s else None,
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--clients", type=int, default=DEFAULT_CLIENTS, help=f"at most {MAX_CLIENTS}")
    parser.add_argument(
        "--commands", type=int, default=DEFAULT_COMMANDS, help=f"per client, at most {MAX_COMMANDS}"
    )
    parser.add_argument("--timeout-s", type=float, default=300.0, help="the whole run is cut off after this")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    try:
        report = run_load(args.clients, args.commands, args.timeout_s)
    except ValueError as exc:
        parser.error(str(exc))
    sys.stdout.write(json.dumps(report, indent=2) + "\n")
    return 0 if report["errors"] == 0 and report["mismatches"] == 0 else 1


if __name__ == "__main__":
    raise SystemExit(main())
