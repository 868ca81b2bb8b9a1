"""The bundle: the one artifact that crosses from the workstation (``export/``) to the device.

A bundle is a folder with ``manifest.json`` and the files it lists. This module owns the format;
the exporter writes bundles only through :func:`write_manifest` / :func:`add_file`, the runtime
reads them only through :func:`load_manifest` / :func:`verify`.

manifest.json (format_version 1)::

    {
      "format": "casavox-bundle", "format_version": 1, "created_at": "2026-11-26T10:00:00Z",
      "sources":    {"whisper": {"id": "...", "sha256": "...", "path": "..."}},
      "files":      {"asr/encoder.int8.onnx": {"sha256": "...", "size": 123}, ...},
      "graphs":     {"asr/encoder.int8.onnx": {"component": "asr", "role": "encoder", "quant": "int8",
                     "opset": 17, "inputs": [{"name": "mel", "dtype": "float32",
                     "shape": [1, 80, "frames"]}], "outputs": [...]}},
      "components": {"asr": {...component config, "variants": {"int8": {...}}, parity figures...}},
      "versions":   {"casavox": "0.1.0", "torch": "...", "onnx": "...", ...}
    }

Every file the manifest references (graphs, tokenizer, filters) must be listed in ``files`` with
its sha256 and size; files in the folder that nobody lists are ignored (so a user can keep notes
beside a bundle) but never loaded.

The keys of each component (``asr``, ``llm``) are typed in :mod:`casavox.runtime.components`
(exporters write and the runtime reads them only through those classes); this module knows only
what every component shares: its ``variants`` object and an optional ``default_variant``, and that
keys named ``file``, ``*_file`` and ``*_files`` reference bundle files.

Authenticity (:mod:`casavox.runtime.signing`): hashes only make a bundle self-consistent, since
whoever can write its files can re-hash them. So every manifest written here is signed (ed25519,
``manifest.sig``) with the workstation's key, and :func:`verify` refuses a bundle whose manifest
is unsigned, signed by a key this machine does not trust, or changed since it was signed, unless
``allow_unsigned=True`` (CLI ``--allow-unsigned``, config ``allow_unsigned = true``), which still
checks everything else. Exports create the key on first use; :func:`subset` and
:func:`~casavox.export.bundle_writer.combine` re-sign their new manifest with the key when one
exists, and write an unsigned bundle (saying so) when none does.

What :func:`verify` refuses besides: any symbolic link in or under the bundle folder (a linked file
or ``llm/`` folder would let the bundle load files from anywhere; the folder itself may be a link),
a path that resolves outside it, and a manifest of the wrong shape (``files`` entries that are not
``{"sha256": 64 hex, "size": int >= 0}``, sections that are not objects, nesting deeper than
:data:`MAX_DEPTH`, a ``format_version`` that is not an int in ``1..FORMAT_VERSION``), each as a
one-line :class:`BundleError`.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import re
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from casavox.errors import CasavoxError
from casavox.runtime import signing

log = logging.getLogger(__name__)

FORMAT = "casavox-bundle"
FORMAT_VERSION = 1  # the newest this runtime reads; every version from 1 up to it is supported
MIN_FORMAT_VERSION = 1
# Real manifests nest 7 levels (components.asr.variants.int8.parity...); far deeper is hostile.
MAX_DEPTH = 32
SHA256 = re.compile(r"[0-9a-f]{64}")
MANIFEST = "manifest.json"
# Shared by every component kind (see casavox.runtime.components for the rest of their keys).
VARIANTS = "variants"
DEFAULT_VARIANT = "default_variant"


class BundleError(CasavoxError, ValueError):
    """A bundle that must not be loaded; the message is one line naming the problem."""


@dataclass(frozen=True)
class Bundle:
    """A verified bundle on disk, and what its signature check found (``signature.trusted``)."""

    root: Path
    manifest: dict[str, Any]
    signature: signing.Signature = signing.Signature(problem="not checked")

    @property
    def signed_by(self) -> str | None:
        """The id of the trusted key that signed the manifest, None when it was let through unsigned."""
        return self.signature.key_id if self.signature.trusted else None

    def path(self, rel: str) -> Path:
        """Absolute path of a listed file; refuses anything the manifest does not list."""
        if rel not in self.manifest["files"]:
            raise BundleError(f"{self.root}: {rel} is not listed in {MANIFEST}")
        return self.root / rel

    def component(self, name: str) -> dict[str, Any]:
        """The raw manifest entry of component ``name`` (typed: ``AsrComponent.from_bundle`` etc.)."""
        comps = self.manifest.get("components", {})
        if name not in comps:
            have = ", ".join(sorted(comps)) or "none"
            raise BundleError(f"{self.root}: bundle has no '{name}' component (it has: {have})")
        return comps[name]


def variant_names(component: dict[str, Any]) -> list[str]:
    """The variant names of a raw component entry, in manifest order (any component kind)."""
    return list(component.get(VARIANTS) or {})


def sha256_file(path: Path, chunk: int = 1 << 20) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(chunk):
            h.update(block)
    return h.hexdigest()


def utc_now() -> str:
    return datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def new_manifest() -> dict[str, Any]:
    return {
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        "created_at": utc_now(),
        "sources": {},
        "files": {},
        "graphs": {},
        "components": {},
        "versions": {},
    }


def add_file(root: Path, manifest: dict[str, Any], rel: str) -> None:
    """Record (or re-record) a file's hash and size; the file must already be in the folder."""
    path = Path(root) / rel
    manifest["files"][rel] = {"sha256": sha256_file(path), "size": path.stat().st_size}


