"""The Nomad twin fails and reschedules allocations as Nomad 1.10 does.

Pinned against the Go source (v1.10.5):
- ``client/allocrunner/taskrunner/restarts/restarts.go`` ``GetState`` and
  ``structs.TaskEvent.PopulateEventDisplayMessage``: restart ``mode = "fail"`` restarts
  ``attempts`` times, then ``Not Restarting`` with ``Exceeded allowed attempts N in interval
  D and mode is "fail"`` and the allocation ends ``failed``.
- ``nomad/node_endpoint.go`` ``UpdateAlloc``: a failed, reschedule-eligible alloc gets an
  ``alloc-failure`` eval; ``scheduler/reconcile.go`` ``createLostLaterEvals`` the delayed
  follow-up (``WaitUntil``, ``created for delayed rescheduling``, the alloc's
  ``FollowupEvalID``); ``reconcile_util.go`` ``updateByReschedulable`` reschedules it when
  that eval runs; ``generic_sched.go`` ``updateRescheduleTracker`` / ``allocRescheduled``;
  ``structs.go`` ``NextDelay`` (exponential), ``RescheduleEligible``, ``ReschedulePolicy.Validate``.

Nomad refuses delays under 5 s, so the tests drive the twin's eval delay heap
(``Scheduler.release_delayed``) instead of waiting; the WaitUntil times are checked exactly.
"""

from __future__ import annotations

import asyncio
from typing import Any

import aiohttp
import pytest

from devstack.nomad.codec import parse_rfc3339
from devstack.nomad.server import NomadTwin
from devstack.nomad.taskctx import TaskContext
from tests.support.twins import NomadTwinFactory
from tests.support.waiting import eventually

S = 1_000_000_000
MS = 1_000_000


class CrashingDriver:
    """Every start exits with code 1 shortly after: a task that always crashes."""

    async def start(self, alloc: dict[str, Any], task: dict[str, Any], ctx: TaskContext) -> None:
        asyncio.get_running_loop().call_later(0.05, ctx.task_exited, 1)

    async def stop(self, alloc: dict[str, Any], task: dict[str, Any], ctx: TaskContext) -> None:
        return None

    async def signal(
        self, alloc: dict[str, Any], task: dict[str, Any], ctx: TaskContext, signal: str
    ) -> None:
        return None

    async def restart(self, alloc: dict[str, Any], task: dict[str, Any], ctx: TaskContext) -> None:
        return None


def crash_job(restart: dict[str, Any], reschedule: dict[str, Any]) -> dict[str, Any]:
    return {
        "Job": {
            "ID": "crash",
            "Name": "crash",
            "Type": "service",
            "Datacenters": ["dc1"],
            "TaskGroups": [
                {
                    "Name": "app",
                    "Count": 1,
                    "RestartPolicy": restart,
                    "ReschedulePolicy": reschedule,
                    "Tasks": [{"Name": "app", "Driver": "crashy", "Config": {}}],
                }
            ],
        }
    }


NO_RESTART = {"Attempts": 0, "Interval": 1800 * S, "Delay": 100 * MS, "Mode": "fail"}


@pytest.fixture
async def twin(make_nomad_twin: NomadTwinFactory) -> NomadTwin:
    return await make_nomad_twin(nodes=2, drivers={"crashy": CrashingDriver()})


async def get(http: aiohttp.ClientSession, twin: NomadTwin, path: str) -> Any:
    async with http.get(f"{twin.url}{path}") as r:
        assert r.status == 200, await r.text()
        return await r.json()


async def register(http: aiohttp.ClientSession, twin: NomadTwin, body: dict[str, Any]) -> None:
    async with http.put(f"{twin.url}/v1/jobs", json=body) as r:
        assert r.status == 200, await r.text()


async def full_allocs(http: aiohttp.ClientSession, twin: NomadTwin) -> list[dict[str, Any]]:
    stubs = await get(http, twin, "/v1/job/crash/allocations?all=true")
    return [await get(http, twin, f"/v1/allocation/{s['ID']}") for s in stubs]


def fail_time(alloc: dict[str, Any]) -> int:
    """structs.go LastEventTime: the latest task FinishedAt."""
    return max(parse_rfc3339(t["FinishedAt"]) for t in alloc["TaskStates"].values())


