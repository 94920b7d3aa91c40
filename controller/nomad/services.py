"""Nomad's own service catalog (``provider = "nomad"``): registrations and native check results.

Nomad keeps native services in its state store and runs their checks on the client, so "is the
TLS registration there and passing" is two reads where Consul answers it in one:

* ``GET /v1/service/:name`` (``command/agent/service_registration_endpoint.go``,
  ``serviceGetRequest``): every ``ServiceRegistration`` of the name in one namespace (``[]``
  when none; the read needs ``read-job``, ``AllowServiceRegistrationReadList``).
* ``GET /v1/client/allocation/:id/checks`` (``command/agent/alloc_endpoint.go``; ``client/
  alloc_endpoint.go``, ``Allocations.Checks``, ``read-job``): the latest ``CheckQueryResult``
  of each check of the allocation, keyed by ``NomadCheckID``.

A result names its service and check but not the port, and a permissive group registers one
name twice (plaintext and TLS). So results are tied to a registration through their IDs: the
allocation's own job (``GET /v1/allocation/:id``, the version the client runs) gives the check
definitions of the service whose ID is the registration's (``client/serviceregistration/id.go``,
``MakeAllocServiceID``), and each definition's ``NomadCheckID`` (``nomad/structs/checks.go``) is
the key of its result. That hash is md5 up to Nomad 1.11 and sha256 after (#28361); the
controller cannot know the client's version, so either key is accepted.

This module knows Nomad, not meshes: nothing here knows a TLS port from any other.
"""

from __future__ import annotations

import hashlib
import struct
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, Final
from urllib.parse import quote

from controller.nomad.client import NomadClient
from controller.nomad.errors import NotFound

PROVIDER: Final = "nomad"
# nomad/structs/checks.go: CheckSuccess, CheckFailure, CheckPending
SUCCESS: Final = "success"
FAILURE: Final = "failure"
PENDING: Final = "pending"


def _seg(value: str) -> str:
    return quote(value, safe="")


def _text(value: Any) -> str:
    return value if isinstance(value, str) else ""


@dataclass(frozen=True, slots=True)
class ServiceRegistration:
    """``structs.ServiceRegistration`` as the HTTP API serves it."""

    id: str
    service_name: str
    namespace: str
    node_id: str
    datacenter: str
    job_id: str
    alloc_id: str
    tags: tuple[str, ...]
    address: str
    port: int
    raw: Mapping[str, Any]

    @classmethod
    def from_wire(cls, body: Mapping[str, Any]) -> ServiceRegistration:
        return cls(
            id=_text(body.get("ID")),
            service_name=_text(body.get("ServiceName")),
            namespace=_text(body.get("Namespace")),
            node_id=_text(body.get("NodeID")),
            datacenter=_text(body.get("Datacenter")),
            job_id=_text(body.get("JobID")),
            alloc_id=_text(body.get("AllocID")),
            tags=tuple(t for t in body.get("Tags") or () if isinstance(t, str)),
            address=_text(body.get("Address")),
            port=int(body.get("Port") or 0),
            raw=body,
        )


@dataclass(frozen=True, slots=True)
class CheckResult:
    """``structs.CheckQueryResult``: the latest run of one native check."""

    id: str
    check: str
    group: str  # the allocation's name, as the client records it (checks_hook.go, observe)
    task: str
    service: str
    status: str  # success | failure | pending
    status_code: int
    output: str
    mode: str  # healthiness | readiness
    timestamp: int

    @classmethod
    def from_wire(cls, body: Mapping[str, Any]) -> CheckResult:
        return cls(
            id=_text(body.get("ID")),
            check=_text(body.get("Check")),
            group=_text(body.get("Group")),
            task=_text(body.get("Task")),
            service=_text(body.get("Service")),
            status=_text(body.get("Status")),
            status_code=int(body.get("StatusCode") or 0),
            output=_text(body.get("Output")),
            mode=_text(body.get("Mode")),
            timestamp=int(body.get("Timestamp") or 0),
        )


@dataclass(frozen=True, slots=True)
class NativeCheck:
    """One check of a registration: its definition's name and its latest result (None: the
    client has recorded none, e.g. the allocation is gone or not yet placed there)."""

    name: str
    result: CheckResult | None

    @property
    def status(self) -> str:
        return self.result.status if self.result is not None else PENDING


@dataclass(frozen=True, slots=True)
class NativeInstance:
    """One registration with the results of its own checks."""

    registration: ServiceRegistration
    checks: tuple[NativeCheck, ...]


@dataclass(frozen=True, slots=True)
class NativeServiceHealth:
    """Every registration of a name in one namespace, and the ``X-Nomad-Index`` of the read."""

    instances: tuple[NativeInstance, ...]
    index: int


def alloc_service_id(alloc_id: str, owner: str, name: str, port_label: str) -> str:
    """``MakeAllocServiceID``: ``_nomad-task-<alloc>-<task | group-<group>>-<name>-<port>``."""
    return f"_nomad-task-{alloc_id}-{owner}-{name}-{port_label}"


