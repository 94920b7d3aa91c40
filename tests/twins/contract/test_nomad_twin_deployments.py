"""The Nomad twin runs deployments as Nomad does: health from checks, deadlines, revert, canaries.

Pinned against the Go source (v1.10): ``client/allochealth/tracker.go``,
``client/allocrunner/health_hook.go``, ``nomad/deploymentwatcher/deployment_watcher.go``
(``shouldFailEarly``, ``shouldFail``, ``FailDeployment``, ``autoPromoteDeployment``),
``nomad/state/state_store.go`` (``UpdateDeploymentPromotion``, ``updateDeploymentWithAlloc``)
and the ``DeploymentStatusDescription*`` texts of ``nomad/structs/structs.go``. The client is
raw HTTP (aiohttp); durations are short so the suite stays fast.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Callable, Collection, Mapping
from typing import Any

import aiohttp
import pytest
import pytest_asyncio

from devstack.nomad.hooks import CheckView
from devstack.nomad.server import NomadTwin, start_nomad_twin

MS = 1_000_000


class FakeChecks:
    """A Consul stand-in through the twin's ServiceChecks seam: the status comes from the
    job's meta ``check`` (``passing`` unless set), so one job version can be made unhealthy."""

    def __init__(self) -> None:
        self.twin: NomadTwin | None = None

    async def alloc_checks(self, alloc_ids: Collection[str]) -> Mapping[str, list[CheckView]]:
        assert self.twin is not None
        out: dict[str, list[CheckView]] = {}
        for aid in alloc_ids:
            alloc = self.twin.state.allocs[aid]
            status = (alloc["Job"].get("Meta") or {}).get("check", "passing")
            out[aid] = [CheckView("web", "alive", status)]
        return out


def job(
    version: str,
    *,
    check: str = "passing",
    count: int = 1,
    update: dict[str, Any] | None = None,
    reschedule: dict[str, Any] | None = None,
) -> dict[str, Any]:
    upd = {
        "MaxParallel": 1,
        "MinHealthyTime": 100 * MS,
        "HealthyDeadline": 1_000 * MS,
        "ProgressDeadline": 0,
    } | (update or {})
    return {
        "Job": {
            "ID": "web",
            "Name": "web",
            "Type": "service",
            "Datacenters": ["dc1"],
            "Meta": {"version": version, "check": check},
            "TaskGroups": [
                {
                    "Name": "app",
                    "Count": count,
                    "Update": upd,
                    "ReschedulePolicy": reschedule,
                    "Networks": [{"DynamicPorts": [{"Label": "http"}]}],
                    "Tasks": [
                        {
                            "Name": "app",
                            "Driver": "docker",
                            "Config": {"image": "example/app:1"},
                            "Services": [
                                {
                                    "Name": "web",
                                    "PortLabel": "http",
                                    "Checks": [
                                        {
                                            "Name": "alive",
                                            "Type": "http",
                                            "Path": "/",
                                            "Interval": 1_000 * MS,
                                            "Timeout": 500 * MS,
                                        }
                                    ],
                                }
                            ],
                        }
                    ],
                }
            ],
        }
    }


@pytest_asyncio.fixture
async def twin() -> AsyncIterator[NomadTwin]:
    checks = FakeChecks()
    t = await start_nomad_twin(nodes=2, service_checks=checks)
    checks.twin = t
    try:
        yield t
    finally:
        await t.stop()


@pytest_asyncio.fixture
async def http(twin: NomadTwin) -> AsyncIterator[Callable[..., Any]]:
    async with aiohttp.ClientSession(twin.url) as session:

        async def call(method: str, path: str, body: Any = None) -> tuple[int, Any]:
            async with session.request(method, path, json=body) as r:
                ctype = r.headers.get("Content-Type", "")
                data = await (r.json() if "json" in ctype else r.text())
                return r.status, data

        yield call


async def settle(
    http: Callable[..., Any], version: int, want: str, within: float = 8.0
) -> dict[str, Any]:
    """Wait until the deployment of job version ``version`` reaches a terminal ``want``."""
    deadline = time.monotonic() + within
    last: Any = None
    while time.monotonic() < deadline:
        _, deps = await http("GET", "/v1/job/web/deployments")
        for dep in deps:
            if dep["JobVersion"] == version:
                last = dep
                if dep["Status"] == want:
                    return dict(dep)
        await asyncio.sleep(0.05)
    raise AssertionError(f"deployment of v{version} never {want}: {last}")


