"""The event router: which queue hears of which change, after what delay.

Fake queues keep state (what is queued now, what is waiting and until when), not a call log:
the router may add in any order, but after an event every queue must hold what the table says.
"""

from __future__ import annotations

import pytest

from controller.routing import EventKind, EventRouter, Route, default_routes
from crds_equivalent.jobkey import JobKey

WEB = JobKey("default", "web")
API = JobKey("prod", "api")


class FakeQueue:
    """A work queue's adding side: ready keys, and waiting keys with their earliest delay."""

    def __init__(self) -> None:
        self.ready: set[JobKey] = set()
        self.waiting: dict[JobKey, float] = {}
        self.urgent: set[JobKey] = set()  # added at least once without low priority

    @property
    def low(self) -> set[JobKey]:
        """Keys queued or waiting that were only ever added at low priority."""
        return (self.ready | set(self.waiting)) - self.urgent

    def add(self, item: JobKey, *, low_priority: bool = False) -> None:
        self.ready.add(item)
        if not low_priority:
            self.urgent.add(item)

    def add_after(self, item: JobKey, delay: float, *, low_priority: bool = False) -> None:
        self.waiting[item] = min(delay, self.waiting.get(item, delay))
        if not low_priority:
            self.urgent.add(item)


def router(**delays: float) -> tuple[EventRouter, dict[str, FakeQueue]]:
    queues = {name: FakeQueue() for name in ("mesh", "health", "certs")}
    table = default_routes(
        health_delay=delays.get("health_delay", 2.0),
        certs_delay=delays.get("certs_delay", 30.0),
        alloc_debounce=delays.get("alloc_debounce", 1.0),
    )
    return EventRouter(queues, table), queues


def test_a_job_change_is_meshed_now_health_checked_soon_and_certs_checked_later() -> None:
    r, q = router(health_delay=2.0, certs_delay=30.0)
    r.job_changed(WEB)
    assert q["mesh"].ready == {WEB} and q["mesh"].waiting == {}
    assert q["health"].ready == set() and q["health"].waiting == {WEB: 2.0}
    assert q["certs"].ready == set() and q["certs"].waiting == {WEB: 30.0}


def test_an_allocation_change_is_debounced_into_mesh_and_health_only() -> None:
    r, q = router(alloc_debounce=1.5)
    r.allocation_changed(API)
    assert q["mesh"].ready == set() and q["mesh"].waiting == {API: 1.5}
    assert q["health"].ready == set() and q["health"].waiting == {API: 1.5}
    assert q["certs"].ready == set() and q["certs"].waiting == {}


def test_keys_of_different_jobs_land_apart() -> None:
    r, q = router()
    r.job_changed(WEB)
    r.allocation_changed(API)
    assert q["mesh"].ready == {WEB}
    assert q["mesh"].waiting == {API: 1.0}
    assert q["health"].waiting == {WEB: 2.0, API: 1.0}
    assert q["certs"].waiting == {WEB: 30.0}


def test_the_table_is_the_documented_one() -> None:
    table = default_routes(health_delay=2.0, certs_delay=30.0, alloc_debounce=1.0)
    assert dict(table) == {
        EventKind.JOB: (Route("mesh", 0.0), Route("health", 2.0), Route("certs", 30.0)),
        EventKind.ALLOCATION: (Route("mesh", 1.0), Route("health", 1.0)),
        EventKind.DEPLOYMENT: (Route("mesh", 1.0),),
    }


def test_a_deployment_change_wakes_only_the_mesh_queue_after_the_debounce() -> None:
    r, q = router()
    r.deployment_changed(WEB)
    assert q["mesh"].waiting == {WEB: 1.0}
    assert q["health"].waiting == {} and q["certs"].waiting == {}


def test_a_zero_delay_adds_at_once() -> None:
    r, q = router(health_delay=0.0)
    r.job_changed(WEB)
    assert q["health"].ready == {WEB} and q["health"].waiting == {}


def test_a_route_to_an_unknown_queue_fails_at_build_time() -> None:
    table = {EventKind.JOB: (Route("mesh"), Route("helth", 2.0), Route("cert", 1.0))}
    with pytest.raises(ValueError, match="unknown queues: cert, helth"):
        EventRouter({"mesh": FakeQueue()}, table)


def test_a_kind_without_routes_reaches_no_queue() -> None:
    mesh = FakeQueue()
    r = EventRouter({"mesh": mesh}, {EventKind.JOB: (Route("mesh"),)})
    r.allocation_changed(WEB)
    assert mesh.ready == set() and mesh.waiting == {}
    r.job_changed(WEB)
    assert mesh.ready == {WEB}


def test_a_listed_job_takes_the_job_routes_at_low_priority() -> None:
    r, q = router(health_delay=2.0, certs_delay=30.0)
    r.job_listed(WEB)
    assert q["mesh"].ready == {WEB} and q["mesh"].low == {WEB}
    assert q["health"].waiting == {WEB: 2.0} and q["health"].low == {WEB}
    assert q["certs"].waiting == {WEB: 30.0} and q["certs"].low == {WEB}


def test_an_event_about_a_listed_job_raises_it_to_normal_priority_everywhere() -> None:
    r, q = router()
    r.job_listed(WEB)
    r.job_listed(API)
    r.job_changed(WEB)
    assert q["mesh"].ready == {WEB, API} and q["mesh"].low == {API}
    assert q["health"].low == {API} and q["certs"].low == {API}
