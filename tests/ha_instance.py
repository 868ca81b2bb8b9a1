"""A real Home Assistant on loopback for the tests (a helper module, not a test file).

:func:`ensure_home_assistant` installs Home Assistant once into its own virtualenv under the test cache
(``<cache>/ha-<version>``), pinned by the ``package_constraints.txt`` inside Home Assistant's own wheel
(the pins its releases are tested with), together with the requirements of every integration the
configuration below loads, so nothing is installed when it starts (``hass --skip-pip``). The newest
release an interpreter on this machine can run is used (2025.4.4 needs Python 3.13), else an older one
(2024.3.3 on Python 3.11). A file lock keeps two pytest processes from installing at once; an install
that does not import any more is rebuilt; one that failed is not retried for an hour (the reason is
kept next to it), so a machine without the package index skips in seconds, not minutes.

:func:`start_home_assistant` writes a configuration with one home of entities in every domain casavox
acts on, all of them offline (template entities backed by input helpers, a generic thermostat, a
universal media player, the shopping list's to-do entity, scripts and a scene), starts ``hass`` on a
free 127.0.0.1 port, onboards a user without a browser, makes a long-lived token, puts the entities
into areas that match :data:`HOME_YAML` (casavox's home file for the same house), exposes them to
Assist and returns a :class:`RunningHa`; :meth:`RunningHa.stop` ends it (SIGTERM, then SIGKILL).

Only the standard library is used on the test side: ``urllib`` for REST and a small websocket client
(:class:`HaWebsocket`) for the commands Home Assistant offers only there.
"""

from __future__ import annotations

import base64
import contextlib
import fcntl
import json
import logging
import os
import re
import shutil
import signal
import socket
import struct
import subprocess
import sys
import time
import urllib.error
import urllib.parse
import urllib.request
import zipfile
from dataclasses import dataclass, field
from pathlib import Path

log = logging.getLogger(__name__)

# (Home Assistant release, the Python minor versions it runs on), newest first. 2025.4.4 and 2024.3.3
# were measured on this machine; 2025.1.4 is the last release for Python 3.12.
RELEASES: tuple[tuple[str, tuple[tuple[int, int], ...]], ...] = (
    ("2025.4.4", ((3, 13),)),
    ("2025.1.4", ((3, 12),)),
    ("2024.3.3", ((3, 11), (3, 12))),
)
FAILED_RETRY_S = 3600.0  # a failed install is retried after this long (or when its marker is deleted)
INSTALL_TIMEOUT_S = 1800.0
START_TIMEOUT_S = 240.0
# Integrations the configuration loads (their requirements are installed with Home Assistant).
DOMAINS = (
    "http", "api", "websocket_api", "auth", "onboarding", "config", "conversation", "intent", "logger",
    "homeassistant", "input_boolean", "input_number", "input_select", "input_text", "template", "sensor",
    "climate", "generic_thermostat", "cover", "fan", "light", "switch", "lock", "media_player",
    "universal", "vacuum", "todo", "shopping_list", "script", "scene",
)  # fmt: skip
USER, PASSWORD = "casavox", "casavox-test-password"  # a throw-away instance on loopback only


class HaUnavailable(RuntimeError):
    """Home Assistant could not be installed or started here (the message says why, in one line)."""


@dataclass(frozen=True)
class HaInstall:
    version: str
    root: Path  # <cache>/ha-<version>
    python: Path  # the virtualenv's interpreter
    python_version: str
    install_s: float | None = None  # seconds this call spent installing; None: it was installed before

    @property
    def hass(self) -> Path:
        return self.python.parent / "hass"


# ---------------------------------------------------------------------------------------- install
def _python_version(python: str | Path) -> tuple[int, int, int] | None:
    try:
        out = subprocess.run(
            [str(python), "-c", "import sys; print(*sys.version_info[:3])"],
            capture_output=True, text=True, timeout=30, check=True,
        ).stdout  # fmt: skip
        major, minor, micro = (int(x) for x in out.split())
        return major, minor, micro
    except (OSError, subprocess.SubprocessError, ValueError):
        return None


