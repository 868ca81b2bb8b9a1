"""Prometheus metrics for the daemon, on its own registry (no process-global state), localhost only."""

from __future__ import annotations

import errno
from dataclasses import dataclass, field

from prometheus_client import CollectorRegistry, Counter, Histogram, start_http_server

from casavox.errors import CasavoxError

BUCKETS = (0.01, 0.025, 0.05, 0.1, 0.15, 0.2, 0.3, 0.4, 0.5, 0.75, 1.0, 1.5, 2.5, 5.0)


class MetricsError(CasavoxError, OSError):
    """The metrics endpoint cannot listen (the port is in use, or needs privileges)."""


@dataclass
class Metrics:
    registry: CollectorRegistry = field(default_factory=CollectorRegistry)
    _server: object | None = field(default=None, init=False, repr=False)

    def __post_init__(self) -> None:
        self.utterances = Counter(
            "casavox_utterances", "Utterances by outcome", ["outcome"], registry=self.registry
        )
        self.stage = Histogram(
            "casavox_stage_seconds", "Per-stage latency", ["stage"], buckets=BUCKETS, registry=self.registry
        )

    def observe(self, record: dict) -> None:
        self.utterances.labels(record.get("outcome", "unknown")).inc()
        for key, ms in record.get("timings_ms", {}).items():
            if key in ("asr_ms", "intent_ms", "action_ms", "vad_tail_ms", "eos_to_action_ms", "wait_ms"):
                self.stage.labels(key[:-3]).observe(ms / 1e3)

    def serve(self, port: int) -> None:
        """Listen on 127.0.0.1:``port``; a port in use is a one-line :class:`MetricsError` (called at
        start, before the models load, so the user hears of it in a second, not after a minute)."""
        try:
            self._server, _ = start_http_server(port, addr="127.0.0.1", registry=self.registry)
        except OSError as exc:
            why = "in use" if exc.errno == errno.EADDRINUSE else (exc.strerror or str(exc))
            raise MetricsError(
                f"metrics port {port} on 127.0.0.1: {why} (log.metrics_port / --metrics)"
            ) from None

    def close(self) -> None:
        """Stop listening (a start that fails after :meth:`serve` must not leave the port taken)."""
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None
