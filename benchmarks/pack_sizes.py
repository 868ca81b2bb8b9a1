"""Artifact and installed sizes of `casavox pack` per target (docs/experiments.md, "Flashing a box").

    python -m benchmarks.pack_sizes [--bundle bundles/default] [--targets cpu,cuda,jetson] [--work DIR]

For each target: the artifact's size, its wheels and bundle; then, where this machine can run the
pack's wheels (same CPU and Python), an offline install (inside `unshare -n` when it works) into a
scratch tree, timed, with the release's installed size. The self-test runs where the target's
device exists here; elsewhere the install is made with ``--no-selftest`` and the JSON says so.
Prints one JSON object.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import subprocess
import sys
import tarfile
import tempfile
import time
from pathlib import Path

from casavox.export.pack import pack
from casavox.runtime.providers import available_devices

ROOT = Path(__file__).resolve().parents[1]


def _size(folder: Path) -> int:
    return sum(p.lstat().st_size for p in folder.rglob("*") if p.is_file() and not p.is_symlink())


def measure(target: str, bundle: Path, work: Path) -> dict:
    t0 = time.perf_counter()
    report = pack(target, bundle, work / f"{target}.tar", ROOT)
    out = {
        "target": target,
        "artifact_mb": round(report.size / 1e6, 1),
        "bundle_mb": round(report.bundle_size / 1e6, 1),
        "wheels": len(report.wheels),
        "pack_s": round(time.perf_counter() - t0, 1),
    }
    with tarfile.open(report.path) as tar:
        tar.extractall(work, filter="tar")
    report.path.unlink()
    folder = work / report.folder
    manifest = json.loads((folder / "MANIFEST.json").read_text())
    out["wheels_mb"] = round(
        sum(m["size"] for r, m in manifest["files"].items() if r.startswith("wheels/")) / 1e6, 1
    )
    here = f"{sys.version_info.major}.{sys.version_info.minor}"
    if manifest["machine"] != platform.machine() or manifest["python"] != here:
        out["installed"] = (
            f"not measured: the pack is for {manifest['machine']} / Python {manifest['python']}"
        )
        return out
    box = work / f"box-{target}"
    selftest = manifest["device"] in available_devices()
    cmd = [str(folder / "install.sh"), "--prefix", str(box / "opt"), "--etc", str(box / "etc"),
           "--state", str(box / "state"), "--no-systemd", "--no-user"]  # fmt: skip
    if not selftest:
        cmd.append("--no-selftest")
    if shutil.which("unshare") and subprocess.run(["unshare", "-n", "true"]).returncode == 0:
        cmd = ["unshare", "-n", *cmd]
        out["offline"] = "network namespace without network"
    else:
        out["offline"] = "pip --no-index only"
    env = {k: v for k, v in os.environ.items() if k != "CASAVOX_TRUSTED_KEYS"}
    t0 = time.perf_counter()
    done = subprocess.run(cmd, capture_output=True, text=True, env=env)
    out["install_s"] = round(time.perf_counter() - t0, 1)
    if done.returncode != 0:
        out["installed"] = f"install failed: {done.stderr.strip()}"
        return out
    release = (box / "opt" / "current").resolve()
    out["installed_mb"] = round(_size(release) / 1e6, 1)
    out["venv_mb"] = round(_size(release / "venv") / 1e6, 1)
    out["selftest"] = "ran, ok" if selftest else f"skipped: no {manifest['device']} device here"
    shutil.rmtree(box, ignore_errors=True)
    shutil.rmtree(folder, ignore_errors=True)
    return out


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--bundle", default="bundles/default")
    p.add_argument("--targets", default="cpu,cuda,jetson")
    p.add_argument("--work", help="scratch folder (default: a temporary one; needs ~8 GB for cuda)")
    args = p.parse_args()
    with tempfile.TemporaryDirectory(dir=args.work) as tmp:
        rows = [measure(t, Path(args.bundle), Path(tmp)) for t in args.targets.split(",")]
    print(json.dumps({"machine": f"{platform.machine()} {os.cpu_count()} cores", "targets": rows}, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