def _check_id(new: Callable[[], Any], alloc_id: str, group: str, check: Mapping[str, Any]) -> str:
    h = new()
    for part in (
        alloc_id,
        group,
        check.get("TaskName"),
        check.get("Name"),
        check.get("Type"),
        check.get("PortLabel"),
        check.get("OnUpdate"),
        check.get("AddressMode"),
    ):
        h.update(_text(part).encode())  # hashString: the bytes, no separator
    for duration in (check.get("Interval"), check.get("Timeout")):
        h.update(struct.pack("<q", int(duration or 0)))  # hashDuration: little-endian int64
    for part in (check.get("Protocol"), check.get("Path"), check.get("Method")):
        h.update(_text(part).encode())
    h.update(b"true" if check.get("TLSSkipVerify") is True else b"false")  # FormatBool
    return str(h.hexdigest())


def nomad_check_ids(alloc_id: str, group: str, check: Mapping[str, Any]) -> tuple[str, str]:
    """``structs.NomadCheckID`` of a check in an allocation of ``group``: (md5, sha256).

    Up to Nomad 1.11 the sum is md5; later ones use sha256 over the same fields (#28361)."""

    def md5() -> Any:
        return hashlib.md5(usedforsecurity=False)

    return _check_id(md5, alloc_id, group, check), _check_id(hashlib.sha256, alloc_id, group, check)


def _group_services(job: Mapping[str, Any], group: str) -> list[tuple[str, Mapping[str, Any]]]:
    """(owner, service) of every service of the group: ``group-<group>`` or the task name."""
    for tg in job.get("TaskGroups") or ():
        if not isinstance(tg, Mapping) or tg.get("Name") != group:
            continue
        out = [(f"group-{group}", s) for s in tg.get("Services") or () if isinstance(s, Mapping)]
        for task in tg.get("Tasks") or ():
            if isinstance(task, Mapping):
                name = _text(task.get("Name"))
                out += [(name, s) for s in task.get("Services") or () if isinstance(s, Mapping)]
        return out
    return []


def checks_of(
    registration: ServiceRegistration,
    alloc: Mapping[str, Any] | None,
    results: Mapping[str, CheckResult],
) -> tuple[NativeCheck, ...]:
    """The checks of ``registration``, each with its result: the definitions come from the
    allocation's own job, found by the registration's service ID."""
    if alloc is None:
        return ()
    group = _text(alloc.get("TaskGroup"))
    job = alloc.get("Job")
    if not isinstance(job, Mapping):
        return ()
    for owner, service in _group_services(job, group):
        label = _text(service.get("PortLabel"))
        wanted = alloc_service_id(registration.alloc_id, owner, registration.service_name, label)
        if wanted != registration.id:
            continue
        out: list[NativeCheck] = []
        for check in service.get("Checks") or ():
            if not isinstance(check, Mapping):
                continue
            found = next(
                (results[i] for i in nomad_check_ids(registration.alloc_id, group, check)
                 if i in results),
                None,
            )  # fmt: skip
            out.append(NativeCheck(_text(check.get("Name")), found))
        return tuple(out)
    return ()


class NomadServices:
    """Reads of Nomad's service catalog and of the clients' native check results."""

    def __init__(self, client: NomadClient) -> None:
        self.client = client

    async def registrations(
        self, name: str, namespace: str
    ) -> tuple[list[ServiceRegistration], int]:
        """Every registration of ``name`` in ``namespace`` (``[]`` when none)."""
        resp = await self.client.request("GET", f"/v1/service/{_seg(name)}", namespace=namespace)
        body = resp.body if isinstance(resp.body, list) else []
        regs = [ServiceRegistration.from_wire(r) for r in body if isinstance(r, Mapping)]
        return regs, resp.index or 0

    async def allocation_checks(self, alloc_id: str, namespace: str) -> dict[str, CheckResult]:
        """The latest result of each native check of the allocation, by check ID (``{}`` when
        the client has none: ``null``, or the allocation is unknown to it)."""
        try:
            resp = await self.client.request(
                "GET", f"/v1/client/allocation/{_seg(alloc_id)}/checks", namespace=namespace
            )
        except NotFound:
            return {}
        body = resp.body if isinstance(resp.body, Mapping) else {}
        return {
            str(key): CheckResult.from_wire(value)
            for key, value in body.items()
            if isinstance(value, Mapping)
        }

    async def allocation(self, alloc_id: str, namespace: str) -> dict[str, Any] | None:
        try:
            resp = await self.client.request(
                "GET", f"/v1/allocation/{_seg(alloc_id)}", namespace=namespace
            )
        except NotFound:
            return None
        return resp.body if isinstance(resp.body, dict) else None

    async def service_health(self, name: str, namespace: str) -> NativeServiceHealth:
        """Every registration of ``name`` with the results of its own checks.

        Raises :class:`~controller.nomad.errors.NomadError` when Nomad does not answer or
        refuses (``PermissionDenied``: the token lacks ``read-job`` in ``namespace``)."""
        regs, index = await self.registrations(name, namespace)
        allocs: dict[str, dict[str, Any] | None] = {}
        results: dict[str, dict[str, CheckResult]] = {}
        for alloc_id in sorted({r.alloc_id for r in regs}):
            allocs[alloc_id] = await self.allocation(alloc_id, namespace)
            results[alloc_id] = await self.allocation_checks(alloc_id, namespace)
        instances = tuple(
            NativeInstance(r, checks_of(r, allocs[r.alloc_id], results[r.alloc_id])) for r in regs
        )
        return NativeServiceHealth(instances, index)
