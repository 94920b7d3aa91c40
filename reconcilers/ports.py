"""The Protocols the business logic needs from the world, and nothing more.

Reconcilers depend on these narrow shapes, not on the adapters: the composition root hands in
the Nomad/Consul/Vault adapters in production and the same adapters against the twins in tests,
so the logic is exercised through real wire calls without knowing where they go.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any, Protocol

from controller.consul.wire import ServiceHealth
from controller.nomad.jobs import JobList
from controller.nomad.services import NativeServiceHealth
from controller.nomad.variables import Variable
from controller.tlsprobe import ProbeResult, ProbeTarget
from controller.vault import IssuerInfo
from controller.vault.trust import MeshTrust
from crds_equivalent.status import MeshStatus


class JobStore(Protocol):
    """Jobs, their allocations and deployments (raw Nomad JSON)."""

    async def get_job(self, job_id: str, namespace: str) -> dict[str, Any] | None: ...

    async def register_job(
        self, job: dict[str, Any], *, enforce_index: int | None
    ) -> dict[str, Any]: ...

    async def job_allocations(self, job_id: str, namespace: str) -> list[dict[str, Any]]: ...

    async def child_allocations(self, parent_id: str, namespace: str) -> list[dict[str, Any]]:
        """The allocations of a periodic or parameterized parent's live children."""
        ...

    async def latest_deployment(self, job_id: str, namespace: str) -> dict[str, Any] | None: ...

    async def job_deployments(self, job_id: str, namespace: str) -> list[dict[str, Any]]: ...

    async def promote_deployment(self, deployment_id: str, namespace: str) -> dict[str, Any]: ...


class StatusStore(Protocol):
    """Per-job status records: cached, written with CAS, only on change, coalesced.

    ``update`` is the one way a reconciler writes: ``fn`` derives the new record from the record
    as this process knows it (None: store nothing). A change is written at once, or — when the
    record was written less than a coalescing window ago — at the end of the window together
    with every other change made meanwhile. On a lost CAS the record is re-read and every
    pending ``fn`` is called again on what the other writer stored, so each reconciler changes
    only the fields it owns (``crds_equivalent.status``); ``fn`` must be pure.

    ``update`` returns the record as it will be stored: the caller's change and every change
    still pending, without the ``updated_at`` stamp of a write not made yet (None: there is no
    record and ``fn`` made none). It may raise when a write made during the call failed (a
    StatusConflict after repeated lost races, or Nomad's error): the change stays pending and
    the caller's queue backs off. ``get`` and ``peek`` answer the same: the record as it will
    be stored, from the cache when this process has a current copy.
    """

    async def get(self, namespace: str, job: str) -> MeshStatus | None: ...

    async def peek(self, namespace: str, job: str) -> MeshStatus | None: ...

    async def update(
        self, namespace: str, job: str, fn: Callable[[MeshStatus | None], MeshStatus | None]
    ) -> MeshStatus | None: ...

    async def delete(self, namespace: str, job: str) -> bool: ...


class Catalog(Protocol):
    """Consul's view of a service: every instance with its checks (ConsulUnavailable when
    Consul does not answer — never an empty answer; ``filtered`` when ACLs hid instances from
    the token, so an absent instance is not an unregistered one)."""

    async def health_service(self, name: str) -> ServiceHealth: ...


class NativeCatalog(Protocol):
    """Nomad's own catalog (``provider = "nomad"``): every registration of a service in one
    namespace with the results of its native checks (a ``NomadError`` when Nomad does not
    answer or refuses — never an empty answer)."""

    async def service_health(self, name: str, namespace: str) -> NativeServiceHealth: ...


class TlsProbe(Protocol):
    """Handshakes with instances, verifying against the given root CA PEM; never raises for an
    instance's failure (it is in the result)."""

    async def probe_many(
        self, targets: Sequence[ProbeTarget], anchors_pem: str
    ) -> list[ProbeResult]: ...


class TrustSource(Protocol):
    """The mesh root and the issuers whose leaves count (TrustUnavailable when unknown)."""

    async def get(self) -> MeshTrust: ...


class JobLister(Protocol):
    """Every job stub (all pages) of a namespace, or of all of them with ``*``."""

    async def list_jobs(
        self, namespace: str = "*", *, meta: bool = True, prefix: str | None = None
    ) -> JobList: ...


class TaskControl(Protocol):
    """Operations on a running allocation's task through the Nomad client API."""

    async def restart_task(self, alloc_id: str, task: str, namespace: str) -> None: ...


class VariableStore(Protocol):
    """One Variable read and written with CAS (Conflict when the index moved)."""

    async def get(self, path: str) -> Variable | None: ...

    async def put(
        self, path: str, items: Mapping[str, str], *, cas: int | None = None
    ) -> Variable: ...


class PkiAdmin(Protocol):
    """The intermediate mount's issuers: what a rotation reads and the few writes it makes."""

    async def default_issuer(self) -> IssuerInfo: ...

    async def issuers(self) -> list[IssuerInfo]: ...

    async def root(self) -> str:
        """The root CA certificate (PEM): the anchor clients pin."""
        ...

    async def create_issuer(self, name: str, ttl_seconds: int) -> str: ...

    async def make_default(self, issuer_id: str) -> None: ...

    async def retire(self, issuer_id: str) -> None: ...


class CertGrants(Protocol):
    """Which leaf names a meshed job's own tokens may obtain (its per-job PKI role).

    ``grant`` makes the role allow exactly ``names``; ``withdraw`` removes it, so the job's
    tokens can issue nothing. Both are idempotent and raise the Vault adapter's errors."""

    async def grant(self, role: str, names: Sequence[str]) -> None: ...

    async def withdraw(self, role: str) -> None: ...
