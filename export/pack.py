"""`casavox pack`: one offline artifact that installs the device side of casavox on a box.

A box is flashed, not built: it often has no internet and little disk, and must never get the
workstation's torch or transformers. The artifact is a plain tar holding one folder::

    casavox-<version>-<target>/
      install.sh, install.py        the installer (stdlib Python only: it runs before any venv)
      MANIFEST.json, MANIFEST.sig   every other file with its sha256 and size; signed (ed25519)
      wheels/*.whl                  casavox and its runtime dependencies for the target, and pip
      bundle/                       the signed bundle subset the target runs (int8 CPU, fp16 GPU)
      keys/<key id>.pub             the public key the bundle and the manifest are signed with
      casavox.service, casavox.toml the systemd unit and the config, rendered for the target
      selftest/command.wav, .json   a spoken command and what it must become (deploy/install.py)

Wheels are resolved here, once, with pip, and installed on the box with ``--no-index --no-deps`` from
exactly this list, so the box needs no resolver and no index. A target whose Python and CPU are
this workstation's (``cpu``, ``cuda`` on an x86_64 workstation) gets wheels built here with ``pip
wheel`` (PyAudio has no Linux wheel on PyPI and is compiled here); ``jetson`` (aarch64, JetPack 6's
Python 3.10) takes binary wheels only, downloaded for that platform, and takes onnxruntime-gpu,
TensorRT and PyAudio from the system (JetPack and apt), as NVIDIA ships them for that board.
Hand-written because no tool does this whole job: pip resolves and downloads, but nothing of the
field puts wheels, a signed model bundle, a unit and a self-test into one verified offline install.
"""

from __future__ import annotations

import json
import logging
import os
import platform
import shutil
import subprocess
import sys
import tarfile
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

from casavox.errors import CasavoxError

log = logging.getLogger(__name__)

PACK_FORMAT = "casavox-pack"
PACK_FORMAT_VERSION = 1
MANIFEST = "MANIFEST.json"
SIGNATURE = "MANIFEST.sig"
# The self-test's sentence: a template sentence on the example home, so its expected intent is
# Home Assistant's own answer, and short enough for Whisper tiny to hear it right from Piper.
SELFTEST_SENTENCE = "turn off the living room lamp"
# Never on a box: the workstation's training stack (docs/design.md, "One package").
# Installed for a file they ship (silero-vad: the VAD's ONNX model), without their dependencies.
MODEL_ONLY = ("silero-vad",)
FORBIDDEN = ("torch", "transformers", "accelerate", "peft", "onnxruntime-genai", "optimum")


class PackError(CasavoxError, RuntimeError):
    """The artifact cannot be built; the message says what to do."""


@dataclass(frozen=True)
class Target:
    """What one kind of box runs, and where each of its parts comes from."""

    name: str
    variants: dict[str, list[str]]  # bundle component -> variants kept
    device: str  # the packed config's `device`
    extras: tuple[str, ...]  # casavox extras installed on the box
    add: tuple[str, ...] = ()  # requirements beyond casavox's own
    drop: tuple[str, ...] = ()  # distributions the box takes from its system instead
    forbidden: tuple[str, ...] = ()  # distributions this target must not carry (beyond FORBIDDEN)
    machine: str | None = None  # the box's `uname -m`; None = this workstation's
    python: str | None = None  # "3.10"; None = this workstation's
    platforms: tuple[str, ...] = ()  # pip --platform tags for a cross download; () = built here
    system_site_packages: bool = False
    system_modules: tuple[str, ...] = ()  # must import from the box's system Python
    system_hint: str = ""
    notes: dict[str, str] = field(default_factory=dict)

    @property
    def cross(self) -> bool:
        return bool(self.platforms)


