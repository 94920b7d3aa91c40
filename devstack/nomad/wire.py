"""Wire views of stored objects: full alloc, event alloc, list stubs, evals, summaries.

The store keeps every object with all of its keys; these views apply Nomad's encoding
rules per type (Allocation and Evaluation omit zero fields, list stubs keep them all,
event payloads carry no ``Job``).
"""

from __future__ import annotations

from typing import Any

from devstack.nomad.codec import omitempty

TERMINAL_CLIENT = ("complete", "failed", "lost")


def alloc_terminal(alloc: dict[str, Any]) -> bool:
    return alloc["DesiredStatus"] in ("stop", "evict") or alloc["ClientStatus"] in TERMINAL_CLIENT


def client_terminal(alloc: dict[str, Any]) -> bool:
    return alloc["ClientStatus"] in TERMINAL_CLIENT


def _omit_alloc(alloc: dict[str, Any]) -> dict[str, Any]:
    out = omitempty(alloc)
    dt = out.get("DesiredTransition")
    if dt is not None and all(v is None for v in dt.values()):
        del out["DesiredTransition"]
    return out


def alloc_full(alloc: dict[str, Any]) -> dict[str, Any]:
    return _omit_alloc(alloc)


def alloc_event(alloc: dict[str, Any]) -> dict[str, Any]:
    out = _omit_alloc(alloc)
    out.pop("Job", None)
    return out


STUB_KEYS = [
    "ID",
    "EvalID",
    "Name",
    "Namespace",
    "NodeID",
    "NodeName",
    "JobID",
    "JobType",
    "JobVersion",
    "TaskGroup",
    "AllocatedResources",
    "DesiredStatus",
    "DesiredDescription",
    "ClientStatus",
    "ClientDescription",
    "DesiredTransition",
    "TaskStates",
    "DeploymentStatus",
    "FollowupEvalID",
    "NextAllocation",
    "RescheduleTracker",
    "PreemptedAllocations",
    "PreemptedByAllocation",
    "CreateIndex",
    "ModifyIndex",
    "CreateTime",
    "ModifyTime",
]


def alloc_stub(
    alloc: dict[str, Any], *, resources: bool = False, task_states: bool = True
) -> dict[str, Any]:
    job = alloc.get("Job") or {}
    out: dict[str, Any] = {}
    for key in STUB_KEYS:
        if key == "JobType":
            out[key] = job.get("Type", "")
        elif key == "JobVersion":
            out[key] = job.get("Version", 0)
        elif key == "AllocatedResources":
            if resources and alloc.get("AllocatedResources") is not None:
                out[key] = alloc["AllocatedResources"]
        elif key == "TaskStates" and not task_states:
            out[key] = None
        else:
            out[key] = alloc.get(key)
    return out


def eval_wire(ev: dict[str, Any]) -> dict[str, Any]:
    return omitempty(ev)


def job_stub(job: dict[str, Any], summary: dict[str, Any], meta: bool) -> dict[str, Any]:
    out = {
        "ID": job["ID"],
        "ParentID": job["ParentID"],
        "Name": job["Name"],
        "Namespace": job["Namespace"],
        "Datacenters": job["Datacenters"],
        "NodePool": job["NodePool"],
        "Multiregion": job["Multiregion"],
        "Type": job["Type"],
        "Priority": job["Priority"],
        "Periodic": job["Periodic"] is not None and bool(job["Periodic"].get("Enabled")),
        "ParameterizedJob": job["ParameterizedJob"] is not None,
        "Stop": job["Stop"],
        "Status": job["Status"],
        "StatusDescription": job["StatusDescription"],
        "JobSummary": summary,
        "CreateIndex": job["CreateIndex"],
        "ModifyIndex": job["ModifyIndex"],
        "JobModifyIndex": job["JobModifyIndex"],
        "SubmitTime": job["SubmitTime"],
    }
    if not out["Namespace"]:
        del out["Namespace"]
    if meta and job.get("Meta"):
        out["Meta"] = job["Meta"]
    return out


def group_summary(
    allocs: list[dict[str, Any]], groups: list[str], queued: dict[str, int] | None = None
) -> dict[str, dict[str, int]]:
    summary = {
        g: {
            "Queued": (queued or {}).get(g, 0),
            "Complete": 0,
            "Failed": 0,
            "Running": 0,
            "Starting": 0,
            "Lost": 0,
            "Unknown": 0,
        }
        for g in groups
    }
    for alloc in allocs:
        row = summary.setdefault(
            alloc["TaskGroup"],
            {
                "Queued": 0,
                "Complete": 0,
                "Failed": 0,
                "Running": 0,
                "Starting": 0,
                "Lost": 0,
                "Unknown": 0,
            },
        )
        status = alloc["ClientStatus"]
        key = {
            "pending": "Starting",
            "running": "Running",
            "complete": "Complete",
            "failed": "Failed",
            "lost": "Lost",
            "unknown": "Unknown",
        }.get(status)
        if key:
            row[key] += 1
    return summary
