"""A real Home Assistant on loopback for the tests (a helper module, not a test file).

:func:`start_home_assistant` writes ``tests/data/ha/configuration.yaml`` (one home of entities in
every domain casavox acts on, all of them offline: template entities backed by input helpers, a
generic thermostat, a universal media player, the shopping list's to-do entity, scripts and a
scene) with a free 127.0.0.1 port, starts ``hass`` from :func:`tests.ha_install.ensure_home_assistant`'s
install, onboards a user without a browser, makes a long-lived token, puts the entities into areas
that match ``tests/data/ha/home.yaml`` (casavox's home file for the same house), exposes them to
Assist and returns a :class:`RunningHa`; :meth:`RunningHa.stop` ends it (SIGTERM, then SIGKILL).

Only the standard library is used on the test side: ``urllib`` for REST and a small websocket client
(:class:`HaWebsocket`) for the commands Home Assistant offers only there.
"""

from __future__ import annotations

import base64
import contextlib
import json
import logging
import os
import signal
import socket
import struct
import subprocess
import sys
import time
import urllib.error
import urllib.parse
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

from tests.ha_install import HaInstall, HaUnavailable, ensure_home_assistant  # noqa: F401 (re-exported)

log = logging.getLogger(__name__)

START_TIMEOUT_S = 240.0
USER, PASSWORD = "casavox", "casavox-test-password"  # a throw-away instance on loopback only
DATA = Path(__file__).resolve().parent / "data" / "ha"
# casavox's home file for the Home Assistant below (the same entity ids, names, areas and states).
HOME_YAML = (DATA / "home.yaml").read_text()
# Home Assistant's side of the same house; @PORT@ is the port it listens on.
CONFIGURATION_YAML = (DATA / "configuration.yaml").read_text()

# (entity id, area name) for every entity that lives in an area (HOME_YAML's), and the ones casavox
# may act on (exposed to Assist too).
AREAS = {
    "light.kitchen_light": "Kitchen", "light.bedroom_lamp": "Bedroom", "switch.coffee_maker": "Kitchen",
    "switch.heater": "Living Room", "fan.ceiling_fan": "Living Room", "cover.living_room_blinds": "Living Room",
    "climate.thermostat": "Living Room", "sensor.living_room_temperature": "Living Room",
    "lock.front_door": "Hallway", "media_player.tv": "Living Room", "vacuum.robot": "Living Room",
    "input_boolean.guest_mode": "Living Room", "script.movie_night": "Living Room", "scene.evening": "Living Room",
}  # fmt: skip
EXPOSED = sorted(set(AREAS) - {"switch.heater"} | {"todo.shopping_list"})
ENTITIES = sorted(set(AREAS) | {"todo.shopping_list"})


