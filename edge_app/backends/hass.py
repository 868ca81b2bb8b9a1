"""Home Assistant's REST API: ``POST /api/services/<domain>/<service>``, ``GET /api/states/<id>``.

The long-lived access token comes from an environment variable or a file (never the config, never
a log line: errors show the URL and status only). A URL that carries a user name or password
(``http://user:pass@host``) is refused at start, and every message shows the URL without them
(:func:`redact_url`): messages are logged, printed and spoken aloud. urllib from the standard
library is enough for two endpoints and keeps the device free of an HTTP client dependency.
"""

from __future__ import annotations

import json
import os
import urllib.error
import urllib.parse
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

from casavox.edge_app.actions import ServiceCall
from casavox.edge_app.backends import DeliveryError, EntityState


def redact_url(url: str) -> str:
    """``url`` without its user name and password (``http://user:pass@host`` -> ``http://***@host``),
    so that no message repeats credentials; a URL that cannot be parsed is shown as ``<invalid URL>``."""
    try:
        parts = urllib.parse.urlsplit(str(url))
    except ValueError:
        return "<invalid URL>"
    if "@" not in parts.netloc:
        return parts.geturl()
    return parts._replace(netloc="***@" + parts.netloc.rpartition("@")[2]).geturl()


@dataclass(frozen=True)
class HassSettings:
    url: str = "http://homeassistant.local:8123"
    token_env: str = "CASAVOX_HASS_TOKEN"
    token_file: str | None = None
    timeout_s: float = field(default=3.0, metadata={"range": (0.1, 120.0, "")})  # see config.within
    # The home from Home Assistant's registries (edge_app/backends/hass_home.py), re-read this often.
    read_home: bool = True
    refresh_s: float = field(default=10.0, metadata={"range": (1.0, 3600.0, "")})

    def token(self) -> str:
        if self.token_file:
            path = Path(self.token_file)
            if not path.is_file():
                raise DeliveryError(f"Home Assistant token file {path} not found")
            token = path.read_text().strip()
        else:
            token = os.environ.get(self.token_env, "").strip()
        if not token:
            raise DeliveryError(f"no Home Assistant token: set {self.token_env} or hass.token_file")
        return token


def check_url(settings: HassSettings) -> None:
    """An http(s) URL with a host and no credentials (Home Assistant takes the token; urllib would
    send ``user:pass@host`` as the host name and fail every command)."""
    shown = redact_url(settings.url)
    try:
        parts = urllib.parse.urlsplit(settings.url)
        parts.port  # noqa: B018 (raises ValueError on a port that is no number)
    except ValueError:
        raise DeliveryError(f"hass.url {shown} is not a valid URL") from None
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise DeliveryError(f"hass.url {shown} must be http:// or https:// and name a host")
    if "@" in parts.netloc:
        raise DeliveryError(
            f"hass.url {shown} must not contain a user name or password; "
            f"Home Assistant takes a token ({settings.token_env} or hass.token_file)"
        )


@dataclass
class HassBackend:
    settings: HassSettings = field(default_factory=HassSettings)
    name: str = "hass"

    def __post_init__(self) -> None:
        self._check_url()
        self._token = self.settings.token()  # read once; fail at start, not at the first command

    def _check_url(self) -> None:
        check_url(self.settings)

    def _request(self, method: str, path: str, body: dict | None = None) -> object:
        url = self.settings.url.rstrip("/") + path
        request = urllib.request.Request(
            url,
            data=None if body is None else json.dumps(body).encode(),
            method=method,
            headers={"Authorization": f"Bearer {self._token}", "Content-Type": "application/json"},
        )
        try:
            with urllib.request.urlopen(request, timeout=self.settings.timeout_s) as response:
                data = response.read()
        except urllib.error.HTTPError as exc:
            if exc.code == 404 and method == "GET":
                return None
            why = "token rejected" if exc.code == 401 else f"HTTP {exc.code}"
            raise DeliveryError(f"Home Assistant {method} {path}: {why}; command not delivered") from None
        except (urllib.error.URLError, TimeoutError, OSError, ValueError) as exc:  # InvalidURL: ValueError
            reason = str(getattr(exc, "reason", exc)).replace(
                self.settings.url, redact_url(self.settings.url)
            )
            raise DeliveryError(
                f"Home Assistant at {redact_url(self.settings.url)} unreachable ({reason})"
            ) from None
        return json.loads(data) if data else None

    def call(self, call: ServiceCall) -> None:
        body = dict(call.data)
        if call.entity_ids:
            body["entity_id"] = list(call.entity_ids)
        self._request("POST", f"/api/services/{call.domain}/{call.service}", body)

    def state(self, entity_id: str) -> EntityState | None:
        data = self._request("GET", f"/api/states/{entity_id}")
        if not isinstance(data, dict):
            return None
        return EntityState(str(data.get("state", "")), dict(data.get("attributes") or {}))

    def close(self) -> None:
        pass