def write_manifest(root: Path, manifest: dict[str, Any], create_key: bool = False) -> Path:
    """Write manifest.json atomically (a half-written manifest must never be seen) and sign it.

    Signed with the workstation's key when there is one (``create_key``: make one first, as an
    export does); with none, the bundle is written unsigned and a stale ``manifest.sig`` removed.
    """
    root = Path(root)
    manifest["updated_at"] = utc_now()
    data = (json.dumps(manifest, indent=2, sort_keys=False) + "\n").encode()
    key = signing.workstation_key(create=create_key)
    tmp = root / (MANIFEST + ".tmp")
    tmp.write_bytes(data)
    os.replace(tmp, root / MANIFEST)
    signing.write_signature(root, data, key)
    return root / MANIFEST


def _read_manifest(root: Path) -> tuple[bytes, dict[str, Any]]:
    """The bytes of manifest.json and the manifest they parse to, checked (read once, so the
    signature is checked over exactly what was parsed)."""
    if not root.is_dir():
        raise BundleError(f"{root}: not a bundle folder")
    mpath = root / MANIFEST
    if mpath.is_symlink():
        raise BundleError(f"{root}: {MANIFEST} is a symbolic link; a bundle must hold its own files")
    if not mpath.is_file():
        raise BundleError(f"{root}: no {MANIFEST}")
    raw = mpath.read_bytes()
    try:
        manifest = json.loads(raw)
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise BundleError(f"{mpath}: not valid JSON ({exc})") from None
    except RecursionError:
        raise BundleError(f"{mpath}: nested too deeply (at most {MAX_DEPTH} levels)") from None
    check_manifest(manifest, mpath)
    return raw, manifest


def load_manifest(root: Path) -> dict[str, Any]:
    """Parse and structurally check manifest.json (no hashing, no signature check)."""
    return _read_manifest(Path(root))[1]


def _depth(node: Any) -> int:
    """How deeply ``node`` nests objects and arrays (iterative: a hostile depth cannot overflow)."""
    deepest, stack = 0, [(node, 1)]
    while stack:
        item, level = stack.pop()
        if isinstance(item, (dict, list)):
            deepest = max(deepest, level)
            if level <= MAX_DEPTH:
                stack.extend((v, level + 1) for v in (item.values() if isinstance(item, dict) else item))
    return deepest


def _check_version(version: Any, mpath: Path) -> None:
    """``format_version`` must be an int (not a bool) this runtime reads."""
    if isinstance(version, bool) or not isinstance(version, int) or version < MIN_FORMAT_VERSION:
        raise BundleError(
            f"{mpath}: format_version must be an integer from {MIN_FORMAT_VERSION}, not {json.dumps(version)}"
        )
    if version > FORMAT_VERSION:
        raise BundleError(
            f"{mpath}: bundle format {version} is newer than this runtime supports ({FORMAT_VERSION}); "
            "upgrade casavox"
        )


