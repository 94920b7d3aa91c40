"""Leaf remediation: the pure ladder (stale detection, restart -> re-issue -> give up) and the
CertReconciler over an in-memory world whose sidecars serve leaves that restarts can renew."""

from __future__ import annotations

import copy
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from prometheus_client import CollectorRegistry
from structlog.testing import capture_logs

from controller.consul.wire import ServiceHealth
from controller.nomad.errors import Conflict
from controller.tlsprobe import CertProblem, LeafInfo, ProbeOutcome, ProbeResult, ProbeTarget
from controller.vault.trust import MeshTrust, TrustedIssuer, TrustUnavailable
from crds_equivalent.config import MeshConfig
from crds_equivalent.jobkey import JobKey
from crds_equivalent.spec import Mode, parse_job_specs
from crds_equivalent.status import ConditionType, MeshStatus, Phase
from reconcilers.certs.reconciler import CertReconciler
from reconcilers.certs.remediation import (
    GiveUp,
    Healthy,
    Policy,
    Record,
    Reissue,
    Restart,
    StaleLeaf,
    Wait,
    decide,
    stale_leaves,
)
from reconcilers.conditions import condition
from reconcilers.injection.inject import inject
from reconcilers.injection.plan import NoOp, plan_job
from reconcilers.injection.reissue import nonces
from reconcilers.instances.handshakes import HandshakeMemory
from reconcilers.instances.matching import FrontedPort, Instance
from tests.support.health_world import web_registration

NOW = datetime(2030, 1, 1, tzinfo=UTC)
CONFIG = MeshConfig()
LIFE = timedelta(hours=10)
A1, A2 = "a1a1a1a1-0000-0000-0000-000000000001", "a2a2a2a2-0000-0000-0000-000000000002"
ISSUER = TrustedIssuer("int", "", "Int", "CN=Int", "bb" * 20, NOW + timedelta(days=900), True)
TRUST = MeshTrust("ROOT", NOW + timedelta(days=3000), (ISSUER,))
PORT = FrontedPort("web", "web", "http", Mode.STRICT, "web.service.consul")


def leaf(consumed: float, serial: str) -> LeafInfo:
    start = NOW - LIFE * consumed
    return LeafInfo(
        "CN=web.service.consul", "CN=Int", serial, start, start + LIFE, ISSUER.key_id, ()
    )


def result(lf: LeafInfo | None, outcome: ProbeOutcome = ProbeOutcome.OK) -> ProbeResult:
    target = ProbeTarget("127.0.0.11", 1, "web.service.consul")
    problem = CertProblem.EXPIRED if outcome is ProbeOutcome.BAD_CERTIFICATE else None
    return ProbeResult(target, outcome, "", leaf=lf, problem=problem)


def instance(alloc: str) -> Instance:
    return Instance(PORT, alloc, web_registration(alloc, 1))


# --- the pure ladder -----------------------------------------------------------------------------


def test_only_leaves_past_the_stale_point_count_expired_ones_too() -> None:
    probed = [
        (instance(A1), result(leaf(0.95, "01"))),
        (instance(A1), result(leaf(0.99, "02"))),  # the same allocation's worse port wins
        (instance(A2), result(leaf(0.91, "03"))),  # inside Nomad's own renewal window: wait
        (instance("a3"), result(leaf(1.2, "04"), ProbeOutcome.BAD_CERTIFICATE)),
        (instance("a4"), result(None, ProbeOutcome.UNREACHABLE)),
    ]
    stale = stale_leaves(probed, NOW, 0.92)
    assert [(s.alloc_id, s.serial) for s in stale] == [(A1, "02"), ("a3", "04")]


def stale(alloc: str = A1, serial: str = "01") -> StaleLeaf:
    return StaleLeaf(alloc, serial, 0.95, "x")


POLICY = Policy(restart_grace=60, reissue_grace=300)


