"""Manifest signatures: a verified bundle is what a trusted exporter wrote, not only self-consistent.

Why: ``manifest.json`` records every file's sha256, which catches corruption, but anyone who can
write the files can re-hash them (swap two token ids in the tokenizer, re-record its hash, and
"turn off" becomes "turn on" while the manifest still agrees). An ed25519 signature over the
manifest by a key the device trusts closes that: a changed manifest no longer matches its
signature, and one signed by another key names a key the device does not trust.

``manifest.sig`` (beside ``manifest.json``; not listed in it, since it signs it) is JSON::

    {"format": "casavox-manifest-signature", "algorithm": "ed25519",
     "key_id": "<16 hex digits>", "signature": "<base64 of the 64-byte signature>"}

The signed message is :data:`DOMAIN` followed by the exact bytes of ``manifest.json`` as written:
no canonical form to get wrong, and what is checked is byte for byte what is parsed. A key's id is
the first 16 hex digits of the sha256 of its raw 32-byte public key.

Keys:

* Signing key (the workstation's): ``$CASAVOX_SIGNING_KEY`` (a path), else
  ``$XDG_CONFIG_HOME/casavox/signing.key`` (``~/.config/casavox/signing.key``): an unencrypted
  PKCS#8 PEM file, mode 0600. The first export creates it when missing, writes its public key
  beside it (``signing.pub``) and copies that into the first trust folder as ``<key id>.pub``, so a
  bundle exported on a machine verifies on that machine with no set-up.
* Trusted keys (the device's): every ``*.pub`` in ``$CASAVOX_TRUSTED_KEYS`` (one folder, or several
  separated by ``:``), else in ``$XDG_CONFIG_HOME/casavox/trusted_keys/`` and
  ``/etc/casavox/trusted_keys/``. A ``.pub`` file holds one ed25519 public key, either PEM
  (``-----BEGIN PUBLIC KEY-----``, what ``openssl pkey -pubout`` writes and what we write) or the
  raw 32 bytes as one line of base64. A file that is neither is an error naming it, not skipped: a
  pinned key that silently does not count is worse than a refusal.

Who signs: :func:`casavox.runtime.bundle.write_manifest` signs every manifest it writes with the
signing key when one exists (exporters ask it to create one first); with no key it writes an
unsigned bundle and removes any stale ``manifest.sig``, so the bundle reads as unsigned rather
than as tampered with.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
import os
from dataclasses import dataclass
from pathlib import Path

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from casavox.errors import CasavoxError

SIGNATURE = "manifest.sig"
SIG_FORMAT = "casavox-manifest-signature"
ALGORITHM = "ed25519"
# Prefixed to the manifest bytes: a signature made for a bundle can mean nothing else, and one made
# for a pack (`casavox pack`, export/pack.py) can never pass for a bundle's or the other way round.
DOMAIN = b"casavox-bundle-manifest-v1\n"
PACK_DOMAIN = b"casavox-pack-manifest-v1\n"
SYSTEM_TRUST = Path("/etc/casavox/trusted_keys")
ALLOW_HINT = "pass --allow-unsigned (config: allow_unsigned = true) to load it anyway"


class SigningError(CasavoxError, ValueError):
    """A key or signature that cannot be used; the message is one line saying what to do."""


@dataclass(frozen=True)
class SigningKey:
    """The workstation's private key and where it lives."""

    private: Ed25519PrivateKey
    path: Path

    @property
    def key_id(self) -> str:
        return key_id(self.private.public_key())


@dataclass(frozen=True)
class Signature:
    """What checking a manifest's signature found.

    ``trusted_by`` is set only when the signature is valid and its key trusted; otherwise
    ``problem`` says why not (the bundle was let through by ``allow_unsigned``)."""

    key_id: str | None = None
    trusted_by: Path | None = None
    problem: str | None = None

    @property
    def trusted(self) -> bool:
        return self.trusted_by is not None

    def describe(self) -> str:
        """One phrase for `casavox verify`: by whom the manifest is signed, or that it is not."""
        if self.trusted:
            return f"signed by key {self.key_id} (trusted: {self.trusted_by})"
        return (
            f"NOT signed by a trusted key ({self.problem}), accepted because unsigned bundles are "
            "allowed: only its self-consistency is checked"
        )


