"""Merge one exported component into a bundle folder, through the format owned by runtime.bundle.

A bundle holds several components (asr, llm, ...) exported at different times; re-exporting one
replaces only its files, then the manifest is rewritten atomically and signed with the
workstation's key (runtime/signing.py: an export creates the key on first use).
"""

from __future__ import annotations

import shutil
from importlib import metadata
from pathlib import Path

from casavox.runtime import bundle as fmt


def library_versions() -> dict[str, str]:
    """Versions of the libraries that shaped the exported files."""
    out = {}
    for dist in (
        "casavox",
        "torch",
        "transformers",
        "onnx",
        "onnxruntime",
        "onnxscript",
        "tokenizers",
        "ctranslate2",
        "peft",
        "gguf",
        "hassil",
        "home-assistant-intents",
    ):
        try:
            out[dist] = metadata.version(dist)
        except metadata.PackageNotFoundError:
            pass
    return out


def open_bundle(out: Path) -> tuple[Path, dict]:
    """The existing manifest of ``out`` (must be a valid bundle manifest), or a fresh one."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    if (out / fmt.MANIFEST).exists():
        return out, fmt.load_manifest(out)
    if any(out.iterdir()):
        raise fmt.BundleError(
            f"{out}: folder is not empty and has no {fmt.MANIFEST}; refusing to write a bundle there"
        )
    return out, fmt.new_manifest()


def save_bundle(
    target: Path, manifest: dict, work: Path, component: str, work_manifest: dict, create_key: bool = True
) -> None:
    """Move ``work/<component>/`` into ``target``, replacing that component's old files.

    The manifest is signed with the workstation's key (created if missing unless ``create_key`` is
    false, as for :func:`combine`: then a machine without a key writes an unsigned bundle)."""
    prefix = f"{component}/"
    for rel in [r for r in manifest["files"] if r.startswith(prefix)]:
        (target / rel).unlink(missing_ok=True)
        del manifest["files"][rel]
    manifest["graphs"] = {k: v for k, v in manifest["graphs"].items() if not k.startswith(prefix)}
    dest = target / component
    if dest.exists():
        shutil.rmtree(dest)
    shutil.move(str(work / component), str(dest))
    for rel, meta in work_manifest["files"].items():
        if rel.startswith(prefix):
            manifest["files"][rel] = meta
    for rel, meta in work_manifest["graphs"].items():
        if rel.startswith(prefix):
            manifest["graphs"][rel] = meta
    # Parity figures were added after hashing; components carry them, files are unchanged.
    fmt.write_manifest(target, manifest, create_key=create_key)
    fmt.verify(target, allow_unsigned=True)  # what was written; its signature is reported, not required


def publish_component(
    out: Path, name: str, source_key: str, work: Path, work_manifest: dict, create_key: bool = True
) -> None:
    """Merge the component ``name`` exported under ``work`` into the bundle at ``out`` (signed)."""
    target, manifest = open_bundle(out)
    manifest["components"][name] = work_manifest["components"][name]
    manifest["sources"][source_key] = work_manifest["sources"][source_key]
    manifest["versions"].update(library_versions())
    save_bundle(target, manifest, work, name, work_manifest, create_key)


def combine(out: Path, bundles: list[Path], allow_unsigned: bool = False) -> Path:
    """One bundle holding the components of several (e.g. an ASR export and an LLM export).

    Files are hard-linked where the filesystem allows (no extra disk), copied otherwise; every
    source is verified first (signed by a trusted key, unless ``allow_unsigned``) and the result is
    verified after. The new manifest is re-signed with this machine's signing key when it has one;
    without one the result is unsigned (a warning says so), never signed with a new key made here.
    """
    import os
    import tempfile

    out = Path(out)
    for source in bundles:
        manifest = fmt.verify(source, allow_unsigned=allow_unsigned).manifest
        with tempfile.TemporaryDirectory(dir=out.parent if out.parent.exists() else None) as tmp:
            work = Path(tmp)
            for name in manifest["components"]:
                try:
                    shutil.copytree(Path(source) / name, work / name, copy_function=os.link)
                except OSError:
                    shutil.rmtree(work / name, ignore_errors=True)
                    shutil.copytree(Path(source) / name, work / name)
                key = next(iter(manifest["sources"]))  # every export records one source
                publish_component(out, name, key, work, manifest, create_key=False)
    fmt.verify(out, allow_unsigned=True)
    return out