def record(kind: str, ago: float, serials: dict[str, str], nonce: str = "") -> Record:
    at = NOW - timedelta(seconds=ago)
    return Record(kind, at, tuple(serials), serials, nonce, "why")


@pytest.mark.parametrize(
    ("last", "expected"),
    [
        (None, Restart),
        (record("restart", 10, {A1: "01"}), Wait),  # give the restart its grace
        (record("restart", 61, {A1: "01"}), Reissue),  # restart did not change the serial
        (record("restart", 61, {A1: "00"}), Restart),  # a new leaf went stale: restart again
        (record("restart", 10, {A2: "09"}), Restart),  # another allocation was restarted
        (record("reissue", 100, {A1: "01"}, "n"), Wait),  # the roll-out is in progress
        (record("reissue", 301, {A1: "01"}, "n"), GiveUp),  # a re-issue did not help either
        (record("reissue", 301, {A1: "00"}, "n"), Restart),  # a fresh leaf from it went stale
    ],
)
def test_the_ladder(last: Record | None, expected: type) -> None:
    decision = decide([stale()], last, NOW, POLICY)
    assert isinstance(decision, expected), decision


def test_nothing_stale_is_healthy_whatever_was_tried() -> None:
    assert isinstance(decide([], record("reissue", 1, {A1: "01"}), NOW, POLICY), Healthy)


def test_records_round_trip_and_garbage_reads_as_never_remediated() -> None:
    rec = record("reissue", 5, {A1: "01"}, "renew-1")
    assert Record.loads(rec.dumps()) == rec
    for junk in ("", "{", "[]", '{"kind": "restart"}', '{"kind":"x","at":"yesterday"}'):
        assert Record.loads(junk) is None


# --- the reconciler over an in-memory world ------------------------------------------------------


def meshed_job() -> dict[str, Any]:
    user = {
        "ID": "shop",
        "Name": "shop",
        "Namespace": "default",
        "Meta": {"mesh.tls": "true"},
        "TaskGroups": [
            {
                "Name": "web",
                "Count": 2,
                "Networks": [{"Mode": "bridge", "DynamicPorts": [{"Label": "http", "To": 80}]}],
                "Services": [{"Name": "web", "PortLabel": "http"}],
                "Tasks": [{"Name": "app", "Driver": "docker"}],
            }
        ],
    }
    job = inject(user, parse_job_specs(user), CONFIG)
    job["JobModifyIndex"] = 10
    return job


@dataclass
class Sidecars:
    """Each allocation serves a leaf; a restart renews it unless the allocation is 'stuck'."""

    clock: Clock
    leaves: dict[str, LeafInfo]
    stuck: set[str] = field(default_factory=set)
    restarts: list[str] = field(default_factory=list)
    serial: int = 100
    handshaken: list[str] = field(default_factory=list)

    async def restart_task(self, alloc_id: str, task: str, namespace: str) -> None:
        assert task == "mesh-tls-proxy"
        self.restarts.append(alloc_id)
        if alloc_id not in self.stuck:
            self.serial += 1
            start = self.clock.wall - timedelta(seconds=30)
            self.leaves[alloc_id] = LeafInfo(
                "CN=w", "CN=Int", f"{self.serial:x}", start, start + LIFE, ISSUER.key_id, ()
            )

    async def probe_many(
        self, targets: Sequence[ProbeTarget], anchors_pem: str
    ) -> list[ProbeResult]:
        by_port = {24001: A1, 24002: A2}
        self.handshaken.extend(by_port[t.port] for t in targets)
        return [result(self.leaves[by_port[t.port]]) for t in targets]

    async def health_service(self, name: str) -> ServiceHealth:
        return ServiceHealth((web_registration(A1, 24001), web_registration(A2, 24002)), 1)


@dataclass
class Clock:
    wall: datetime = NOW

    def monotonic(self) -> float:
        return self.wall.timestamp()

    def now(self) -> datetime:
        return self.wall

    async def sleep(self, seconds: float) -> None:
        raise AssertionError("no sleeping")


