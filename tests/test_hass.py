"""The Home Assistant REST backend against a local stand-in server that checks every request."""

from __future__ import annotations

import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from casavox.edge_app.actions import plan
from casavox.edge_app.backends import DeliveryError
from casavox.edge_app.backends.hass import HassBackend, HassSettings
from casavox.edge_app.execute import execute
from casavox.runtime.home import load_home
from casavox.runtime.intents.result import Intent

ROOT = Path(__file__).resolve().parents[1]
TOKEN = "long-lived-token-abc123"


class StandIn(BaseHTTPRequestHandler):
    """Accepts what Home Assistant accepts: bearer token, JSON body, /api/services and /api/states."""

    calls: list = []
    states = {"lock.front_door": {"entity_id": "lock.front_door", "state": "unlocked", "attributes": {}}}

    def _auth(self) -> bool:
        if self.headers.get("Authorization") != f"Bearer {TOKEN}":
            self.send_response(401)
            self.end_headers()
            return False
        return True

    def do_POST(self) -> None:  # noqa: N802
        if not self._auth():
            return
        parts = self.path.strip("/").split("/")
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        if (
            parts[:2] != ["api", "services"]
            or len(parts) != 4
            or self.headers.get("Content-Type") != "application/json"
        ):
            self.send_response(400)
            self.end_headers()
            return
        self.calls.append((parts[2], parts[3], body))
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.end_headers()
        self.wfile.write(b"[]")

    def do_GET(self) -> None:  # noqa: N802
        if not self._auth():
            return
        entity_id = self.path.rsplit("/", 1)[-1]
        if entity_id not in self.states:
            self.send_response(404)
            self.end_headers()
            return
        self.send_response(200)
        self.end_headers()
        self.wfile.write(json.dumps(self.states[entity_id]).encode())

    def log_message(self, *args) -> None:
        pass


@pytest.fixture()
def server():
    StandIn.calls = []
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), StandIn)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}"
    httpd.shutdown()


@pytest.fixture()
def home():
    return load_home(ROOT / "examples" / "home.yaml")


def test_services_and_states(server, home, monkeypatch) -> None:
    monkeypatch.setenv("CASAVOX_HASS_TOKEN", TOKEN)
    backend = HassBackend(HassSettings(url=server))
    for call in plan(Intent("HassLightSet", {"name": "Bedroom Lamp", "brightness": 30}), home).calls:
        backend.call(call)
    for call in plan(Intent("HassTurnOn", {"name": "Living Room Blinds"}), home).calls:
        backend.call(call)
    assert StandIn.calls == [
        ("light", "turn_on", {"brightness_pct": 30, "entity_id": ["light.bedroom_lamp"]}),
        ("cover", "open_cover", {"entity_id": ["cover.living_room_blinds"]}),
    ]
    out = execute(plan(Intent("HassGetState", {"name": "Front Door"}), home), backend, None)
    assert out.reply == "Front Door is unlocked"
    assert backend.state("light.nowhere") is None


def test_token_from_a_file_and_never_in_errors(server, home, tmp_path) -> None:
    (tmp_path / "token").write_text("wrong-token\n")
    backend = HassBackend(HassSettings(url=server, token_file=str(tmp_path / "token")))
    with pytest.raises(DeliveryError) as err:
        backend.call(plan(Intent("HassTurnOn", {"name": "Desk Lamp"}), home).calls[0])
    assert "token rejected" in str(err.value) and "wrong-token" not in str(err.value)
    assert StandIn.calls == []


def test_no_token_fails_at_start(monkeypatch) -> None:
    monkeypatch.delenv("CASAVOX_HASS_TOKEN", raising=False)
    with pytest.raises(DeliveryError, match="no Home Assistant token"):
        HassBackend(HassSettings(url="http://127.0.0.1:9"))


def test_home_assistant_down_is_reported(home, monkeypatch) -> None:
    monkeypatch.setenv("CASAVOX_HASS_TOKEN", TOKEN)
    backend = HassBackend(HassSettings(url="http://127.0.0.1:9", timeout_s=1))
    out = execute(plan(Intent("HassTurnOn", {"name": "Desk Lamp"}), home), backend, None)
    assert not out.delivered and "unreachable" in out.reply and TOKEN not in out.reply


# ---- credentials in the URL are never repeated (replies are spoken, errors logged and printed) -----
@pytest.mark.parametrize(
    ("url", "shown"),
    [
        ("http://casa:s3cret@127.0.0.1:9", "http://***@127.0.0.1:9"),
        ("https://s3cret@ha.example:8123/base", "https://***@ha.example:8123/base"),
        ("http://casa:s3c@ret@127.0.0.1", "http://***@127.0.0.1"),
        ("http://127.0.0.1:8123", "http://127.0.0.1:8123"),
    ],
)
def test_redact_url(url: str, shown: str) -> None:
    from casavox.edge_app.backends.hass import redact_url

    assert redact_url(url) == shown


def test_credentials_in_the_url_are_refused_without_repeating_them(monkeypatch) -> None:
    monkeypatch.setenv("CASAVOX_HASS_TOKEN", TOKEN)
    for url in ("http://casa:s3cret@127.0.0.1:9", "http://s3cret@127.0.0.1:9"):
        with pytest.raises(DeliveryError) as err:
            HassBackend(HassSettings(url=url))
        message = str(err.value)
        assert "must not contain a user name or password" in message and "***@127.0.0.1:9" in message
        assert "s3cret" not in message and "casa" not in message


def test_cli_never_prints_url_credentials(tmp_path, capsys, monkeypatch) -> None:
    from casavox.edge_app import cli

    monkeypatch.setenv("CASAVOX_HASS_TOKEN", TOKEN)
    config = tmp_path / "casavox.toml"
    config.write_text('backend = "hass"\n[hass]\nurl = "http://casa:s3cret@127.0.0.1:9"\n')
    argv = ["handle", "turn on the desk lamp", "--config", str(config), "--state", str(tmp_path / "s.sqlite")]
    assert cli.main(argv) != 0
    captured = capsys.readouterr()
    assert "s3cret" not in captured.err + captured.out
    assert captured.err.startswith("casavox: error: hass.url http://***@127.0.0.1:9 must not contain")


def test_malformed_url_is_one_line_at_start(monkeypatch) -> None:
    monkeypatch.setenv("CASAVOX_HASS_TOKEN", TOKEN)
    with pytest.raises(DeliveryError, match="hass.url http://127.0.0.1:port is not a valid URL"):
        HassBackend(HassSettings(url="http://127.0.0.1:port"))
    with pytest.raises(DeliveryError, match="must be http:// or https://"):
        HassBackend(HassSettings(url="homeassistant.local:8123"))


def test_unreachable_message_shows_the_url(home, monkeypatch) -> None:
    monkeypatch.setenv("CASAVOX_HASS_TOKEN", TOKEN)
    backend = HassBackend(HassSettings(url="http://127.0.0.1:9/", timeout_s=1))
    out = execute(plan(Intent("HassTurnOn", {"name": "Desk Lamp"}), home), backend, None)
    assert "Home Assistant at http://127.0.0.1:9/ unreachable" in out.reply
