"""Consul's answers as the controller sees them: the errors, and the health and catalog shapes.

Kept apart from the client so the reconcilers' pure verdicts (which judge ``HealthEntry`` and
``ServiceHealth``) and the tests depend on the shapes, not on the HTTP adapter that fetches them.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

_SEVERITY = {"passing": 0, "warning": 1, "critical": 2}


class ConsulError(Exception):
    """Consul answered with an error (4xx): the request is wrong or not allowed."""

    def __init__(self, message: str, *, status: int | None = None) -> None:
        super().__init__(message)
        self.status = status


class ConsulPermissionDenied(ConsulError):
    """403: the token lacks a permission (or is unknown)."""


class ConsulUnavailable(ConsulError):
    """No usable answer: connection refused, timeout, 5xx (e.g. no cluster leader), 429."""


@dataclass(frozen=True, slots=True)
class HealthEntry:
    """One instance of a service on one node, with its checks (node checks included)."""

    node: str
    node_address: str
    service_id: str
    service: str
    address: str
    port: int
    tags: tuple[str, ...]
    checks: tuple[Mapping[str, Any], ...]
    raw: Mapping[str, Any]

    @property
    def status(self) -> str:
        """Worst check status: ``passing`` only when every check (node ones too) passes."""
        worst = max((_SEVERITY.get(str(c.get("Status")), 2) for c in self.checks), default=0)
        return next(name for name, rank in _SEVERITY.items() if rank == worst)

    @property
    def passing(self) -> bool:
        return self.status == "passing"

    @property
    def effective_address(self) -> str:
        """The service address, or the node's when the service did not set one."""
        return self.address or self.node_address

    @classmethod
    def from_wire(cls, entry: Mapping[str, Any]) -> HealthEntry:
        node = entry.get("Node") or {}
        svc = entry.get("Service") or {}
        return cls(
            node=str(node.get("Node") or ""),
            node_address=str(node.get("Address") or ""),
            service_id=str(svc.get("ID") or ""),
            service=str(svc.get("Service") or ""),
            address=str(svc.get("Address") or ""),
            port=int(svc.get("Port") or 0),
            tags=tuple(svc.get("Tags") or ()),
            checks=tuple(entry.get("Checks") or ()),
            raw=entry,
        )


@dataclass(frozen=True, slots=True)
class ServiceHealth:
    """Every instance of a service the token may see, and the ``X-Consul-Index`` of the answer.

    ``filtered``: ACLs hid instances (or may have), so ``entries`` is not every instance and an
    absent one is not evidence of anything; ``filtered_why`` says how we know."""

    entries: tuple[HealthEntry, ...]
    index: int
    filtered: bool = False
    filtered_why: str = ""


@dataclass(frozen=True, slots=True)
class Listing:
    """A catalog listing (``/v1/catalog/services``, ``/v1/catalog/nodes``) as the token sees it."""

    body: Any
    index: int
    filtered: bool