class Jobs:
    def __init__(self) -> None:
        self.job, self.versions, self.conflict = meshed_job(), 0, False

    async def get_job(self, job_id: str, namespace: str) -> dict[str, Any] | None:
        return copy.deepcopy(self.job)

    async def register_job(self, job: dict[str, Any], *, enforce_index: int | None) -> Any:
        if self.conflict or enforce_index != self.job["JobModifyIndex"]:
            raise Conflict("enforce index")
        self.job = copy.deepcopy(job) | {"JobModifyIndex": self.job["JobModifyIndex"] + 1}
        self.versions += 1
        return {"JobModifyIndex": self.job["JobModifyIndex"]}

    async def job_allocations(self, job_id: str, namespace: str) -> list[dict[str, Any]]:
        return [
            {"ID": a, "TaskGroup": "web", "ClientStatus": "running", "DesiredStatus": "run"}
            for a in (A1, A2)
        ]

    async def latest_deployment(self, job_id: str, namespace: str) -> dict[str, Any] | None:
        return None


class Statuses:
    def __init__(self) -> None:
        conds = (
            condition(ConditionType.SPEC_VALID, True, "Parsed"),
            condition(ConditionType.SIDECAR_INJECTED, True, "MarkerCurrent"),
        )
        self.stored = MeshStatus(phase=Phase.INJECTED, conditions=conds)

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
        self.stored = status
        return True

    async def delete(self, namespace: str, job: str) -> bool:
        raise AssertionError("never deletes")


class Trust:
    down = False

    async def get(self) -> MeshTrust:
        if self.down:
            raise TrustUnavailable("sealed")
        return TRUST


@dataclass
class World:
    clock: Clock
    sidecars: Sidecars
    jobs: Jobs
    statuses: Statuses
    trust: Trust
    registry: CollectorRegistry
    certs: CertReconciler

    def counted(self, kind: str) -> float:
        return self.registry.get_sample_value("mesh_remediations_total", {"kind": kind}) or 0.0

    async def tick(self, seconds: float = 0.0) -> float | None:
        self.clock.wall += timedelta(seconds=seconds)
        return (await self.certs.reconcile(("default", "shop"))).requeue_after

    def last(self) -> Record | None:
        return Record.loads(self.statuses.stored.last_remediation)


def make_world(budget: int = 10, *, shared: bool = False) -> World:
    """``shared``: the certs reconciler reuses handshakes as it does beside the health check."""
    clock = Clock()
    sidecars = Sidecars(clock, {A1: leaf(0.5, "a1"), A2: leaf(0.5, "a2")})
    memory = HandshakeMemory(sidecars, clock, max_age=300) if shared else None
    jobs, statuses, trust, registry = Jobs(), Statuses(), Trust(), CollectorRegistry()
    certs = CertReconciler(
        jobs,
        sidecars,
        statuses,
        sidecars,
        sidecars,
        trust,
        CONFIG,
        clock=clock,
        interval=30,
        policy=POLICY,
        budget=budget,
        budget_window=600,
        registry=registry,
        handshakes=memory,
    )
    return World(clock, sidecars, jobs, statuses, trust, registry, certs)


async def test_fresh_leaves_are_left_alone() -> None:
    w = make_world()
    assert await w.tick() == 30
    assert w.sidecars.restarts == [] and w.jobs.versions == 0 and w.last() is None


@pytest.mark.parametrize("shared", [False, True], ids=["own handshakes", "shared memory"])
async def test_a_missed_renewal_is_fixed_by_restarting_that_sidecar(shared: bool) -> None:
    w = make_world(shared=shared)
    w.sidecars.leaves[A2] = leaf(0.997, "old")
    await w.tick()
    assert w.sidecars.restarts == [A2]
    assert w.sidecars.leaves[A2].serial != "old"
    rec = w.last()
    assert rec is not None and rec.kind == "restart" and rec.serials == {A2: "old"}
    assert w.counted("restart") == 1 and w.counted("reissue") == 0
    await w.tick(61)  # after the grace the leaf is fresh: nothing more to do
    assert w.sidecars.restarts == [A2] and w.jobs.versions == 0