# ------------------------------------------------------------------------ websocket (stdlib only)
class HaWebsocket:
    """Home Assistant's websocket API over one connection: RFC 6455 text frames, client-masked."""

    def __init__(self, url: str, token: str, timeout: float = 30.0) -> None:
        parts = urllib.parse.urlsplit(url)
        host, port = parts.hostname or "127.0.0.1", parts.port or 80
        self.sock = socket.create_connection((host, port), timeout=timeout)
        self.buf = b""
        self.next_id = 1
        key = base64.b64encode(os.urandom(16)).decode()
        path = parts.path.rstrip("/") + "/api/websocket"
        self.sock.sendall(
            f"GET {path} HTTP/1.1\r\nHost: {host}:{port}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
            f"Sec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n\r\n".encode()
        )
        while b"\r\n\r\n" not in self.buf:
            self.buf += self._read()
        head, self.buf = self.buf.split(b"\r\n\r\n", 1)
        if not head.startswith(b"HTTP/1.1 101"):
            raise ConnectionError(
                f"websocket upgrade refused: {head.splitlines()[0].decode(errors='replace')}"
            )
        hello = self.recv()
        if hello.get("type") != "auth_required":
            raise ConnectionError(f"unexpected websocket greeting {hello}")
        self.send({"type": "auth", "access_token": token})
        reply = self.recv()
        if reply.get("type") != "auth_ok":
            self.close()
            raise PermissionError(f"websocket auth failed: {reply.get('message', reply)}")
        self.ha_version = reply.get("ha_version")

    def _read(self) -> bytes:
        data = self.sock.recv(65536)
        if not data:
            raise ConnectionError("websocket closed by Home Assistant")
        return data

    def _exact(self, n: int) -> bytes:
        while len(self.buf) < n:
            self.buf += self._read()
        out, self.buf = self.buf[:n], self.buf[n:]
        return out

    def _frame(self, opcode: int, payload: bytes) -> None:
        head = bytes([0x80 | opcode])
        n = len(payload)
        if n < 126:
            head += bytes([0x80 | n])
        elif n < 65536:
            head += bytes([0x80 | 126]) + struct.pack("!H", n)
        else:
            head += bytes([0x80 | 127]) + struct.pack("!Q", n)
        mask = os.urandom(4)
        self.sock.sendall(head + mask + bytes(b ^ mask[i % 4] for i, b in enumerate(payload)))

    def send(self, message: dict) -> None:
        self._frame(0x1, json.dumps(message).encode())

    def send_bytes(self, payload: bytes) -> None:
        """One binary frame (an Assist pipeline's audio: its handler id, then 16-bit PCM)."""
        self._frame(0x2, payload)

    def recv(self) -> dict:
        message = b""
        while True:
            b0, b1 = self._exact(2)
            opcode, n = b0 & 0x0F, b1 & 0x7F
            if n == 126:
                n = struct.unpack("!H", self._exact(2))[0]
            elif n == 127:
                n = struct.unpack("!Q", self._exact(8))[0]
            mask = self._exact(4) if b1 & 0x80 else b""
            payload = self._exact(n)
            if mask:
                payload = bytes(b ^ mask[i % 4] for i, b in enumerate(payload))
            if opcode == 0x8:
                raise ConnectionError("websocket closed by Home Assistant")
            if opcode == 0x9:
                self._frame(0xA, payload)
                continue
            if opcode in (0x0, 0x1, 0x2):
                message += payload
                if b0 & 0x80:
                    return json.loads(message)

    def call(self, message: dict) -> object:
        """Send one command and return its result (an error result raises RuntimeError)."""
        mid, self.next_id = self.next_id, self.next_id + 1
        self.send({**message, "id": mid})
        while True:
            reply = self.recv()
            if reply.get("id") == mid and reply.get("type") == "result":
                if not reply.get("success"):
                    raise RuntimeError(f"{message['type']} failed: {reply.get('error')}")
                return reply.get("result")

    def close(self) -> None:
        with contextlib.suppress(OSError):
            self._frame(0x8, b"")
        with contextlib.suppress(OSError):
            self.sock.close()

    def __enter__(self) -> HaWebsocket:
        return self

    def __exit__(self, *exc) -> None:
        self.close()


# ------------------------------------------------------------------------------ a running one
def _request(url: str, method: str = "GET", body=None, headers=None, form: bool = False, timeout=10.0):
    """(status, parsed JSON or text) of one HTTP request; connection errors raise OSError."""
    data = None
    headers = dict(headers or {})
    if body is not None:
        if form:
            data = urllib.parse.urlencode(body).encode()
            headers["Content-Type"] = "application/x-www-form-urlencoded"
        else:
            data = json.dumps(body).encode()
            headers["Content-Type"] = "application/json"
    request = urllib.request.Request(url, data=data, method=method, headers=headers)
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            status, raw = response.status, response.read()
    except urllib.error.HTTPError as exc:
        status, raw = exc.code, exc.read()
    try:
        return status, json.loads(raw) if raw else None
    except ValueError:
        return status, raw.decode(errors="replace")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@dataclass
