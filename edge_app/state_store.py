"""The box's own state in one SQLite file: the simulated home's entities, lists, timers, history.

SQLite because it survives power cuts (every change is one transaction: applied entirely or not at
all) and because ``casavox state`` can read it while the daemon writes (WAL mode). A locked,
read-only, full, removed or replaced file is a :class:`StateError` with the reason; nothing
half-applied is left behind. The file and any folder the store creates are private (0600/0700):
they hold every list, timer and the history of what was done.
"""

from __future__ import annotations

import json
import logging
import os
import sqlite3
import stat
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

from casavox.errors import CasavoxError

_log = logging.getLogger(__name__)

SCHEMA = """
CREATE TABLE IF NOT EXISTS entities (
    entity_id TEXT PRIMARY KEY, state TEXT NOT NULL, attributes TEXT NOT NULL, last_changed REAL);
CREATE TABLE IF NOT EXISTS list_items (
    list TEXT NOT NULL, item TEXT NOT NULL, complete INTEGER NOT NULL DEFAULT 0, added REAL);
CREATE TABLE IF NOT EXISTS timers (
    id INTEGER PRIMARY KEY AUTOINCREMENT, name TEXT, area TEXT, seconds REAL NOT NULL,
    ends_at REAL, remaining REAL, started REAL NOT NULL, command TEXT);
CREATE TABLE IF NOT EXISTS history (
    ts REAL NOT NULL, domain TEXT, service TEXT, entity_ids TEXT, data TEXT);
"""

FILE_MODE = 0o600  # the state file (SQLite gives its -wal and -shm files the same mode)
DIR_MODE = 0o700  # folders the store creates for it


class StateError(CasavoxError, RuntimeError):
    """The state file cannot be read or written (locked, read-only, corrupt)."""


def _explain(path: Path, exc: sqlite3.Error) -> StateError:
    text = str(exc)
    name = getattr(exc, "sqlite_errorname", "")
    if name.startswith("SQLITE_FULL") or "disk is full" in text:
        return StateError(f"{path}: disk full, nothing changed")
    if "locked" in text or "busy" in text:
        return StateError(f"{path}: home state is locked by another process (nothing changed)")
    if "readonly" in text or "read-only" in text:
        return StateError(f"{path}: home state file is read-only (nothing changed)")
    return StateError(f"{path}: home state unusable ({text})")


def _replaced(path: Path) -> StateError:
    return StateError(
        f"the state file {path} was removed or replaced while casavox ran (nothing changed); restart casavox"
    )


def _create_private(path: Path) -> None:
    """Create the missing folders (0700) and an empty state file (0600) before SQLite opens it.

    SQLite would create the file with the umask's mode (usually world-readable); an empty file is a
    valid empty database, and SQLite gives the -wal and -shm files the mode of the database file.
    """
    for folder in reversed([*path.parents]):
        if not folder.exists():
            try:
                folder.mkdir(mode=DIR_MODE)
            except FileExistsError:
                pass
    try:
        os.close(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, FILE_MODE))
    except FileExistsError:
        pass


def _identity(path: Path) -> tuple[int, int]:
    """(device, inode) of the regular file at ``path``; a StateError if there is none."""
    try:
        st = os.stat(path)
    except FileNotFoundError:
        raise _replaced(path) from None
    except OSError as exc:
        raise StateError(f"{path}: {exc.strerror or exc}") from None
    if not stat.S_ISREG(st.st_mode):
        raise _replaced(path)
    return st.st_dev, st.st_ino


def _connect(path: Path, lock_timeout_s: float, read_only: bool) -> sqlite3.Connection:
    if read_only:
        uri = f"file:{path.resolve()}?mode=ro"
        conn = sqlite3.connect(
            uri, uri=True, timeout=lock_timeout_s, check_same_thread=False, isolation_level=None
        )
        conn.execute("SELECT count(*) FROM sqlite_master").fetchone()  # fails now if not a database
        return conn
    _create_private(path)
    conn = sqlite3.connect(path, timeout=lock_timeout_s, check_same_thread=False, isolation_level=None)
    try:
        conn.execute("PRAGMA journal_mode=WAL")
    except sqlite3.OperationalError:
        pass  # read-only file: stays in its journal mode, reads still work
    try:
        conn.executescript(SCHEMA)
    except sqlite3.OperationalError as exc:
        if "readonly" not in str(exc):
            raise
    return conn