@pytest.mark.parametrize("shared", [False, True], ids=["own handshakes", "shared memory"])
async def test_a_restart_that_does_not_help_escalates_to_a_reissue_then_gives_up(
    shared: bool,
) -> None:
    w = make_world(shared=shared)
    w.sidecars.stuck.add(A1)
    w.sidecars.leaves[A1] = leaf(0.997, "old")
    await w.tick()
    await w.tick(30)  # within the restart grace: waits, no second restart
    assert w.sidecars.restarts == [A1] and w.jobs.versions == 0
    await w.tick(31)
    assert w.jobs.versions == 1
    rec = w.last()
    assert rec is not None and rec.kind == "reissue" and rec.nonce.startswith("renew-")
    assert nonces(w.jobs.job, CONFIG) == {"web": rec.nonce}
    assert isinstance(plan_job(w.jobs.job, CONFIG), NoOp)  # the mesh reconciler agrees
    assert w.counted("reissue") == 1
    await w.tick(100)
    assert w.jobs.versions == 1  # the roll-out gets its grace
    await w.tick(201)
    assert w.jobs.versions == 1 and w.sidecars.restarts == [A1]
    assert "did not replace" in w.statuses.stored.last_error


async def test_with_the_shared_memory_only_a_leaf_near_its_renewal_is_handshaken_again() -> None:
    w = make_world(shared=True)
    w.sidecars.leaves[A2] = leaf(0.9, "due")  # in Nomad's renewal window, not yet stale
    await w.tick()
    await w.tick(30)
    await w.tick(30)
    assert w.sidecars.handshaken == [A1, A2, A2, A2]
    assert w.sidecars.restarts == []


async def test_nothing_is_done_while_the_ca_cannot_be_read() -> None:
    w = make_world()
    w.sidecars.leaves[A1] = leaf(0.998, "old")
    w.trust.down = True
    await w.tick()
    assert w.sidecars.restarts == [] and w.last() is None


async def test_remediations_are_rate_limited_across_jobs() -> None:
    w = make_world(budget=1)
    w.sidecars.leaves[A1] = leaf(0.997, "x")
    await w.tick()
    w.sidecars.stuck.add(A2)
    w.sidecars.leaves[A2] = leaf(0.997, "y")
    assert await w.tick(1) == 600  # the budget is spent: deferred, not dropped
    assert w.sidecars.restarts == [A1]


async def test_a_conflicting_job_write_is_retried_not_recorded() -> None:
    w = make_world()
    w.sidecars.stuck.add(A1)
    w.sidecars.leaves[A1] = leaf(0.997, "old")
    await w.tick()
    w.jobs.conflict = True
    w.clock.wall += timedelta(seconds=61)
    result = await w.certs.reconcile(JobKey("default", "shop"))
    assert result.requeue and result.requeue_after is None  # retried through the key's backoff
    rec = w.last()
    assert rec is not None and rec.kind == "restart" and w.counted("reissue") == 0


async def test_a_standing_catalog_problem_warns_once_and_again_after_it_cleared() -> None:
    w = make_world()
    event = "service catalog unknown; leaves not observed"
    consul = w.certs.consul
    with capture_logs() as logs:
        w.certs.consul = None  # no Consul configured: the job's services cannot be looked up
        for _ in range(3):
            await w.tick()
        w.certs.consul = consul  # answers: the problem ended
        await w.tick()
        w.certs.consul = None
        await w.tick()
    assert [e["log_level"] for e in logs if e["event"] == event] == [
        "warning",
        "debug",
        "debug",
        "warning",
    ]
    assert w.sidecars.restarts == []  # nothing is done on what could not be observed
