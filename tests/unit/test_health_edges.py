"""The health reconciler on a job's calls: each upstream edge recorded from its catalog (healthy,
empty, not meshed, unknown), ``UpstreamsHealthy`` among the facts, a pure client reaching Ready
on its upstreams alone, and allow-list names nobody fronts said as warnings (no phase change)."""

from __future__ import annotations

import copy
from collections.abc import Sequence
from datetime import timedelta
from typing import Any

from prometheus_client import CollectorRegistry

from controller.consul.wire import HealthEntry
from controller.nomad.errors import TransientError
from controller.nomad.jobs import JobList
from controller.tlsprobe import ProbeOutcome, ProbeResult, ProbeTarget
from crds_equivalent.spec import parse_job_specs
from crds_equivalent.status import ConditionStatus, ConditionType, MeshStatus, Phase
from reconcilers.health.directory import MeshNames, mesh_names
from reconcilers.health.reconciler import HealthReconciler
from reconcilers.injection.inject import inject
from tests.support.health_world import (
    ALLOCS,
    CONFIG,
    KEY,
    NOW,
    Consul,
    Jobs,
    Probe,
    Statuses,
    Trust,
    WallClock,
    leaf,
    mesh_status,
    user_job,
    web_registration,
)

T = ConditionType


def billing(tags: tuple[str, ...] = ("mesh-tls",), status: str = "passing") -> HealthEntry:
    return HealthEntry.from_wire(
        {
            "Node": {"Node": "n2", "Address": "10.0.0.2"},
            "Service": {"ID": f"b-{status}", "Service": "billing", "Port": 7000, "Tags": tags},
            "Checks": [{"CheckID": "c", "Status": status}],
        }
    )


def web(port: int) -> HealthEntry:
    alloc = {24001: ALLOCS[0]["ID"], 24002: ALLOCS[1]["ID"]}[port]
    return web_registration(alloc, port)


def server_job(meta: dict[str, str]) -> dict[str, Any]:
    user = user_job()
    user["Meta"] |= meta
    job = inject(user, parse_job_specs(user), CONFIG)
    job["JobModifyIndex"] = 42
    return job


def pure_client(upstreams: str = "billing:9001") -> dict[str, Any]:
    user = {
        "ID": "report",
        "Name": "report",
        "Namespace": "default",
        "Type": "batch",
        "Meta": {"mesh.tls": "true", "mesh.tls.upstreams": upstreams},
        "TaskGroups": [
            {
                "Name": "run",
                "Networks": [{"Mode": "bridge"}],
                "Tasks": [{"Name": "app", "Driver": "docker", "Config": {"image": "r"}}],
            }
        ],
    }
    job = inject(user, parse_job_specs(user), CONFIG)
    job["JobModifyIndex"] = 42
    return job


def reconciler(
    job: dict[str, Any],
    consul: Consul,
    status: MeshStatus | None = None,
    names: MeshNames | None = None,
    probe: Probe | None = None,
    clock: WallClock | None = None,
) -> tuple[HealthReconciler, Statuses, Probe]:
    statuses = Statuses(status if status is not None else mesh_status())
    probe = probe or Probe({24001: leaf(), 24002: leaf()})
    rec = HealthReconciler(
        Jobs(job, ALLOCS),
        statuses,
        consul,
        probe,
        Trust(),
        CONFIG,
        names=names,
        clock=clock or WallClock(),
        registry=CollectorRegistry(),
    )
    return rec, statuses, probe


async def test_a_server_with_a_healthy_upstream_is_ready_and_records_the_edge() -> None:
    job = server_job({"mesh.tls.upstreams": "billing:9001"})
    rec, statuses, _ = reconciler(job, Consul([web(24001), web(24002), billing()]))
    await rec.reconcile(KEY)
    status = statuses.stored
    assert status is not None and status.phase is Phase.READY
    [edge] = status.edges
    assert (edge.group, edge.service, edge.port, edge.protocol, edge.provider) == (
        "web",
        "billing",
        9001,
        "http",
        "consul",
    )
    assert (edge.state, edge.healthy, edge.message) == ("healthy", 1, "")
    upstreams = status.condition(T.UPSTREAMS_HEALTHY)
    assert upstreams is not None and upstreams.status == ConditionStatus.TRUE
    # the record round-trips through the Variable's Items
    assert MeshStatus.from_items(status.to_items()).edges == status.edges


