"""The health reconciler's world held in memory: a meshed job, its allocations, the status
record, Consul's answers, probe results and the mesh trust.

The table tests (tests/unit/test_health.py) drive it entirely; the twin test
(tests/integration/test_health_with_twins.py) keeps the job and status ports and puts the real
Consul adapter and prober against the Consul twin and real TLS listeners instead.
"""

from __future__ import annotations

import copy
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from controller.consul.wire import ConsulUnavailable, HealthEntry, ServiceHealth
from controller.tlsprobe import LeafInfo, ProbeOutcome, ProbeResult, ProbeTarget
from controller.vault.trust import MeshTrust, TrustedIssuer, TrustUnavailable
from crds_equivalent.config import MeshConfig
from crds_equivalent.spec import parse_job_specs
from crds_equivalent.status import ConditionType, MeshStatus, Phase
from reconcilers.conditions import condition
from reconcilers.injection.inject import inject

NOW = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)


CONFIG = MeshConfig()


A1, A2, OTHER = "a1111111-0000", "a2222222-0000", "ffffffff-0000"


DEFAULT = TrustedIssuer(
    "int-2", "v2", "Int v2", "CN=Int v2", "bb" * 20, NOW + timedelta(days=900), True
)


PREVIOUS = TrustedIssuer(
    "int-1", "", "Int v1", "CN=Int v1", "aa" * 20, NOW + timedelta(days=30), False
)


TRUST = MeshTrust("ROOT-PEM", NOW + timedelta(days=3000), (DEFAULT, PREVIOUS))


def leaf(
    aki: str = DEFAULT.key_id,
    life: timedelta = timedelta(hours=72),
    age: timedelta = timedelta(hours=10),
    serial: str = "01:02",
) -> LeafInfo:
    start = NOW - age
    return LeafInfo(
        subject="CN=web.service.consul",
        issuer="CN=Int v2",
        serial=serial,
        not_before=start,
        not_after=start + life,
        authority_key_id=aki,
        dns_names=("web.service.consul",),
    )


def web_registration(
    alloc: str, port: int, status: str = "passing", check_type: str = "http"
) -> HealthEntry:
    """Consul's health entry for the meshed ``web`` group's TLS service of ``alloc`` (the ID
    Nomad gives a group service: ``_nomad-task-<alloc>-group-<group>-<service>-<port label>``),
    with one check of ``check_type`` (http: the https check the injection makes of the user's
    http check)."""
    service_id = f"_nomad-task-{alloc}-group-web-web-mesh_tls_http"
    return HealthEntry.from_wire(
        {
            "Node": {"Node": "n1", "Address": "127.0.0.11"},
            "Service": {
                "ID": service_id,
                "Service": "web",
                "Tags": ["mesh-tls"],
                "Address": "127.0.0.11",
                "Port": port,
            },
            "Checks": [
                {"CheckID": "c", "Status": status, "Type": check_type, "ServiceID": service_id}
            ],
        }
    )


def user_job(mode: str = "strict") -> dict[str, Any]:
    return {
        "ID": "shop",
        "Name": "shop",
        "Namespace": "default",
        "Type": "service",
        "Meta": {"mesh.tls": "true", "mesh.tls.mode": mode},
        "TaskGroups": [
            {
                "Name": "web",
                "Count": 2,
                "Networks": [{"Mode": "bridge", "DynamicPorts": [{"Label": "http", "To": 8080}]}],
                "Services": [{"Name": "web", "PortLabel": "http", "Checks": []}],
                "Tasks": [{"Name": "app", "Driver": "docker", "Config": {"image": "app"}}],
            },
            {
                "Name": "batch",
                "Tasks": [{"Name": "cron", "Driver": "docker", "Config": {"image": "cron"}}],
                "Meta": {"mesh.tls": "false"},
            },
        ],
    }


def meshed(mode: str = "strict") -> dict[str, Any]:
    user = user_job(mode)
    job = inject(user, parse_job_specs(user), CONFIG)
    job["JobModifyIndex"] = 42
    return job


