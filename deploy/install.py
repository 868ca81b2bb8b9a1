"""casavox's offline installer: run on the box from an unpacked `casavox pack` artifact.

    tar xf casavox-<version>-<target>.tar && cd casavox-<version>-<target> && sudo ./install.sh

Standard library only: it runs before any casavox or venv exists, on a box with no network. What
it does, in an order that leaves the previous install working if any step fails:

1. checks every file of the artifact against MANIFEST.json (sha256 and size; nothing unlisted), and
   that this box is the one the pack was made for (CPU, Python, the system modules it relies on);
2. on an upgrade, has the casavox already installed (code this box already trusts) check the
   artifact's signature against the keys the box trusts: a pack changed after signing, or signed by
   a key the box never trusted, is refused (``--trust-new-key`` accepts a new key). A first install
   has nothing to check it with and trusts the packed key; its id is printed to compare with the
   one `casavox pack` printed on the workstation;
3. makes a new release folder ``<prefix>/releases/<id>`` with a venv installed from the packed
   wheels only (``pip --no-index --no-deps``: no resolver, no index), and the bundle, read-only;
4. runs `casavox selftest` from that release (bundle signature and hashes, the providers, a packed
   spoken command transcribed and understood by the templates and by the LLM);
5. only then: writes the config if there is none (an existing one is kept; the packed defaults go
   beside it as ``casavox.toml.packed``), creates the state folder and the service user, switches
   ``<prefix>/current`` to the new release in one atomic rename, installs the systemd unit and
   restarts the service if it runs, and removes releases older than the previous one.

A failure at any step removes the new release and any key it added, says why in one line, and
exits 1; ``current``, the config, the state and the running service are untouched.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import platform
import shutil
import subprocess
import sys
import time
from pathlib import Path

MANIFEST = "MANIFEST.json"
SIGNATURE = "MANIFEST.sig"
FORMAT = "casavox-pack"
# The packed config and unit name the default layout; other prefixes are substituted in.
DEFAULTS = {"prefix": "/opt/casavox", "etc": "/etc/casavox", "state": "/var/lib/casavox"}


class InstallError(Exception):
    """Why the install stopped; printed as one line."""


# Standard library only, so not casavox.runtime.bundle.sha256_file: this runs before casavox exists.
def sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def read_manifest(here: Path) -> dict:
    """The pack's manifest once every file it lists matches, and it lists every file there is."""
    try:
        manifest = json.loads((here / MANIFEST).read_text())
    except (OSError, ValueError) as exc:
        raise InstallError(f"{here}: no readable {MANIFEST} ({exc}); unpack the whole artifact") from None
    if manifest.get("format") != FORMAT:
        raise InstallError(f"{here / MANIFEST}: not a casavox pack")
    files = manifest.get("files", {})
    for rel, meta in files.items():
        path = here / rel
        if ".." in Path(rel).parts or path.is_symlink() or not path.is_file():
            raise InstallError(f"{rel}: missing (unpack the whole artifact again)")
        if path.stat().st_size != meta["size"] or sha256(path) != meta["sha256"]:
            raise InstallError(
                f"{rel}: damaged or changed (its sha256 differs from the manifest); nothing was installed"
            )
    for path in here.rglob("*"):
        rel = path.relative_to(here).as_posix()
        if (
            path.is_file()
            and rel not in files
            and rel not in (MANIFEST, SIGNATURE)
            and "__pycache__" not in rel
        ):
            raise InstallError(f"{rel}: not part of the pack (added after packing?); nothing was installed")
    return manifest


def check_box(manifest: dict) -> None:
    """This box is the one the pack was built for."""
    machine = platform.machine()
    if manifest["machine"] != machine:
        raise InstallError(f"this pack is for {manifest['machine']}; this box is {machine}")
    have = f"{sys.version_info.major}.{sys.version_info.minor}"
    if manifest["python"] != have:
        raise InstallError(
            f"this pack's wheels are for Python {manifest['python']}; {sys.executable} is {have} "
            f"(run install.sh with CASAVOX_PYTHON=python{manifest['python']})"
        )
    jetpack = manifest.get("notes", {}).get("jetpack")
    if jetpack:
        release = Path("/etc/nv_tegra_release")
        found = (
            release.read_text().splitlines()[0].strip() if release.is_file() else "no /etc/nv_tegra_release"
        )
        print(f"casavox-install: this pack expects JetPack {jetpack}; this box: {found}")
    missing = []
    for module in manifest.get("system_modules", []):
        done = subprocess.run([sys.executable, "-c", f"import {module}"], capture_output=True)
        if done.returncode != 0:
            missing.append(module)
    if missing:
        raise InstallError(f"this box's Python lacks {', '.join(missing)}: {manifest.get('system_hint', '')}")