async def test_an_empty_upstream_keeps_a_fresh_job_injected_and_says_which() -> None:
    job = server_job({"mesh.tls.upstreams": "billing:9001, ledger:9002/tcp"})
    consul = Consul([web(24001), web(24002), billing(status="critical")])
    rec, statuses, _ = reconciler(job, consul)
    await rec.reconcile(KEY)
    status = statuses.stored
    assert status is not None and status.phase is Phase.INJECTED
    assert [(e.service, e.state, e.healthy) for e in status.edges] == [
        ("billing", "empty", 0),
        ("ledger", "empty", 0),
    ]
    assert status.message == (
        "waiting for a healthy instance of every upstream: "
        'group "web": upstream billing:9001/http: no healthy mesh-tls instance in consul '
        "(1 registered, none passing); the listener answers 503 (+1 more)"
    )


async def test_an_unmeshed_upstream_is_an_error_and_degrades_a_verified_job() -> None:
    job = server_job({"mesh.tls.upstreams": "billing:9001"})
    verified = mesh_status().model_copy(update={"verified_at": NOW.isoformat()})
    rec, statuses, _ = reconciler(job, Consul([web(24001), web(24002), billing(("v1",))]), verified)
    await rec.reconcile(KEY)
    status = statuses.stored
    assert status is not None and status.phase is Phase.DEGRADED
    upstreams = status.condition(T.UPSTREAMS_HEALTHY)
    assert upstreams is not None
    assert (upstreams.status, upstreams.reason) == (ConditionStatus.FALSE, "UpstreamNotMeshed")
    assert status.edges[0].state == "not meshed"
    assert 'none tagged "mesh-tls": it is not meshed' in status.message


async def test_a_pure_client_is_ready_on_its_upstreams_alone_and_probes_only_them() -> None:
    rec, statuses, probe = reconciler(pure_client(), Consul([billing(), billing()]))
    await rec.reconcile(("default", "report"))
    status = statuses.stored
    assert status is not None and (status.phase, status.message) == (Phase.READY, "")
    assert status.verified_at == NOW.isoformat()
    reasons = {c.type: c.reason for c in status.conditions}
    assert reasons[T.CONSUL_HEALTHY] == reasons[T.CERT_VALID] == "PureClient"
    assert reasons[T.UPSTREAMS_HEALTHY] == "AllUpstreamsHealthy"
    # the controller could not reach billing's instances: no evidence, they still count
    assert [(e.service, e.healthy, e.handshake_error) for e in status.edges] == [("billing", 2, "")]
    # both registrations name one address: one handshake
    assert probe.targets == [ProbeTarget("10.0.0.2", 7000, "billing.service.consul")]


async def test_a_pure_client_with_an_empty_upstream_waits_and_consul_down_is_unknown() -> None:
    consul = Consul([])
    rec, statuses, _ = reconciler(pure_client(), consul)
    await rec.reconcile(("default", "report"))
    status = statuses.stored
    assert status is not None and status.phase is Phase.INJECTED
    assert status.edges[0].state == "empty"
    assert "(none registered)" in status.message
    consul.down = True
    verified = status.model_copy(update={"verified_at": NOW.isoformat()})
    statuses.stored = verified
    await rec.reconcile(("default", "report"))
    after = statuses.stored
    assert after is not None and after.edges[0].state == "unknown"
    assert after.edges[0].healthy is None
    upstreams = after.condition(T.UPSTREAMS_HEALTHY)
    assert upstreams is not None and upstreams.status == ConditionStatus.UNKNOWN
    # verified before: an unanswered catalog is no evidence, so no Degraded
    assert after.phase is Phase.READY
    assert after.message.startswith("verified earlier; cannot tell now: upstream billing: ")


class FailingProbe(Probe):
    """Every handshake with billing fails as a mesh client's would (an untrusted chain)."""

    async def probe_many(
        self, targets: Sequence[ProbeTarget], anchors_pem: str
    ) -> list[ProbeResult]:
        out: list[ProbeResult] = []
        for target in targets:
            if target.server_name.startswith("billing."):
                why = "unable to get local issuer certificate"
                out.append(ProbeResult(target, ProbeOutcome.BAD_CERTIFICATE, why))
            else:
                out.extend(await super().probe_many([target], anchors_pem))
        return out


async def test_an_upstream_whose_handshakes_fail_is_an_error_with_the_last_error() -> None:
    job = server_job({"mesh.tls.upstreams": "billing:9001"})
    failing = FailingProbe({24001: leaf(), 24002: leaf()})
    rec, statuses, _ = reconciler(job, Consul([web(24001), web(24002), billing()]), probe=failing)
    await rec.reconcile(KEY)
    status = statuses.stored
    assert status is not None and status.phase is Phase.INJECTED
    [edge] = status.edges
    error = "10.0.0.2:7000 (billing.service.consul): unable to get local issuer certificate"
    assert (edge.state, edge.healthy, edge.handshake_error) == ("handshake failed", 0, error)
    assert edge.message == (
        'group "web": upstream billing:9001/http: every healthy mesh-tls instance in consul '
        f"failed a verified TLS handshake ({error}); the listener answers 502"
    )
    upstreams = status.condition(T.UPSTREAMS_HEALTHY)
    assert upstreams is not None and upstreams.reason == "UpstreamHandshakeFailed"


