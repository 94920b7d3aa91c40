"""The Protocols the business logic needs from the world, and nothing more.

Reconcilers depend on these narrow shapes, not on the adapters: the composition root hands in
the Nomad/Consul/Vault adapters in production and the same adapters against the twins in tests,
so the logic is exercised through real wire calls without knowing where they go.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Protocol

from controller.consul.client import ServiceHealth
from controller.tlsprobe import ProbeResult, ProbeTarget
from crds_equivalent.status import MeshStatus
from reconcilers.trust import MeshTrust


class JobStore(Protocol):
    """Jobs, their allocations and deployments (raw Nomad JSON)."""

    async def get_job(self, job_id: str, namespace: str) -> dict[str, Any] | None: ...

    async def register_job(
        self, job: dict[str, Any], *, enforce_index: int | None
    ) -> dict[str, Any]: ...

    async def job_allocations(self, job_id: str, namespace: str) -> list[dict[str, Any]]: ...

    async def latest_deployment(self, job_id: str, namespace: str) -> dict[str, Any] | None: ...


class StatusStore(Protocol):
    """Per-job status records, written with CAS and only on change."""

    async def get(self, namespace: str, job: str) -> MeshStatus | None: ...

    async def write(self, namespace: str, job: str, status: MeshStatus) -> bool: ...

    async def delete(self, namespace: str, job: str) -> bool: ...


class Catalog(Protocol):
    """Consul's view of a service: every instance with its checks (ConsulUnavailable when
    Consul does not answer — never an empty answer)."""

    async def health_service(self, name: str) -> ServiceHealth: ...


class TlsProbe(Protocol):
    """Handshakes with instances, verifying against the given root CA PEM; never raises for an
    instance's failure (it is in the result)."""

    async def probe_many(
        self, targets: Sequence[ProbeTarget], anchors_pem: str
    ) -> list[ProbeResult]: ...


class TrustSource(Protocol):
    """The mesh root and the issuers whose leaves count (TrustUnavailable when unknown)."""

    async def get(self) -> MeshTrust: ...
