"""Shared fixtures: one real export per code version (cached under .cache/), one synthesized speech set.

The ASR bundle is exported from the real Whisper weights with the real exporter; it is cached by a
hash of the code that shapes it, so editing the exporter re-exports on the next run.
"""

from __future__ import annotations

import hashlib
import os
import shutil
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
# CASAVOX_TEST_CACHE: another folder for the exported bundles, so two checkouts or sessions that test
# different code at once do not evict each other's exports.
CACHE = Path(os.environ.get("CASAVOX_TEST_CACHE") or ROOT / ".cache")
# Bundles are signed (runtime/signing.py): the tests sign with a key of their own, kept with the cached
# exports and trusted only by the test process and its children, never the real ~/.config.
KEYS = CACHE / "keys"
os.environ["CASAVOX_SIGNING_KEY"] = str(KEYS / "signing.key")
os.environ["CASAVOX_TRUSTED_KEYS"] = str(KEYS / "trusted")


def _trust_the_test_key() -> None:
    """Create the test signing key if missing, and trust it even if only its trust file was lost."""
    from casavox.runtime import signing

    signing.trust(signing.workstation_key(create=True).private.public_key())


_trust_the_test_key()


def _hash(files: list[Path]) -> str:
    h = hashlib.sha256()
    for path in files:
        h.update(path.relative_to(ROOT).as_posix().encode())
        h.update(path.read_bytes())
    return h.hexdigest()[:12]


def _cached_bundle(prefix: str, code_hash: str, build) -> Path:
    """`.cache/<prefix>-<hash>`, built by ``build(target)`` unless a valid one is already there."""
    from casavox.runtime.bundle import BundleError, verify

    target = CACHE / f"{prefix}-{code_hash}"
    if target.exists():
        try:
            verify(target)
            return target
        except BundleError:
            shutil.rmtree(target)
    for old in CACHE.glob(f"{prefix}-*"):
        shutil.rmtree(old, ignore_errors=True)
    CACHE.mkdir(exist_ok=True)
    build(target)
    return target


@pytest.fixture(scope="session")
def speech_cache() -> Path:
    return CACHE / "speech"


@pytest.fixture(scope="session")
def asr_bundle(speech_cache: Path) -> Path:
    """A bundle with fp32, int8 and fp16 ASR variants, exported by `export_asr` itself."""
    from casavox.export.asr.pipeline import export_asr

    code = _hash(sorted((ROOT / "export").rglob("*.py")) + sorted((ROOT / "runtime").rglob("*.py")))
    return _cached_bundle("bundle", code, lambda t: export_asr(t, cache_dir=speech_cache, progress=False))


@pytest.fixture(scope="session")
def clips(speech_cache: Path):
    from casavox.export.speech_set import speech_set

    return speech_set(cache_dir=speech_cache)


@pytest.fixture(scope="session")
def transcriber_int8(asr_bundle: Path):
    from casavox.runtime.asr.transcriber import load_transcriber

    return load_transcriber(asr_bundle, "int8")


@pytest.fixture(scope="session")
def llm_bundle() -> Path:
    """A bundle with the fine-tuned intent LLM (int8 + fp16), exported by `export_llm` itself."""
    from casavox.export.llm.pipeline import export_llm

    files = sorted((ROOT / "export").rglob("*.py")) + sorted((ROOT / "export" / "llm" / "adapter").glob("*"))
    files += sorted((ROOT / "runtime" / "intents").rglob("*.py")) + [ROOT / "runtime" / "bundle.py"]
    return _cached_bundle("llm-bundle", _hash(files), lambda t: export_llm(t, progress=False))


@pytest.fixture(scope="session")
def intent_llm(llm_bundle: Path):
    from casavox.runtime.bundle import verify
    from casavox.runtime.intents.llm import load_llm

    return load_llm(verify(llm_bundle, hash_files=False))


@pytest.fixture(scope="session")
def ha_intents():
    from casavox.runtime.intents.templates import load_language_intents

    return load_language_intents()


@pytest.fixture(scope="session")
def full_bundle(asr_bundle: Path, llm_bundle: Path) -> Path:
    """ASR + LLM in one bundle, as the daemon loads it (hard links to the two cached exports)."""
    from casavox.export.bundle_writer import combine

    return _cached_bundle(
        "full-bundle", f"{asr_bundle.name}-{llm_bundle.name}", lambda t: combine(t, [asr_bundle, llm_bundle])
    )


@pytest.fixture(scope="session")
def say():
    """text -> 16 kHz mono float32 speech from the Piper voice (deterministic)."""
    from casavox.runtime.audio.io import to_mono_16k
    from casavox.runtime.tts import PiperSpeaker

    speaker = PiperSpeaker()
    cache: dict[str, object] = {}

    def _say(text: str):
        if text not in cache:
            speech = speaker.say(text, deterministic=True)
            cache[text] = to_mono_16k(speech.audio, speech.sample_rate)
        return cache[text]

    return _say


@pytest.fixture(scope="session")
def home_assistant(tmp_path_factory, request):
    """A real Home Assistant on loopback (tests/ha_instance.py), one per test session, shared by
    tests/test_hass_real.py and the fault matrix; skipped with the reason where none can be installed
    or started. Which version ran is written on the terminal."""
    import logging

    from tests.ha_instance import HaUnavailable, ensure_home_assistant, start_home_assistant

    try:
        install = ensure_home_assistant(CACHE)
    except HaUnavailable as exc:
        pytest.skip(f"Home Assistant cannot be installed here: {exc}")
    try:
        running = start_home_assistant(install, tmp_path_factory.mktemp("home-assistant"))
    except HaUnavailable as exc:
        pytest.skip(f"Home Assistant {install.version} does not start here: {exc}")
    took = f"installed in {install.install_s:.0f} s" if install.install_s else "installed before"
    said = (
        f"Home Assistant {running.version} on Python {running.python_version} ({took}), "
        f"up in {running.start_s:.1f} s at {running.url}"
    )
    logging.getLogger(__name__).warning("%s", said)
    plugins = request.config.pluginmanager
    reporter, capture = plugins.get_plugin("terminalreporter"), plugins.get_plugin("capturemanager")
    if reporter is not None and capture is not None:  # which one ran, on the terminal (output captured)
        with capture.global_and_fixture_disabled():
            reporter.ensure_newline()
            reporter.write_line(f"tests: {said}")
    yield running
    running.stop()


@pytest.fixture(scope="module")
def pipeline(full_bundle):
    """The speech pipeline over the example home, loaded once per module (daemon tests)."""
    from casavox.edge_app.pipeline import SpeechPipeline
    from casavox.runtime.home import load_home

    return SpeechPipeline.load(str(full_bundle), load_home(ROOT / "examples" / "home.yaml"))


@pytest.fixture()
def make(tmp_path, pipeline, full_bundle):
    """make(**config overrides) -> (daemon, state store) on the example home; closed after the test."""
    made = []

    def _make(**overrides):
        base = {
            "bundle": str(full_bundle),
            "home": str(ROOT / "examples" / "home.yaml"),
            "state": str(tmp_path / "home.sqlite"),
            "log": {"json": "", "quiet": True},
        }
        from casavox.edge_app.app import build_daemon
        from casavox.edge_app.config import load_config, merge

        config = load_config(None, merge(base, overrides))
        daemon, store = build_daemon(config, keep_records=True, pipeline=pipeline)
        made.append((daemon, store))
        return daemon, store

    yield _make
    for daemon, store in made:
        daemon.backend.close()
        store.close()