@dataclass
class StateStore:
    """One SQLite connection, shared by every thread of the process under one lock.

    Each transaction and each read holds ``lock`` from start to end, so the Wyoming server's
    executor threads, the daemon's worker and the timer poll never interleave statements on the
    connection (which gave "cannot start a transaction within a transaction" and one client's
    COMMIT committing another's half-done change). A lock rather than a connection per thread:
    the process's own writers then wait for each other in order instead of racing for SQLite's
    file lock, where a busy timeout would be misreported as "locked by another process"; and
    every operation is a few milliseconds, so serializing them costs nothing a user can hear.

    Each operation first checks that ``path`` is still the file that was opened (same device and
    inode): a state file deleted or replaced while running would otherwise take every later
    change into an unlinked inode, reported as done and lost at exit.
    """

    path: Path
    conn: sqlite3.Connection
    identity: tuple[int, int] | None = None  # (st_dev, st_ino) of the file opened
    lock: threading.RLock = field(default_factory=threading.RLock, repr=False, compare=False)

    @classmethod
    def open(cls, path: str | Path, lock_timeout_s: float = 2.0, read_only: bool = False) -> StateStore:
        path = Path(path)
        try:
            conn = _connect(path, lock_timeout_s, read_only)
        except sqlite3.Error as exc:
            raise _explain(path, exc) from None
        except OSError as exc:
            raise StateError(f"{path}: {exc.strerror or exc}") from None
        try:
            identity = _identity(path.absolute())
        except StateError:
            conn.close()
            raise
        return cls(path, conn, identity)

    def _check_file(self) -> None:
        """Raise if the file at ``path`` is no longer the one this connection has open."""
        if self.identity is not None and _identity(self.path.absolute()) != self.identity:
            raise _replaced(self.path)

    def _rollback(self) -> None:
        """Roll back what is still open; SQLite may already have (a failed COMMIT on a full disk)."""
        if not self.conn.in_transaction:
            return
        try:
            self.conn.execute("ROLLBACK")
        except sqlite3.Error as exc:
            _log.warning("%s: rollback failed (%s)", self.path, exc)

    @contextmanager
    def transaction(self) -> Iterator[sqlite3.Connection]:
        """All-or-nothing write, alone on the connection; errors become :class:`StateError`."""
        with self.lock:
            self._check_file()
            try:
                self.conn.execute("BEGIN IMMEDIATE")
            except sqlite3.Error as exc:
                raise _explain(self.path, exc) from None
            try:
                yield self.conn
                self.conn.execute("COMMIT")
            except sqlite3.Error as exc:
                self._rollback()
                raise _explain(self.path, exc) from None
            except BaseException:
                self._rollback()
                raise

    def read(self, sql: str, args: tuple = ()) -> list[tuple]:
        with self.lock:
            self._check_file()
            try:
                return self.conn.execute(sql, args).fetchall()
            except sqlite3.Error as exc:
                raise _explain(self.path, exc) from None

    def entity(self, entity_id: str) -> tuple[str, dict] | None:
        rows = self.read("SELECT state, attributes FROM entities WHERE entity_id = ?", (entity_id,))
        return (rows[0][0], json.loads(rows[0][1])) if rows else None

    def entities(self) -> dict[str, tuple[str, dict]]:
        rows = self.read("SELECT entity_id, state, attributes FROM entities ORDER BY entity_id")
        return {r[0]: (r[1], json.loads(r[2])) for r in rows}

    def items(self, list_name: str) -> list[tuple[str, bool]]:
        rows = self.read("SELECT item, complete FROM list_items WHERE list = ? ORDER BY rowid", (list_name,))
        return [(r[0], bool(r[1])) for r in rows]

    def log(self, conn: sqlite3.Connection, domain: str, service: str, entity_ids, data: dict) -> None:
        conn.execute(
            "INSERT INTO history VALUES (?, ?, ?, ?, ?)",
            (time.time(), domain, service, json.dumps(list(entity_ids)), json.dumps(data)),
        )

    def close(self) -> None:
        with self.lock:
            self.conn.close()