async def test_callers_of_one_upstream_share_its_handshakes_within_an_interval() -> None:
    clock = WallClock()
    probe = Probe({})
    consul = Consul([billing(), billing()])
    rec, _, _ = reconciler(pure_client(), consul, probe=probe, clock=clock)
    other = pure_client()
    other["ID"] = other["Name"] = "nightly"
    await rec.reconcile(("default", "report"))
    rec.jobs = Jobs(other, ALLOCS)
    await rec.reconcile(("default", "nightly"))
    assert probe.calls == 1  # the second caller's pass reused the first's handshakes
    clock.wall += timedelta(seconds=31)
    await rec.reconcile(("default", "nightly"))
    assert probe.calls == 2


class Lister:
    def __init__(self, jobs: dict[str, dict[str, Any]]) -> None:
        self.jobs, self.lists, self.reads, self.down = jobs, 0, 0, False

    async def list_jobs(
        self, namespace: str = "*", *, meta: bool = True, prefix: str | None = None
    ) -> JobList:
        self.lists += 1
        if self.down:
            raise TransientError("GET /v1/jobs: connection refused")
        stubs = [
            {"ID": j["ID"], "Namespace": "default", "ModifyIndex": j["JobModifyIndex"]}
            for j in self.jobs.values()
        ]
        return JobList(stubs=stubs, index=1)

    async def get_job(self, job_id: str, namespace: str) -> dict[str, Any] | None:
        self.reads += 1
        return copy.deepcopy(self.jobs.get(job_id))


def test_mesh_names_are_fronted_services_and_pure_client_job_ids() -> None:
    assert mesh_names(server_job({}), CONFIG) == {"web"}
    assert mesh_names(pure_client(), CONFIG) == {"report"}


async def test_an_allow_name_nobody_fronts_is_a_warning_not_a_phase_change() -> None:
    lister = Lister({"report": pure_client()})
    clock = WallClock()
    names = MeshNames(lister, lister, CONFIG, clock, ttl=30.0)  # type: ignore[arg-type]
    job = server_job({"mesh.tls.mtls": "true", "mesh.tls.allow": "report, reprot"})
    rec, statuses, _ = reconciler(job, Consul([web(24001), web(24002)]), names=names)
    await rec.reconcile(KEY)
    status = statuses.stored
    assert status is not None and (status.phase, status.message) == (Phase.READY, "")
    assert status.warnings == (
        'group "web": meta "mesh.tls.allow" names "reprot", which no meshed job fronts (nor is '
        "it a pure client's job ID); callers of that name are let in once it exists",
    )
    assert status.edges == ()


async def test_the_names_are_listed_once_per_ttl_and_only_changed_jobs_are_read() -> None:
    lister = Lister({"report": pure_client(), "shop": server_job({})})
    clock = WallClock()
    names = MeshNames(lister, lister, CONFIG, clock, ttl=30.0)  # type: ignore[arg-type]
    assert await names.names() == {"report", "web"}
    assert await names.names() == {"report", "web"}
    assert (lister.lists, lister.reads) == (1, 2)
    clock.wall += timedelta(seconds=31)
    changed = pure_client("billing:9001")
    changed["ID"], changed["JobModifyIndex"] = "nightly", 50
    lister.jobs["nightly"] = changed
    assert await names.names() == {"report", "web", "nightly"}
    assert (lister.lists, lister.reads) == (2, 3)  # only the new job was read
    # a listing that fails keeps the last set
    clock.wall += timedelta(seconds=31)
    lister.down = True
    assert await names.names() == {"report", "web", "nightly"}


async def test_names_unknown_before_any_listing_means_no_warning() -> None:
    lister = Lister({})
    lister.down = True
    names = MeshNames(lister, lister, CONFIG, WallClock(), ttl=30.0)  # type: ignore[arg-type]
    job = server_job({"mesh.tls.mtls": "true", "mesh.tls.allow": "nobody"})
    rec, statuses, _ = reconciler(job, Consul([web(24001), web(24002)]), names=names)
    await rec.reconcile(KEY)
    assert statuses.stored is not None and statuses.stored.warnings == ()
