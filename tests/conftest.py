"""Shared fixtures: one real export per code version (cached under .cache/), one synthesized speech set.

The ASR bundle is exported from the real Whisper weights with the real exporter; it is cached by a
hash of the code that shapes it, so editing the exporter re-exports on the next run.
"""

from __future__ import annotations

import hashlib
import shutil
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
CACHE = ROOT / ".cache"


def _code_hash() -> str:
    h = hashlib.sha256()
    files = sorted((ROOT / "export").rglob("*.py")) + sorted((ROOT / "runtime").rglob("*.py"))
    for path in files:
        h.update(path.relative_to(ROOT).as_posix().encode())
        h.update(path.read_bytes())
    return h.hexdigest()[:12]


@pytest.fixture(scope="session")
def speech_cache() -> Path:
    return CACHE / "speech"


@pytest.fixture(scope="session")
def asr_bundle(speech_cache: Path) -> Path:
    """A bundle with fp32, int8 and fp16 ASR variants, exported by `export_asr` itself."""
    from export.asr.pipeline import export_asr
    from runtime.bundle import BundleError, verify

    target = CACHE / f"bundle-{_code_hash()}"
    if target.exists():
        try:
            verify(target)
            return target
        except BundleError:
            shutil.rmtree(target)
    for old in CACHE.glob("bundle-*"):
        shutil.rmtree(old, ignore_errors=True)
    CACHE.mkdir(exist_ok=True)
    export_asr(target, cache_dir=speech_cache, progress=False)
    return target


@pytest.fixture(scope="session")
def clips(speech_cache: Path):
    from export.speech_set import speech_set

    return speech_set(cache_dir=speech_cache)


@pytest.fixture(scope="session")
def transcriber_int8(asr_bundle: Path):
    from runtime.asr.transcriber import load_transcriber

    return load_transcriber(asr_bundle, "int8")
