"""Home Assistant installed for the tests (a helper module, not a test file; tests/ha_instance.py
starts it).

:func:`ensure_home_assistant` installs Home Assistant once into its own virtualenv under the test cache
(``<cache>/ha-<version>``), pinned by the ``package_constraints.txt`` inside Home Assistant's own wheel
(the pins its releases are tested with), together with the requirements of every integration the
tests' configuration loads, so nothing is installed when it starts (``hass --skip-pip``). The newest
release an interpreter on this machine can run is used (2025.4.4 needs Python 3.13), else an older one
(2024.3.3 on Python 3.11). A file lock keeps two pytest processes from installing at once; an install
that does not import any more is rebuilt; one that failed is not retried for an hour (the reason is
kept next to it), so a machine without the package index skips in seconds, not minutes.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import logging
import os
import re
import shutil
import subprocess
import sys
import time
import zipfile
from dataclasses import dataclass
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
# Integrations the configuration loads (their requirements are installed with Home Assistant).
DOMAINS = (
    "http", "api", "websocket_api", "auth", "onboarding", "config", "conversation", "intent", "logger",
    "homeassistant", "input_boolean", "input_number", "input_select", "input_text", "template", "sensor",
    "climate", "generic_thermostat", "cover", "fan", "light", "switch", "lock", "media_player",
    "universal", "vacuum", "todo", "shopping_list", "script", "scene",
    "wyoming", "mqtt",  # added by config flow in tests/test_hass_assist.py and test_box_mqtt_ha.py
)  # fmt: skip


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