def _targets() -> dict[str, Target]:
    gpu = {"asr": ["fp16"], "llm": ["fp16"]}
    return {
        "cpu": Target(
            "cpu",
            {"asr": ["int8"], "llm": ["int8"]},
            device="cpu",
            extras=("audio", "tts", "wake"),
            forbidden=("onnxruntime-gpu", "tensorrt", "nvidia-"),
        ),
        # onnxruntime-gpu's own extras name the CUDA and cuDNN wheels it was built against, so the
        # box needs only NVIDIA's driver (--cuda-libs system leaves them out: a box with CUDA installed).
        "cuda": Target(
            "cuda",
            gpu,
            device="cuda",
            extras=("audio", "tts", "wake"),
            add=("onnxruntime-gpu[cuda,cudnn]>=1.20",),
            drop=("onnxruntime",),
        ),
        "jetson": Target(
            "jetson",
            gpu,
            device="cuda",
            extras=("tts", "wake-open"),  # no pymicro-features wheel for Python 3.10 aarch64
            drop=("onnxruntime", "pyaudio"),
            machine="aarch64",
            python="3.10",
            platforms=(
                "manylinux2014_aarch64",
                "manylinux_2_17_aarch64",
                "manylinux_2_28_aarch64",
                "manylinux_2_35_aarch64",  # JetPack 6 is Ubuntu 22.04: glibc 2.35
                "linux_aarch64",
            ),
            system_site_packages=True,
            system_modules=("onnxruntime", "pyaudio"),
            system_hint=(
                "on JetPack 6: sudo apt install python3-venv python3-pyaudio, and onnxruntime-gpu from "
                "NVIDIA's Jetson index (pip install onnxruntime-gpu --index-url "
                "https://pypi.jetson-ai-lab.io/jp6/cu126), or pack that wheel with --extra-wheel"
            ),
            notes={"jetpack": "6.x (L4T R36, Ubuntu 22.04, Python 3.10, CUDA 12.6)"},
        ),
    }


TARGETS = _targets()


def target(name: str) -> Target:
    try:
        return TARGETS[name]
    except KeyError:
        raise PackError(f"unknown target '{name}' (choose from {', '.join(TARGETS)})") from None


@dataclass
class PackReport:
    path: Path
    size: int
    wheels: list[str]
    bundle_size: int
    key_id: str
    target: str
    version: str
    folder: str  # the folder the tar unpacks to


def _norm(name: str) -> str:
    return name.lower().replace("_", "-").replace(".", "-")


def wheel_name(filename: str) -> str:
    """The distribution a wheel file installs (``PyAudio-0.2.14-...whl`` -> ``pyaudio``)."""
    return _norm(filename.split("-")[0])


def _source_dir(source: str | Path | None) -> Path:
    root = Path(source) if source else Path(__file__).resolve().parents[1]
    pyproject = root / "pyproject.toml"
    if not pyproject.is_file() or 'name = "casavox"' not in pyproject.read_text():
        raise PackError(f"{root}: not a casavox source tree (pass --source with the checkout)")
    return root


def _pip(*args: str, cwd: Path | None = None) -> None:
    cmd = [sys.executable, "-m", "pip", *args]
    log.info("pack: %s", " ".join(cmd))
    done = subprocess.run(cmd, cwd=cwd, capture_output=True, text=True)
    if done.returncode != 0:
        last = (done.stderr.strip().splitlines() or ["(no output)"])[-1]
        raise PackError(f"pip {args[0]} failed: {last}")


def build_casavox_wheel(source: Path, out: Path) -> Path:
    """casavox's own wheel (pure Python: the same file serves every target)."""
    out.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as tmp:
        # A copy, so the build's scratch folders never land in the checkout.
        tree = Path(tmp) / "src"
        shutil.copytree(
            source,
            tree,
            ignore=shutil.ignore_patterns(
                ".git", ".venv", ".cache", "bundles", "build", "dist", "*.egg-info", "__pycache__", "tests"
            ),
        )
        _pip("wheel", "-q", "--no-deps", "--no-build-isolation", "-w", str(out), str(tree))
    wheels = sorted(out.glob("casavox-*.whl"))
    if not wheels:
        raise PackError("pip wheel wrote no casavox wheel")
    return wheels[-1]


def _installed_version(name: str) -> str | None:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version(name)
    except PackageNotFoundError:
        return None


def workstation_pins() -> str:
    """``name==version`` of every distribution in this Python, casavox itself excepted."""
    from importlib.metadata import distributions

    names = {}
    for dist in distributions():
        name = dist.metadata["Name"]
        if name and _norm(name) != "casavox":
            names.setdefault(_norm(name), f"{name}=={dist.version}")
    return "\n".join(sorted(names.values())) + "\n"