def interpreters() -> list[tuple[Path, tuple[int, int, int]]]:
    """Pythons on this machine (``$CASAVOX_HA_PYTHON`` first, then pyenv's, then ``python3.X`` on PATH
    and this interpreter's base), each once, with their versions."""
    candidates: list[str] = []
    if os.environ.get("CASAVOX_HA_PYTHON"):
        candidates.append(os.environ["CASAVOX_HA_PYTHON"])
    pyenv = shutil.which("pyenv")
    if pyenv:
        with contextlib.suppress(OSError, subprocess.SubprocessError):
            bare = subprocess.run([pyenv, "versions", "--bare"], capture_output=True, text=True, timeout=30)
            root = subprocess.run([pyenv, "root"], capture_output=True, text=True, timeout=30).stdout.strip()
            for name in bare.stdout.split():
                if re.fullmatch(r"3\.\d+\.\d+", name) and root:
                    candidates.append(f"{root}/versions/{name}/bin/python3")
    candidates += [p for v in ("3.13", "3.12", "3.11") if (p := shutil.which(f"python{v}"))]
    candidates.append(getattr(sys, "_base_executable", sys.executable))
    found: list[tuple[Path, tuple[int, int, int]]] = []  # $CASAVOX_HA_PYTHON, then newest first
    seen: set[str] = set()
    for c in candidates:
        path = Path(c)
        key = str(path.resolve()) if path.exists() else c
        if key in seen or not path.exists():
            continue
        seen.add(key)
        version = _python_version(path)
        if version is not None:
            found.append((path, version))
    first = found[:1] if os.environ.get("CASAVOX_HA_PYTHON") else []
    return first + sorted(found[len(first) :], key=lambda pv: pv[1], reverse=True)


def _run(cmd: list[str], logfile: Path, timeout: float = INSTALL_TIMEOUT_S) -> None:
    """Run ``cmd`` with its output appended to ``logfile``; a failure raises with the log's last lines."""
    with open(logfile, "a") as out:
        out.write(f"\n$ {' '.join(cmd)}\n")
        out.flush()
        try:
            rc = subprocess.run(cmd, stdout=out, stderr=subprocess.STDOUT, timeout=timeout).returncode
        except subprocess.TimeoutExpired:
            rc = "timeout"
    if rc != 0:
        lines = logfile.read_text(errors="replace").strip().splitlines()
        said = [
            x.strip() for x in lines if x.strip() and "is ignored" not in x and not x.startswith("WARNING")
        ]
        tail = " | ".join(x[:300] for x in said[-2:])
        raise HaUnavailable(f"{Path(cmd[0]).name} {' '.join(cmd[1:4])} ... failed ({rc}): {tail[-600:]}")


def _requirements(wheel: Path) -> tuple[bytes, list[str]]:
    """(Home Assistant's package_constraints.txt, the requirements of every integration the
    configuration loads: :data:`DOMAINS`, the ones bootstrap always sets up, and their dependencies)."""
    z = zipfile.ZipFile(wheel)
    names = set(z.namelist())
    constraints = z.read("homeassistant/package_constraints.txt")
    boot = z.read("homeassistant/bootstrap.py").decode()
    todo = list(DOMAINS)
    for var in ("CORE_INTEGRATIONS", "DEFAULT_INTEGRATIONS", "FRONTEND_INTEGRATIONS"):
        m = re.search("^" + var + r"(?::[^=]*)? = (\{[^\n]*\}$|\{.*?^\}|\(.*?^\))", boot, re.S | re.M)
        if m:
            todo += sorted(set(re.findall(r'"([a-z0-9_]+)"', m.group(1))))
    seen: set[str] = set()
    reqs: set[str] = set()
    while todo:
        domain = todo.pop()
        manifest = f"homeassistant/components/{domain}/manifest.json"
        if domain in seen or manifest not in names:
            continue
        seen.add(domain)
        data = json.loads(z.read(manifest))
        reqs |= set(data.get("requirements", []))
        # after_dependencies too: 2024.3's analytics imports the recorder (SQLAlchemy) whenever it loads
        todo += data.get("dependencies", []) + data.get("after_dependencies", [])
    return constraints, sorted(reqs)


def _installed_version(python: Path) -> str | None:
    try:
        out = subprocess.run(
            [str(python), "-c", "import homeassistant.const as c, aiohttp, yaml; print(c.__version__)"],
            capture_output=True, text=True, timeout=120,
        )  # fmt: skip
    except (OSError, subprocess.SubprocessError):
        return None
    return out.stdout.strip() if out.returncode == 0 else None