async def test_restart_mode_fail_restarts_attempts_then_fails_the_alloc(
    twin: NomadTwin, http: aiohttp.ClientSession
) -> None:
    restart = {"Attempts": 1, "Interval": 1800 * S, "Delay": 100 * MS, "Mode": "fail"}
    await register(http, twin, crash_job(restart, {"Attempts": 0, "Unlimited": False}))

    async def failed() -> dict[str, Any] | None:
        allocs = await full_allocs(http, twin)
        return allocs[0] if allocs and allocs[0]["ClientStatus"] == "failed" else None

    alloc = await eventually(failed, within=5)
    state = alloc["TaskStates"]["app"]
    assert (state["State"], state["Failed"], state["Restarts"]) == ("dead", True, 1)
    events = [(e["Type"], e["DisplayMessage"]) for e in state["Events"]]
    assert [t for t, _ in events] == [
        "Received",
        "Task Setup",
        "Started",
        "Terminated",
        "Restarting",
        "Started",
        "Terminated",
        "Not Restarting",
        "Alloc Unhealthy",  # the deployment's health hook: taskHealthState.event
    ]
    assert events[-1][1] == "Unhealthy because of failed task"
    assert events[4][1] == "Task restarting in 100ms"
    restarting = state["Events"][4]
    assert (restarting["RestartReason"], restarting["StartDelay"]) == (
        "Restart within policy",
        100 * MS,
    )
    last = state["Events"][-2]
    assert (
        last["RestartReason"] == 'Exceeded allowed attempts 1 in interval 30m0s and mode is "fail"'
    )
    assert last["DisplayMessage"] == last["RestartReason"]
    assert last["FailsTask"] is True
    # reschedule { attempts = 0 }: the failed alloc stays, nothing replaces it, UpdateAlloc
    # creates no alloc-failure eval; the deployment fails early (shouldFailEarly).
    await asyncio.sleep(0.3)
    assert len(await full_allocs(http, twin)) == 1
    evals = await get(http, twin, "/v1/job/crash/evaluations")
    assert sorted(e["TriggeredBy"] for e in evals) == ["deployment-watcher", "job-register"]
    (dep,) = await get(http, twin, "/v1/job/crash/deployments")
    assert (dep["Status"], dep["StatusDescription"]) == (
        "failed",
        "Failed due to unhealthy allocations",
    )
    summary = await get(http, twin, "/v1/job/crash/summary")
    assert summary["Summary"]["app"]["Failed"] == 1
    assert summary["Summary"]["app"]["Running"] == 0


async def test_attempts_zero_is_policy_allows_no_restarts(
    twin: NomadTwin, http: aiohttp.ClientSession
) -> None:
    await register(http, twin, crash_job(NO_RESTART, {"Attempts": 0, "Unlimited": False}))

    async def failed() -> dict[str, Any] | None:
        allocs = await full_allocs(http, twin)
        return allocs[0] if allocs and allocs[0]["ClientStatus"] == "failed" else None

    alloc = await eventually(failed, within=5)
    (last,) = [e for e in alloc["TaskStates"]["app"]["Events"] if e["Type"] == "Not Restarting"]
    assert last["RestartReason"] == "Policy allows no restarts"


async def test_failed_alloc_is_rescheduled_after_exponential_delays(
    twin: NomadTwin, http: aiohttp.ClientSession
) -> None:
    policy = {
        "Attempts": 0,
        "Interval": 0,
        "Delay": 5 * S,
        "DelayFunction": "exponential",
        "MaxDelay": 60 * S,
        "Unlimited": True,
    }
    await register(http, twin, crash_job(NO_RESTART, policy))

    async def followup(alloc_id: str) -> tuple[dict[str, Any], dict[str, Any]] | None:
        alloc = await get(http, twin, f"/v1/allocation/{alloc_id}")
        if alloc["ClientStatus"] != "failed" or not alloc.get("FollowupEvalID"):
            return None
        return alloc, await get(http, twin, f"/v1/evaluation/{alloc['FollowupEvalID']}")

    first = (await full_allocs(http, twin))[0]
    a, fe = await eventually(lambda: followup(first["ID"]), within=5)
    # UpdateAlloc's eval; the alloc is in the running deployment, so only once the watcher
    # marked it DesiredTransition.Reschedule (and evaluated) may it reschedule: the follow-up
    # comes from one of the two, pending until WaitUntil.
    triggers = {e["TriggeredBy"] for e in await get(http, twin, "/v1/job/crash/evaluations")}
    assert {"job-register", "alloc-failure", "deployment-watcher"} <= triggers
    assert a["DesiredTransition"]["Reschedule"] is True
    previous = await get(http, twin, f"/v1/evaluation/{fe['PreviousEval']}")
    assert previous["Status"] == "complete"
    assert (fe["TriggeredBy"], fe["Status"], fe["StatusDescription"]) == (
        "alloc-failure",
        "pending",
        "created for delayed rescheduling",
    )
    assert parse_rfc3339(fe["WaitUntil"]) - fail_time(a) == 5 * S
    assert (await get(http, twin, "/v1/job/crash"))["Status"] == "pending"
    assert len(await full_allocs(http, twin)) == 1  # nothing placed before WaitUntil

    assert twin.scheduler.release_delayed() == [fe["ID"]]

    async def replaced(alloc_id: str) -> dict[str, Any] | None:
        old = await get(http, twin, f"/v1/allocation/{alloc_id}")
        return old if old["NextAllocation"] else None

    a = await eventually(lambda: replaced(first["ID"]), within=5)
    assert (a["DesiredStatus"], a["DesiredDescription"]) == (
        "stop",
        "alloc was rescheduled because it failed",
    )
    assert a["RescheduleTracker"]["LastReschedule"] == "ok"
    b = await get(http, twin, f"/v1/allocation/{a['NextAllocation']}")
    assert b["PreviousAllocation"] == a["ID"]
    assert b["Name"] == a["Name"]
    assert b["NodeID"] != a["NodeID"]  # the previous node is penalised
    assert b["EvalID"] == fe["ID"]
    (event,) = b["RescheduleTracker"]["Events"]
    assert (event["PrevAllocID"], event["PrevNodeID"], event["Delay"]) == (
        a["ID"],
        a["NodeID"],
        5 * S,
    )
    assert b["RescheduleTracker"]["LastReschedule"] == "ok"

    # The replacement crashes too: the next delay doubles (NextDelay, exponential).
    b, fe2 = await eventually(lambda: followup(b["ID"]), within=5)
    assert parse_rfc3339(fe2["WaitUntil"]) - fail_time(b) == 10 * S
    twin.scheduler.release_delayed()
    b = await eventually(lambda: replaced(b["ID"]), within=5)
    c = await get(http, twin, f"/v1/allocation/{b['NextAllocation']}")
    assert [e["Delay"] for e in c["RescheduleTracker"]["Events"]] == [5 * S, 10 * S]
    assert [e["PrevAllocID"] for e in c["RescheduleTracker"]["Events"]] == [a["ID"], b["ID"]]


