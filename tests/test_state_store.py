"""The state store under the faults an unlucky box meets: many threads at once, a full disk, the
file deleted or replaced while running, and who may read it. Real SQLite files throughout; the full
disk is a real full filesystem (a tiny tmpfs, when this machine lets the test mount one) and
SQLite's own page limit, which takes the same SQLITE_FULL path."""

from __future__ import annotations

import logging
import os
import shutil
import stat
import subprocess
import threading
from pathlib import Path

import numpy as np
import pytest
import yaml

from casavox.edge_app.actions import ServiceCall
from casavox.edge_app.assistant import Assistant
from casavox.edge_app.backends import DeliveryError
from casavox.edge_app.backends.sim import SimBackend
from casavox.edge_app.config import Config, SafetySettings
from casavox.edge_app.state_store import StateError, StateStore
from casavox.edge_app.timers import Timers
from casavox.runtime.home import home_from_dict
from casavox.runtime.intents.engine import IntentEngine

HOME = yaml.safe_load(
    """
areas:
  - {name: Kitchen, id: kitchen}
entities:
  - {name: Kitchen Light, id: light.kitchen_light, area: kitchen, state: "off"}
"""
)


@pytest.fixture
def home():
    return home_from_dict(HOME)


def add(item: str) -> ServiceCall:
    return ServiceCall("shopping_list", "add_item", (), {"name": item})


def items(store: StateStore) -> list[str]:
    return [name for name, _ in store.items("shopping_list")]