class Jobs:
    def __init__(self, job: dict[str, Any] | None, allocs: list[dict[str, Any]]) -> None:
        self.job, self.allocs, self.registered = job, allocs, 0

    async def get_job(self, job_id: str, namespace: str) -> dict[str, Any] | None:
        return copy.deepcopy(self.job)

    async def register_job(
        self, job: dict[str, Any], *, enforce_index: int | None
    ) -> dict[str, Any]:
        self.registered += 1
        raise AssertionError("the health reconciler must never write the job")

    async def job_allocations(self, job_id: str, namespace: str) -> list[dict[str, Any]]:
        return copy.deepcopy(self.allocs)

    async def latest_deployment(self, job_id: str, namespace: str) -> dict[str, Any] | None:
        return None


class Statuses:
    def __init__(self, status: MeshStatus | None) -> None:
        self.stored, self.writes = status, 0

    async def get(self, namespace: str, job: str) -> MeshStatus | None:
        return self.stored

    async def peek(self, namespace: str, job: str) -> MeshStatus | None:
        return await self.get(namespace, job)

    async def update(
        self, namespace: str, job: str, fn: Callable[[MeshStatus | None], MeshStatus | None]
    ) -> MeshStatus | None:
        status = fn(await self.get(namespace, job))
        if status is not None:
            await self.write(namespace, job, status)
        return await self.get(namespace, job)

    async def write(self, namespace: str, job: str, status: MeshStatus) -> bool:
        if self.stored is not None and self.stored.same_content(status):
            return False
        self.stored, self.writes = status, self.writes + 1
        return True

    async def delete(self, namespace: str, job: str) -> bool:
        raise AssertionError("the health reconciler never deletes status")


class Consul:
    """Consul's answers; ``hidden`` are the entries its ACLs keep from the controller's token
    (left out of the answer, which then says it was filtered, as the real adapter does)."""

    def __init__(self, entries: list[HealthEntry]) -> None:
        self.entries, self.down = entries, False
        self.hidden: set[str] = set()  # service IDs
        self.filtered_why = "Consul filtered the answer for this token"

    async def health_service(self, name: str) -> ServiceHealth:
        if self.down:
            raise ConsulUnavailable("GET /v1/health/service/web: ClientConnectorError")
        named = [e for e in self.entries if e.service == name]
        seen = tuple(e for e in named if e.service_id not in self.hidden)
        filtered = len(seen) != len(named)
        why = self.filtered_why if filtered else ""
        return ServiceHealth(seen, 7, filtered=filtered, filtered_why=why)


class Probe:
    def __init__(self, leaves: dict[int, LeafInfo]) -> None:
        self.leaves, self.calls = leaves, 0
        self.targets: list[ProbeTarget] = []

    async def probe_many(
        self, targets: Sequence[ProbeTarget], anchors_pem: str
    ) -> list[ProbeResult]:
        assert anchors_pem == TRUST.anchors_pem
        self.calls += 1
        self.targets.extend(targets)
        return [
            ProbeResult(t, ProbeOutcome.OK, "verified", leaf=self.leaves[t.port])
            if t.port in self.leaves
            else ProbeResult(t, ProbeOutcome.UNREACHABLE, "refused")
            for t in targets
        ]


class Trust:
    def __init__(self) -> None:
        self.down = False

    async def get(self) -> MeshTrust:
        if self.down:
            raise TrustUnavailable("Vault is sealed")
        return TRUST


@dataclass
class WallClock:
    wall: datetime = NOW

    def monotonic(self) -> float:
        return self.wall.timestamp()

    def now(self) -> datetime:
        return self.wall

    async def sleep(self, seconds: float) -> None:
        raise AssertionError("no sleeping")


def mesh_status(rolled_out: bool = True) -> MeshStatus:
    stamp = (NOW - timedelta(days=1)).isoformat()
    conds = (
        condition(ConditionType.SPEC_VALID, True, "Parsed"),
        condition(ConditionType.SIDECAR_INJECTED, True, "MarkerCurrent"),
        condition(ConditionType.ROLLED_OUT, rolled_out, "AllocationsRunning"),
    )
    return MeshStatus(
        phase=Phase.INJECTED,
        observed_index=42,
        spec_hash="1:abc",
        conditions=tuple(c.model_copy(update={"last_transition": stamp}) for c in conds),
    )


ALLOCS = [
    {"ID": A1, "TaskGroup": "web", "ClientStatus": "running", "DesiredStatus": "run"},
    {"ID": A2, "TaskGroup": "web", "ClientStatus": "running", "DesiredStatus": "run"},
]


KEY = ("default", "shop")
