"""Voice timers, kept by the box itself (as Home Assistant keeps them per satellite), in SQLite.

A timer is a row: its length, when it ends (or, when paused, how much is left). ``due()`` hands the
daemon the timers that ran out, once each.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

from casavox.edge_app.state_store import StateStore


@dataclass(frozen=True)
class Timer:
    id: int
    name: str | None
    seconds: float
    remaining: float
    paused: bool


def duration(slots: dict, prefix: str = "") -> float:
    """Seconds from the hours/minutes/seconds slots (``start_`` prefixed ones name a timer)."""
    return sum(
        float(slots.get(prefix + unit, 0) or 0) * k
        for unit, k in (("hours", 3600), ("minutes", 60), ("seconds", 1))
    )


def spoken(seconds: float) -> str:
    seconds = int(round(seconds))
    parts = []
    for unit, k in (("hour", 3600), ("minute", 60), ("second", 1)):
        n, seconds = divmod(seconds, k)
        if n:
            parts.append(f"{n} {unit}{'s' if n != 1 else ''}")
    return " and ".join(parts) or "0 seconds"


@dataclass
class Timers:
    store: StateStore
    clock: callable = time.time

    def all(self) -> list[Timer]:
        now = self.clock()
        rows = self.store.read("SELECT id, name, seconds, ends_at, remaining FROM timers ORDER BY id")
        return [
            Timer(r[0], r[1], r[2], r[4] if r[3] is None else max(0.0, r[3] - now), r[3] is None)
            for r in rows
        ]

    def start(self, seconds: float, name: str | None = None, command: str | None = None) -> Timer:
        with self.store.transaction() as conn:
            cur = conn.execute(
                "INSERT INTO timers (name, seconds, ends_at, remaining, started, command) VALUES (?, ?, ?, NULL, ?, ?)",
                (name, seconds, self.clock() + seconds, self.clock(), command),
            )
        return Timer(cur.lastrowid, name, seconds, seconds, False)

    def find(self, slots: dict) -> list[Timer]:
        """Timers a command means: by name, by starting length, else the newest one."""
        timers = self.all()
        if slots.get("name"):
            return [t for t in timers if (t.name or "").casefold() == str(slots["name"]).casefold()]
        start = duration(slots, "start_")
        if start:
            return [t for t in timers if abs(t.seconds - start) < 1]
        return timers[-1:]

    def cancel(self, timers: list[Timer]) -> None:
        with self.store.transaction() as conn:
            conn.executemany("DELETE FROM timers WHERE id = ?", [(t.id,) for t in timers])

    def pause(self, timers: list[Timer], paused: bool) -> None:
        now = self.clock()
        with self.store.transaction() as conn:
            for t in timers:
                if paused and not t.paused:
                    conn.execute(
                        "UPDATE timers SET ends_at = NULL, remaining = ? WHERE id = ?", (t.remaining, t.id)
                    )
                elif not paused and t.paused:
                    conn.execute(
                        "UPDATE timers SET ends_at = ?, remaining = NULL WHERE id = ?",
                        (now + t.remaining, t.id),
                    )

    def adjust(self, timers: list[Timer], delta: float) -> None:
        with self.store.transaction() as conn:
            for t in timers:
                column = "remaining" if t.paused else "ends_at"
                conn.execute(f"UPDATE timers SET {column} = max({column} + ?, 0) WHERE id = ?", (delta, t.id))

    def due(self) -> list[Timer]:
        """Timers that have run out; removed as they are returned."""
        done = [t for t in self.all() if not t.paused and t.remaining <= 0]
        if done:
            self.cancel(done)
        return done
