"""`casavox serve-wyoming --zeroconf`: the server advertised over mDNS as Home Assistant looks for it
(``_wyoming._tcp.local.``), and withdrawn when it stops."""

from __future__ import annotations

import asyncio
import signal
import socket
import subprocess
import sys
import uuid
from pathlib import Path

import pytest

from casavox.edge_app.wyoming_mdns import SERVICE_TYPE, ZeroconfError, _lan_address, advertised_address
from tests.broker import free_port, wait_port

ROOT = Path(__file__).resolve().parents[1]
HOME = ROOT / "examples" / "home.yaml"


async def resolve(name: str, timeout_ms: int = 3000):
    """(addresses, port) of ``name`` as a fresh mDNS browser finds it; None when nobody answers."""
    from zeroconf.asyncio import AsyncServiceInfo, AsyncZeroconf

    zc = AsyncZeroconf()
    try:
        info = AsyncServiceInfo(SERVICE_TYPE, f"{name}.{SERVICE_TYPE}")
        if not await info.async_request(zc.zeroconf, timeout_ms):
            return None
        return info.parsed_addresses(), info.port
    finally:
        await zc.async_close()


def _multicast_works() -> str | None:
    """Why mDNS cannot be tried here (None: a probe service registered and was found)."""
    from casavox.edge_app.wyoming_mdns import advertise

    async def probe():
        advert = await advertise(f"tcp://0.0.0.0:{free_port()}", f"casavox-probe-{uuid.uuid4().hex[:8]}")
        try:
            return await resolve(advert.name)
        finally:
            await advert.close()

    try:
        found = asyncio.run(probe())
    except (OSError, ZeroconfError) as exc:
        return f"no multicast network here ({exc})"
    return None if found else "an mDNS probe registered here was not found (multicast does not loop back)"


def test_a_loopback_bind_cannot_be_advertised() -> None:
    with pytest.raises(ZeroconfError, match="loopback only"):
        advertised_address("tcp://127.0.0.1:10300")
    with pytest.raises(ZeroconfError, match="tcp://HOST:PORT"):
        advertised_address("unix:///run/casavox.sock")


def test_a_lan_bind_advertises_its_own_address() -> None:
    try:
        lan = _lan_address()
    except ZeroconfError as exc:
        pytest.skip(str(exc))
    assert advertised_address("tcp://0.0.0.0:10300") == (lan, 10300)
    assert advertised_address(f"tcp://{lan}:10301") == (lan, 10301)


def test_serve_wyoming_zeroconf_on_loopback_is_one_line_before_models_load(full_bundle) -> None:
    cmd = [sys.executable, "-m", "casavox.edge_app.cli", "serve-wyoming", str(full_bundle), "--home", str(HOME),
           "--uri", "tcp://127.0.0.1:10300", "--zeroconf"]  # fmt: skip
    proc = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert proc.returncode != 0
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and "loopback only" in lines[0]


def test_the_server_is_found_over_mdns_while_it_runs_and_gone_after(full_bundle, tmp_path) -> None:
    why = _multicast_works()
    if why:
        pytest.skip(why)
    port, name = free_port(), f"casavox-test-{uuid.uuid4().hex[:8]}"
    cmd = [sys.executable, "-m", "casavox.edge_app.cli", "serve-wyoming", str(full_bundle), "--home", str(HOME),
           "--state", str(tmp_path / "s.sqlite"), "--uri", f"tcp://0.0.0.0:{port}", "--no-act",
           "--zeroconf", name]  # fmt: skip
    proc = subprocess.Popen(cmd, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        wait_port(port, timeout=120)
        found = asyncio.run(resolve(name))
        assert found == ([_lan_address()], port)
        with socket.create_connection((found[0][0], port), timeout=5):
            pass  # what was advertised is where the server listens
    finally:
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=30) == 0  # a clean stop, with the goodbye sent
    assert asyncio.run(resolve(name, 1500)) is None
