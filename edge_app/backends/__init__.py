"""Where actions go: the simulated home (``sim``), an MQTT broker (``mqtt``), Home Assistant (``hass``).

Every backend takes :class:`edge_app.actions.ServiceCall` objects and answers state queries;
the daemon never knows which one it talks to.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Protocol

from casavox.edge_app.actions import ServiceCall
from casavox.errors import CasavoxError


class DeliveryError(CasavoxError, RuntimeError):
    """A command that did not reach the device; reported to the user, never retried later.

    ``unknown`` is True when the command may have reached the device after all (it was sent, but
    its acknowledgement never came): the user is told the outcome is unknown, not that it failed.
    """

    def __init__(self, message: str, *, unknown: bool = False) -> None:
        super().__init__(message)
        self.unknown = unknown


@dataclass(frozen=True)
class EntityState:
    state: str
    attributes: dict[str, Any] = field(default_factory=dict)


class Backend(Protocol):
    name: str

    def call(self, call: ServiceCall) -> None:
        """Deliver one service call or raise :class:`DeliveryError`."""

    def state(self, entity_id: str) -> EntityState | None:
        """Last known state of an entity (None = unknown)."""

    def close(self) -> None: ...