def _check_path(rel: str, mpath: Path) -> None:
    """A listed path must be a plain relative path inside the bundle."""
    parts = Path(rel).parts
    if not rel or Path(rel).is_absolute() or ".." in parts or "\0" in rel:
        raise BundleError(f"{mpath.parent}: file path {rel!r} escapes the bundle")


def _check_files(files: dict[str, Any], mpath: Path) -> None:
    """Each ``files`` entry is ``{"sha256": 64 lowercase hex digits, "size": int >= 0}``."""
    for rel, meta in files.items():
        _check_path(rel, mpath)
        if not isinstance(meta, dict):
            raise BundleError(f"{mpath}: files.{rel} must be an object with sha256 and size")
        digest, size = meta.get("sha256"), meta.get("size")
        if not isinstance(digest, str) or not SHA256.fullmatch(digest):
            raise BundleError(f"{mpath}: files.{rel}.sha256 must be 64 hex digits, not {json.dumps(digest)}")
        if isinstance(size, bool) or not isinstance(size, int) or size < 0:
            raise BundleError(
                f"{mpath}: files.{rel}.size must be a whole number >= 0, not {json.dumps(size)}"
            )


def check_manifest(manifest: Any, mpath: Path) -> None:
    """The manifest's structure, so that nothing later meets a wrong type (one-line errors)."""
    if not isinstance(manifest, dict) or manifest.get("format") != FORMAT:
        raise BundleError(f"{mpath}: not a casavox bundle manifest")
    if _depth(manifest) > MAX_DEPTH:
        raise BundleError(f"{mpath}: nested too deeply (at most {MAX_DEPTH} levels)")
    _check_version(manifest.get("format_version"), mpath)
    for key in ("files", "graphs", "components"):
        if not isinstance(manifest.get(key), dict):
            raise BundleError(f"{mpath}: '{key}' missing or not an object")
    for key in ("graphs", "components", "engines", "sources", "versions"):
        section = manifest.get(key, {})
        if not isinstance(section, dict):
            raise BundleError(f"{mpath}: '{key}' must be an object")
        if key in ("graphs", "components", "engines"):
            for name, entry in section.items():
                if not isinstance(entry, dict):
                    raise BundleError(f"{mpath}: {key}.{name} must be an object")
    _check_files(manifest["files"], mpath)


def _refuse_links(root: Path) -> None:
    """No symbolic link anywhere in or under the bundle folder: a linked file or folder (``llm/``)
    would make verify vouch for files outside it. The folder itself may be a link."""
    for folder, dirs, names in os.walk(root):  # does not enter linked folders; lists them in dirs
        for name in dirs + names:
            path = Path(folder) / name
            if path.is_symlink():
                raise BundleError(
                    f"{root}: {path.relative_to(root)} is a symbolic link; a bundle must hold its own "
                    "files (copy them in)"
                )


def _check_inside(root: Path, rel: str) -> Path:
    """The listed file's path, refused if it resolves outside the bundle folder."""
    path = root / rel
    if not path.resolve().is_relative_to(root.resolve()):
        raise BundleError(f"{root}: file path {rel} escapes the bundle")
    return path


def _referenced(manifest: dict[str, Any]) -> set[str]:
    """Every file path the manifest points at outside ``files``."""
    refs = set(manifest["graphs"])

    def walk(node: Any) -> None:
        if isinstance(node, dict):
            for key, value in node.items():
                if key == "file" or key.endswith("_file"):
                    if isinstance(value, str):
                        refs.add(value)
                elif key.endswith("_files") and isinstance(value, list):  # e.g. an LLM's external weights
                    refs.update(v for v in value if isinstance(v, str))
                else:
                    walk(value)
        elif isinstance(node, list):
            for value in node:
                walk(value)

    walk(manifest["components"])
    walk(manifest.get("engines", {}))  # TensorRT engines built on the device (runtime/trt/build.py)
    return refs


def _signature(root: Path, raw: bytes, allow_unsigned: bool) -> signing.Signature:
    """The manifest's signature checked (or, with ``allow_unsigned``, its problem logged)."""
    try:
        found = signing.check_or_allow(raw, root / signing.SIGNATURE, allow_unsigned)
    except signing.SigningError as exc:
        raise BundleError(f"{root}: {exc}") from None
    if not found.trusted:
        log.warning("%s: %s; loading it anyway (unsigned bundles allowed)", root, found.problem)
    return found