@contextlib.contextmanager
def _locked(path: Path):
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w") as f:
        fcntl.flock(f, fcntl.LOCK_EX)  # another pytest process installing: wait for it
        try:
            yield
        finally:
            fcntl.flock(f, fcntl.LOCK_UN)


def _pip(root: Path, *args: str) -> None:
    """``pip ARGS`` in the virtualenv (quiet, few retries: an index that is not there fails fast)."""
    python = root / "venv" / "bin" / "python"
    _run([str(python), "-m", "pip", args[0], "-q", "--retries", "2", *args[1:]], root / "pip.log")


def _pip_install(root: Path, wheel: Path) -> list[str]:
    """Home Assistant's wheel and the integrations' requirements under its pins; the requirements."""
    constraints, reqs = _requirements(wheel)
    # josepy 2 breaks acme (hass-nabucasa's dependency), which Home Assistant's pins leave open
    (root / "constraints.txt").write_bytes(constraints + b"\njosepy<2\n")
    _pip(root, "install", "-c", str(root / "constraints.txt"), str(wheel), *reqs)
    return reqs


def _install(root: Path, version: str, base_python: Path) -> list[str]:
    root.mkdir(parents=True)
    _run([str(base_python), "-m", "venv", str(root / "venv")], root / "pip.log", timeout=300)
    _pip(root, "install", "--upgrade", "pip", "wheel")
    _pip(root, "download", "--no-deps", "-d", str(root / "dl"), f"homeassistant=={version}")
    wheel = _wheel(root, version)
    if wheel is None:
        raise HaUnavailable(f"pip download gave no homeassistant-{version} wheel")
    return _pip_install(root, wheel)


def _wheel(root: Path, version: str) -> Path | None:
    return next(iter(sorted((root / "dl").glob(f"homeassistant-{version}-*.whl"))), None)


def _ensure_one(cache: Path, version: str, base_python: Path) -> HaInstall:
    root = cache / f"ha-{version}"
    python = root / "venv" / "bin" / "python"
    marker = root / "installed.json"
    failed = cache / f"ha-{version}.failed"
    with _locked(cache / f"ha-{version}.lock"):
        if marker.exists():
            info = json.loads(marker.read_text())
            wheel = _wheel(root, version)
            if wheel is not None and _installed_version(python) == version:
                if info.get("requirements") != _requirements(wheel)[1]:  # DOMAINS changed since: top up
                    log.warning("Home Assistant %s: installing the requirements of new integrations", version)
                    try:
                        info["requirements"] = _pip_install(root, wheel)
                    except HaUnavailable as exc:
                        raise HaUnavailable(f"Home Assistant {version}: {exc}") from None
                    marker.write_text(json.dumps(info))
                return HaInstall(version, root, python, info["python"])
            log.warning("Home Assistant %s in %s is broken: rebuilding it", version, root)
        if failed.exists() and time.time() - failed.stat().st_mtime < FAILED_RETRY_S:
            raise HaUnavailable(f"{failed.read_text().strip()} (retried an hour later, or delete {failed})")
        shutil.rmtree(root, ignore_errors=True)
        t0 = time.monotonic()
        log.warning("installing Home Assistant %s with %s into %s (minutes)", version, base_python, root)
        try:
            reqs = _install(root, version, base_python)
            if _installed_version(python) != version:
                raise HaUnavailable(f"homeassistant {version} installed but does not import")
        except HaUnavailable as exc:
            failed.write_text(f"Home Assistant {version} on {base_python}: {exc}\n")
            raise HaUnavailable(failed.read_text().strip()) from None
        seconds = time.monotonic() - t0
        py = ".".join(map(str, _python_version(python) or ()))
        info = {"version": version, "python": py, "install_s": round(seconds, 1), "requirements": reqs}
        marker.write_text(json.dumps(info))
        failed.unlink(missing_ok=True)
        return HaInstall(version, root, python, py, seconds)


