"""Signed manifests: a verified bundle is what a trusted exporter wrote, not only self-consistent.

Small fake bundles built with runtime/bundle.py's own helpers; every test has its own signing key
and trust folder (``keys``), so nothing here reads or writes the real ~/.config.
"""

from __future__ import annotations

import base64
import json
import os
import stat
import subprocess
import sys
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from casavox.export.bundle_writer import combine
from casavox.runtime import bundle as fmt
from casavox.runtime import signing

TOKENIZER = {"model": {"vocab": {"turn": 0, "on": 1, "off": 2}}}


@pytest.fixture
def keys(tmp_path: Path, monkeypatch) -> Path:
    """This test's own signing key path and trust folder (nothing created yet)."""
    monkeypatch.setenv("CASAVOX_SIGNING_KEY", str(tmp_path / "keys" / "signing.key"))
    monkeypatch.setenv("CASAVOX_TRUSTED_KEYS", str(tmp_path / "trusted"))
    return tmp_path / "keys"


def make_bundle(root: Path, create_key: bool = True) -> Path:
    """A one-component bundle written as an export writes it (signed, the key made if missing)."""
    (root / "asr").mkdir(parents=True)
    (root / "asr" / "encoder.int8.onnx").write_bytes(b"graph" * 100)
    (root / "asr" / "tokenizer.json").write_text(json.dumps(TOKENIZER))
    manifest = fmt.new_manifest()
    manifest["sources"]["whisper"] = {"id": "fake", "sha256": "0" * 64}
    for rel in ("asr/encoder.int8.onnx", "asr/tokenizer.json"):
        fmt.add_file(root, manifest, rel)
    manifest["components"]["asr"] = {
        "tokenizer_file": "asr/tokenizer.json",
        "variants": {"int8": {"encoder_file": "asr/encoder.int8.onnx"}},
    }
    fmt.write_manifest(root, manifest, create_key=create_key)
    return root


def _rewrite_manifest(root: Path, manifest: dict) -> None:
    """What an attacker does: edit and re-hash, then write manifest.json (manifest.sig untouched)."""
    (root / "manifest.json").write_text(json.dumps(manifest, indent=2) + "\n")


def _cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "casavox.edge_app.cli", *args], capture_output=True, text=True, env=os.environ
    )


def _one_line_error(proc: subprocess.CompletedProcess, text: str) -> None:
    assert proc.returncode == 1, proc.stdout
    assert "Traceback" not in proc.stderr
    assert proc.stderr.strip().count("\n") == 0, proc.stderr  # one line
    assert text in proc.stderr, proc.stderr


def test_an_export_signs_with_a_new_key_that_this_machine_then_trusts(keys: Path, tmp_path: Path) -> None:
    root = make_bundle(tmp_path / "b")
    key = signing.workstation_key()
    assert key is not None
    assert stat.S_IMODE((keys / "signing.key").stat().st_mode) == 0o600
    assert (keys / "signing.pub").is_file()
    assert (tmp_path / "trusted" / f"{key.key_id}.pub").is_file()
    bundle = fmt.verify(root)
    assert bundle.signed_by == key.key_id and bundle.signature.trusted
    assert f"signed by key {key.key_id}" in bundle.signature.describe()
    record = json.loads((root / "manifest.sig").read_text())
    assert record["algorithm"] == "ed25519" and record["key_id"] == key.key_id


def test_swapped_token_ids_re_hashed_into_the_manifest_are_refused(keys: Path, tmp_path: Path) -> None:
    """The attack in the issue: swap "on" and "off" in the tokenizer, re-record its hash. The
    manifest is self-consistent again, and the signature no longer matches it."""
    root = make_bundle(tmp_path / "b")
    tok = json.loads((root / "asr" / "tokenizer.json").read_text())
    vocab = tok["model"]["vocab"]
    vocab["on"], vocab["off"] = vocab["off"], vocab["on"]
    (root / "asr" / "tokenizer.json").write_text(json.dumps(tok))
    manifest = fmt.load_manifest(root)
    fmt.add_file(root, manifest, "asr/tokenizer.json")
    _rewrite_manifest(root, manifest)
    with pytest.raises(fmt.BundleError, match="does not match its signature") as info:
        fmt.verify(root)
    assert "\n" not in str(info.value)
    # Self-consistent all the same: that is all an unsigned check could say.
    assert not fmt.verify(root, allow_unsigned=True).signature.trusted


def test_a_bundle_re_signed_with_another_key_is_refused(keys: Path, tmp_path: Path) -> None:
    root = make_bundle(tmp_path / "b")
    theirs = signing.SigningKey(Ed25519PrivateKey.generate(), tmp_path / "theirs.key")
    signing.write_signature(root, (root / "manifest.json").read_bytes(), theirs)
    with pytest.raises(
        fmt.BundleError, match=f"signed by key {theirs.key_id}, which this machine does not trust"
    ):
        fmt.verify(root)
    # Pinning that key (PEM, or the raw key as one line of base64) makes it trusted.
    raw = theirs.private.public_key().public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    (tmp_path / "trusted" / "theirs.pub").write_text(base64.b64encode(raw).decode() + "\n")
    assert fmt.verify(root).signed_by == theirs.key_id