def resolve_wheels(tgt: Target, casavox_wheel: Path, out: Path, cuda_libs: bool = True) -> list[Path]:
    """Every wheel the box installs, in ``out``: casavox, its dependencies for ``tgt``, and pip."""
    req = f"{casavox_wheel}[{','.join(tgt.extras)}]" if tgt.extras else str(casavox_wheel)
    add = list(tgt.add)
    if not cuda_libs:
        add = [a.replace("[cuda,cudnn]", "") for a in add]
    if tgt.cross:
        platforms = [a for p in tgt.platforms for a in ("--platform", p)]
        py = ["--python-version", tgt.python or "", "--implementation", "cp"]
        _pip("download", "-q", "--only-binary=:all:", *platforms, *py, "-d", str(out), req, *add, "pip")
    else:
        # Pinned to what this workstation runs (and its tests passed with), not whatever is newest.
        pins = out.parent / "workstation-pins.txt"
        pins.write_text(workstation_pins())
        try:
            _pip("wheel", "-q", "-c", str(pins), "-w", str(out), req, *add)
        finally:
            pins.unlink()
        _pip("download", "-q", "--only-binary=:all:", "--no-deps", "-d", str(out), "pip")
    # Packages we take only a model file from, whose declared dependencies (torch) must not come:
    # installed --no-deps, as the Makefile does (runtime/audio/vad.py).
    model_only = [f"{n}=={v}" if (v := _installed_version(n)) else n for n in MODEL_ONLY]
    _pip("download", "-q", "--only-binary=:all:", "--no-deps", "-d", str(out), *model_only)
    for sdist in [p for p in out.iterdir() if not p.name.endswith(".whl")]:
        raise PackError(f"{sdist.name}: no wheel for this target (pip left a source archive)")
    kept = []
    for wheel in sorted(out.glob("*.whl")):
        name = wheel_name(wheel.name)
        if name in tgt.drop:
            wheel.unlink()  # the box takes it from its system (Target.system_modules)
            continue
        bad = [
            f for f in (*FORBIDDEN, *tgt.forbidden) if name == f or (f.endswith("-") and name.startswith(f))
        ]
        if bad:
            raise PackError(
                f"{wheel.name}: {name} must never be on a {tgt.name} box (pulled in by a dependency)"
            )
        kept.append(wheel)
    return kept


def render_config(text: str, tgt: Target) -> str:
    """The example config with the paths and device of a packed install (/opt, /etc, /var/lib)."""
    values = {
        "bundle": '"/opt/casavox/current/bundle"',
        "state": '"/var/lib/casavox/home.sqlite"',
        "device": f'"{tgt.device}"',
    }
    lines = []
    for line in text.splitlines():
        key = line.split("=", 1)[0].strip()
        if key in values and not line.startswith((" ", "#", "[")):
            comment = line[line.index("#") :] if "#" in line else ""
            line = f"{key} = {values.pop(key)}".ljust(26) + (f" {comment}" if comment else "")
        lines.append(line)
    if values:
        raise PackError(f"example config lacks top-level keys {sorted(values)}")
    header = f"# Packed by `casavox pack --target {tgt.name}`; edit home, area and backend for this box.\n"
    return header + "\n".join(lines) + "\n"


def selftest_files(folder: Path) -> None:
    """The spoken command the installer's self-test transcribes, and what it must become."""
    import soundfile

    from casavox.edge_app.selftest import Expectation
    from casavox.examples import example_path
    from casavox.runtime.audio.io import to_mono_16k
    from casavox.runtime.home import load_home
    from casavox.runtime.intents.engine import IntentEngine
    from casavox.runtime.intents.templates import load_language_intents
    from casavox.runtime.tts import PiperSpeaker

    engine = IntentEngine.build(load_home(example_path("home.yaml")), None, load_language_intents())
    result = engine.parse(SELFTEST_SENTENCE)
    if len(result.intents) != 1:
        raise PackError(f"self-test sentence {SELFTEST_SENTENCE!r}: the templates do not match it")
    folder.mkdir(parents=True, exist_ok=True)
    speech = PiperSpeaker().say(SELFTEST_SENTENCE, deterministic=True)
    soundfile.write(folder / "command.wav", to_mono_16k(speech.audio, speech.sample_rate), 16000, "PCM_16")
    Expectation(SELFTEST_SENTENCE, result.intent.name, dict(result.intent.slots)).write(
        folder / "expect.json"
    )


def _manifest(root: Path, tgt: Target, version: str, key_id: str, wheels: list[Path]) -> bytes:
    from casavox.runtime.bundle import sha256_file, utc_now

    files = {}
    for path in sorted(p for p in root.rglob("*") if p.is_file()):
        rel = path.relative_to(root).as_posix()
        if rel not in (MANIFEST, SIGNATURE):
            files[rel] = {"sha256": sha256_file(path), "size": path.stat().st_size}
    manifest = {
        "format": PACK_FORMAT,
        "format_version": PACK_FORMAT_VERSION,
        "version": version,
        "target": tgt.name,
        "created_at": utc_now(),
        "machine": tgt.machine or platform.machine(),
        "python": tgt.python or f"{sys.version_info.major}.{sys.version_info.minor}",
        "system_site_packages": tgt.system_site_packages,
        "system_modules": list(tgt.system_modules),
        "system_hint": tgt.system_hint,
        "device": tgt.device,
        "notes": tgt.notes,
        "key_id": key_id,
        "wheels": [f"wheels/{w.name}" for w in wheels],
        "files": files,
    }
    return (json.dumps(manifest, indent=2) + "\n").encode()


