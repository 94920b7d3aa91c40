"""Health judgement as a table (Consul answers + probe results -> conditions), and the
HealthReconciler over in-memory ports: what it writes, what it leaves alone, its metrics."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace
from datetime import timedelta
from typing import Any

import pytest
from prometheus_client import CollectorRegistry

from controller.consul.wire import HealthEntry
from controller.tlsprobe import CertProblem, LeafInfo, ProbeOutcome, ProbeResult, ProbeTarget
from crds_equivalent.spec import Mode
from crds_equivalent.status import Condition, ConditionStatus, ConditionType, MeshStatus, Phase
from reconcilers.conditions import condition
from reconcilers.health.reconciler import HealthReconciler
from reconcilers.health.verdicts import cert_verdict, consul_conditions
from reconcilers.instances.matching import (
    FrontedPort,
    Instance,
    consul_findings,
    fronted_ports,
    running_allocations,
)
from tests.support.health_world import (
    A1,
    A2,
    ALLOCS,
    CONFIG,
    DEFAULT,
    KEY,
    NOW,
    OTHER,
    PREVIOUS,
    TRUST,
    Consul,
    Jobs,
    Probe,
    Statuses,
    Trust,
    WallClock,
    leaf,
    mesh_status,
    meshed,
    user_job,
)

STRICT = FrontedPort("web", "web", "http", Mode.STRICT, "web.service.consul")
PERMISSIVE = replace(STRICT, mode=Mode.PERMISSIVE)


# --- builders ------------------------------------------------------------------------------------


def entry(
    alloc: str,
    label: str = "mesh_tls_http",
    tags: Sequence[str] = ("mesh-tls",),
    status: str = "passing",
    node_status: str = "passing",
    port: int = 24000,
    service: str = "web",
) -> HealthEntry:
    return HealthEntry.from_wire(
        {
            "Node": {"Node": "n1", "Address": "127.0.0.11"},
            "Service": {
                "ID": f"_nomad-task-{alloc}-group-web-{service}-{label}",
                "Service": service,
                "Tags": list(tags),
                "Address": "127.0.0.11",
                "Port": port,
            },
            "Checks": [
                {"CheckID": "serfHealth", "Name": "Serf Health Status", "Status": node_status},
                {
                    "CheckID": "_nomad-check-x",
                    "Name": "service: web check",
                    "Status": status,
                    "Output": "" if status == "passing" else "Get https://…: connection refused",
                },
            ],
        }
    )


def ok(lf: LeafInfo | None = None) -> tuple[ProbeOutcome, LeafInfo, None]:
    return (ProbeOutcome.OK, lf or leaf(), None)


def bad(
    problem: CertProblem, lf: LeafInfo | None = None
) -> tuple[ProbeOutcome, LeafInfo, CertProblem]:
    return (ProbeOutcome.BAD_CERTIFICATE, lf or leaf(), problem)


def probed(*outcomes: Any) -> list[tuple[Instance, ProbeResult]]:
    out = []
    for n, (outcome, lf, problem) in enumerate(outcomes):
        inst = Instance(STRICT, f"alloc-{n}", entry(f"alloc-{n}", port=24000 + n))
        out.append(
            (
                inst,
                ProbeResult(
                    inst.target,
                    outcome,
                    "detail",
                    leaf=lf,
                    problem=problem,
                    remaining_seconds=lf.remaining_seconds(NOW) if lf else None,
                ),
            )
        )
    return out


UNREACHABLE = (ProbeOutcome.UNREACHABLE, None, None)
NO_TLS = (ProbeOutcome.HANDSHAKE_FAILED, None, None)


def brief(c: Condition | None) -> tuple[str, str]:
    assert c is not None
    return (str(c.status), c.reason)


# --- Consul table --------------------------------------------------------------------------------

CONSUL_CASES = {
    "all passing, strict": (
        STRICT, {"web": [A1, A2]}, [entry(A1), entry(A2)],
        ("True", "AllPassing"), ("True", "NoPlaintext"),
    ),
    "a TLS check critical": (
        STRICT, {"web": [A1, A2]}, [entry(A1), entry(A2, status="critical")],
        ("False", "ChecksFailing"), ("True", "NoPlaintext"),
    ),
    "the node check critical": (
        STRICT, {"web": [A1]}, [entry(A1, node_status="critical")],
        ("False", "ChecksFailing"), ("True", "NoPlaintext"),
    ),
    "an allocation not registered on the TLS port": (
        STRICT, {"web": [A1, A2]}, [entry(A1)],
        ("False", "NotRegistered"), ("True", "NoPlaintext"),
    ),
    "TLS registration without the mesh-tls tag": (
        STRICT, {"web": [A1]}, [entry(A1, tags=())],
        ("False", "MissingTag"), ("True", "NoPlaintext"),
    ),
    "strict with a plaintext registration left": (
        STRICT, {"web": [A1]}, [entry(A1), entry(A1, label="http", tags=())],
        ("True", "AllPassing"), ("False", "PlaintextRegistered"),
    ),
    "permissive, plaintext tagged": (
        PERMISSIVE, {"web": [A1]}, [entry(A1), entry(A1, label="http", tags=("mesh-plaintext",))],
        ("True", "AllPassing"), ("True", "PermissiveTagged"),
    ),
    "permissive, plaintext untagged": (
        PERMISSIVE, {"web": [A1]}, [entry(A1), entry(A1, label="http", tags=())],
        ("True", "AllPassing"), ("False", "PlaintextRegistered"),
    ),
    "another job's instance of the same name is not ours to judge": (
        STRICT, {"web": [A1]},
        [entry(A1), entry(OTHER, status="critical"), entry(OTHER, label="http")],
        ("True", "AllPassing"), ("True", "NoPlaintext"),
    ),
    "no running allocation": (
        STRICT, {}, [entry(OTHER)],
        ("Unknown", "NoRunningAllocations"), ("Unknown", "NoRunningAllocations"),
    ),
}  # fmt: skip


@pytest.mark.parametrize("case", CONSUL_CASES)
def test_consul_conditions(case: str) -> None:
    port, allocs, entries, healthy, retired = CONSUL_CASES[case]
    found = consul_findings([port], allocs, {"web": entries})
    got = consul_conditions(found)
    assert (brief(got[0]), brief(got[1])) == (healthy, retired)
    assert all(c.message for c in got)


# The same judgements when Consul's ACLs filtered the answer (audit §11): what the token sees is
# judged, what it may not see is Unknown, never NotRegistered.
WHY = "Consul filtered the answer for this token (X-Consul-Results-Filtered-By-ACLs: true)"
FILTERED_CASES = {
    "nothing visible": (
        STRICT, {"web": [A1, A2]}, [],
        ("Unknown", "ConsulFiltered"), ("Unknown", "ConsulFiltered"),
    ),
    "one visible and passing, one hidden": (
        STRICT, {"web": [A1, A2]}, [entry(A1)],
        ("Unknown", "ConsulFiltered"), ("Unknown", "ConsulFiltered"),
    ),
    "a visible one failing is False, whatever is hidden": (
        STRICT, {"web": [A1, A2]}, [entry(A1, status="critical")],
        ("False", "ChecksFailing"), ("Unknown", "ConsulFiltered"),
    ),
    "a visible plaintext leftover is False, whatever is hidden": (
        STRICT, {"web": [A1, A2]}, [entry(A1), entry(A1, label="http", tags=())],
        ("Unknown", "ConsulFiltered"), ("False", "PlaintextRegistered"),
    ),
    "only another job's instances hidden: ours are all judged": (
        STRICT, {"web": [A1, A2]}, [entry(A1), entry(A2)],
        ("True", "AllPassing"), ("True", "NoPlaintext"),
    ),
}  # fmt: skip


@pytest.mark.parametrize("case", FILTERED_CASES)
def test_consul_conditions_on_a_filtered_answer(case: str) -> None:
    port, allocs, entries, healthy, retired = FILTERED_CASES[case]
    found = consul_findings([port], allocs, {"web": entries}, {"web": WHY})
    got = consul_conditions(found)
    assert (brief(got[0]), brief(got[1])) == (healthy, retired)


def test_an_empty_unfiltered_answer_is_still_not_registered() -> None:
    found = consul_findings([STRICT], {"web": [A1]}, {"web": []}, {"other": WHY})
    assert brief(consul_conditions(found)[0]) == ("False", "NotRegistered")


def test_filtered_message_says_the_token_cannot_read_the_service_and_the_fix() -> None:
    found = consul_findings([STRICT], {"web": [A1, A2]}, {"web": [entry(A1)]}, {"web": WHY})
    healthy, retired = consul_conditions(found)
    assert healthy.message == retired.message
    assert healthy.message.startswith(f"the Consul token cannot read service web: {WHY}. ")
    assert "web: allocation a2222222 has no registration on mesh_tls_http it may see" in (
        healthy.message
    )
    assert "a1111111" not in healthy.message
    assert healthy.message.endswith(
        'Grant the token service_prefix "" { policy = "read" } '
        'and node_prefix "" { policy = "read" }'
    )


def test_consul_not_answering_is_unknown_never_false() -> None:
    healthy, retired = consul_conditions(None, "GET /v1/health/service/web: 500 No cluster leader")
    assert brief(healthy) == ("Unknown", "ConsulUnavailable")
    assert brief(retired) == ("Unknown", "ConsulUnavailable")
    assert "No cluster leader" in healthy.message


def test_failing_check_output_and_instance_are_in_the_message() -> None:
    found = consul_findings([STRICT], {"web": [A1]}, {"web": [entry(A1, status="critical")]})
    healthy, _ = consul_conditions(found)
    assert "a1111111" in healthy.message and "connection refused" in healthy.message
    assert "127.0.0.11:24000" in healthy.message


def test_long_problem_lists_are_counted_not_spelled_out() -> None:
    allocs = [f"{i:08d}-x" for i in range(7)]
    found = consul_findings([STRICT], {"web": allocs}, {"web": []})
    healthy, _ = consul_conditions(found)
    assert healthy.message.endswith("(+4 more)")


def test_only_tls_registrations_of_our_allocations_are_probed() -> None:
    found = consul_findings(
        [STRICT],
        {"web": [A1]},
        {"web": [entry(A1, port=24001), entry(A1, label="http", port=8080), entry(OTHER)]},
    )
    assert [(i.alloc_id, i.target) for i in found.instances] == [
        (A1, ProbeTarget("127.0.0.11", 24001, "web.service.consul"))
    ]


# --- certificate table ---------------------------------------------------------------------------

CERT_CASES: dict[str, tuple[list[Any], tuple[str, str]]] = {
    "verified on the default issuer": ([ok()], ("True", "Verified")),
    "verified, one leaf still on a kept previous issuer": (
        [ok(), ok(leaf(aki=PREVIOUS.key_id))], ("True", "VerifiedPreviousIssuer"),
    ),
    "issuer retired (not in the mount any more)": (
        [ok(leaf(aki="cc" * 20))], ("False", "UnknownIssuer"),
    ),
    "missed its renewal: 0.3 % left": (
        [ok(leaf(age=timedelta(hours=72 * 0.997)))], ("False", "RenewalMissed"),
    ),
    "a late renewal on Nomad 1.7.0-1.8.1 (99 % worn) has not been missed yet": (
        [ok(leaf(age=timedelta(hours=72 * 0.99)))], ("True", "Verified"),
    ),
    "just renewed window: 12 % left is fine": (
        [ok(leaf(age=timedelta(hours=72 * 0.88)))], ("True", "Verified"),
    ),
    "expired": ([ok(), bad(CertProblem.EXPIRED)], ("False", "Expired")),
    "wrong name": ([bad(CertProblem.HOSTNAME_MISMATCH)], ("False", "NameMismatch")),
    "unknown CA": ([bad(CertProblem.UNKNOWN_CA)], ("False", "UntrustedChain")),
    "no TLS on the TLS port": ([NO_TLS], ("False", "NoTls")),
    "could not connect": ([ok(), UNREACHABLE], ("Unknown", "Unreachable")),
    "could not connect to one, another expired": (
        [UNREACHABLE, bad(CertProblem.EXPIRED)], ("False", "Expired"),
    ),
    "the worst problem leads": (
        [ok(leaf(age=timedelta(hours=70))), bad(CertProblem.UNKNOWN_CA)],
        ("False", "UntrustedChain"),
    ),
    "nothing to probe": ([], ("Unknown", "NoInstances")),
}  # fmt: skip


@pytest.mark.parametrize("case", CERT_CASES)
def test_cert_condition(case: str) -> None:
    outcomes, expected = CERT_CASES[case]
    verdict = cert_verdict(probed(*outcomes), TRUST, NOW)
    assert brief(verdict.condition) == expected
    assert verdict.condition.message


def test_vault_not_saying_what_the_ca_is_makes_certs_unknown() -> None:
    verdict = cert_verdict(probed(ok()), None, NOW, unknown_message="sealed")
    assert brief(verdict.condition) == ("Unknown", "VaultUnavailable")
    assert verdict.not_after is None


def test_threshold_is_configurable() -> None:
    outcomes = probed(ok(leaf(age=timedelta(hours=72 * 0.85))))  # 15 % left
    assert cert_verdict(outcomes, TRUST, NOW).condition.status == ConditionStatus.TRUE
    strict = cert_verdict(outcomes, TRUST, NOW, min_remaining_fraction=0.2)
    assert brief(strict.condition) == ("False", "RenewalMissed")


def test_soonest_expiry_newest_issuer_and_per_service_minimum() -> None:
    older = leaf(aki=PREVIOUS.key_id, age=timedelta(hours=60))
    newer = leaf(age=timedelta(hours=1))
    expired = leaf(age=timedelta(hours=80))
    verdict = cert_verdict(
        probed(ok(older), ok(newer), bad(CertProblem.EXPIRED, expired)), TRUST, NOW
    )
    assert verdict.not_after == expired.not_after
    assert verdict.per_service == {"web": expired.not_after}
    assert verdict.issuer == "int-2 (v2)"


# --- fronted ports and allocations from a real injected job --------------------------------------


def test_fronted_ports_come_from_the_users_spec_not_the_injected_job() -> None:
    assert fronted_ports(meshed("permissive"), CONFIG) == [
        FrontedPort("web", "web", "http", Mode.PERMISSIVE, "web.service.consul")
    ]
    assert fronted_ports(user_job() | {"Meta": {}}, CONFIG) == []


def test_only_running_allocations_that_should_run_count() -> None:
    allocs = [
        {"ID": A1, "TaskGroup": "web", "ClientStatus": "running", "DesiredStatus": "run"},
        {"ID": A2, "TaskGroup": "web", "ClientStatus": "running", "DesiredStatus": "stop"},
        {"ID": OTHER, "TaskGroup": "web", "ClientStatus": "pending", "DesiredStatus": "run"},
    ]
    assert running_allocations(allocs) == {"web": [A1]}


# --- the reconciler over in-memory ports ---------------------------------------------------------


@dataclass
class World:
    jobs: Jobs
    statuses: Statuses
    consul: Consul
    probe: Probe
    trust: Trust
    clock: WallClock
    registry: CollectorRegistry
    reconciler: HealthReconciler

    def gauge(self, name: str, **labels: str) -> float | None:
        return self.registry.get_sample_value(name, labels)


def world(status: MeshStatus | None = None, job: dict[str, Any] | None = None, **kw: Any) -> World:
    leaves = {24001: leaf(age=timedelta(hours=20), serial="0a"), 24002: leaf(serial="0b")}
    jobs = Jobs(job if job is not None else meshed(), ALLOCS)
    statuses = Statuses(status if status is not None else mesh_status())
    consul = Consul([entry(A1, port=24001), entry(A2, port=24002), entry(OTHER, port=1)])
    probe, trust, clock, registry = Probe(leaves), Trust(), WallClock(), CollectorRegistry()
    rec = HealthReconciler(
        jobs, statuses, consul, probe, trust, CONFIG, clock=clock, registry=registry, **kw
    )
    return World(jobs, statuses, consul, probe, trust, clock, registry, rec)


async def test_healthy_job_becomes_ready_with_cert_facts_and_metrics() -> None:
    w = world()
    result = await w.reconciler.reconcile(KEY)
    assert result.requeue_after == 30.0
    status = w.statuses.stored
    assert status is not None and status.phase is Phase.READY
    assert {c.type: c.status for c in status.conditions} == {
        t: ConditionStatus.TRUE for t in ConditionType
    }
    soonest = NOW - timedelta(hours=20) + timedelta(hours=72)
    assert status.cert_not_after == soonest.isoformat()
    assert status.issuer == "int-2 (v2)"
    assert (status.observed_index, status.spec_hash) == (42, "1:abc")
    assert status.condition(ConditionType.ROLLED_OUT) == mesh_status().condition(
        ConditionType.ROLLED_OUT
    )
    labels = {"namespace": "default", "job": "shop", "service": "web"}
    assert w.gauge("mesh_cert_expiry_timestamp_seconds", **labels) == soonest.timestamp()
    assert w.gauge("mesh_ca_expiry_timestamp_seconds") == DEFAULT.not_after.timestamp()
    assert w.jobs.registered == 0


async def test_same_facts_again_write_nothing_and_keep_transition_times() -> None:
    w = world()
    await w.reconciler.reconcile(KEY)
    first = w.statuses.stored
    w.clock.wall = NOW + timedelta(minutes=5)
    await w.reconciler.reconcile(KEY)
    assert w.statuses.writes == 1 and w.statuses.stored == first


async def test_a_failing_instance_degrades_and_moves_only_its_transition_time() -> None:
    w = world()
    await w.reconciler.reconcile(KEY)
    w.clock.wall = later = NOW + timedelta(minutes=5)
    w.consul.entries[1] = entry(A2, port=24002, status="critical")
    await w.reconciler.reconcile(KEY)
    status = w.statuses.stored
    assert status is not None and status.phase is Phase.DEGRADED
    healthy = status.condition(ConditionType.CONSUL_HEALTHY)
    assert healthy is not None and healthy.last_transition == later.isoformat()
    cert = status.condition(ConditionType.CERT_VALID)
    assert cert is not None and cert.last_transition == NOW.isoformat()
    assert "a2222222" in status.message


async def test_consul_down_is_unknown_keeps_last_cert_facts_and_series() -> None:
    w = world()
    await w.reconciler.reconcile(KEY)
    before = w.statuses.stored
    w.consul.down = True
    result = await w.reconciler.reconcile(KEY)
    status = w.statuses.stored
    assert result.requeue_after == 30.0
    assert status is not None and before is not None
    # verified before, unknown now: it keeps Ready and says what cannot be told (no blame)
    assert status.phase is Phase.READY
    assert status.message.startswith("verified earlier; cannot tell now: Consul did not answer")
    for kind in (
        ConditionType.CONSUL_HEALTHY,
        ConditionType.PLAINTEXT_RETIRED,
        ConditionType.CERT_VALID,
    ):
        found = status.condition(kind)
        assert found is not None and found.status == ConditionStatus.UNKNOWN
    assert status.cert_not_after == before.cert_not_after
    labels = {"namespace": "default", "job": "shop", "service": "web"}
    assert w.gauge("mesh_cert_expiry_timestamp_seconds", **labels) is not None
    assert w.jobs.registered == 0


async def test_a_blind_token_is_unknown_not_unregistered_and_probes_nothing() -> None:
    w = world()
    await w.reconciler.reconcile(KEY)  # Ready first: the token then loses its read rights
    w.consul.hidden = {e.service_id for e in w.consul.entries}
    await w.reconciler.reconcile(KEY)
    status = w.statuses.stored
    assert status is not None and status.phase is Phase.READY  # not blamed: it was verified
    assert status.message.startswith("verified earlier; cannot tell now: ")
    for kind in (
        ConditionType.CONSUL_HEALTHY,
        ConditionType.PLAINTEXT_RETIRED,
        ConditionType.CERT_VALID,
    ):
        assert brief(status.condition(kind)) == ("Unknown", "ConsulFiltered")
    healthy = status.condition(ConditionType.CONSUL_HEALTHY)
    assert healthy is not None and "cannot read service web" in healthy.message
    assert w.probe.calls == 1  # only the first reconcile had instances to probe


async def test_vault_down_leaves_certs_unknown_but_consul_judged() -> None:
    w = world()
    w.trust.down = True
    await w.reconciler.reconcile(KEY)
    status = w.statuses.stored
    assert status is not None
    assert brief(status.condition(ConditionType.CERT_VALID)) == ("Unknown", "VaultUnavailable")
    assert brief(status.condition(ConditionType.CONSUL_HEALTHY)) == ("True", "AllPassing")
    assert w.probe.calls == 0


@pytest.mark.parametrize(
    "status",
    [
        None,
        MeshStatus(phase=Phase.PENDING),
        MeshStatus(
            phase=Phase.INVALID,
            conditions=(condition(ConditionType.SPEC_VALID, False, "InvalidSpec"),),
        ),
        MeshStatus(
            phase=Phase.REMOVED,
            conditions=(condition(ConditionType.SIDECAR_INJECTED, True, "Registered"),),
        ),
    ],
)
async def test_leaves_a_job_not_injected_to_the_mesh_reconciler_without_touching_anything(
    status: MeshStatus | None,
) -> None:
    """Nothing to judge, and no timer either: the injection is a register, whose Job event
    routes the job here again (a cold start's first pass used to park every job for an
    interval)."""
    w = world()
    w.statuses.stored = status
    result = await w.reconciler.reconcile(KEY)
    assert result.requeue_after is None and not result.requeue
    assert w.statuses.stored == status and w.statuses.writes == 0
    assert w.probe.calls == 0


async def test_rolled_out_false_keeps_phase_injected_even_when_healthy() -> None:
    w = world(mesh_status(rolled_out=False))
    await w.reconciler.reconcile(KEY)
    assert w.statuses.stored is not None and w.statuses.stored.phase is Phase.INJECTED


async def test_job_gone_or_unmeshed_is_forgotten_with_its_series() -> None:
    w = world()
    await w.reconciler.reconcile(KEY)
    labels = {"namespace": "default", "job": "shop", "service": "web"}
    assert w.gauge("mesh_cert_expiry_timestamp_seconds", **labels) is not None
    w.jobs.job = None
    assert (await w.reconciler.reconcile(KEY)).requeue_after is None
    assert w.gauge("mesh_cert_expiry_timestamp_seconds", **labels) is None
    w.jobs.job = user_job() | {"Meta": {}}
    assert (await w.reconciler.reconcile(KEY)).requeue_after is None


async def test_interval_and_threshold_are_constructor_knobs() -> None:
    w = world(interval=12.5, min_remaining_fraction=0.9)
    assert (await w.reconciler.reconcile(KEY)).requeue_after == 12.5
    cert = w.statuses.stored.condition(ConditionType.CERT_VALID)  # type: ignore[union-attr]
    assert cert is not None and cert.reason == "RenewalMissed"


def test_two_reconcilers_can_share_one_registry() -> None:
    registry = CollectorRegistry()
    for _ in range(2):
        HealthReconciler(
            Jobs(None, []),
            Statuses(None),
            Consul([]),
            Probe({}),
            Trust(),
            CONFIG,
            registry=registry,
        )