async def test_limited_attempts_end_with_a_failed_alloc(
    twin: NomadTwin, http: aiohttp.ClientSession
) -> None:
    policy = {
        "Attempts": 1,
        "Interval": 3600 * S,
        "Delay": 5 * S,
        "DelayFunction": "constant",
        "MaxDelay": 0,
        "Unlimited": False,
    }
    await register(http, twin, crash_job(NO_RESTART, policy))

    async def pending_followup() -> bool:
        allocs = await full_allocs(http, twin)
        return any(a.get("FollowupEvalID") for a in allocs)

    await eventually(pending_followup, within=5)
    twin.scheduler.release_delayed()

    async def second_failed() -> list[dict[str, Any]] | None:
        allocs = await full_allocs(http, twin)
        ok = len(allocs) == 2 and all(a["ClientStatus"] == "failed" for a in allocs)
        return allocs if ok else None

    allocs = await eventually(second_failed, within=5)
    await asyncio.sleep(0.3)
    # RescheduleEligible: 1 attempt inside the interval is all the policy allows.
    latest = max(allocs, key=lambda a: a["CreateIndex"])
    latest = await get(http, twin, f"/v1/allocation/{latest['ID']}")
    # Zero values are omitted on the wire (codec omitempty).
    assert latest["DesiredStatus"] == "run"
    assert "FollowupEvalID" not in latest
    assert "NextAllocation" not in latest
    assert len(latest["RescheduleTracker"]["Events"]) == 1
    assert len(await full_allocs(http, twin)) == 2
    assert twin.scheduler.release_delayed() == []
    assert (await get(http, twin, "/v1/job/crash"))["Status"] == "dead"


@pytest.mark.parametrize(
    ("policy", "text"),
    [
        (
            {"Attempts": 0, "Delay": 1 * S, "DelayFunction": "constant", "Unlimited": True},
            "Delay cannot be less than 5s (got 1s)",
        ),
        (
            {
                "Attempts": 3,
                "Interval": 20 * S,
                "Delay": 10 * S,
                "DelayFunction": "constant",
                "Unlimited": False,
            },
            "Nomad can only make 2 attempts in 20s with initial delay 10s and delay function "
            '"constant"',
        ),
        (
            {"Attempts": 1, "Interval": 3600 * S, "Delay": 5 * S, "DelayFunction": "linear"},
            'Invalid delay function "linear", must be one of '
            '["constant" "exponential" "fibonacci"]',
        ),
    ],
)
async def test_register_validates_the_reschedule_policy(
    twin: NomadTwin, http: aiohttp.ClientSession, policy: dict[str, Any], text: str
) -> None:
    async with http.put(f"{twin.url}/v1/jobs", json=crash_job(NO_RESTART, policy)) as r:
        body = await r.text()
    assert r.status == 500
    assert body.startswith("1 error occurred:\n\t* Task group app validation failed: ")
    assert f"\n\t* {text}\n" in body