def _config_home() -> Path:
    return Path(os.environ.get("XDG_CONFIG_HOME") or Path.home() / ".config") / "casavox"


def signing_key_path() -> Path:
    """Where the workstation's signing key is (or will be created)."""
    if os.environ.get("CASAVOX_SIGNING_KEY"):
        return Path(os.environ["CASAVOX_SIGNING_KEY"]).expanduser()
    return _config_home() / "signing.key"


def trusted_key_dirs() -> list[Path]:
    """The folders whose ``*.pub`` keys this machine trusts; the first one is the local store."""
    if os.environ.get("CASAVOX_TRUSTED_KEYS"):
        return [Path(p).expanduser() for p in os.environ["CASAVOX_TRUSTED_KEYS"].split(os.pathsep) if p]
    return [_config_home() / "trusted_keys", SYSTEM_TRUST]


def key_id(public: Ed25519PublicKey) -> str:
    """A short, stable name for a public key: 16 hex digits of the sha256 of its raw bytes."""
    raw = public.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    return hashlib.sha256(raw).hexdigest()[:16]


def public_pem(public: Ed25519PublicKey) -> bytes:
    return public.public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)


def read_public_key(path: Path) -> Ed25519PublicKey:
    """An ed25519 public key from a ``.pub`` file (PEM, or one line of base64 of the raw 32 bytes)."""
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise SigningError(f"trusted key {path}: cannot be read ({exc.strerror})") from None
    try:
        if data.lstrip().startswith(b"-----BEGIN"):
            key = serialization.load_pem_public_key(data)
        else:
            key = Ed25519PublicKey.from_public_bytes(base64.b64decode(data.strip(), validate=True))
    except (ValueError, TypeError, binascii.Error):
        key = None
    if not isinstance(key, Ed25519PublicKey):
        raise SigningError(f"trusted key {path}: not an ed25519 public key (PEM or base64); fix or remove it")
    return key


def trusted_keys() -> dict[str, tuple[Ed25519PublicKey, Path]]:
    """Every trusted key by id, with the file it came from (the first folder wins a duplicate)."""
    keys: dict[str, tuple[Ed25519PublicKey, Path]] = {}
    for folder in trusted_key_dirs():
        if not folder.is_dir():
            continue
        for path in sorted(folder.glob("*.pub")):
            public = read_public_key(path)
            keys.setdefault(key_id(public), (public, path))
    return keys


def _write_private(path: Path, private: Ed25519PrivateKey) -> None:
    """Write a new private key, 0600 from its first byte (never world-readable, not even briefly)."""
    pem = private.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "wb") as f:
        f.write(pem)


def trust(public: Ed25519PublicKey) -> Path:
    """Add a public key to the local trust store (the first trust folder) as ``<key id>.pub``."""
    folder = trusted_key_dirs()[0]
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{key_id(public)}.pub"
    path.write_bytes(public_pem(public))
    return path


def create_signing_key(path: Path) -> SigningKey:
    """A new key at ``path`` (0600), its public key beside it, and trusted on this machine."""
    private = Ed25519PrivateKey.generate()
    try:
        _write_private(path, private)
    except FileExistsError:  # another export created it first: use that one
        return load_signing_key(path)
    except OSError as exc:
        raise SigningError(f"signing key {path}: cannot be created ({exc.strerror})") from None
    path.with_suffix(".pub").write_bytes(public_pem(private.public_key()))
    trust(private.public_key())
    return SigningKey(private, path)


def load_signing_key(path: Path) -> SigningKey:
    try:
        private = serialization.load_pem_private_key(path.read_bytes(), password=None)
    except OSError as exc:
        raise SigningError(f"signing key {path}: cannot be read ({exc.strerror})") from None
    except (ValueError, TypeError):
        private = None
    if not isinstance(private, Ed25519PrivateKey):
        raise SigningError(
            f"signing key {path}: not an unencrypted ed25519 PEM key; move it away to have a new one made"
        )
    return SigningKey(private, path)


