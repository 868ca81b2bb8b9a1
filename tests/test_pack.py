"""`casavox pack` and the offline installer, for real: a CPU artifact is built from the test bundle,
installed into a fresh folder tree inside a network namespace with no network (so pip can only use
the packed wheels), self-tested, and a spoken command is run through the installed `casavox run`.
Then the ways an install must not go wrong: an upgrade keeps config and state, a damaged or
re-hashed pack, an unknown signing key and a failing self-test each leave the previous install
exactly as it was. The Jetson artifact is built too (aarch64 wheels from PyPI) and checked for
what it must and must not carry."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import sys
import tarfile
from pathlib import Path

import pytest
import soundfile

from casavox.export.pack import FORBIDDEN, pack, verify_pack, wheel_name
from casavox.runtime import signing

ROOT = Path(__file__).resolve().parents[1]


def _netns_works() -> bool:
    return shutil.which("unshare") is not None and subprocess.run(["unshare", "-n", "true"]).returncode == 0


# A network namespace proves the install needs no network. Without one (not root), the installer's
# `pip --no-index` with an empty config is what keeps it offline; the test says which it used.
NETNS = _netns_works()


def _offline(cmd: list[str]) -> list[str]:
    return ["unshare", "-n", *cmd] if NETNS else cmd


@pytest.fixture(scope="module")
def cpu_pack(full_bundle: Path, tmp_path_factory) -> Path:
    """The unpacked CPU artifact."""
    out = tmp_path_factory.mktemp("pack")
    report = pack("cpu", full_bundle, out / "casavox-cpu.tar", ROOT)
    with tarfile.open(report.path) as tar:
        tar.extractall(out, filter="tar")
    report.path.unlink()  # 0.5 GB: keep the unpacked copy only
    return out / report.folder


def _box(tmp: Path) -> dict[str, Path]:
    return {k: tmp / k for k in ("opt", "etc", "state", "systemd")}


def _install(folder: Path, box: dict[str, Path], *extra: str) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if k != "CASAVOX_TRUSTED_KEYS"}  # the box's own trust
    cmd = [
        str(folder / "install.sh"),
        "--prefix", str(box["opt"]), "--etc", str(box["etc"]), "--state", str(box["state"]),
        "--systemd-dir", str(box["systemd"]), "--no-user", *extra,
    ]  # fmt: skip
    return subprocess.run(_offline(cmd), capture_output=True, text=True, env=env, timeout=900)


def _installed(box: dict[str, Path], *args: str, offline: bool = True) -> subprocess.CompletedProcess:
    env = dict(os.environ, CASAVOX_TRUSTED_KEYS=str(box["etc"] / "trusted_keys"))
    cmd = [str(box["opt"] / "current" / "venv" / "bin" / "casavox"), *args]
    return subprocess.run(
        _offline(cmd) if offline else cmd, capture_output=True, text=True, env=env, timeout=600
    )


def _current(box: dict[str, Path]) -> str:
    return os.readlink(box["opt"] / "current")


@pytest.fixture(scope="module")
def box(cpu_pack: Path, tmp_path_factory) -> dict[str, Path]:
    """A first install of the CPU pack."""
    box = _box(tmp_path_factory.mktemp("box"))
    done = _install(cpu_pack, box)
    assert done.returncode == 0, done.stderr
    print(f"installed {'inside a network namespace without network' if NETNS else 'with pip --no-index'}")
    return box


def test_the_pack_lists_and_signs_every_file_and_carries_only_the_device_side(cpu_pack: Path):
    manifest = verify_pack(cpu_pack)  # the test key is trusted in this process
    on_disk = {p.relative_to(cpu_pack).as_posix() for p in cpu_pack.rglob("*") if p.is_file()}
    assert on_disk - {"MANIFEST.json", "MANIFEST.sig"} == set(manifest["files"])
    names = {wheel_name(Path(w).name) for w in manifest["wheels"]}
    assert {"casavox", "onnxruntime", "llguidance", "hassil", "silero-vad", "pyaudio", "pip"} <= names
    assert not names & {*FORBIDDEN, "onnxruntime-gpu", "tensorrt"}
    assert not [n for n in names if n.startswith("nvidia-")]
    bundle = json.loads((cpu_pack / "bundle" / "manifest.json").read_text())
    assert {c: sorted(v["variants"]) for c, v in bundle["components"].items()} == {
        "asr": ["int8"],
        "llm": ["int8"],
    }
    assert not [f for f in bundle["files"] if "fp16" in f or "fp32" in f]
    key = signing.workstation_key()
    assert manifest["key_id"] == key.key_id
    assert (cpu_pack / "keys" / f"{key.key_id}.pub").read_bytes() == signing.public_pem(
        key.private.public_key()
    )
    unit = (cpu_pack / "casavox.service").read_text()
    assert "ExecStart=/opt/casavox/current/venv/bin/casavox run --config /etc/casavox/casavox.toml" in unit
    config = (cpu_pack / "casavox.toml").read_text()
    assert 'bundle = "/opt/casavox/current/bundle"' in config and 'device = "cpu"' in config


def test_offline_install_passes_its_self_test_and_runs_a_spoken_command(box, cpu_pack: Path, say, tmp_path):
    current = box["opt"] / _current(box)
    assert (current / "venv" / "bin" / "casavox").exists()
    assert list((box["etc"] / "trusted_keys").glob("*.pub"))
    no_torch = subprocess.run(
        [str(current / "venv" / "bin" / "python"), "-c", "import torch"], capture_output=True
    )
    assert no_torch.returncode != 0, "torch is installed on the box"
    bundle_file = next((current / "bundle" / "asr").iterdir())
    assert oct(bundle_file.stat().st_mode & 0o777) == "0o444"
    unit = (box["systemd"] / "casavox.service").read_text()
    assert f"ExecStart={box['opt']}/current/venv/bin/casavox run --config {box['etc']}/casavox.toml" in unit

    report = _installed(box, "selftest", "--bundle", str(current / "bundle"), "--clip",
                        str(cpu_pack / "selftest" / "command.wav"), "--expect",
                        str(cpu_pack / "selftest" / "expect.json"), "--json")  # fmt: skip
    checks = {c["check"]: c["ok"] for c in json.loads(report.stdout)["checks"]}
    assert checks == dict.fromkeys(
        ["device", "bundle", "transcribe", "llm", "understand", "llm-understand"], True
    )

    wav = tmp_path / "command.wav"
    soundfile.write(wav, say("turn on the kitchen ceiling"), 16000)
    run = _installed(
        box, "run", "--config", str(box["etc"] / "casavox.toml"), "--audio", str(wav), "--log", "-"
    )
    assert run.returncode == 0, run.stderr
    record = json.loads(run.stdout.strip().splitlines()[-1])
    assert record["outcome"] == "acted" and record["intent"]["slots"] == {"name": "Kitchen Ceiling"}
    state = _installed(box, "state", "--config", str(box["etc"] / "casavox.toml"), "--json")
    assert json.loads(state.stdout)["entities"]["light.kitchen_ceiling"]["state"] == "on"
    assert (box["state"] / "home.sqlite").exists()


def test_reinstall_upgrades_in_place_and_keeps_config_and_state(box, cpu_pack: Path):
    config = box["etc"] / "casavox.toml"
    config.write_text(config.read_text().replace('area = ""', 'area = "Kitchen"'))
    marker = box["state"] / "kept.txt"
    marker.write_text("mine")
    before = _current(box)
    done = _install(cpu_pack, box)
    assert done.returncode == 0, done.stderr
    after = _current(box)
    assert after != before and "previous release" in done.stdout
    assert 'area = "Kitchen"' in config.read_text()  # the box's own config is kept
    assert (box["etc"] / "casavox.toml.packed").exists()  # the packed defaults beside it
    assert marker.read_text() == "mine" and (box["state"] / "home.sqlite").exists()
    assert sorted(p.name for p in (box["opt"] / "releases").iterdir()) == sorted(
        [Path(before).name, Path(after).name]
    )
    third = _install(cpu_pack, box)
    assert third.returncode == 0, third.stderr
    kept = sorted(p.name for p in (box["opt"] / "releases").iterdir())
    assert len(kept) == 2 and Path(after).name in kept and Path(before).name not in kept


def _copy(folder: Path, tmp: Path) -> Path:
    dest = tmp / folder.name
    shutil.copytree(folder, dest)
    return dest


def _rehash(folder: Path, rel: str) -> None:
    """Record a changed file's new hash in the manifest (what an attacker who can write would do)."""
    manifest = json.loads((folder / "MANIFEST.json").read_text())
    path = folder / rel
    manifest["files"][rel] = {
        "sha256": hashlib.sha256(path.read_bytes()).hexdigest(),
        "size": path.stat().st_size,
    }
    (folder / "MANIFEST.json").write_text(json.dumps(manifest, indent=2) + "\n")