def render(text: str, paths: dict[str, Path]) -> str:
    for key, default in DEFAULTS.items():
        text = text.replace(default, str(paths[key]))
    return text


def run(cmd: list[str], env: dict | None = None, what: str = "") -> str:
    done = subprocess.run(cmd, capture_output=True, text=True, env=env)
    if done.returncode != 0:
        lines = (done.stderr.strip() or done.stdout.strip() or "(no output)").splitlines()
        raise InstallError(f"{what or cmd[0]} failed: {lines[-1]}")
    return done.stdout


def size_of(folder: Path) -> int:
    return sum(p.lstat().st_size for p in folder.rglob("*") if p.is_file() and not p.is_symlink())


def read_only(folder: Path) -> None:
    for path in sorted(folder.rglob("*"), reverse=True):
        path.chmod(0o555 if path.is_dir() else 0o444)
    folder.chmod(0o555)


def writable(folder: Path) -> None:
    """Undo read_only so a release can be removed."""
    if folder.exists():
        folder.chmod(0o755)
        for path in folder.rglob("*"):
            if not path.is_symlink():
                path.chmod(0o755 if path.is_dir() else 0o644)


def remove_release(folder: Path) -> None:
    bundle = folder / "bundle"
    if bundle.exists():
        writable(bundle)
    shutil.rmtree(folder, ignore_errors=True)


def systemd_running() -> bool:
    return Path("/run/systemd/system").is_dir() and shutil.which("systemctl") is not None


def ensure_user(name: str, home: Path) -> None:
    import pwd

    try:
        pwd.getpwnam(name)
        return
    except KeyError:
        pass
    import grp

    groups = []
    try:
        grp.getgrnam("audio")
        groups = ["--groups", "audio"]
    except KeyError:
        pass
    run(
        [
            "useradd",
            "--system",
            "--no-create-home",
            "--home-dir",
            str(home),
            "--shell",
            "/usr/sbin/nologin",
            *groups,
            name,
        ],
        what="useradd",
    )