def workstation_key(create: bool = False) -> SigningKey | None:
    """The signing key, created when missing if ``create`` (exports), else None when missing."""
    path = signing_key_path()
    if path.exists():
        return load_signing_key(path)
    return create_signing_key(path) if create else None


def signature_record(manifest_bytes: bytes, key: SigningKey, domain: bytes = DOMAIN) -> bytes:
    """The contents of ``manifest.sig`` for these manifest bytes (``domain``: what they are)."""
    record = {
        "format": SIG_FORMAT,
        "algorithm": ALGORITHM,
        "key_id": key.key_id,
        "signature": base64.b64encode(key.private.sign(domain + manifest_bytes)).decode("ascii"),
    }
    return (json.dumps(record, indent=2) + "\n").encode()


def _parse_record(raw: bytes) -> tuple[str, bytes]:
    """(key id, signature bytes) of a ``manifest.sig``; SigningError when it is not one."""
    try:
        record = json.loads(raw)
        if not isinstance(record, dict) or record.get("format") != SIG_FORMAT:
            raise ValueError("not a signature record")
        if record.get("algorithm") != ALGORITHM:
            raise ValueError(f"algorithm {record.get('algorithm')!r}, expected {ALGORITHM}")
        kid, sig = record.get("key_id"), record.get("signature")
        if not isinstance(kid, str) or not isinstance(sig, str):
            raise ValueError("key_id and signature must be strings")
        signature = base64.b64decode(sig, validate=True)
    except (ValueError, UnicodeDecodeError, binascii.Error) as exc:
        raise SigningError(f"{SIGNATURE} is not a casavox signature ({exc}); re-export the bundle") from None
    return kid, signature


def check(manifest_bytes: bytes, sig_path: Path, domain: bytes = DOMAIN) -> Signature:
    """Check ``manifest_bytes`` against ``sig_path`` and the trusted keys (``domain``: what the
    manifest is, a bundle's by default).

    Returns a trusted :class:`Signature`, or raises :class:`SigningError` naming the problem (no
    signature, a key this machine does not trust, a signature that does not match)."""
    if sig_path.is_symlink() or not sig_path.is_file():
        raise SigningError(
            f"unsigned bundle (no {SIGNATURE}): re-export it with a casavox that signs, or {ALLOW_HINT}"
        )
    kid, signature = _parse_record(sig_path.read_bytes())
    known = trusted_keys()
    if kid not in known:
        where = trusted_key_dirs()[0]
        raise SigningError(
            f"signed by key {kid}, which this machine does not trust: copy the exporter's signing.pub "
            f"into {where}/ (or {SYSTEM_TRUST}/) as {kid}.pub, or {ALLOW_HINT}"
        )
    public, path = known[kid]
    try:
        public.verify(signature, domain + manifest_bytes)
    except InvalidSignature:
        what, redo = (
            ("manifest.json", "re-export the bundle")
            if domain == DOMAIN
            else (
                f"{sig_path.stem}.json",
                "re-pack it",
            )
        )
        raise SigningError(
            f"{what} does not match its signature by key {kid} (changed after it was signed): "
            f"do not use it; {redo}"
        ) from None
    return Signature(key_id=kid, trusted_by=path)


def check_or_allow(manifest_bytes: bytes, sig_path: Path, allow_unsigned: bool) -> Signature:
    """:func:`check`, except that with ``allow_unsigned`` a problem is returned instead of raised."""
    try:
        return check(manifest_bytes, sig_path)
    except SigningError as exc:
        if not allow_unsigned:
            raise
        kid = None
        if sig_path.is_file() and not sig_path.is_symlink():
            try:
                kid = _parse_record(sig_path.read_bytes())[0]
            except SigningError:
                pass
        return Signature(key_id=kid, problem=str(exc).split(":")[0])


def write_signature(root: Path, manifest_bytes: bytes, key: SigningKey | None) -> None:
    """Sign ``manifest_bytes`` into ``root/manifest.sig``, or, with no key, remove a stale one."""
    path = Path(root) / SIGNATURE
    if key is None:
        path.unlink(missing_ok=True)
        return
    tmp = path.with_name(SIGNATURE + ".tmp")
    tmp.write_bytes(signature_record(manifest_bytes, key))
    os.replace(tmp, path)