async def test_checks_never_passing_fail_at_once_without_reschedule(
    twin: NomadTwin, http: Callable[..., Any]
) -> None:
    """shouldFailEarly: the unhealthy alloc cannot be rescheduled (attempts 0, not unlimited)."""
    no_resched = {"Attempts": 0, "Unlimited": False}
    prog = {"ProgressDeadline": 10_000 * MS}
    await http("POST", "/v1/jobs", job("1", update=prog, reschedule=no_resched))
    ok = await settle(http, 0, "successful")
    assert ok["StatusDescription"] == "Deployment completed successfully"
    _, j = await http("GET", "/v1/job/web")
    assert j["Stable"] is True
    await http("POST", "/v1/jobs", job("2", check="critical", update=prog, reschedule=no_resched))
    dep = await settle(http, 1, "failed")
    assert dep["StatusDescription"] == "Failed due to unhealthy allocations"
    assert dep["TaskGroups"]["app"]["UnhealthyAllocs"] == 1
    _, allocs = await http("GET", "/v1/job/web/allocations")
    bad = [a for a in allocs if a["JobVersion"] == 1]
    assert len(bad) == 1
    _, alloc = await http("GET", f"/v1/allocation/{bad[0]['ID']}")
    status = alloc["DeploymentStatus"]
    assert status["Healthy"] is False and status["Canary"] is False
    assert status["Timestamp"] and status["ModifyIndex"] > 0
    events = [e for e in alloc["TaskStates"]["app"]["Events"] if e["Type"] == "Alloc Unhealthy"]
    # taskHealthState.event: the tracker's context has no deadline, so a running task reads so
    assert [e["Message"] for e in events] == [
        "Task not running for min_healthy_time of 100ms by healthy_deadline of 1s"
    ]
    _, j = await http("GET", "/v1/job/web")
    assert j["Version"] == 1 and j["Stable"] is False  # no auto_revert: nothing re-registered


async def test_zero_progress_deadline_fails_on_first_unhealthy(
    twin: NomadTwin, http: Callable[..., Any]
) -> None:
    """shouldFailEarly: ProgressDeadline == 0, whatever the reschedule policy."""
    await http("POST", "/v1/jobs", job("1", check="warning"))
    dep = await settle(http, 0, "failed")
    assert dep["StatusDescription"] == "Failed due to unhealthy allocations"
    assert dep["TaskGroups"]["app"]["RequireProgressBy"] is None  # set only with a deadline


async def test_default_reschedule_waits_for_the_progress_deadline(
    twin: NomadTwin, http: Callable[..., Any]
) -> None:
    """A running-but-unhealthy alloc is never rescheduled: only the deadline fails it."""
    upd = {"ProgressDeadline": 1_500 * MS}
    started = time.monotonic()
    await http("POST", "/v1/jobs", job("1", check="critical", update=upd))
    dep = await settle(http, 0, "failed")
    assert dep["StatusDescription"] == "Failed due to progress deadline"
    assert time.monotonic() - started >= 1.4
    assert dep["TaskGroups"]["app"]["RequireProgressBy"] is not None


async def test_auto_revert_registers_the_last_stable_version(
    twin: NomadTwin, http: Callable[..., Any]
) -> None:
    upd = {"AutoRevert": True}
    await http("POST", "/v1/jobs", job("1", update=upd))
    await settle(http, 0, "successful")
    await http("POST", "/v1/jobs", job("2", check="critical", update=upd))
    dep = await settle(http, 1, "failed")
    assert dep["StatusDescription"] == (
        "Failed due to unhealthy allocations - rolling back to job version 0"
    )
    _, versions = await http("GET", "/v1/job/web/versions")
    by_version = {v["Version"]: v for v in versions["Versions"]}
    assert sorted(by_version) == [0, 1, 2]
    assert by_version[2]["Meta"] == by_version[0]["Meta"]
    assert by_version[2]["TaskGroups"] == by_version[0]["TaskGroups"]
    # The reverted version gets its own deployment, which succeeds.
    await settle(http, 2, "successful")


async def test_auto_revert_without_a_stable_version_says_so(
    twin: NomadTwin, http: Callable[..., Any]
) -> None:
    await http("POST", "/v1/jobs", job("1", check="critical", update={"AutoRevert": True}))
    dep = await settle(http, 0, "failed")
    assert dep["StatusDescription"] == (
        "Failed due to unhealthy allocations - no stable job version to auto revert to"
    )


async def test_fail_endpoint(twin: NomadTwin, http: Callable[..., Any]) -> None:
    """Deployment.Fail: ``Deployment marked as failed`` (+ rollback), DeploymentUpdateResponse."""
    upd = {"AutoRevert": True, "MinHealthyTime": 100 * MS, "HealthyDeadline": 30_000 * MS}
    await http("POST", "/v1/jobs", job("1", update=upd))
    await settle(http, 0, "successful")
    await http("POST", "/v1/jobs", job("2", check="critical", update=upd))
    dep = await settle(http, 1, "running")
    code, out = await http("POST", f"/v1/deployment/fail/{dep['ID']}")
    assert code == 200
    assert list(out) == [
        "EvalID",
        "EvalCreateIndex",
        "DeploymentModifyIndex",
        "RevertedJobVersion",
        "Index",
    ]
    assert out["RevertedJobVersion"] == 0
    assert out["EvalCreateIndex"] == out["DeploymentModifyIndex"] == out["Index"]
    _, got = await http("GET", f"/v1/deployment/{dep['ID']}")
    assert got["Status"] == "failed"
    assert got["StatusDescription"] == "Deployment marked as failed - rolling back to job version 0"
    code, text = await http("POST", f"/v1/deployment/fail/{dep['ID']}")
    assert (code, text) == (500, "can't fail terminal deployment")
    code, text = await http("GET", f"/v1/deployment/fail/{dep['ID']}")
    assert code == 405