class RunningHa:
    url: str
    token: str
    version: str
    python_version: str
    workdir: Path
    home_yaml: Path  # casavox's home file for this house
    token_file: Path
    process: subprocess.Popen
    start_s: float  # from starting hass to a house ready for the tests (onboarded, areas, list)
    python: Path | None = None  # the interpreter Home Assistant runs on (its own libraries' behaviour)
    entities: tuple[str, ...] = tuple(ENTITIES)
    area_ids: dict[str, str] = field(default_factory=dict)  # area name -> Home Assistant area id

    # ---- REST / websocket ---------------------------------------------------------------
    def rest(self, method: str, path: str, body=None, token: str | None = None):
        status, data = _request(
            self.url + path, method, body, {"Authorization": f"Bearer {token or self.token}"}
        )
        if status >= 400:
            raise RuntimeError(f"Home Assistant {method} {path}: HTTP {status} {str(data)[:300]}")
        return data

    def state(self, entity_id: str) -> dict | None:
        status, data = _request(
            f"{self.url}/api/states/{entity_id}", headers={"Authorization": f"Bearer {self.token}"}
        )
        return data if status == 200 else None

    def service(self, domain: str, service: str, **data) -> None:
        self.rest("POST", f"/api/services/{domain}/{service}", data)

    def ws(self) -> HaWebsocket:
        return HaWebsocket(self.url, self.token)

    def ws_call(self, message: dict):
        with self.ws() as ws:
            return ws.call(message)

    def todo_items(self, entity_id: str = "todo.shopping_list") -> list[dict]:
        """The list's items as Home Assistant keeps them (``todo/item/list``): summary, status, uid."""
        return self.ws_call({"type": "todo/item/list", "entity_id": entity_id})["items"]

    def wait_for(self, check, timeout: float = 10.0, what: str = "a state"):
        """Poll ``check()`` until it returns something truthy (template entities follow their helpers
        a moment after a service call returns)."""
        deadline = time.monotonic() + timeout
        while True:
            got = check()
            if got or time.monotonic() > deadline:
                if not got:
                    raise TimeoutError(f"Home Assistant: {what} not reached in {timeout:.0f} s")
                return got
            time.sleep(0.1)

    def shows(self, entity_id: str, want: str, timeout: float = 5.0) -> dict:
        """The entity's state once Home Assistant shows ``want``; else an AssertionError naming what
        it shows (entities follow their helpers a moment after a service call returns)."""
        try:
            return self.wait_for(
                lambda: (s := self.state(entity_id)) and s["state"] == want and s,
                timeout,
                f"{entity_id} {want}",
            )
        except TimeoutError:
            shown = (self.state(entity_id) or {}).get("state")
            raise AssertionError(f"{entity_id}: Home Assistant shows {shown!r}, not {want!r}") from None

    def reset(self) -> None:
        """Every entity back to HOME_YAML's states, the shopping list emptied."""
        for e in ("kitchen_light_power", "bedroom_lamp_power", "coffee_maker_power", "fan_power",
                  "tv_muted", "movie_mode", "guest_mode"):  # fmt: skip
            self.service("input_boolean", "turn_off", entity_id=f"input_boolean.{e}")
        self.service("input_boolean", "turn_on", entity_id="input_boolean.front_door_locked")
        for e, value in (("kitchen_light_level", 255), ("fan_percentage", 100), ("blinds_position", 0),
                         ("room_temperature", 19.5), ("tv_volume", 0.3)):  # fmt: skip
            self.service("input_number", "set_value", entity_id=f"input_number.{e}", value=value)
        self.service("input_select", "select_option", entity_id="input_select.tv_state", option="off")
        self.service("input_select", "select_option", entity_id="input_select.vacuum_state", option="docked")
        self.service("input_text", "set_value", entity_id="input_text.tv_media", value="")
        self.service("climate", "set_hvac_mode", entity_id="climate.thermostat", hvac_mode="heat")
        self.service("climate", "set_temperature", entity_id="climate.thermostat", temperature=21)
        self.service("shopping_list", "complete_all")
        self.service("shopping_list", "clear_completed_items")
        expected = {
            "light.kitchen_light": "off", "light.bedroom_lamp": "off", "switch.coffee_maker": "off",
            "fan.ceiling_fan": "off", "cover.living_room_blinds": "closed", "lock.front_door": "locked",
            "media_player.tv": "off", "vacuum.robot": "docked", "climate.thermostat": "heat",
            "todo.shopping_list": "0", "input_boolean.guest_mode": "off",
        }  # fmt: skip

        def settled():
            return all((self.state(e) or {}).get("state") == s for e, s in expected.items())

        self.wait_for(settled, what="the reset house")

    def log_tail(self, lines: int = 30) -> str:
        text = ""
        for name in ("ha.log", "ha.stdout"):
            path = self.workdir / name
            if path.exists():
                text += (
                    f"--- {name}\n" + "\n".join(path.read_text(errors="replace").splitlines()[-lines:]) + "\n"
                )
        return text

    def stop(self, timeout: float = 30.0) -> None:
        """SIGTERM, then SIGKILL after ``timeout`` seconds (only the process this module started)."""
        if self.process.poll() is not None:
            return
        self.process.send_signal(signal.SIGTERM)
        try:
            self.process.wait(timeout)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait(10)