def _resign(folder: Path, key: signing.SigningKey) -> None:
    data = (folder / "MANIFEST.json").read_bytes()
    (folder / "MANIFEST.sig").write_bytes(signing.signature_record(data, key, signing.PACK_DOMAIN))


def _unchanged(box, before: str, releases: set[str], done: subprocess.CompletedProcess, why: str) -> None:
    assert done.returncode == 1
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("casavox-install: error: ") and why in lines[0], (
        done.stderr
    )
    assert _current(box) == before
    assert {p.name for p in (box["opt"] / "releases").iterdir()} == releases
    assert _installed(box, "verify", str(box["opt"] / "current" / "bundle"), "--no-hash").returncode == 0


def _snapshot(box) -> tuple[str, set[str]]:
    return _current(box), {p.name for p in (box["opt"] / "releases").iterdir()}


def test_a_damaged_pack_is_refused_before_anything_is_installed(box, cpu_pack: Path, tmp_path):
    bad = _copy(cpu_pack, tmp_path)
    wheel = next((bad / "wheels").glob("wyoming-*.whl"))
    wheel.write_bytes(wheel.read_bytes() + b"x")
    before, releases = _snapshot(box)
    _unchanged(box, before, releases, _install(bad, box), f"wheels/{wheel.name}: damaged or changed")