async def test_manual_canary_promotion(twin: NomadTwin, http: Callable[..., Any]) -> None:
    upd = {"Canary": 1, "MaxParallel": 1, "HealthyDeadline": 5_000 * MS}
    await http("POST", "/v1/jobs", job("1", count=2, update=upd))
    first = await settle(http, 0, "successful")
    assert first["TaskGroups"]["app"]["DesiredCanaries"] == 0  # nothing to replace yet
    await http("POST", "/v1/jobs", job("2", count=2, update=upd))
    dep = await settle(http, 1, "running")
    assert dep["StatusDescription"] == "Deployment is running but requires manual promotion"
    assert dep["TaskGroups"]["app"]["DesiredCanaries"] == 1
    _, allocs = await http("GET", "/v1/job/web/allocations")
    live = [a for a in allocs if a["DesiredStatus"] == "run"]
    assert len(live) == 3  # the canary runs beside both old allocations
    canary = next(a for a in live if a["JobVersion"] == 1)
    assert canary["DeploymentStatus"]["Canary"] is True
    # Nothing replaces the old allocations until promotion; wait for the canary's health.
    for _ in range(100):
        _, dep = await http("GET", f"/v1/deployment/{dep['ID']}")
        if dep["TaskGroups"]["app"]["HealthyAllocs"] == 1:
            break
        await asyncio.sleep(0.05)
    assert dep["Status"] == "running"
    assert dep["TaskGroups"]["app"]["PlacedCanaries"] == [canary["ID"]]
    code, text = await http("POST", f"/v1/deployment/promote/{dep['ID']}", {"All": True})
    assert (code, text) == (400, "DeploymentID must be specified")
    body = {"DeploymentID": dep["ID"], "All": True}
    code, out = await http("POST", f"/v1/deployment/promote/{dep['ID']}", body)
    assert code == 200 and out["RevertedJobVersion"] is None and out["EvalID"]
    done = await settle(http, 1, "successful")
    assert done["TaskGroups"]["app"]["Promoted"] is True
    _, allocs = await http("GET", "/v1/job/web/allocations")
    live = [a for a in allocs if a["DesiredStatus"] == "run"]
    assert sorted(a["JobVersion"] for a in live) == [1, 1]
    _, promoted = await http("GET", f"/v1/allocation/{canary['ID']}")
    assert promoted["DeploymentStatus"]["Canary"] is False  # UpdateDeploymentPromotion


async def test_promote_unhealthy_canary_is_refused(
    twin: NomadTwin, http: Callable[..., Any]
) -> None:
    upd = {"Canary": 1, "HealthyDeadline": 30_000 * MS, "ProgressDeadline": 60_000 * MS}
    await http("POST", "/v1/jobs", job("1", update=upd))
    await settle(http, 0, "successful")
    await http("POST", "/v1/jobs", job("2", check="critical", update=upd))
    dep = await settle(http, 1, "running")
    body = {"DeploymentID": dep["ID"], "All": True}
    code, text = await http("POST", f"/v1/deployment/promote/{dep['ID']}", body)
    assert code == 500
    assert text == '1 error occurred:\n\t* Task group "app" has 0/1 healthy allocations\n\n'


async def test_auto_promote(twin: NomadTwin, http: Callable[..., Any]) -> None:
    upd = {"Canary": 1, "AutoPromote": True, "HealthyDeadline": 5_000 * MS}
    await http("POST", "/v1/jobs", job("1", update=upd))
    await settle(http, 0, "successful")
    await http("POST", "/v1/jobs", job("2", update=upd))
    _, dep = await http("GET", "/v1/job/web/deployment")
    assert dep["JobVersion"] == 1
    assert dep["StatusDescription"] == "Deployment is running pending automatic promotion"
    done = await settle(http, 1, "successful")
    assert done["TaskGroups"]["app"]["Promoted"] is True


@pytest.mark.parametrize("with_consul", [False])
async def test_no_consul_means_checks_never_seen(with_consul: bool) -> None:
    """No ServiceChecks wired: like a client whose checks never reached Consul."""
    t = await start_nomad_twin(nodes=1)
    try:
        async with aiohttp.ClientSession(t.url) as s:
            async with s.post("/v1/jobs", json=job("1")) as r:
                assert r.status == 200

            async def call(method: str, path: str, body: Any = None) -> tuple[int, Any]:
                async with s.request(method, path, json=body) as r:
                    return r.status, await r.json()

            dep = await settle(call, 0, "failed")
            assert dep["StatusDescription"] == "Failed due to unhealthy allocations"
    finally:
        await t.stop()
