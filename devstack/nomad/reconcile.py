"""Decide what a job's allocations should become: Nomad's reconciler in miniature.

Pure over the store: for each task group it returns which allocations to place, stop,
update in place or replace (destructive update, limited by Update.MaxParallel while
earlier replacements are not yet healthy), plus the plan annotation counts.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

from devstack.nomad import reschedule as resched
from devstack.nomad.wire import client_terminal

# Changes to these never force a new allocation (Nomad updates them in place).
_INPLACE_GROUP = (
    "Count",
    "Update",
    "Migrate",
    "ReschedulePolicy",
    "Scaling",
    "Services",
    "Spreads",
    "Affinities",
    "Constraints",
    "Consul",
)
_INPLACE_TASK = (
    "Services",
    "Constraints",
    "Affinities",
    "KillTimeout",
    "LogConfig",
    "RestartPolicy",
    "ShutdownDelay",
    "KillSignal",
)
_NAME_INDEX = re.compile(r"\[(\d+)\]$")

ANNOTATION_KEYS = [
    "Ignore",
    "Place",
    "Migrate",
    "Stop",
    "InPlaceUpdate",
    "DestructiveUpdate",
    "Canary",
    "Preemptions",
    "Reconnect",
    "RescheduleNow",
    "RescheduleLater",
    "Disconnect",
]


@dataclass
class GroupPlan:
    name: str
    place: list[int] = field(default_factory=list)  # name indexes of new allocs
    stop: list[tuple[dict[str, Any], str]] = field(default_factory=list)  # (alloc, desc)
    inplace: list[dict[str, Any]] = field(default_factory=list)
    destructive: list[dict[str, Any]] = field(default_factory=list)
    migrate: list[dict[str, Any]] = field(default_factory=list)
    canaries: list[int] = field(default_factory=list)  # name indexes of new canaries
    ignore: int = 0
    node_targets: list[str] = field(default_factory=list)  # system jobs: node per placement
    reschedule: list[dict[str, Any]] = field(default_factory=list)  # failed allocs to replace now
    later: list[tuple[dict[str, Any], int]] = field(default_factory=list)  # (alloc, reschedule at)

    def annotation(self) -> dict[str, int]:
        out = dict.fromkeys(ANNOTATION_KEYS, 0)
        out.update(
            Ignore=self.ignore,
            # computeReplacements: a reschedule is one placement and one stop.
            Place=len(self.place) + len(self.reschedule),
            Migrate=len(self.migrate),
            Stop=len(self.stop) + len(self.reschedule),
            InPlaceUpdate=len(self.inplace),
            DestructiveUpdate=len(self.destructive),
            Canary=len(self.canaries),
        )
        return out

    def empty(self) -> bool:
        return not (
            self.place
            or self.stop
            or self.inplace
            or self.destructive
            or self.migrate
            or self.canaries
            or self.reschedule
            or self.later
        )


def name_index(alloc: dict[str, Any]) -> int:
    m = _NAME_INDEX.search(alloc["Name"])
    return int(m.group(1)) if m else 0


def _strip_group(tg: dict[str, Any], job_meta: Any) -> dict[str, Any]:
    out = {k: v for k, v in tg.items() if k not in _INPLACE_GROUP}
    out["Tasks"] = [
        {k: v for k, v in t.items() if k not in _INPLACE_TASK} for t in tg.get("Tasks") or []
    ]
    out["_JobMeta"] = job_meta
    return out


def destructive_change(old_job: dict[str, Any], new_job: dict[str, Any], group: str) -> bool:
    old = next((g for g in old_job["TaskGroups"] if g["Name"] == group), None)
    new = next((g for g in new_job["TaskGroups"] if g["Name"] == group), None)
    if old is None or new is None:
        return True
    return _strip_group(old, old_job.get("Meta")) != _strip_group(new, new_job.get("Meta"))


def live_allocs(allocs: list[dict[str, Any]], group: str, batch: bool) -> list[dict[str, Any]]:
    out = []
    for a in allocs:
        if a["TaskGroup"] != group or a["DesiredStatus"] != "run":
            continue
        if client_terminal(a) and not (batch and a["ClientStatus"] == "complete"):
            continue
        out.append(a)
    return sorted(out, key=name_index)


def _canary(alloc: dict[str, Any]) -> bool:
    return bool((alloc.get("DeploymentStatus") or {}).get("Canary"))


def failed_allocs(
    allocs: list[dict[str, Any]],
    group: str,
    job: dict[str, Any],
    deployment: dict[str, Any] | None,
    eval_id: str,
    now: int,
) -> tuple[list[dict[str, Any]], list[tuple[dict[str, Any], int]], list[dict[str, Any]]]:
    """The failed allocations of a group split as ``filterByRescheduleable`` splits them.

    Returns (reschedule now, reschedule later with its time, untainted). Failed allocations
    of an older job version are ignored (``filterOldTerminalAllocs``: a replacement is placed
    for them); one already replaced (``NextAllocation``) is skipped. ``updateByReschedulable``:
    inside the active deployment only allocations the watcher marked
    ``DesiredTransition.Reschedule`` may go; the rest is eligible now when this eval is the
    alloc's follow-up eval or its time is within ``rescheduleWindowSize``, later when it has
    no follow-up eval yet. Untainted failed allocations count against ``Count``: they are not
    replaced (a failed alloc that may not be rescheduled stays failed).
    """
    now_list: list[dict[str, Any]] = []
    later: list[tuple[dict[str, Any], int]] = []
    untainted: list[dict[str, Any]] = []
    for a in allocs:
        if a["TaskGroup"] != group or a["DesiredStatus"] != "run" or a["ClientStatus"] != "failed":
            continue
        if a["Job"]["Version"] < job["Version"] or a.get("NextAllocation"):
            continue
        transition = a.get("DesiredTransition") or {}
        gated = (
            deployment is not None
            and a.get("DeploymentID") == deployment["ID"]
            and deployment["Status"] in ("running", "paused", "pending", "blocked", "unblocking")
            and not transition.get("Reschedule")
        )
        untainted.append(a)
        if gated:
            continue
        when, ok = resched.next_reschedule_time(a)
        if transition.get("ForceReschedule") or (
            ok
            and (
                (eval_id and a.get("FollowupEvalID") == eval_id)
                or when - now <= resched.RESCHEDULE_WINDOW
            )
        ):
            untainted.remove(a)
            now_list.append(a)
        elif ok and not a.get("FollowupEvalID"):
            later.append((a, when))
    return now_list, later, untainted


def reconcile(
    job: dict[str, Any] | None,
    allocs: list[dict[str, Any]],
    node_ids: list[str],
    deployment: dict[str, Any] | None = None,
    eval_id: str = "",
    now: int = 0,
) -> list[GroupPlan]:
    """``deployment``: the job's running deployment for this version, if any; its
    ``Promoted`` flags decide whether canaries (``update.canary``) still gate the update.
    ``eval_id``/``now``: the evaluation being processed, for ``updateByReschedulable``."""
    plans: list[GroupPlan] = []
    groups = {g["Name"]: g for g in (job["TaskGroups"] if job else [])}
    stopped = job is None or job["Stop"]
    jtype = job["Type"] if job is not None else ""
    batch = jtype in ("batch", "sysbatch")
    system = jtype in ("system", "sysbatch")
    names = sorted({a["TaskGroup"] for a in allocs} | set(groups))
    for name in names:
        plan = GroupPlan(name)
        live = live_allocs(allocs, name, batch)
        tg = groups.get(name)
        if stopped or tg is None:
            plan.stop = [(a, "alloc not needed due to job update") for a in live]
            plans.append(plan)
            continue
        assert job is not None
        keep: list[dict[str, Any]] = []
        for a in live:
            if (a.get("DesiredTransition") or {}).get("Migrate"):
                plan.migrate.append(a)
            else:
                keep.append(a)
        canaries: list[dict[str, Any]] = []
        if system:
            by_node = {a["NodeID"]: a for a in keep}
            for a in keep:
                if a["NodeID"] not in node_ids or by_node[a["NodeID"]] is not a:
                    plan.stop.append((a, "alloc not needed due to job update"))
            keep = [a for a in keep if a["NodeID"] in node_ids and by_node[a["NodeID"]] is a]
            plan.node_targets = [n for n in node_ids if n not in by_node]
            plan.place = [0] * len(plan.node_targets)
        else:
            desired = tg["Count"]
            current = job["JobModifyIndex"]
            canaries = [a for a in keep if _canary(a) and a["Job"]["JobModifyIndex"] == current]
            keep = [a for a in keep if a not in canaries]
            promoted = bool(
                ((deployment or {}).get("TaskGroups") or {}).get(name, {}).get("Promoted")
            )
            if promoted:
                # reconcile.go computeStop: promoted canaries take their names' place.
                fresh = {name_index(a) for a in keep if a["Job"]["JobModifyIndex"] == current}
                for a in list(keep):
                    if a["Job"]["JobModifyIndex"] != current and name_index(a) in fresh:
                        plan.stop.append((a, "alloc not needed due to job update"))
                        keep.remove(a)
            plan.reschedule, plan.later, held = failed_allocs(
                allocs, name, job, deployment, eval_id, now
            )
            failed = plan.reschedule + held  # held includes the rescheduled-later ones
            while len(keep) > desired:
                plan.stop.append((keep.pop(), "alloc not needed due to job update"))
            counted = keep + plan.migrate + failed
            used = {name_index(a) for a in counted}
            free = [i for i in range(desired + len(counted)) if i not in used]
            plan.place = free[: max(0, desired - len(counted))]
        outdated = [a for a in keep if a["Job"]["JobModifyIndex"] != job["JobModifyIndex"]]
        destructive = [a for a in outdated if destructive_change(a["Job"], job, name)]
        plan.inplace = [a for a in outdated if a not in destructive]
        limit = len(destructive)
        update = tg.get("Update") or {}
        if job["Type"] == "service" and update.get("MaxParallel", 0) > 0:
            inflight = [
                a
                for a in keep
                if a["Job"]["JobModifyIndex"] == job["JobModifyIndex"]
                and (a.get("DeploymentStatus") or {}).get("Healthy") is not True
            ]
            limit = max(0, update["MaxParallel"] - len(inflight))
        plan.destructive = destructive[:limit]
        want_canaries = update.get("Canary", 0) if job["Type"] == "service" else 0
        if want_canaries and destructive and not system:
            promoted = bool(
                ((deployment or {}).get("TaskGroups") or {}).get(name, {}).get("Promoted")
            )
            if not promoted:
                # reconcile.go computeCanaries: place canaries beside the old allocations,
                # replace nothing until the deployment is promoted.
                taken = {name_index(a) for a in canaries}
                names = [name_index(a) for a in destructive if name_index(a) not in taken]
                plan.canaries = names[: max(0, want_canaries - len(canaries))]
                plan.destructive = []
        if (deployment or {}).get("Status") == "paused" and not system:
            # computeGroup: deploymentPlaceReady is false while paused: no placements, no
            # destructive updates, no canaries (reschedules still go, computeReplacements).
            plan.place, plan.destructive, plan.canaries = [], [], []
        plan.ignore = len(keep) - len(plan.inplace) - len(plan.destructive)
        plans.append(plan)
    return plans