def test_a_rehashed_pack_fails_the_installed_casavoxs_signature_check(box, cpu_pack: Path, tmp_path):
    bad = _copy(cpu_pack, tmp_path)
    config = bad / "casavox.toml"
    config.write_text(config.read_text().replace('backend = "sim"', 'backend = "mqtt"'))
    _rehash(bad, "casavox.toml")
    before, releases = _snapshot(box)
    _unchanged(box, before, releases, _install(bad, box), "does not match its signature")


def test_a_pack_signed_by_a_key_the_box_never_trusted_needs_trust_new_key(box, cpu_pack: Path, tmp_path):
    other = signing.create_signing_key(tmp_path / "other" / "signing.key")
    bad = _copy(cpu_pack, tmp_path)
    for old in (bad / "keys").glob("*.pub"):
        old.unlink()
        manifest = json.loads((bad / "MANIFEST.json").read_text())
        del manifest["files"][f"keys/{old.name}"]
        (bad / "MANIFEST.json").write_text(json.dumps(manifest, indent=2))
    (bad / "keys" / f"{other.key_id}.pub").write_bytes(signing.public_pem(other.private.public_key()))
    _rehash(bad, f"keys/{other.key_id}.pub")
    _resign(bad, other)
    before, releases = _snapshot(box)
    _unchanged(
        box,
        before,
        releases,
        _install(bad, box),
        f"signed by key {other.key_id}, which this machine does not trust",
    )
    assert not (box["etc"] / "trusted_keys" / f"{other.key_id}.pub").exists()


def test_a_failing_self_test_rolls_back_and_adds_no_key(box, cpu_pack: Path, tmp_path):
    bad = _copy(cpu_pack, tmp_path)
    expect = bad / "selftest" / "expect.json"
    data = json.loads(expect.read_text())
    data["slots"] = {"name": "Desk Lamp"}  # the clip says the living room lamp
    expect.write_text(json.dumps(data))
    _rehash(bad, "selftest/expect.json")
    _resign(bad, signing.workstation_key())  # properly signed: only the self-test can catch it
    before, releases = _snapshot(box)
    config = (box["etc"] / "casavox.toml").read_text()
    _unchanged(box, before, releases, _install(bad, box), "self-test failed at understand")
    assert (box["etc"] / "casavox.toml").read_text() == config


def test_the_jetson_pack_takes_onnxruntime_and_pyaudio_from_jetpack_and_refuses_another_box(
    full_bundle: Path, tmp_path
):
    report = pack("jetson", full_bundle, tmp_path / "jetson.tar", ROOT)
    with tarfile.open(report.path) as tar:
        tar.extractall(tmp_path, filter="tar")
    folder = tmp_path / report.folder
    manifest = json.loads((folder / "MANIFEST.json").read_text())
    assert manifest["machine"] == "aarch64" and manifest["python"] == "3.10"
    assert manifest["system_site_packages"] and manifest["system_modules"] == ["onnxruntime", "pyaudio"]
    wheels = [Path(w).name for w in manifest["wheels"]]
    names = {wheel_name(w) for w in wheels}
    assert "casavox" in names and not names & {"onnxruntime", "pyaudio", *FORBIDDEN}
    binary = [w for w in wheels if not w.endswith("-none-any.whl")]
    assert binary and all("aarch64" in w for w in binary), binary
    assert all(("cp310" in w or "abi3" in w or "py3-none" in w or "py2.py3" in w) for w in binary), binary
    bundle = json.loads((folder / "bundle" / "manifest.json").read_text())
    assert {c: sorted(v["variants"]) for c, v in bundle["components"].items()} == {
        "asr": ["fp16"],
        "llm": ["fp16"],
    }
    done = subprocess.run([sys.executable, str(folder / "install.py"), "--prefix", str(tmp_path / "opt")],
                          capture_output=True, text=True)  # fmt: skip
    if os.uname().machine != "aarch64":
        assert (
            done.returncode == 1
            and f"this pack is for aarch64; this box is {os.uname().machine}" in done.stderr
        )
        assert not (tmp_path / "opt").exists()
