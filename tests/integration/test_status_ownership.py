"""Three reconcilers, one status record: each keeps the fields the others own.

The mesh, health and certificate reconcilers run against one real StatusStore over the Nomad
twin's Variables (as in the controller, where they share one store), with the job, Consul,
sidecars and Vault in memory. Every assertion reads the stored Variable — the record an operator
and ``controllerctl status`` see — never which calls were made.
"""

from __future__ import annotations

import copy
import json
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from controller.consul.wire import ServiceHealth
from controller.nomad.client import NomadClient
from controller.nomad.variables import NomadVariables, Variable
from controller.status.store import StatusStore, path_for
from controller.tlsprobe import LeafInfo, ProbeOutcome, ProbeResult, ProbeTarget
from controller.vault.trust import MeshTrust, TrustedIssuer
from crds_equivalent import keys
from crds_equivalent.config import MeshConfig
from crds_equivalent.jobkey import JobKey
from crds_equivalent.spec import parse_job_specs
from crds_equivalent.status import ConditionType, MeshStatus
from reconcilers.certs.reconciler import CertReconciler
from reconcilers.certs.remediation import Policy, Record
from reconcilers.health.reconciler import HealthReconciler
from reconcilers.injection.inject import inject
from reconcilers.mesh.reconciler import MeshReconciler
from tests.support.health_world import web_registration

pytestmark = pytest.mark.timeout(60)

NOW = datetime(2030, 1, 1, tzinfo=UTC)
CONFIG = MeshConfig()
LIFE = timedelta(hours=10)
KEY = JobKey("default", "shop")
A1, A2 = "a1a1a1a1-0000-0000-0000-000000000001", "a2a2a2a2-0000-0000-0000-000000000002"
PORTS = {A1: 24001, A2: 24002}
ISSUER = TrustedIssuer("int", "", "Int", "CN=Int", "bb" * 20, NOW + timedelta(days=900), True)
TRUST = MeshTrust("ROOT", NOW + timedelta(days=3000), (ISSUER,))
POLICY = Policy(restart_grace=60, reissue_grace=300)


def leaf(consumed: float, serial: str) -> LeafInfo:
    start = NOW - LIFE * consumed
    return LeafInfo("CN=web.service.consul", "CN=Int", serial, start, start + LIFE, "bb" * 20, ())