# ---- many threads, one store ----------------------------------------------------------------
def test_threads_sharing_one_store_never_interleave(home, tmp_path: Path) -> None:
    """8 threads x 40 writes and reads through one store (the Wyoming server's executor, the
    daemon's worker and the timer poll all share one): every write lands exactly once and none
    fails. Without the store's lock this gave "cannot start a transaction within a transaction"."""
    store = StateStore.open(tmp_path / "s.sqlite")
    backend = SimBackend.open(home, store)
    timers = Timers(store)
    errors: list[str] = []
    barrier = threading.Barrier(8)

    def work(t: int) -> None:
        barrier.wait()
        for i in range(40):
            try:
                backend.call(add(f"t{t} i{i}"))
                timer = timers.start(60, name=f"t{t} i{i}")
                timers.cancel([timer])
                store.entities()
            except Exception as exc:  # noqa: BLE001 - every failure is the finding
                errors.append(f"{type(exc).__name__}: {exc}")

    threads = [threading.Thread(target=work, args=(t,)) for t in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    assert errors == []
    assert sorted(items(store)) == sorted(f"t{t} i{i}" for t in range(8) for i in range(40))
    assert store.read("SELECT count(*) FROM history")[0][0] == 320
    assert timers.all() == []
    store.close()


# ---- a full disk ----------------------------------------------------------------------------
def _fill(folder: Path) -> Path:
    """Write a file until the filesystem is full; removing it frees the space again."""
    filler = folder / "filler"
    fd = os.open(filler, os.O_WRONLY | os.O_CREAT, 0o600)
    try:
        while True:
            os.write(fd, b"\0" * 4096)
    except OSError:
        pass
    finally:
        os.close(fd)
    return filler


@pytest.fixture
def tiny_fs(tmp_path: Path):
    """A 256-KiB tmpfs: a real filesystem that fills up. Skipped where mounting is not allowed."""
    mount = shutil.which("mount")
    folder = tmp_path / "tiny"
    folder.mkdir()
    if os.geteuid() != 0 or mount is None:
        pytest.skip("mounting a tmpfs needs root")
    done = subprocess.run(
        [mount, "-t", "tmpfs", "-o", "size=256k", "tmpfs", str(folder)], capture_output=True
    )
    if done.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {done.stderr.decode().strip()}")
    try:
        yield folder
    finally:
        subprocess.run(["umount", "--lazy", str(folder)], check=False)  # also if a store was left open


def test_a_full_filesystem_is_one_line_nothing_changes_and_the_store_keeps_serving(home, tiny_fs) -> None:
    """The COMMIT fails and SQLite rolls back by itself; the store's own ROLLBACK then raised
    "cannot rollback - no transaction is active" from inside its except, killing the daemon."""
    store = StateStore.open(tiny_fs / "s.sqlite")
    backend = SimBackend.open(home, store)
    backend.call(add("before"))
    filler = _fill(tiny_fs)
    for attempt in range(3):  # again and again: the store must not be left in a transaction
        with pytest.raises(DeliveryError, match="disk full, nothing changed"):
            backend.call(add(f"big {attempt} " + "x" * 20_000))
    assert items(store) == ["before"]
    filler.unlink()
    backend.call(add("after"))
    assert items(store) == ["before", "after"]
    store.close()


def test_a_full_disk_is_reported_by_the_turn(home, ha_intents, tiny_fs) -> None:
    store = StateStore.open(tiny_fs / "s.sqlite")
    engine = IntentEngine.build(home, None, ha_intents)
    assistant = Assistant(
        home=home, understand=engine.parse, backend=SimBackend.open(home, store), timers=Timers(store),
        safety=SafetySettings(),
    )  # fmt: skip
    filler = _fill(tiny_fs)
    try:
        turn = assistant.handle("add milk to my shopping list")
        assert not turn.delivered and "disk full, nothing changed" in turn.reply
        assert items(store) == []
    finally:
        filler.unlink()
    assert assistant.handle("add milk to my shopping list").reply == "Added milk"
    assert items(store) == ["milk"]
    store.close()


def test_a_full_database_is_one_line_and_nothing_changes(home, tmp_path: Path) -> None:
    """SQLite's own size cap (``max_page_count``) raises the same SQLITE_FULL as a full disk."""
    store = StateStore.open(tmp_path / "s.sqlite")
    backend = SimBackend.open(home, store)
    backend.call(add("before"))
    pages = store.read("PRAGMA page_count")[0][0]
    store.read(f"PRAGMA max_page_count = {pages}")
    with pytest.raises(DeliveryError, match="disk full, nothing changed"):
        backend.call(add("x" * 100_000))
    assert items(store) == ["before"]
    store.read("PRAGMA max_page_count = 1000000")
    backend.call(add("after"))
    assert items(store) == ["before", "after"]
    store.close()


def test_a_failed_log_write_is_a_warning_and_the_daemon_carries_on(
    home, ha_intents, tmp_path, caplog
) -> None:
    """/dev/full: every write fails with ENOSPC, as the JSON log's does on a full disk."""
    from casavox.edge_app.daemon import Daemon
    from casavox.edge_app.endpointing import Event
    from casavox.edge_app.pipeline import Understanding

    if not Path("/dev/full").exists():
        pytest.skip("no /dev/full")
    store = StateStore.open(tmp_path / "s.sqlite")
    engine = IntentEngine.build(home, None, ha_intents)
    assistant = Assistant(
        home=home, understand=engine.parse, backend=SimBackend.open(home, store), timers=Timers(store),
        safety=SafetySettings(),
    )  # fmt: skip
    with open("/dev/full", "a", buffering=1) as full:
        daemon = Daemon(config=Config(), pipeline=None, assistant=assistant, vad=None, log=full)
        for text, state in (("turn on the kitchen light", "on"), ("turn off the kitchen light", "off")):
            heard = Understanding(text, text, engine.parse(text, None))
            event = Event("end", np.zeros(1600, np.float32), "silence")
            with caplog.at_level(logging.WARNING):
                record = daemon.finish(event, heard, "", {}, None)
            assert record["outcome"] == "acted" and store.entity("light.kitchen_light")[0] == state
            assert "could not write the JSON log" in caplog.text
            caplog.clear()
        try:
            full.close()
        except OSError:
            pass  # the unflushed line cannot be written either
    store.close()


# ---- the file removed or replaced -------------------------------------------------------------
@pytest.mark.parametrize("how", ["deleted", "directory", "other file"])
def test_a_state_file_removed_or_replaced_while_running_is_reported(home, tmp_path: Path, how: str) -> None:
    """Every later command was reported done, into an unlinked inode, and lost at exit."""
    path = tmp_path / "s.sqlite"
    store = StateStore.open(path)
    backend = SimBackend.open(home, store)
    backend.call(add("before"))
    for suffix in ("", "-wal", "-shm"):
        Path(f"{path}{suffix}").unlink(missing_ok=True)
    if how == "directory":
        path.mkdir()
    elif how == "other file":
        other = StateStore.open(tmp_path / "other.sqlite")
        other.close()
        (tmp_path / "other.sqlite").rename(path)
    with pytest.raises(DeliveryError, match="was removed or replaced"):
        backend.call(add("lost"))
    with pytest.raises(StateError, match="was removed or replaced"):
        store.entities()
    store.close()


def test_a_replaced_file_is_reported_by_the_turn(home, ha_intents, tmp_path: Path) -> None:
    path = tmp_path / "s.sqlite"
    store = StateStore.open(path)
    engine = IntentEngine.build(home, None, ha_intents)
    assistant = Assistant(
        home=home, understand=engine.parse, backend=SimBackend.open(home, store), timers=Timers(store),
        safety=SafetySettings(),
    )  # fmt: skip
    path.unlink()
    turn = assistant.handle("turn on the kitchen light")
    assert not turn.delivered and "was removed or replaced" in turn.reply
    store.close()


# ---- who may read it ----------------------------------------------------------------------
def test_state_files_and_folders_the_store_creates_are_private(home, tmp_path: Path) -> None:
    """They hold every list, timer and the history: 0600 files (with -wal, -shm) and 0700 folders."""
    path = tmp_path / "state" / "casavox" / "home.sqlite"
    before = stat.S_IMODE(tmp_path.stat().st_mode)
    store = StateStore.open(path)
    SimBackend.open(home, store).call(add("milk"))
    for suffix in ("", "-wal", "-shm"):
        assert stat.S_IMODE(Path(f"{path}{suffix}").stat().st_mode) == 0o600, suffix
    assert stat.S_IMODE((tmp_path / "state").stat().st_mode) == 0o700
    assert stat.S_IMODE(path.parent.stat().st_mode) == 0o700
    assert stat.S_IMODE(tmp_path.stat().st_mode) == before  # a folder it did not create is left alone
    store.close()


def test_the_utterance_log_is_created_private(tmp_path) -> None:
    """The JSON log holds every transcript: created 0600 like the state file."""
    from casavox.edge_app.app import open_log
    from casavox.edge_app.config import load_config

    log = open_log(load_config(None, {"log": {"json": str(tmp_path / "logs" / "utterances.jsonl")}}))
    log.write("{}\n")
    log.close()
    assert ((tmp_path / "logs" / "utterances.jsonl").stat().st_mode & 0o777) == 0o600
