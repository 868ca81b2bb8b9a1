"""The box's own state in one SQLite file: the simulated home's entities, lists, timers, history.

SQLite because it survives power cuts (every change is one transaction: applied entirely or not at
all) and because ``casavox state`` can read it while the daemon writes (WAL mode). A locked or
read-only file is a :class:`StateError` with the reason; nothing half-applied is left behind.
"""

from __future__ import annotations

import json
import sqlite3
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from casavox.errors import CasavoxError

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


class StateError(CasavoxError, RuntimeError):
    """The state file cannot be read or written (locked, read-only, corrupt)."""


def _explain(path: Path, exc: sqlite3.Error) -> StateError:
    text = str(exc)
    if "locked" in text or "busy" in text:
        return StateError(f"{path}: home state is locked by another process (nothing changed)")
    if "readonly" in text or "read-only" in text:
        return StateError(f"{path}: home state file is read-only (nothing changed)")
    return StateError(f"{path}: home state unusable ({text})")


@dataclass
class StateStore:
    path: Path
    conn: sqlite3.Connection

    @classmethod
    def open(cls, path: str | Path, lock_timeout_s: float = 2.0, read_only: bool = False) -> StateStore:
        path = Path(path)
        try:
            if read_only:
                uri = f"file:{path.resolve()}?mode=ro"
                conn = sqlite3.connect(
                    uri, uri=True, timeout=lock_timeout_s, check_same_thread=False, isolation_level=None
                )
                conn.execute("SELECT count(*) FROM sqlite_master").fetchone()  # fails now if not a database
                return cls(path, conn)
            path.parent.mkdir(parents=True, exist_ok=True)
            conn = sqlite3.connect(
                path, timeout=lock_timeout_s, check_same_thread=False, isolation_level=None
            )
            try:
                conn.execute("PRAGMA journal_mode=WAL")
            except sqlite3.OperationalError:
                pass  # read-only file: stays in its journal mode, reads still work
            try:
                conn.executescript(SCHEMA)
            except sqlite3.OperationalError as exc:
                if "readonly" not in str(exc):
                    raise
        except (sqlite3.Error, OSError) as exc:
            raise (
                _explain(path, exc) if isinstance(exc, sqlite3.Error) else StateError(f"{path}: {exc}")
            ) from None
        return cls(path, conn)

    @contextmanager
    def transaction(self) -> Iterator[sqlite3.Connection]:
        """All-or-nothing write; errors become :class:`StateError`."""
        try:
            self.conn.execute("BEGIN IMMEDIATE")
        except sqlite3.Error as exc:
            raise _explain(self.path, exc) from None
        try:
            yield self.conn
            self.conn.execute("COMMIT")
        except sqlite3.Error as exc:
            self.conn.execute("ROLLBACK")
            raise _explain(self.path, exc) from None
        except BaseException:
            self.conn.execute("ROLLBACK")
            raise

    def read(self, sql: str, args: tuple = ()) -> list[tuple]:
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
        self.conn.close()