def ensure_home_assistant(cache: Path) -> HaInstall:
    """The newest Home Assistant an interpreter here can run, installed once under ``cache``.

    ``$CASAVOX_HA_VERSION`` asks for one release (with ``$CASAVOX_HA_PYTHON`` to run it). Raises
    :class:`HaUnavailable` with every reason when none could be installed."""
    cache = Path(cache).resolve()
    pythons = interpreters()
    wanted = os.environ.get("CASAVOX_HA_VERSION")
    releases = [(wanted, ())] if wanted else list(RELEASES)
    reasons = []
    for version, minors in releases:
        fits = [p for p, v in pythons if not minors or v[:2] in minors]
        if not fits:
            reasons.append(f"{version}: no Python {' or '.join('.'.join(map(str, m)) for m in minors)} here")
            continue
        try:
            return _ensure_one(cache, version, fits[0])
        except HaUnavailable as exc:
            reasons.append(str(exc))
    raise HaUnavailable("; ".join(reasons) or "no Home Assistant release to try")


# ------------------------------------------------------------------------------- the house
# casavox's home file for the Home Assistant below: the same entity ids, names, areas and the states
# (with the attributes Home Assistant shows) that RunningHa.reset() puts them in.
HOME_YAML = """\
language: "en"
areas:
  - {name: "Kitchen", id: "kitchen"}
  - {name: "Living Room", id: "living_room"}
  - {name: "Bedroom", id: "bedroom"}
  - {name: "Hallway", id: "hallway"}
entities:
  - {name: "Kitchen Light", id: "light.kitchen_light", area: "kitchen", state: "off"}
  - {name: "Bedroom Lamp", id: "light.bedroom_lamp", area: "bedroom", state: "off"}
  - {name: "Coffee Maker", id: "switch.coffee_maker", area: "kitchen", state: "off"}
  - {name: "Heater", id: "switch.heater", area: "living_room", state: "off", exposed: false}
  - {name: "Ceiling Fan", id: "fan.ceiling_fan", area: "living_room", state: "off", attributes: {percentage: 0}}
  - name: "Living Room Blinds"
    id: "cover.living_room_blinds"
    area: "living_room"
    state: "closed"
    attributes: {device_class: blind, current_position: 0}
  - name: "Thermostat"
    id: "climate.thermostat"
    area: "living_room"
    state: "heat"
    attributes: {current_temperature: 19.5, temperature: 21.0}
  - name: "Living Room Temperature"
    id: "sensor.living_room_temperature"
    area: "living_room"
    state: "19.5"
    attributes: {unit_of_measurement: "°C", device_class: temperature}
  - {name: "Front Door", id: "lock.front_door", area: "hallway", state: "locked"}
  - name: "TV"
    id: "media_player.tv"
    area: "living_room"
    state: "off"
    attributes: {volume_level: 0.3, is_volume_muted: false}  # kept while off, reported when on
  - {name: "Robot Vacuum", id: "vacuum.robot", area: "living_room", state: "docked"}
  - {name: "Shopping List", id: "todo.shopping_list", state: "0"}
  - {name: "Guest Mode", id: "input_boolean.guest_mode", area: "living_room", state: "off"}
  - {name: "Movie Night", id: "script.movie_night", area: "living_room", state: "off"}
  - {name: "Evening", id: "scene.evening", area: "living_room", state: "unknown"}
"""

