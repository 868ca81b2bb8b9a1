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
"""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from casavox.errors import CasavoxError

FORMAT = "casavox-bundle"
FORMAT_VERSION = 1
MANIFEST = "manifest.json"
# Shared by every component kind (see casavox.runtime.components for the rest of their keys).
VARIANTS = "variants"
DEFAULT_VARIANT = "default_variant"


class BundleError(CasavoxError, ValueError):
    """A bundle that must not be loaded; the message is one line naming the problem."""


@dataclass(frozen=True)
class Bundle:
    """A verified bundle on disk."""

    root: Path
    manifest: dict[str, Any]

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


def write_manifest(root: Path, manifest: dict[str, Any]) -> Path:
    """Write manifest.json atomically (a half-written manifest must never be seen)."""
    root = Path(root)
    manifest["updated_at"] = utc_now()
    tmp = root / (MANIFEST + ".tmp")
    tmp.write_text(json.dumps(manifest, indent=2, sort_keys=False) + "\n")
    os.replace(tmp, root / MANIFEST)
    return root / MANIFEST


def load_manifest(root: Path) -> dict[str, Any]:
    """Parse and structurally check manifest.json (no hashing)."""
    root = Path(root)
    if not root.is_dir():
        raise BundleError(f"{root}: not a bundle folder")
    mpath = root / MANIFEST
    if not mpath.is_file():
        raise BundleError(f"{root}: no {MANIFEST}")
    try:
        manifest = json.loads(mpath.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise BundleError(f"{mpath}: not valid JSON ({exc})") from None
    if not isinstance(manifest, dict) or manifest.get("format") != FORMAT:
        raise BundleError(f"{mpath}: not a casavox bundle manifest")
    version = manifest.get("format_version")
    if not isinstance(version, int):
        raise BundleError(f"{mpath}: format_version missing")
    if version > FORMAT_VERSION:
        raise BundleError(
            f"{mpath}: bundle format {version} is newer than this runtime supports ({FORMAT_VERSION}); "
            "upgrade casavox"
        )
    for key in ("files", "graphs", "components"):
        if not isinstance(manifest.get(key), dict):
            raise BundleError(f"{mpath}: '{key}' missing or not an object")
    return manifest


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


def verify(root: str | Path, hash_files: bool = True) -> Bundle:
    """Check a bundle and return it; raises :class:`BundleError` with a one-line reason.

    ``hash_files=False`` checks presence and sizes only (fast start-up on slow flash; a truncated
    file is still caught, a same-size modification is not).
    """
    root = Path(root)
    manifest = load_manifest(root)
    files = manifest["files"]
    unlisted = sorted(_referenced(manifest) - set(files))
    if unlisted:
        raise BundleError(f"{root}: {unlisted[0]} is referenced but not listed in {MANIFEST}")
    for rel, meta in files.items():
        path = root / rel
        if Path(rel).is_absolute() or ".." in Path(rel).parts:
            raise BundleError(f"{root}: file path {rel} escapes the bundle")
        if not path.is_file():
            raise BundleError(f"{root}: missing file {rel}")
        size = path.stat().st_size
        if size != meta.get("size"):
            raise BundleError(
                f"{root}: {rel} is {size} bytes, manifest says {meta.get('size')} (truncated or replaced)"
            )
        if hash_files and sha256_file(path) != meta.get("sha256"):
            raise BundleError(f"{root}: {rel} does not match its sha256 (modified or corrupt)")
    return Bundle(root=root, manifest=manifest)


def subset(src: str | Path, out: str | Path, keep: dict[str, list[str]]) -> Bundle:
    """Copy a bundle keeping only some variants per component, for a device that runs only those.

    ``keep`` maps a component to the variants to keep (``{"asr": ["fp16"], "llm": ["fp16"]}`` for a
    GPU box, int8 for a CPU one); a component mapped to ``[]`` is dropped, one not named is kept
    whole. The full bundle of a GPU export is ~0.9 GB while a Jetson runs only its ~0.4 GB of fp16
    graphs. Files are hard-linked where the file system allows it; hashes are verified first, and
    the output's manifest lists exactly what it references.
    """
    import copy
    import shutil

    bundle = verify(src)
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
    return verify(out, hash_files=False)
