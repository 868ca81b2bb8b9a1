"""Merge one exported component into a bundle folder, through the format owned by runtime.bundle.

A bundle holds several components (asr, llm, ...) exported at different times; re-exporting one
replaces only its files, then the manifest is rewritten atomically.
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


def save_bundle(target: Path, manifest: dict, work: Path, component: str, work_manifest: dict) -> None:
    """Move ``work/<component>/`` into ``target``, replacing that component's old files."""
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
    fmt.write_manifest(target, manifest)
    fmt.verify(target)


def publish_component(out: Path, name: str, source_key: str, work: Path, work_manifest: dict) -> None:
    """Merge the component ``name`` exported under ``work`` into the bundle at ``out``."""
    target, manifest = open_bundle(out)
    manifest["components"][name] = work_manifest["components"][name]
    manifest["sources"][source_key] = work_manifest["sources"][source_key]
    manifest["versions"].update(library_versions())
    save_bundle(target, manifest, work, name, work_manifest)


def combine(out: Path, bundles: list[Path]) -> Path:
    """One bundle holding the components of several (e.g. an ASR export and an LLM export).

    Files are hard-linked where the filesystem allows (no extra disk), copied otherwise; every
    source is verified first and the result is verified after.
    """
    import os
    import tempfile

    out = Path(out)
    for source in bundles:
        manifest = fmt.verify(source).manifest
        with tempfile.TemporaryDirectory(dir=out.parent if out.parent.exists() else None) as tmp:
            work = Path(tmp)
            for name in manifest["components"]:
                try:
                    shutil.copytree(Path(source) / name, work / name, copy_function=os.link)
                except OSError:
                    shutil.rmtree(work / name, ignore_errors=True)
                    shutil.copytree(Path(source) / name, work / name)
                key = next(iter(manifest["sources"]))  # every export records one source
                publish_component(out, name, key, work, manifest)
    fmt.verify(out)
    return out