def test_an_unsigned_bundle_is_refused_unless_allowed(keys: Path, tmp_path: Path) -> None:
    root = make_bundle(tmp_path / "b")
    (root / "manifest.sig").unlink()
    with pytest.raises(fmt.BundleError, match="unsigned bundle .*--allow-unsigned"):
        fmt.verify(root)
    bundle = fmt.verify(root, allow_unsigned=True)
    assert bundle.signed_by is None and "unsigned" in bundle.signature.describe()
    # allow_unsigned skips only the signature: a changed file is still refused
    (root / "asr" / "encoder.int8.onnx").write_bytes(b"grapH" * 100)
    with pytest.raises(fmt.BundleError, match="does not match its sha256"):
        fmt.verify(root, allow_unsigned=True)


def test_without_a_signing_key_a_manifest_is_written_unsigned(keys: Path, tmp_path: Path) -> None:
    root = make_bundle(tmp_path / "b", create_key=False)
    assert not (root / "manifest.sig").exists() and not (keys / "signing.key").exists()
    with pytest.raises(fmt.BundleError, match="unsigned bundle"):
        fmt.verify(root)


def test_a_broken_signature_file_or_trusted_key_is_one_line(keys: Path, tmp_path: Path) -> None:
    root = make_bundle(tmp_path / "b")
    (root / "manifest.sig").write_text("{not json")
    with pytest.raises(fmt.BundleError, match="manifest.sig is not a casavox signature"):
        fmt.verify(root)
    make_bundle(tmp_path / "c")
    (tmp_path / "trusted" / "junk.pub").write_text("hello")
    with pytest.raises(fmt.BundleError, match="junk.pub: not an ed25519 public key"):
        fmt.verify(tmp_path / "c")


def test_subset_and_combine_re_sign_with_the_workstation_key(keys: Path, tmp_path: Path) -> None:
    src = make_bundle(tmp_path / "b")
    key = signing.workstation_key()
    small = fmt.subset(src, tmp_path / "small", {"asr": ["int8"]})
    assert small.signed_by == key.key_id and fmt.verify(small.root).signed_by == key.key_id
    combine(tmp_path / "both", [src])
    assert fmt.verify(tmp_path / "both").signed_by == key.key_id


def test_subset_without_a_signing_key_writes_an_unsigned_bundle(
    keys: Path, tmp_path: Path, monkeypatch
) -> None:
    src = make_bundle(tmp_path / "b")
    monkeypatch.setenv("CASAVOX_SIGNING_KEY", str(tmp_path / "device-has-none.key"))
    small = fmt.subset(src, tmp_path / "small", {"asr": ["int8"]})
    assert small.signed_by is None and not (tmp_path / "device-has-none.key").exists()
    with pytest.raises(fmt.BundleError, match="unsigned bundle"):
        fmt.verify(small.root)


def test_cli_verify_says_who_signed_and_refuses_in_one_line(keys: Path, tmp_path: Path) -> None:
    root = make_bundle(tmp_path / "b")
    key = signing.workstation_key()
    ok = _cli("verify", str(root))
    assert ok.returncode == 0, ok.stderr
    assert ok.stdout.startswith("ok:") and f"signed by key {key.key_id}" in ok.stdout
    assert "match their sha256" in ok.stdout
    manifest = fmt.load_manifest(root)
    manifest["components"]["asr"]["tokenizer_file"] = "asr/tokenizer.json"
    manifest["note"] = "edited"
    _rewrite_manifest(root, manifest)
    _one_line_error(_cli("verify", str(root)), "does not match its signature")
    (root / "manifest.sig").unlink()
    _one_line_error(_cli("verify", str(root)), "--allow-unsigned")
    allowed = _cli("verify", str(root), "--allow-unsigned")
    assert allowed.returncode == 0 and "NOT signed by a trusted key (unsigned bundle" in allowed.stdout
    theirs = signing.SigningKey(Ed25519PrivateKey.generate(), tmp_path / "theirs.key")
    signing.write_signature(root, (root / "manifest.json").read_bytes(), theirs)
    _one_line_error(_cli("verify", str(root)), "which this machine does not trust")
    _one_line_error(_cli("transcribe", str(root), __file__), "which this machine does not trust")


def test_the_flag_and_the_config_key_reach_the_daemon() -> None:
    from casavox.edge_app.cli import build_parser
    from casavox.edge_app.config import ConfigError, load_config
    from casavox.edge_app.daemon_cli import _overrides

    parser = build_parser()
    for argv in (
        ["run", "--allow-unsigned"],
        ["serve-wyoming", "--allow-unsigned"],
        ["handle", "x", "--allow-unsigned"],
    ):
        assert load_config(None, _overrides(parser.parse_args(argv))).allow_unsigned is True
    assert load_config(None, _overrides(parser.parse_args(["run"]))).allow_unsigned is False
    with pytest.raises(ConfigError, match="allow_unsigned must be true or false"):
        load_config(None, {"allow_unsigned": "yes"})
    for argv in (["parse", "b", "x", "--home", "h"], ["eval-intents", "b", "--tests", "t"], ["verify", "b"]):
        assert parser.parse_args([*argv, "--allow-unsigned"]).allow_unsigned is True
