"""The health reconciler's catalog warning: written when the problem starts or its reason
changes, debug while it stands, and nothing kept for a job that is gone."""

from __future__ import annotations

from datetime import timedelta

from prometheus_client import CollectorRegistry
from structlog.testing import capture_logs

from reconcilers.health.reconciler import HealthReconciler
from tests.support.health_world import (
    A1,
    ALLOCS,
    CONFIG,
    KEY,
    Consul,
    Jobs,
    Probe,
    Statuses,
    Trust,
    WallClock,
    leaf,
    mesh_status,
    meshed,
    web_registration,
)

EVENT = "service catalog unknown; health unknown"


def reconciler() -> tuple[HealthReconciler, Consul, Jobs]:
    consul = Consul([web_registration(A1, 24001)])
    jobs = Jobs(meshed(), ALLOCS)
    probe = Probe({24001: leaf(age=timedelta(hours=1), serial="0a")})
    rec = HealthReconciler(
        jobs,
        Statuses(mesh_status()),
        consul,
        probe,
        Trust(),
        CONFIG,
        clock=WallClock(),
        registry=CollectorRegistry(),
    )
    return rec, consul, jobs


def levels(logs: list[dict[str, object]]) -> list[tuple[object, object]]:
    return [(e["log_level"], e["reason"]) for e in logs if e["event"] == EVENT]


async def test_a_standing_catalog_problem_warns_once_then_logs_at_debug() -> None:
    rec, consul, _ = reconciler()
    consul.down = True
    with capture_logs() as logs:
        for _ in range(3):
            await rec.reconcile(KEY)
    assert levels(logs) == [
        ("warning", "ConsulUnavailable"),
        ("debug", "ConsulUnavailable"),
        ("debug", "ConsulUnavailable"),
    ]


async def test_a_new_reason_or_a_recurrence_after_recovery_warns_again() -> None:
    rec, consul, _ = reconciler()
    consul.down = True
    with capture_logs() as logs:
        await rec.reconcile(KEY)
        rec.consul = None  # now: no Consul configured at all
        await rec.reconcile(KEY)
        rec.consul = consul
        consul.down = False
        await rec.reconcile(KEY)  # answers: the problem ended
        consul.down = True
        await rec.reconcile(KEY)
    assert levels(logs) == [
        ("warning", "ConsulUnavailable"),
        ("warning", "ConsulNotConfigured"),
        ("warning", "ConsulUnavailable"),
    ]


async def test_nothing_is_kept_for_a_job_that_is_gone() -> None:
    rec, consul, jobs = reconciler()
    consul.down = True
    await rec.reconcile(KEY)
    assert len(rec.catalog_problems) == 1
    jobs.job = None
    await rec.reconcile(KEY)
    assert len(rec.catalog_problems) == 0