def _onboard(url: str) -> str:
    """A long-lived access token for a fresh instance: the onboarding user, its auth code, a token."""
    client_id = url + "/"
    status, data = _request(
        f"{url}/api/onboarding/users",
        "POST",
        {"client_id": client_id, "name": "casavox test", "username": USER, "password": PASSWORD,
         "language": "en"},
    )  # fmt: skip
    if status != 200:
        raise HaUnavailable(f"onboarding/users: HTTP {status} {str(data)[:200]}")
    status, data = _request(
        f"{url}/auth/token", "POST",
        {"grant_type": "authorization_code", "code": data["auth_code"], "client_id": client_id}, form=True,
    )  # fmt: skip
    if status != 200:
        raise HaUnavailable(f"auth/token: HTTP {status} {str(data)[:200]}")
    with HaWebsocket(url, data["access_token"]) as ws:
        return ws.call(
            {"type": "auth/long_lived_access_token", "client_name": "casavox tests", "lifespan": 30}
        )


def _add_shopping_list(ha: RunningHa) -> None:
    """The shopping_list integration is set up by a config entry (its config flow needs no input)."""
    flow = ha.rest("POST", "/api/config/config_entries/flow", {"handler": "shopping_list"})
    if flow.get("type") == "form":
        flow = ha.rest("POST", f"/api/config/config_entries/flow/{flow['flow_id']}", {})
    if flow.get("type") != "create_entry" and flow.get("reason") != "single_instance_allowed":
        raise HaUnavailable(f"shopping_list config flow: {flow}")
    ha.wait_for(lambda: ha.state("todo.shopping_list"), 30, "todo.shopping_list")


def _place_and_expose(ha: RunningHa) -> None:
    with ha.ws() as ws:
        areas = {a["name"]: a["area_id"] for a in ws.call({"type": "config/area_registry/list"})}
        for name in sorted(set(AREAS.values())):
            if name not in areas:
                areas[name] = ws.call({"type": "config/area_registry/create", "name": name})["area_id"]
        for entity_id, area in AREAS.items():
            ws.call({"type": "config/entity_registry/update", "entity_id": entity_id, "area_id": areas[area]})
        ws.call({"type": "homeassistant/expose_entity", "assistants": ["conversation"],
                 "entity_ids": EXPOSED, "should_expose": True})  # fmt: skip
        ws.call({"type": "homeassistant/expose_entity", "assistants": ["conversation"],
                 "entity_ids": ["switch.heater"], "should_expose": False})  # fmt: skip
    ha.area_ids = areas


def _die_with_parent() -> None:
    """In the child before exec (Linux): SIGTERM when the test process dies, even by SIGKILL, so no
    Home Assistant outlives a killed pytest."""
    with contextlib.suppress(Exception):
        import ctypes

        ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG


def start_home_assistant(install: HaInstall, workdir: Path, timeout: float = START_TIMEOUT_S) -> RunningHa:
    """Home Assistant with :data:`CONFIGURATION_YAML` on a free loopback port, onboarded, its entities
    in areas and exposed, reset to :data:`HOME_YAML`'s states. Raises :class:`HaUnavailable` (with the
    end of its log) when it does not come up; the process is stopped then."""
    workdir = Path(workdir).resolve()
    config = workdir / "config"
    config.mkdir(parents=True, exist_ok=True)
    port = free_port()
    (config / "configuration.yaml").write_text(CONFIGURATION_YAML.replace("@PORT@", str(port)))
    home_yaml = workdir / "home.yaml"
    home_yaml.write_text(HOME_YAML)
    url = f"http://127.0.0.1:{port}"
    t0 = time.monotonic()
    # --skip-pip: everything was installed with it; nothing may reach for the network at start
    cmd = [
        str(install.hass.resolve()),
        "-c",
        str(config),
        "--skip-pip",
        "--log-file",
        str(workdir / "ha.log"),
    ]
    with open(workdir / "ha.stdout", "w") as out:
        try:
            process = subprocess.Popen(
                [*cmd, "--log-no-color"],
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
                cwd=workdir,
                preexec_fn=_die_with_parent,
            )
        except OSError as exc:
            raise HaUnavailable(f"cannot run {cmd[0]}: {exc}") from None
    ha = RunningHa(url, "", install.version, install.python_version, workdir, home_yaml,
                   workdir / "token", process, 0.0, install.python)  # fmt: skip
    try:
        deadline = t0 + timeout
        while True:  # the HTTP server answers before every integration is set up...
            if process.poll() is not None:
                raise HaUnavailable(f"hass exited with {process.returncode} while starting")
            with contextlib.suppress(OSError):
                if _request(f"{url}/api/onboarding", timeout=2)[0] == 200:
                    break
            if time.monotonic() > deadline:
                raise HaUnavailable(f"hass not answering on {url} after {timeout:.0f} s")
            time.sleep(0.5)
        ha.token = _onboard(url)
        ha.token_file.write_text(ha.token + "\n")
        ha.token_file.chmod(0o600)

        # ...so wait for the core to run; then every configured entity must be there (one that is not
        # was refused by its platform: the log says why)
        ha.wait_for(
            lambda: ha.rest("GET", "/api/config").get("state") == "RUNNING",
            max(5.0, deadline - time.monotonic()),
            "the RUNNING state",
        )
        wanted = [e for e in ENTITIES if e != "todo.shopping_list"]
        with contextlib.suppress(TimeoutError):
            ha.wait_for(lambda: all(ha.state(e) for e in wanted), 15, "every entity")
        missing = [e for e in wanted if not ha.state(e)]
        if missing:
            raise HaUnavailable(f"Home Assistant {install.version} runs without {', '.join(missing)}")
        _add_shopping_list(ha)
        _place_and_expose(ha)
        ha.reset()
    except Exception as exc:
        tail = ha.log_tail(15)
        ha.stop()
        if isinstance(exc, HaUnavailable):
            raise HaUnavailable(f"{exc}\n{tail}") from None
        raise HaUnavailable(
            f"Home Assistant {install.version} did not come up: {type(exc).__name__}: {exc}\n{tail}"
        ) from None
    ha.start_s = time.monotonic() - t0
    return ha


if __name__ == "__main__":  # python tests/ha_instance.py [CACHE]: install it (once) and start it once
    logging.basicConfig(level=logging.INFO)
    got = ensure_home_assistant(Path(sys.argv[1] if len(sys.argv) > 1 else ".cache"))
    print(json.dumps({"version": got.version, "python": got.python_version, "install_s": got.install_s}))
    if "--start" in sys.argv:
        import tempfile

        running = start_home_assistant(got, Path(tempfile.mkdtemp(prefix="casavox-ha-")))
        print(
            json.dumps(
                {"url": running.url, "start_s": round(running.start_s, 1), "workdir": str(running.workdir)}
            )
        )
        running.stop()