def verify(root: str | Path, hash_files: bool = True, allow_unsigned: bool = False) -> Bundle:
    """Check a bundle and return it; raises :class:`BundleError` with a one-line reason.

    ``hash_files=False`` checks presence and sizes only (fast start-up on slow flash; a truncated
    file is still caught, a same-size modification is not). The manifest's signature is always
    checked (it is small); ``allow_unsigned`` lets a bundle through whose manifest is not signed
    by a trusted key (logged; ``Bundle.signature`` says why), every other check still applies.
    """
    root = Path(root)
    if root.is_dir():
        _refuse_links(root)
    raw, manifest = _read_manifest(root)
    files = manifest["files"]
    unlisted = sorted(_referenced(manifest) - set(files))
    if unlisted:
        raise BundleError(f"{root}: {unlisted[0]} is referenced but not listed in {MANIFEST}")
    for rel, meta in files.items():
        path = _check_inside(root, rel)
        if not path.is_file():
            raise BundleError(f"{root}: missing file {rel}")
        size = path.stat().st_size
        if size != meta.get("size"):
            raise BundleError(
                f"{root}: {rel} is {size} bytes, manifest says {meta.get('size')} (truncated or replaced)"
            )
        if hash_files and sha256_file(path) != meta.get("sha256"):
            raise BundleError(f"{root}: {rel} does not match its sha256 (modified or corrupt)")
    return Bundle(root=root, manifest=manifest, signature=_signature(root, raw, allow_unsigned))


def subset(
    src: str | Path, out: str | Path, keep: dict[str, list[str]], allow_unsigned: bool = False
) -> Bundle:
    """Copy a bundle keeping only some variants per component, for a device that runs only those.

    ``keep`` maps a component to the variants to keep (``{"asr": ["fp16"], "llm": ["fp16"]}`` for a
    GPU box, int8 for a CPU one); a component mapped to ``[]`` is dropped, one not named is kept
    whole. The full bundle of a GPU export is ~0.9 GB while a Jetson runs only its ~0.4 GB of fp16
    graphs. Files are hard-linked where the file system allows it; hashes are verified first, and
    the output's manifest lists exactly what it references.

    The source must be signed by a trusted key (unless ``allow_unsigned``). The new manifest is
    signed with this machine's signing key when it has one (a workstation), else written unsigned:
    the returned bundle's ``signature`` says which.
    """
    import copy
    import shutil

    bundle = verify(src, allow_unsigned=allow_unsigned)
    out = Path(out)
    if out.exists() and any(out.iterdir()):
        raise BundleError(f"{out}: exists and is not empty")
    manifest = copy.deepcopy(bundle.manifest)
    components = manifest["components"]
    for name, variants in keep.items():
        if name not in components:
            raise BundleError(f"{bundle.root}: bundle has no '{name}' component")
        if not variants:
            del components[name]
            continue
        have = components[name].get(VARIANTS, {})
        missing = sorted(set(variants) - set(have))
        if missing:
            raise BundleError(
                f"{bundle.root}: {name} has no variant {missing[0]} (it has: {', '.join(sorted(have))})"
            )
        components[name][VARIANTS] = {v: have[v] for v in have if v in variants}
        if components[name].get(DEFAULT_VARIANT) not in variants:
            components[name][DEFAULT_VARIANT] = next(iter(components[name][VARIANTS]))
    used = _referenced({"graphs": {}, "components": components})
    manifest["graphs"] = {rel: spec for rel, spec in manifest["graphs"].items() if rel in used}
    if engines := {rel: e for rel, e in manifest.pop("engines", {}).items() if rel in used}:
        manifest["engines"] = engines
    wanted = _referenced(manifest)
    manifest["files"] = {rel: meta for rel, meta in manifest["files"].items() if rel in wanted}
    manifest["subset_of"] = {"created_at": bundle.manifest.get("created_at"), "keep": keep}
    out.mkdir(parents=True, exist_ok=True)
    for rel in manifest["files"]:
        target = out / rel
        target.parent.mkdir(parents=True, exist_ok=True)
        try:
            os.link(bundle.root / rel, target)
        except OSError:
            shutil.copy2(bundle.root / rel, target)
    write_manifest(out, manifest)
    return verify(out, hash_files=False, allow_unsigned=True)  # the copy's signature: reported, not required
