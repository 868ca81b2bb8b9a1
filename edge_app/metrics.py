"""Prometheus metrics for the daemon, on its own registry (no process-global state), localhost only."""

from __future__ import annotations

from dataclasses import dataclass, field

from prometheus_client import CollectorRegistry, Counter, Histogram, start_http_server

BUCKETS = (0.01, 0.025, 0.05, 0.1, 0.15, 0.2, 0.3, 0.4, 0.5, 0.75, 1.0, 1.5, 2.5, 5.0)


@dataclass
class Metrics:
    registry: CollectorRegistry = field(default_factory=CollectorRegistry)

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
        start_http_server(port, addr="127.0.0.1", registry=self.registry)
