"""casavox installs as one package and runs from anywhere.

`pip install .` into a fresh virtual environment (dependencies from the package index, as a user
gets them), then the installed console script from a directory that is not the checkout: `--help`,
and `casavox run` on a spoken command with the shipped example home (no --home), so nothing may
depend on the current directory or on the repository being there.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import venv
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def installed(tmp_path_factory) -> Path:
    """A fresh venv with casavox installed from a copy of the checkout (not editable)."""
    work = tmp_path_factory.mktemp("pkg")
    src = work / "src"
    ignore = shutil.ignore_patterns(
        ".venv", ".cache", "bundles", ".git", "__pycache__", "*.egg-info", "build"
    )
    shutil.copytree(ROOT, src, ignore=ignore)
    env_dir = work / "venv"
    venv.create(env_dir, with_pip=True)
    pip = env_dir / "bin" / "pip"
    proc = subprocess.run(
        [str(pip), "install", "-q", "--disable-pip-version-check", str(src)],
        capture_output=True,
        text=True,
        timeout=1200,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    # the VAD's ONNX file comes from the silero-vad wheel, whose torch dependency the device must not
    # get: the documented second step of an install (README "Install")
    proc = subprocess.run(
        [str(pip), "install", "-q", "--no-deps", "silero-vad"], capture_output=True, text=True
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    return env_dir


def test_site_packages_gets_exactly_one_name(installed: Path) -> None:
    site = next((installed / "lib").glob("python3*/site-packages"))
    ours = {p.name for p in site.iterdir()} & {
        "casavox",
        "runtime",
        "export",
        "edge_app",
        "examples",
        "benchmarks",
    }
    assert ours == {"casavox"}
    # the adapter and the example home are package data
    assert (site / "casavox" / "export" / "llm" / "adapter" / "adapter_model.safetensors").is_file()
    assert (site / "casavox" / "examples" / "home.yaml").is_file()


def test_help_and_library_import_from_another_directory(installed: Path, tmp_path: Path) -> None:
    exe = installed / "bin" / "casavox"
    out = subprocess.run([str(exe), "--help"], capture_output=True, text=True, cwd=tmp_path, timeout=60)
    assert out.returncode == 0 and "serve-wyoming" in out.stdout and "--debug" in out.stdout
    code = "import casavox, sys; print(sorted(casavox.__all__)); print(casavox.load_home.__module__)"
    lib = subprocess.run(
        [str(installed / "bin" / "python"), "-c", code], capture_output=True, text=True, cwd=tmp_path
    )
    assert lib.returncode == 0, lib.stderr
    assert "'Assistant'" in lib.stdout and "casavox.runtime.home" in lib.stdout
    assert (
        str(ROOT)
        not in subprocess.run(
            [str(installed / "bin" / "python"), "-c", "import casavox; print(casavox.__file__)"],
            capture_output=True,
            text=True,
            cwd=tmp_path,
        ).stdout
    )


def test_run_from_another_directory_with_the_shipped_home(
    installed: Path, full_bundle: Path, say, tmp_path
) -> None:
    import numpy as np
    import soundfile

    audio = np.concatenate(
        [np.zeros(8000, np.float32), say("Turn on the ceiling fan."), np.zeros(16000, np.float32)]
    )
    wav = tmp_path / "fan.wav"
    soundfile.write(wav, audio, 16000)
    env = {**os.environ, "HOME": str(tmp_path)}  # the default state file lands under this HOME
    cmd = [str(installed / "bin" / "casavox"), "run", str(full_bundle), "--audio", str(wav), "--log", "-"]
    proc = subprocess.run(cmd, capture_output=True, text=True, cwd=tmp_path, env=env, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    records = [json.loads(line) for line in proc.stdout.splitlines() if line.startswith("{")]
    assert [r["outcome"] for r in records] == ["acted"] and "Ceiling Fan" in records[0]["reply"]
    assert (tmp_path / ".local" / "state" / "casavox" / "home.sqlite").is_file()


def test_the_public_names_are_the_lazy_ones() -> None:
    import casavox

    assert set(casavox.__all__) - {"CasavoxError", "__version__"} == set(casavox._LAZY)
    assert all(getattr(casavox, name) is not None for name in casavox.__all__)
