"""The Protocols the business logic needs from the world, and nothing more.

Reconcilers depend on these narrow shapes, not on the adapters: the composition root hands in
the Nomad/Consul/Vault adapters in production and the same adapters against the twins in tests,
so the logic is exercised through real wire calls without knowing where they go.
"""

from __future__ import annotations

from typing import Any, Protocol

from crds_equivalent.status import MeshStatus


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