def meshed_job() -> dict[str, Any]:
    user = {
        "ID": "shop",
        "Name": "shop",
        "Namespace": "default",
        "Type": "service",
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
    return job | {"Version": 1, "JobModifyIndex": 10}


@dataclass
class Clock:
    wall: datetime = NOW

    def monotonic(self) -> float:
        return self.wall.timestamp()

    def now(self) -> datetime:
        return self.wall

    async def sleep(self, seconds: float) -> None:
        raise AssertionError("no sleeping")


@dataclass
class World:
    """The job (already injected), its two allocations, their Consul registrations, the leaves
    their sidecars serve, and Vault's trust — everything but the status record."""

    job: dict[str, Any] = field(default_factory=meshed_job)
    sidecars_running: bool = False
    leaves: dict[str, LeafInfo] = field(
        default_factory=lambda: {A1: leaf(0.5, "a1"), A2: leaf(0.5, "a2")}
    )

    async def get_job(self, job_id: str, namespace: str) -> dict[str, Any] | None:
        return copy.deepcopy(self.job)

    async def register_job(self, job: dict[str, Any], *, enforce_index: int | None) -> Any:
        raise AssertionError("the job is up to date; nothing here registers it")

    async def job_allocations(self, job_id: str, namespace: str) -> list[dict[str, Any]]:
        state = "running" if self.sidecars_running else "pending"
        return [
            {
                "ID": alloc,
                "TaskGroup": "web",
                "JobVersion": 1,
                "ClientStatus": "running",
                "DesiredStatus": "run",
                "TaskStates": {keys.SIDECAR_TASK: {"State": state}},
            }
            for alloc in (A1, A2)
        ]

    async def latest_deployment(self, job_id: str, namespace: str) -> dict[str, Any] | None:
        return None

    async def health_service(self, name: str) -> ServiceHealth:
        return ServiceHealth((web_registration(A1, PORTS[A1]), web_registration(A2, PORTS[A2])), 1)

    async def probe_many(
        self, targets: Sequence[ProbeTarget], anchors_pem: str
    ) -> list[ProbeResult]:
        by_port = {port: alloc for alloc, port in PORTS.items()}
        return [
            ProbeResult(t, ProbeOutcome.OK, "verified", leaf=self.leaves[by_port[t.port]])
            for t in targets
        ]

    async def restart_task(self, alloc_id: str, task: str, namespace: str) -> None:
        raise AssertionError("the certificate reconciler gives up here; it restarts nothing")

    async def get(self) -> MeshTrust:
        return TRUST


class HookedVariables(NomadVariables):
    """Nomad Variables where ``before_next_put`` (once armed) runs just before the next CAS
    put — another reconciler writing between this one's read and its write."""

    before_next_put: Callable[[], Awaitable[None]] | None = None

    async def cas_put(self, path: str, items: Mapping[str, str], *, cas: int) -> Variable | None:
        if self.before_next_put is not None:
            other, self.before_next_put = self.before_next_put, None
            await other()
        return await super().cas_put(path, items, cas=cas)


@dataclass
class Controller:
    world: World
    variables: HookedVariables
    store: StatusStore
    mesh: MeshReconciler
    health: HealthReconciler
    certs: CertReconciler

    async def stored(self) -> Mapping[str, str]:
        await self.store.flush()  # writes are coalesced, and this clock never ends a window
        var = await self.variables.get(path_for(*KEY))
        assert var is not None
        return var.items

    async def conditions(self) -> dict[str, tuple[str, str]]:
        items = await self.stored()
        return {c["type"]: (c["status"], c["reason"]) for c in json.loads(items["conditions"])}


def controller(nomad: NomadClient) -> Controller:
    world, clock = World(), Clock()
    variables = HookedVariables(nomad)
    store = StatusStore(variables, clock=clock, write_interval=1.0)
    mesh = MeshReconciler(world, store, CONFIG, clock=clock)
    health = HealthReconciler(world, store, world, world, world, CONFIG, clock=clock)
    certs = CertReconciler(
        world, world, store, world, world, world, CONFIG, clock=clock, policy=POLICY
    )
    return Controller(world, variables, store, mesh, health, certs)


def a_reissue_that_did_not_help(previous: MeshStatus | None) -> MeshStatus | None:
    """What an earlier certificate pass left: a re-issue, past its grace, of the leaf still
    served — so this pass gives up and records ``last_error``."""
    assert previous is not None
    done = Record("reissue", NOW - timedelta(seconds=301), (A1,), {A1: "stale"}, "n", "why")
    return previous.model_copy(update={"last_remediation": done.dumps()})


async def test_last_error_written_by_the_certs_reconciler_survives_a_mesh_reconcile(
    nomad: NomadClient,
) -> None:
    c = controller(nomad)
    await c.mesh.reconcile(KEY)
    await c.store.update(*KEY, a_reissue_that_did_not_help)
    c.world.leaves[A1] = leaf(0.997, "stale")
    await c.certs.reconcile(KEY)
    error = (await c.stored()).get("last_error", "")
    assert "did not replace" in error

    c.world.sidecars_running = True  # the mesh reconciler has something of its own to write
    await c.mesh.reconcile(KEY)

    items = await c.stored()
    assert (await c.conditions())[ConditionType.ROLLED_OUT] == ("True", "AllocationsRunning")
    assert items["last_error"] == error
    assert "last_remediation" in items


async def test_health_and_mesh_keep_each_others_conditions(nomad: NomadClient) -> None:
    c = controller(nomad)
    await c.mesh.reconcile(KEY)  # injected, not rolled out yet
    await c.health.reconcile(KEY)
    after_health = await c.stored()
    health_conditions = {
        t: s
        for t, s in (await c.conditions()).items()
        if t
        in (
            ConditionType.CERT_VALID,
            ConditionType.CONSUL_HEALTHY,
            ConditionType.PLAINTEXT_RETIRED,
        )
    }
    assert len(health_conditions) == 3
    assert after_health["cert_not_after"] and after_health["issuer"]

    c.world.sidecars_running = True
    await c.mesh.reconcile(KEY)
    after_mesh = await c.stored()
    conditions = await c.conditions()
    assert conditions[ConditionType.ROLLED_OUT][0] == "True"
    assert {t: conditions[t] for t in health_conditions} == health_conditions
    assert after_mesh["cert_not_after"] == after_health["cert_not_after"]
    assert after_mesh["issuer"] == after_health["issuer"]
    assert after_mesh["phase"] == "Ready"  # derived from both reconcilers' conditions

    c.world.leaves[A2] = leaf(0.997, "a2")  # past 99.5 % of its life: health has news to write
    await c.health.reconcile(KEY)
    after = await c.stored()
    conditions = await c.conditions()
    assert conditions[ConditionType.CERT_VALID][0] == "False"
    assert conditions[ConditionType.ROLLED_OUT][0] == "True"
    assert (after["observed_index"], after["spec_hash"]) == (
        after_mesh["observed_index"],
        after_mesh["spec_hash"],
    )
    assert after["phase"] == "Degraded"


async def test_a_mesh_write_between_healths_read_and_its_cas_is_kept(nomad: NomadClient) -> None:
    c = controller(nomad)
    await c.mesh.reconcile(KEY)  # RolledOut False

    async def rollout_finishes_and_mesh_records_it() -> None:
        c.world.sidecars_running = True
        await c.mesh.reconcile(KEY)

    c.variables.before_next_put = rollout_finishes_and_mesh_records_it
    await c.health.reconcile(KEY)  # read; mesh writes; our CAS loses; re-read, derive again

    conditions = await c.conditions()
    assert conditions[ConditionType.ROLLED_OUT] == ("True", "AllocationsRunning")
    assert conditions[ConditionType.CONSUL_HEALTHY][0] == "True"
    assert (await c.stored())["phase"] == "Ready"


async def test_another_processs_mesh_write_between_healths_read_and_its_cas_is_kept(
    nomad: NomadClient,
) -> None:
    c = controller(nomad)
    await c.mesh.reconcile(KEY)  # RolledOut False; cached by c's store
    other = controller(nomad)  # a second process (a failover overlap): its own store and cache
    other.world.sidecars_running = True

    async def the_other_process_records_the_rollout() -> None:
        await other.mesh.reconcile(KEY)
        await other.store.flush()

    c.variables.before_next_put = the_other_process_records_the_rollout
    await c.health.reconcile(KEY)  # derived from c's cached record
    await c.store.flush()  # our CAS loses to the other process; re-read, replay health's change

    conditions = await c.conditions()
    assert conditions[ConditionType.ROLLED_OUT] == ("True", "AllocationsRunning")
    assert conditions[ConditionType.CONSUL_HEALTHY][0] == "True"
    assert (await c.stored())["phase"] == "Ready"