def install(args: argparse.Namespace) -> str:
    here = Path(__file__).resolve().parent
    manifest = read_manifest(here)
    check_box(manifest)
    paths = {k: Path(getattr(args, k)).absolute() for k in ("prefix", "etc", "state")}
    prefix, etc, state = paths["prefix"], paths["etc"], paths["state"]
    trusted = etc / "trusted_keys"
    current = prefix / "current"
    previous = current.resolve() if current.is_symlink() else None
    env = dict(os.environ, CASAVOX_TRUSTED_KEYS=str(trusted))
    new_keys = [k for k in sorted((here / "keys").glob("*.pub")) if not (trusted / k.name).exists()]
    if previous is not None and (previous / "venv" / "bin" / "casavox").exists():
        check_env = dict(env)
        if args.trust_new_key:
            check_env["CASAVOX_TRUSTED_KEYS"] = os.pathsep.join([str(trusted), str(here / "keys")])
        run(
            [str(previous / "venv" / "bin" / "casavox"), "verify-pack", str(here)],
            check_env,
            what=f"refused: the installed casavox ({previous.name}) checked this pack's signature and it",
        )
    elif new_keys:
        print(
            f"casavox-install: first install: trusting the packed key {new_keys[0].stem} (compare with `casavox pack`'s output)"
        )
    if previous is not None and new_keys and not args.trust_new_key:
        raise InstallError(
            f"the pack is signed by key {new_keys[0].stem}, which this box does not trust (--trust-new-key)"
        )

    stamp = time.strftime("%Y%m%dT%H%M%S")
    digest = hashlib.sha256((here / MANIFEST).read_bytes()).hexdigest()[:10]
    release = prefix / "releases" / f"{manifest['version']}-{manifest['target']}-{digest}-{stamp}"
    added_keys: list[Path] = []
    try:
        release.mkdir(parents=True)
        venv = [sys.executable, "-m", "venv", "--without-pip"]
        if manifest.get("system_site_packages"):
            venv.append("--system-site-packages")
        run([*venv, str(release / "venv")], what="python -m venv")
        pip = next((here / "wheels").glob("pip-*.whl"), None)
        if pip is None:
            raise InstallError("the pack has no pip wheel")
        # No index, no resolver, no cache, no config: exactly the packed wheels.
        pip_env = dict(os.environ, PIP_CONFIG_FILE=os.devnull, PIP_NO_INDEX="1", PIP_FIND_LINKS="")
        run(
            [
                str(release / "venv" / "bin" / "python"),
                f"{pip}/pip",
                "install",
                "--quiet",
                "--no-index",
                "--no-deps",
                "--no-cache-dir",
                "--disable-pip-version-check",
                *[str(here / w) for w in manifest["wheels"]],
            ],
            pip_env,
            what="pip install (from the packed wheels)",
        )
        shutil.copytree(here / "bundle", release / "bundle")
        read_only(release / "bundle")
        trusted.mkdir(parents=True, exist_ok=True)
        for key in new_keys:
            shutil.copy2(key, trusted / key.name)
            added_keys.append(trusted / key.name)
        if not args.no_selftest:
            out = subprocess.run(
                [
                    str(release / "venv" / "bin" / "casavox"),
                    "selftest",
                    "--bundle",
                    str(release / "bundle"),
                    "--clip",
                    str(here / "selftest" / "command.wav"),
                    "--expect",
                    str(here / "selftest" / "expect.json"),
                    "--device",
                    args.device or manifest["device"],
                    "--json",
                ],
                capture_output=True,
                text=True,
                env=env,
            )
            try:
                report = json.loads(out.stdout)
            except ValueError:
                last = (out.stderr.strip() or "(no output)").splitlines()[-1]
                raise InstallError(f"self-test could not run: {last}") from None
            if not report["ok"]:
                failed = next(c for c in report["checks"] if not c["ok"])
                raise InstallError(f"self-test failed at {failed['check']}: {failed['detail']}")
        config = etc / "casavox.toml"
        packed = render((here / "casavox.toml").read_text(), paths)
        etc.mkdir(parents=True, exist_ok=True)
        (etc / ("casavox.toml.packed" if config.exists() else "casavox.toml")).write_text(packed)
        state.mkdir(parents=True, exist_ok=True)
        if os.geteuid() == 0 and not args.no_user:
            ensure_user(args.user, state)
            shutil.chown(state, args.user)
        link = prefix / ".current.new"
        if link.is_symlink() or link.exists():
            link.unlink()
        link.symlink_to(release.relative_to(prefix))
        os.replace(link, current)  # the switch: one rename, never a moment without `current`
    except BaseException:
        for key in added_keys:
            key.unlink(missing_ok=True)
        remove_release(release)
        raise
    if not args.no_systemd:
        unit_dir = Path(args.systemd_dir)
        unit_dir.mkdir(parents=True, exist_ok=True)
        (unit_dir / "casavox.service").write_text(render((here / "casavox.service").read_text(), paths))
        if systemd_running():
            subprocess.run(["systemctl", "daemon-reload"], check=False)
            subprocess.run(["systemctl", "try-restart", "casavox"], check=False)
    kept = {release.name, previous.name if previous else ""}
    for old in sorted((prefix / "releases").iterdir()):
        if old.name not in kept:
            remove_release(old)
    summary = (
        f"installed casavox {manifest['version']} ({manifest['target']}) as {release.name} in {prefix}; "
        f"{size_of(release) / 1e6:.0f} MB installed; "
        + (f"previous release {previous.name} kept; " if previous else "")
        + ("self-test skipped" if args.no_selftest else f"self-test ok ({', '.join(report['providers'])})")
    )
    return summary


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(
        prog="install.sh", description="install casavox from this unpacked pack, offline"
    )
    p.add_argument(
        "--prefix", default=DEFAULTS["prefix"], help="releases and `current` (default /opt/casavox)"
    )
    p.add_argument("--etc", default=DEFAULTS["etc"], help="config and trusted keys (default /etc/casavox)")
    p.add_argument("--state", default=DEFAULTS["state"], help="state folder, kept across upgrades")
    p.add_argument("--systemd-dir", default="/etc/systemd/system")
    p.add_argument("--user", default="casavox", help="the service's user (created when missing, as root)")
    p.add_argument("--no-user", action="store_true", help="do not create the user")
    p.add_argument("--no-systemd", action="store_true", help="do not install the unit")
    p.add_argument("--device", help="the self-test's device (default: the pack's, e.g. cpu or cuda)")
    p.add_argument(
        "--no-selftest",
        action="store_true",
        help="staging an image on a machine without the target's hardware",
    )
    p.add_argument(
        "--trust-new-key",
        action="store_true",
        help="accept a pack signed by a key the box does not trust yet",
    )
    args = p.parse_args(argv)
    try:
        print(install(args))
    except InstallError as exc:
        print(f"casavox-install: error: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