# Home Assistant's side of the same house: every entity offline (no cloud, no device), the ones with a
# state of their own backed by input helpers the way a real device keeps its state: a dimmer keeps
# its last level while off and reports no brightness then; a fan keeps its last speed and reports 0 %
# while off; blinds report their position.
CONFIGURATION_YAML = """\
homeassistant:
  name: casavox-test
  unit_system: metric
  time_zone: UTC
  latitude: 0
  longitude: 0
  elevation: 0
  country: US
  language: en
http:
  server_host: 127.0.0.1
  server_port: {port}
api:
websocket_api:
auth:
onboarding:
config:
conversation:
intent:
logger:
  default: warning
input_boolean:
  kitchen_light_power: {{name: Backing kitchen light}}
  bedroom_lamp_power: {{name: Backing bedroom lamp}}
  coffee_maker_power: {{name: Backing coffee maker}}
  heater_power: {{name: Backing heater}}
  fan_power: {{name: Backing fan}}
  front_door_locked: {{name: Backing front door lock, initial: true}}
  tv_muted: {{name: Backing TV mute}}
  movie_mode: {{name: Backing movie mode}}
  guest_mode: {{name: Guest Mode}}
input_number:
  kitchen_light_level: {{name: Backing kitchen level, min: 0, max: 255, step: 1, initial: 255}}
  fan_percentage: {{name: Backing fan speed, min: 0, max: 100, step: 1, initial: 100}}
  blinds_position: {{name: Backing blinds position, min: 0, max: 100, step: 1, initial: 0}}
  room_temperature: {{name: Backing room temperature, min: -20, max: 50, step: 0.1, initial: 19.5}}
  tv_volume: {{name: Backing TV volume, min: 0, max: 1, step: 0.01, initial: 0.3}}
input_select:
  tv_state: {{name: Backing TV state, options: ["off", "on", "playing", "paused", "idle"], initial: "off"}}
  vacuum_state: {{name: Backing vacuum, options: [docked, cleaning, returning, idle, paused], initial: docked}}
input_text:
  tv_media: {{name: Backing TV media, initial: ""}}
template:
  - sensor:
      - name: "Living Room Temperature"
        unique_id: casavox_living_room_temperature
        unit_of_measurement: "°C"
        device_class: temperature
        state: "{{{{ states('input_number.room_temperature') }}}}"
light:
  - platform: template
    lights:
      kitchen_light:
        unique_id: casavox_kitchen_light
        friendly_name: "Kitchen Light"
        value_template: "{{{{ is_state('input_boolean.kitchen_light_power', 'on') }}}}"
        level_template: "{{{{ states('input_number.kitchen_light_level') | int(0) }}}}"
        turn_on: {{service: input_boolean.turn_on, target: {{entity_id: input_boolean.kitchen_light_power}}}}
        turn_off: {{service: input_boolean.turn_off, target: {{entity_id: input_boolean.kitchen_light_power}}}}
        set_level:
          - service: input_number.set_value
            target: {{entity_id: input_number.kitchen_light_level}}
            data: {{value: "{{{{ brightness }}}}"}}
          - service: "input_boolean.turn_{{{{ 'on' if brightness | int(0) > 0 else 'off' }}}}"
            target: {{entity_id: input_boolean.kitchen_light_power}}
        set_rgb:
          - service: input_boolean.turn_on
            target: {{entity_id: input_boolean.kitchen_light_power}}
      bedroom_lamp:
        unique_id: casavox_bedroom_lamp
        friendly_name: "Bedroom Lamp"
        value_template: "{{{{ is_state('input_boolean.bedroom_lamp_power', 'on') }}}}"
        turn_on: {{service: input_boolean.turn_on, target: {{entity_id: input_boolean.bedroom_lamp_power}}}}
        turn_off: {{service: input_boolean.turn_off, target: {{entity_id: input_boolean.bedroom_lamp_power}}}}
switch:
  - platform: template
    switches:
      coffee_maker:
        unique_id: casavox_coffee_maker
        friendly_name: "Coffee Maker"
        value_template: "{{{{ is_state('input_boolean.coffee_maker_power', 'on') }}}}"
        turn_on: {{service: input_boolean.turn_on, target: {{entity_id: input_boolean.coffee_maker_power}}}}
        turn_off: {{service: input_boolean.turn_off, target: {{entity_id: input_boolean.coffee_maker_power}}}}
      heater:
        unique_id: casavox_heater
        friendly_name: "Heater"
        value_template: "{{{{ is_state('input_boolean.heater_power', 'on') }}}}"
        turn_on: {{service: input_boolean.turn_on, target: {{entity_id: input_boolean.heater_power}}}}
        turn_off: {{service: input_boolean.turn_off, target: {{entity_id: input_boolean.heater_power}}}}
fan:
  - platform: template
    fans:
      ceiling_fan:
        unique_id: casavox_ceiling_fan
        friendly_name: "Ceiling Fan"
        value_template: "{{{{ is_state('input_boolean.fan_power', 'on') }}}}"
        percentage_template: >-
          {{{{ states('input_number.fan_percentage') | int(0) if is_state('input_boolean.fan_power', 'on') else 0 }}}}
        speed_count: 100
        turn_on: {{service: input_boolean.turn_on, target: {{entity_id: input_boolean.fan_power}}}}
        turn_off: {{service: input_boolean.turn_off, target: {{entity_id: input_boolean.fan_power}}}}
        set_percentage:
          - if: "{{{{ percentage | int(0) > 0 }}}}"
            then:
              - service: input_number.set_value
                target: {{entity_id: input_number.fan_percentage}}
                data: {{value: "{{{{ percentage }}}}"}}
          - service: "input_boolean.turn_{{{{ 'on' if percentage | int(0) > 0 else 'off' }}}}"
            target: {{entity_id: input_boolean.fan_power}}
cover:
  - platform: template
    covers:
      living_room_blinds:
        unique_id: casavox_living_room_blinds
        friendly_name: "Living Room Blinds"
        device_class: blind
        position_template: "{{{{ states('input_number.blinds_position') | int(0) }}}}"
        open_cover: {{service: input_number.set_value, target: {{entity_id: input_number.blinds_position}}, data: {{value: 100}}}}
        close_cover: {{service: input_number.set_value, target: {{entity_id: input_number.blinds_position}}, data: {{value: 0}}}}
        set_cover_position:
          service: input_number.set_value
          target: {{entity_id: input_number.blinds_position}}
          data: {{value: "{{{{ position }}}}"}}
climate:
  - platform: generic_thermostat
    name: Thermostat
    unique_id: casavox_thermostat
    heater: switch.heater
    target_sensor: sensor.living_room_temperature
    target_temp: 21
    initial_hvac_mode: heat
lock:
  - platform: template
    name: Front Door
    unique_id: casavox_front_door
    value_template: "{{{{ is_state('input_boolean.front_door_locked', 'on') }}}}"
    lock: {{service: input_boolean.turn_on, target: {{entity_id: input_boolean.front_door_locked}}}}
    unlock: {{service: input_boolean.turn_off, target: {{entity_id: input_boolean.front_door_locked}}}}
media_player:
  - platform: universal
    name: TV
    unique_id: casavox_tv
    state_template: "{{{{ states('input_select.tv_state') }}}}"
    attributes:
      volume_level: input_number.tv_volume
      is_volume_muted: input_boolean.tv_muted
    commands:
      turn_on: &tv_on {{service: input_select.select_option, target: {{entity_id: input_select.tv_state}}, data: {{option: "on"}}}}
      turn_off: {{service: input_select.select_option, target: {{entity_id: input_select.tv_state}}, data: {{option: "off"}}}}
      media_play: &tv_play {{service: input_select.select_option, target: {{entity_id: input_select.tv_state}}, data: {{option: playing}}}}
      media_pause: {{service: input_select.select_option, target: {{entity_id: input_select.tv_state}}, data: {{option: paused}}}}
      media_next_track: *tv_play
      media_previous_track: *tv_play
      volume_set:
        service: input_number.set_value
        target: {{entity_id: input_number.tv_volume}}
        data: {{value: "{{{{ volume_level }}}}"}}
      volume_mute:
        service: "input_boolean.turn_{{{{ 'on' if is_volume_muted else 'off' }}}}"
        target: {{entity_id: input_boolean.tv_muted}}
      play_media:
        service: script.tv_play_media
        data: {{content: "{{{{ media_content_id }}}}"}}
vacuum:
  - platform: template
    vacuums:
      robot:
        unique_id: casavox_robot_vacuum
        friendly_name: "Robot Vacuum"
        value_template: "{{{{ states('input_select.vacuum_state') }}}}"
        start: {{service: input_select.select_option, target: {{entity_id: input_select.vacuum_state}}, data: {{option: cleaning}}}}
        return_to_base: {{service: input_select.select_option, target: {{entity_id: input_select.vacuum_state}}, data: {{option: returning}}}}
script:
  tv_play_media:
    alias: TV play media
    fields: {{content: {{description: what to play}}}}
    sequence:
      - service: input_text.set_value
        target: {{entity_id: input_text.tv_media}}
        data: {{value: "{{{{ content }}}}"}}
      - *tv_play
  movie_night:
    alias: Movie Night
    sequence:
      - service: input_boolean.turn_on
        target: {{entity_id: input_boolean.movie_mode}}
scene:
  - id: casavox_evening
    name: Evening
    entities:
      light.bedroom_lamp: "on"
"""

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
    (config / "configuration.yaml").write_text(CONFIGURATION_YAML.format(port=port))
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
                   workdir / "token", process, 0.0)  # fmt: skip
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