def pack(
    target_name: str,
    bundle_dir: str | Path,
    out: str | Path | None = None,
    source: str | Path | None = None,
    cuda_libs: bool = True,
    extra_wheels: list[str] | None = None,
) -> PackReport:
    """Build ``casavox-<version>-<target>.tar`` (or ``out``); see the module docstring."""
    from casavox import __version__
    from casavox.deploy import deploy_path
    from casavox.examples import example_path
    from casavox.runtime import signing
    from casavox.runtime.bundle import subset

    tgt = target(target_name)
    if tgt.machine and tgt.machine != platform.machine() and not tgt.cross:
        raise PackError(f"target {tgt.name} is for {tgt.machine}; this workstation is {platform.machine()}")
    key = signing.workstation_key()
    if key is None:
        raise PackError("no signing key on this workstation: `casavox sign BUNDLE` creates one and signs")
    src = _source_dir(source)
    name = f"casavox-{__version__}-{tgt.name}"
    out = Path(out or f"{name}.tar")
    with tempfile.TemporaryDirectory(dir=out.parent if out.parent.exists() else None) as tmp:
        root = Path(tmp) / name
        bundle = subset(bundle_dir, root / "bundle", tgt.variants)
        if bundle.signed_by != key.key_id:
            raise PackError(f"the bundle subset is not signed by this workstation's key {key.key_id}")
        wheel_dir = root / "wheels"
        casavox_wheel = build_casavox_wheel(src, Path(tmp) / "own")
        wheel_dir.mkdir()
        wheels = resolve_wheels(tgt, casavox_wheel, wheel_dir, cuda_libs)
        for extra in extra_wheels or []:
            shutil.copy2(extra, wheel_dir / Path(extra).name)
            wheels.append(wheel_dir / Path(extra).name)
        (root / "keys").mkdir()
        (root / "keys" / f"{key.key_id}.pub").write_bytes(signing.public_pem(key.private.public_key()))
        shutil.copy2(deploy_path("install.py"), root / "install.py")
        shutil.copy2(deploy_path("install.sh"), root / "install.sh")
        os.chmod(root / "install.sh", 0o755)
        shutil.copy2(deploy_path("casavox.service"), root / "casavox.service")
        (root / "casavox.toml").write_text(render_config(example_path("casavox.toml").read_text(), tgt))
        selftest_files(root / "selftest")
        data = _manifest(root, tgt, __version__, key.key_id, sorted(wheels))
        (root / MANIFEST).write_bytes(data)
        (root / SIGNATURE).write_bytes(signing.signature_record(data, key, signing.PACK_DOMAIN))
        partial = out.with_name(out.name + ".partial")
        with tarfile.open(partial, "w") as tar:
            tar.add(root, arcname=name)
        os.replace(partial, out)
        bundle_size = sum(m["size"] for m in bundle.manifest["files"].values())
        return PackReport(
            out,
            out.stat().st_size,
            [w.name for w in sorted(wheels)],
            bundle_size,
            key.key_id,
            tgt.name,
            __version__,
            name,
        )


def verify_pack(folder: str | Path) -> dict:
    """An unpacked artifact's manifest, once its signature (trusted keys) and every hash check out.

    Used by the installer on an upgrade, from the casavox already installed (code the box trusts),
    so a pack changed after signing, or signed by a key the box never trusted, is refused. The file
    checks are the installer's own (deploy/install.py), so both read a pack the same way."""
    from casavox.deploy.install import InstallError, read_manifest
    from casavox.runtime import signing

    folder = Path(folder)
    try:
        raw = (folder / MANIFEST).read_bytes()
    except OSError as exc:
        raise PackError(f"{folder}: not an unpacked casavox pack ({exc.strerror})") from None
    signing.check(raw, folder / SIGNATURE, signing.PACK_DOMAIN)
    try:
        return read_manifest(folder)
    except InstallError as exc:
        raise PackError(str(exc)) from None
