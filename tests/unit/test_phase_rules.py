"""The phase tells the truth: Ready only once verified, Degraded only after that (or after a
failed rollout), and before it Pending or Injected with what the job waits for.

Consul starts every check critical, so a job that was never Ready with a failing check is warming
up; the same check failing after the job was verified is a fault. Whether it was verified is
``verified_at`` in the record (it must survive a failover), cleared by a new spec hash.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from crds_equivalent import keys
from crds_equivalent.status import Condition, ConditionType, MeshStatus, Phase
from reconcilers.conditions import condition, judge, restate
from reconcilers.mesh.rollout import rolled_out

NOW = datetime(2030, 1, 1, tzinfo=UTC)
T = ConditionType

SPEC = condition(T.SPEC_VALID, True, "Parsed")
INJECTED = condition(T.SIDECAR_INJECTED, True, "MarkerCurrent")
ROLLED = condition(T.ROLLED_OUT, True, "DeploymentSuccessful")
ROLLING = condition(T.ROLLED_OUT, False, "RollingOut", "waiting for deployment d1 (1/2 healthy)")
FAILED = condition(T.ROLLED_OUT, False, "DeploymentFailed", "Failed due to unhealthy allocations")
CERT = condition(T.CERT_VALID, True, "Verified", "1 instance(s) verified")
CONSUL = condition(T.CONSUL_HEALTHY, True, "AllPassing", "1 TLS registration(s)")
PLAIN = condition(T.PLAINTEXT_RETIRED, True, "NoPlaintext")
CRITICAL = condition(T.CONSUL_HEALTHY, False, "ChecksFailing", "web/a: check critical")
NO_CONSUL = condition(T.CONSUL_HEALTHY, None, "ConsulUnavailable", "Consul did not answer")
BAD_CERT = condition(T.CERT_VALID, False, "UntrustedChain", "10.0.0.1:1: unknown ca")
HEALTHY = (CERT, CONSUL, PLAIN)


def ordered(*conds: Condition) -> tuple[Condition, ...]:
    return restate(None, conds, NOW).conditions


@pytest.mark.parametrize(
    ("conds", "verified", "phase", "message"),
    [
        ((condition(T.SPEC_VALID, False, "InvalidSpec", "bad"),), False, Phase.INVALID, "bad"),
        ((SPEC,), False, Phase.PENDING, "waiting for the sidecar to be injected"),
        (
            (SPEC, condition(T.SIDECAR_INJECTED, None, "Unknown", "cannot read the job")),
            False,
            Phase.PENDING,
            "cannot read the job",
        ),
        ((SPEC, INJECTED), False, Phase.INJECTED, "waiting for the injected version to roll out"),
        ((SPEC, INJECTED, ROLLING), False, Phase.INJECTED, ROLLING.message),
        # Rolled out but no health fact yet: not Ready (the old rule said Ready here)
        (
            (SPEC, INJECTED, ROLLED),
            False,
            Phase.INJECTED,
            "waiting for Consul checks on the TLS port",
        ),
        # Consul's checks start critical: warming up, not Degraded
        (
            (SPEC, INJECTED, ROLLED, CERT, CRITICAL, PLAIN),
            False,
            Phase.INJECTED,
            "waiting for Consul checks on the TLS port: web/a: check critical",
        ),
        (
            (SPEC, INJECTED, ROLLED, CONSUL, PLAIN),
            False,
            Phase.INJECTED,
            "waiting for a TLS probe to verify the served chain",
        ),
        (
            (SPEC, INJECTED, ROLLED, BAD_CERT, CONSUL, PLAIN),
            False,
            Phase.INJECTED,
            "waiting for a TLS probe to verify the served chain: 10.0.0.1:1: unknown ca",
        ),
        ((SPEC, INJECTED, ROLLED, *HEALTHY), False, Phase.READY, ""),
        ((SPEC, INJECTED, ROLLED, *HEALTHY), True, Phase.READY, ""),
        # after a verified Ready, the same failing facts are faults
        ((SPEC, INJECTED, ROLLED, CERT, CRITICAL, PLAIN), True, Phase.DEGRADED, CRITICAL.message),
        (
            (SPEC, INJECTED, ROLLED, BAD_CERT, CRITICAL, PLAIN),
            True,
            Phase.DEGRADED,
            BAD_CERT.message,
        ),
        # could not tell: never verified -> still waiting; verified -> keeps Ready, says why
        (
            (SPEC, INJECTED, ROLLED, CERT, NO_CONSUL, PLAIN),
            False,
            Phase.INJECTED,
            "waiting for Consul checks on the TLS port: Consul did not answer",
        ),
        (
            (SPEC, INJECTED, ROLLED, CERT, NO_CONSUL, PLAIN),
            True,
            Phase.READY,
            "verified earlier; cannot tell now: Consul did not answer",
        ),
        # unknown and false together: the fault wins
        (
            (SPEC, INJECTED, ROLLED, BAD_CERT, NO_CONSUL, PLAIN),
            True,
            Phase.DEGRADED,
            BAD_CERT.message,
        ),
        # a rollout Nomad failed is Degraded even if never verified
        ((SPEC, INJECTED, FAILED), False, Phase.DEGRADED, FAILED.message),
        ((SPEC, INJECTED, FAILED, *HEALTHY), True, Phase.DEGRADED, FAILED.message),
    ],
)
def test_phase_rules(
    conds: tuple[Condition, ...], verified: bool, phase: Phase, message: str
) -> None:
    assert judge(ordered(*conds), verified=verified) == (phase, message)


def test_unknown_after_degraded_stays_degraded_and_after_ready_stays_ready() -> None:
    """A fact nobody can check is no evidence either way: the phase it had stands."""
    facts = ordered(SPEC, INJECTED, ROLLED, CERT, NO_CONSUL, PLAIN)
    assert judge(facts, verified=True, previous=Phase.DEGRADED) == (
        Phase.DEGRADED,
        "degraded when last seen; cannot tell now: Consul did not answer",
    )
    assert judge(facts, verified=True, previous=Phase.READY)[0] is Phase.READY
    degraded = restate(None, (SPEC, INJECTED, ROLLED, CERT, CRITICAL, PLAIN), NOW)
    degraded = degraded.model_copy(update={"verified_at": NOW.isoformat(), "phase": Phase.DEGRADED})
    assert restate(degraded, (NO_CONSUL,), at(1)).phase is Phase.DEGRADED
    assert restate(degraded, (CONSUL,), at(2)).phase is Phase.READY


def at(minutes: int) -> datetime:
    return NOW + timedelta(minutes=minutes)


def test_verified_at_is_stamped_once_and_makes_a_later_failure_degraded() -> None:
    warming = restate(None, [SPEC, INJECTED, ROLLED, CERT, CRITICAL, PLAIN], at(0))
    assert (warming.phase, warming.verified_at) == (Phase.INJECTED, "")
    ready = restate(warming, [CONSUL], at(1))
    assert (ready.phase, ready.verified_at) == (Phase.READY, at(1).isoformat())
    again = restate(ready, [CONSUL], at(2))
    assert again.verified_at == at(1).isoformat()  # the first time, not the latest
    broken = restate(again, [CRITICAL], at(3))
    assert (broken.phase, broken.message) == (Phase.DEGRADED, CRITICAL.message)
    assert broken.verified_at == at(1).isoformat()
    healed = restate(broken, [CONSUL], at(4))
    assert healed.phase is Phase.READY


def test_verified_at_survives_the_items_round_trip() -> None:
    """A failover reads the record from the Variable: the fact must be in its Items."""
    ready = restate(None, [SPEC, INJECTED, ROLLED, *HEALTHY], NOW)
    back = MeshStatus.from_items(ready.to_items())
    assert back.verified_at == NOW.isoformat()
    assert restate(back, [CRITICAL], at(1)).phase is Phase.DEGRADED
    assert "verified_at" not in MeshStatus().to_items()  # written only when known


def test_a_new_spec_hash_clears_verified_at_so_the_new_version_warms_up() -> None:
    ready = restate(None, [SPEC, INJECTED, ROLLED, *HEALTHY], NOW).model_copy(
        update={"spec_hash": "1:old"}
    )
    same = restate(ready, [INJECTED, ROLLED], at(1), spec_hash="1:old")
    assert same.verified_at == NOW.isoformat()
    injected = restate(ready, [INJECTED, ROLLING], at(1), spec_hash="1:new")
    assert (injected.phase, injected.verified_at) == (Phase.INJECTED, "")
    rolled = restate(injected.model_copy(update={"spec_hash": "1:new"}), [ROLLED, CRITICAL], at(2))
    assert rolled.phase is Phase.INJECTED  # the new version's checks warm up: not Degraded
    assert rolled.message.startswith("waiting for Consul checks on the TLS port")


JOB: dict[str, Any] = {
    "ID": "web",
    "Type": "service",
    "Version": 1,
    "TaskGroups": [
        {
            "Name": "web",
            "Count": 2,
            "Tasks": [
                {"Name": "app"},
                {"Name": keys.SIDECAR_TASK, "Meta": {keys.MANAGED_TASK_META: "true"}},
            ],
        }
    ],
}


def running(version: int) -> dict[str, Any]:
    return {
        "JobVersion": version,
        "TaskGroup": "web",
        "DesiredStatus": "run",
        "ClientStatus": "running",
        "TaskStates": {keys.SIDECAR_TASK: {"State": "running"}},
    }


def deployment(status: str, healthy: int) -> dict[str, Any]:
    return {
        "ID": "d-1",
        "JobVersion": 1,
        "Status": status,
        "StatusDescription": "Deployment is running"
        if status == "running"
        else "Deployment completed successfully",
        "TaskGroups": {"web": {"DesiredTotal": 2, "HealthyAllocs": healthy}},
    }


def test_running_allocations_are_not_rolled_out_while_nomad_judges_the_deployment() -> None:
    cond = rolled_out(JOB, deployment("running", 1), [running(1), running(1)])
    assert (cond.status, cond.reason) == ("False", "RollingOut")
    assert cond.message == "waiting for deployment d-1 (1/2 healthy)"
    done = rolled_out(JOB, deployment("successful", 2), [running(1), running(1)])
    assert (done.status, done.reason) == ("True", "DeploymentSuccessful")


def test_a_version_without_a_deployment_rolls_out_when_its_allocations_run() -> None:
    batch = JOB | {"Type": "batch"}
    cond = rolled_out(batch, None, [running(1), running(1)])
    assert (cond.status, cond.reason) == ("True", "AllocationsRunning")
    half = rolled_out(batch, None, [running(1), running(0)])  # one still runs version 0
    assert (half.status, half.message) == ("False", "1/2 allocations of version 1 run the sidecar")


# --- upstreams and pure clients ------------------------------------------------------------------

UPSTREAMS = condition(T.UPSTREAMS_HEALTHY, True, "AllUpstreamsHealthy", "billing:9001 2")
EMPTY = condition(
    T.UPSTREAMS_HEALTHY, False, "UpstreamEmpty", 'group "api": upstream billing:9001/http: empty'
)
UPSTREAMS_UNKNOWN = condition(T.UPSTREAMS_HEALTHY, None, "CatalogUnavailable", "consul is down")
PURE = tuple(
    condition(kind, True, "PureClient", "a pure client")
    for kind in (T.CERT_VALID, T.CONSUL_HEALTHY, T.PLAINTEXT_RETIRED)
)


@pytest.mark.parametrize(
    ("conds", "verified", "phase", "message"),
    [
        # A record written before UpstreamsHealthy existed (or a job with no upstream) is judged
        # as before: no phase moves on an upgrade of the controller.
        ((SPEC, INJECTED, ROLLED, *HEALTHY), True, Phase.READY, ""),
        ((SPEC, INJECTED, ROLLED, *HEALTHY, UPSTREAMS), False, Phase.READY, ""),
        # An empty upstream is a health fact like the others: warm-up first, a fault once verified
        (
            (SPEC, INJECTED, ROLLED, *HEALTHY, EMPTY),
            False,
            Phase.INJECTED,
            "waiting for a healthy instance of every upstream: " + EMPTY.message,
        ),
        ((SPEC, INJECTED, ROLLED, *HEALTHY, EMPTY), True, Phase.DEGRADED, EMPTY.message),
        (
            (SPEC, INJECTED, ROLLED, *HEALTHY, UPSTREAMS_UNKNOWN),
            True,
            Phase.READY,
            "verified earlier; cannot tell now: consul is down",
        ),
        # A pure client: its facts are its upstreams
        ((SPEC, INJECTED, ROLLED, *PURE, UPSTREAMS), False, Phase.READY, ""),
        (
            (SPEC, INJECTED, ROLLED, *PURE),
            False,
            Phase.INJECTED,
            "waiting for a healthy instance of every upstream",
        ),
        (
            (SPEC, INJECTED, ROLLED, *PURE, EMPTY),
            False,
            Phase.INJECTED,
            "waiting for a healthy instance of every upstream: " + EMPTY.message,
        ),
        ((SPEC, INJECTED, ROLLED, *PURE, EMPTY), True, Phase.DEGRADED, EMPTY.message),
        (
            (SPEC, INJECTED, ROLLING, *PURE, UPSTREAMS),
            False,
            Phase.INJECTED,
            ROLLING.message,
        ),
    ],
)
def test_upstreams_and_pure_clients(
    conds: tuple[Condition, ...], verified: bool, phase: Phase, message: str
) -> None:
    assert judge(ordered(*conds), verified=verified) == (phase, message)


def test_a_pure_client_is_stamped_verified_when_its_upstreams_are_healthy() -> None:
    ready = restate(None, [SPEC, INJECTED, ROLLED, *PURE, UPSTREAMS], NOW)
    assert (ready.phase, ready.verified_at) == (Phase.READY, NOW.isoformat())
    down = restate(ready, [EMPTY], NOW + timedelta(minutes=1))
    assert (down.phase, down.message) == (Phase.DEGRADED, EMPTY.message)


def test_transition_time_moves_with_the_status_only() -> None:
    first = restate(None, [SPEC, ROLLING], NOW)
    later = NOW + timedelta(minutes=5)
    same = restate(first, [SPEC, ROLLING], later)
    progress = condition(T.ROLLED_OUT, False, "RollingOut", "waiting for deployment d1 (2/2)")
    moved = restate(first, [progress], later)
    done = restate(first, [ROLLED], later)

    def rolled(status: MeshStatus) -> Condition:
        found = status.condition(T.ROLLED_OUT)
        assert found is not None
        return found

    assert rolled(same) == rolled(first)
    assert rolled(same).last_transition == NOW.isoformat()
    assert rolled(moved).message == "waiting for deployment d1 (2/2)"
    assert rolled(moved).last_transition == NOW.isoformat()
    assert rolled(done).reason == "DeploymentSuccessful"
    assert rolled(done).last_transition == later.isoformat()


def test_the_same_fact_is_one_shared_condition() -> None:
    """Conditions are frozen and recur across thousands of jobs: each pending status change
    holds its own until written, so the same fact is built once and shared."""
    a = condition(ConditionType.ROLLED_OUT, False, "RollingOut", "1/2 healthy")
    b = condition(ConditionType.ROLLED_OUT, False, "RollingOut", "1/2 healthy")
    other = condition(ConditionType.ROLLED_OUT, False, "RollingOut", "2/2 healthy")
    assert a is b and a == Condition(
        type=ConditionType.ROLLED_OUT, status="False", reason="RollingOut", message="1/2 healthy"
    )
    assert other is not a and other.message == "2/2 healthy"
