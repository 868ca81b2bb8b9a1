"""The Home Assistant REST backend's set-up and failures that need no Home Assistant (no token, a
closed port, credentials in the URL). Everything it does against Home Assistant is tested against a
real one: tests/test_hass_real.py."""

from __future__ import annotations

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


@pytest.fixture()
def home():
    return load_home(ROOT / "examples" / "home.yaml")


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
