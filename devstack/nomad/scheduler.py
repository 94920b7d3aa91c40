"""Evaluations in, plans applied: the twin's scheduler worker and deployment watcher.

An evaluation is processed by reconciling the job against its allocations, applying the
plan in one ``PlanResult`` transaction (new allocs, stops, in-place updates, the
deployment) and completing the eval in an ``EvaluationUpdated`` transaction. The
deployment watcher marks deployments successful (job becomes Stable) or failed, and
creates follow-up evals while MaxParallel holds destructive updates back.
"""

from __future__ import annotations

import asyncio
import contextlib
import copy
import logging
import random
from typing import Any

from devstack.nomad.allocs import new_alloc
from devstack.nomad.codec import new_id, now_ns, rfc3339
from devstack.nomad.nodes import Node
from devstack.nomad.reconcile import GroupPlan, name_index, reconcile
from devstack.nomad.state import NomadState, Txn

log = logging.getLogger(__name__)


def new_eval(job: dict[str, Any], triggered_by: str, index: int, **extra: Any) -> dict[str, Any]:
    now = now_ns()
    ev = {
        "ID": new_id(),
        "Namespace": job["Namespace"],
        "Priority": job["Priority"],
        "Type": job["Type"],
        "TriggeredBy": triggered_by,
        "JobID": job["ID"],
        "JobModifyIndex": job["JobModifyIndex"],
        "NodeID": "",
        "NodeModifyIndex": 0,
        "DeploymentID": "",
        "Status": "pending",
        "StatusDescription": "",
        "Wait": 0,
        "WaitUntil": None,
        "NextEval": "",
        "PreviousEval": "",
        "BlockedEval": "",
        "RelatedEvals": None,
        "FailedTGAllocs": None,
        "PlanAnnotations": None,
        "ClassEligibility": None,
        "QuotaLimitReached": "",
        "MissingNonNodeResources": None,
        "EscapedComputedClass": False,
        "AnnotatePlan": False,
        "QueuedAllocations": None,
        "LeaderACL": "",
        "SnapshotIndex": 0,
        "CreateIndex": index,
        "ModifyIndex": index,
        "CreateTime": now,
        "ModifyTime": now,
    }
    ev.update(extra)
    return ev


class Scheduler:
    def __init__(self, state: NomadState, nodes: list[Node], client: Any) -> None:
        self.state = state
        self.nodes = nodes
        self.client = client
        self.rng = random.Random()
        self._queue: asyncio.Queue[str] = asyncio.Queue()
        self._worker: asyncio.Task[None] | None = None

    def start(self) -> None:
        self._worker = asyncio.get_running_loop().create_task(self._work())

    async def close(self) -> None:
        if self._worker is not None:
            self._worker.cancel()
            with contextlib.suppress(BaseException):
                await self._worker

    def enqueue(self, eval_id: str) -> None:
        self._queue.put_nowait(eval_id)

    async def _work(self) -> None:
        while True:
            eval_id = await self._queue.get()
            try:
                self.process(eval_id)
            except Exception:
                log.exception("evaluation %s failed", eval_id)
            await asyncio.sleep(0)

    def process(self, eval_id: str) -> None:
        st = self.state
        ev = st.evals.get(eval_id)
        if ev is None or ev["Status"] != "pending":
            return
        key = (ev["Namespace"], ev["JobID"])
        job = st.jobs.get(key)
        allocs = st.allocs_of(key)
        plans = reconcile(job, allocs, [n.id for n in self.nodes])
        placed: list[str] = []
        updated: list[str] = []
        dep_id = ""
        if any(not p.empty() for p in plans):
            with st.txn("PlanResult") as tx:
                dep_id = self._deployment(tx, job, plans, allocs)
                placed, updated = self._apply(tx, job, plans, ev, dep_id)
        with st.txn("EvaluationUpdated") as tx:
            queued = {p.name: 0 for p in plans}
            tx.put_eval(
                {
                    **ev,
                    "Status": "complete",
                    "DeploymentID": dep_id or ev["DeploymentID"],
                    "QueuedAllocations": queued,
                    "SnapshotIndex": tx.index - 1,
                    "ModifyIndex": tx.index,
                    "ModifyTime": now_ns(),
                }
            )
        for aid in updated:
            self.client.alloc_updated(aid)
        for aid in placed:
            self.client.alloc_placed(aid)

    def _deployment(
        self,
        tx: Txn,
        job: dict[str, Any] | None,
        plans: list[GroupPlan],
        allocs: list[dict[str, Any]],
    ) -> str:
        st = self.state
        current = self.latest_deployment(
            (job or {}).get("Namespace", ""), (job or {}).get("ID", "")
        )
        if (
            current is not None
            and current["Status"] == "running"
            and (job is None or job["Stop"] or current["JobVersion"] != job["Version"])
        ):
            desc = (
                "Cancelled because job is stopped"
                if job is None or job["Stop"]
                else "Cancelled due to newer version of job"
            )
            tx.put_deployment(
                {
                    **current,
                    "Status": "cancelled",
                    "StatusDescription": desc,
                    "ModifyIndex": tx.index,
                    "ModifyTime": now_ns(),
                }
            )
        if job is None or job["Stop"] or job["Type"] != "service":
            return ""
        if (
            current is not None
            and current["JobVersion"] == job["Version"]
            and current["JobCreateIndex"] == job["CreateIndex"]
        ):
            return current["ID"] if current["Status"] == "running" else ""
        groups = {
            g["Name"]: g for g in job["TaskGroups"] if (g.get("Update") or {}).get("MaxParallel")
        }
        if not groups:
            return ""
        had_current = any(a["Job"]["JobModifyIndex"] == job["JobModifyIndex"] for a in allocs)
        updating = any(p.inplace or p.destructive for p in plans)
        if had_current and not updating:
            return ""
        now = now_ns()
        dep = {
            "ID": new_id(),
            "Namespace": job["Namespace"],
            "JobID": job["ID"],
            "JobVersion": job["Version"],
            "JobModifyIndex": job["ModifyIndex"],
            "JobSpecModifyIndex": job["JobModifyIndex"],
            "JobCreateIndex": job["CreateIndex"],
            "IsMultiregion": False,
            "TaskGroups": {
                name: {
                    "AutoRevert": g["Update"]["AutoRevert"],
                    "AutoPromote": g["Update"]["AutoPromote"],
                    "ProgressDeadline": g["Update"]["ProgressDeadline"],
                    "RequireProgressBy": rfc3339(now + g["Update"]["ProgressDeadline"]),
                    "Promoted": False,
                    "PlacedCanaries": None,
                    "DesiredCanaries": 0,
                    "DesiredTotal": g["Count"],
                    "PlacedAllocs": 0,
                    "HealthyAllocs": 0,
                    "UnhealthyAllocs": 0,
                }
                for name, g in groups.items()
            },
            "Status": "running",
            "StatusDescription": "Deployment is running",
            "EvalPriority": job["Priority"],
            "CreateIndex": tx.index,
            "ModifyIndex": tx.index,
            "CreateTime": now,
            "ModifyTime": now,
        }
        st.deployments[dep["ID"]] = dep
        tx.put_deployment(dep)
        return str(dep["ID"])

    def latest_deployment(self, ns: str, job_id: str) -> dict[str, Any] | None:
        deps = self.state.deployments_of((ns, job_id))
        return deps[0] if deps else None

    def _apply(
        self,
        tx: Txn,
        job: dict[str, Any] | None,
        plans: list[GroupPlan],
        ev: dict[str, Any],
        dep_id: str,
    ) -> tuple[list[str], list[str]]:
        placed: list[str] = []
        updated: list[str] = []
        now = now_ns()
        dep = self.state.deployments.get(dep_id) if dep_id else None
        dep_groups = copy.deepcopy(dep["TaskGroups"]) if dep else {}

        def stop(alloc: dict[str, Any], desc: str, **extra: Any) -> None:
            tx.put_alloc(
                {
                    **alloc,
                    "DesiredStatus": "stop",
                    "DesiredDescription": desc,
                    "ModifyIndex": tx.index,
                    "AllocModifyIndex": tx.index,
                    "ModifyTime": now,
                    **extra,
                }
            )
            updated.append(alloc["ID"])

        def place(group: str, index: int, node: Node, previous: dict[str, Any] | None) -> str:
            assert job is not None
            alloc = new_alloc(
                job,
                group,
                index,
                node,
                ev["ID"],
                dep_id if group in dep_groups else "",
                tx.index,
                self.rng,
                previous,
            )
            tx.put_alloc(alloc)
            placed.append(alloc["ID"])
            if group in dep_groups:
                dep_groups[group]["PlacedAllocs"] += 1
            return str(alloc["ID"])

        for plan in plans:
            for alloc, desc in plan.stop:
                stop(alloc, desc)
            for alloc in plan.migrate:
                new = place(
                    plan.name, _idx(alloc), self._pick(job, plan.name, alloc["NodeID"]), alloc
                )
                stop(alloc, "alloc is being migrated", NextAllocation=new)
            for alloc in plan.destructive:
                new = place(plan.name, _idx(alloc), self._pick(job, plan.name), alloc)
                stop(alloc, "alloc is being updated due to job update", NextAllocation=new)
            for alloc in plan.inplace:
                assert job is not None
                in_dep = plan.name in dep_groups
                tx.put_alloc(
                    {
                        **alloc,
                        "Job": job,
                        "DeploymentID": dep_id if in_dep else "",
                        "DeploymentStatus": None if in_dep else alloc.get("DeploymentStatus"),
                        "ModifyIndex": tx.index,
                        "AllocModifyIndex": tx.index,
                        "ModifyTime": now,
                    }
                )
                if in_dep:
                    dep_groups[plan.name]["PlacedAllocs"] += 1
                updated.append(alloc["ID"])
            targets = [n for n in self.nodes if n.id in plan.node_targets]
            for i, index in enumerate(plan.place):
                node = targets[i] if targets else self._pick(job, plan.name)
                place(plan.name, index, node, None)
        if dep is not None:
            tx.put_deployment({**self.state.deployments[dep_id], "TaskGroups": dep_groups})
        return placed, updated

    def _pick(self, job: dict[str, Any] | None, group: str, avoid: str = "") -> Node:
        assert job is not None
        key = (job["Namespace"], job["ID"])
        live = [a for a in self.state.allocs_of(key) if a["DesiredStatus"] == "run"]
        per_node = {n.id: 0 for n in self.nodes}
        for a in live:
            if a["TaskGroup"] == group and a["NodeID"] in per_node:
                per_node[a["NodeID"]] += 1
        candidates = [n for n in self.nodes if n.id != avoid] or self.nodes
        return min(candidates, key=lambda n: (per_node[n.id], len(n.used), n.index))

    # ---- deployment watcher ------------------------------------------------------
    def deployment_changed(self, dep_id: str) -> None:
        st = self.state
        dep = st.deployments.get(dep_id)
        if dep is None or dep["Status"] != "running":
            return
        key = (dep["Namespace"], dep["JobID"])
        job = st.jobs.get(key)
        groups = dep["TaskGroups"].values()
        if any(g["UnhealthyAllocs"] > 0 for g in groups):
            with st.txn("DeploymentStatusUpdate") as tx:
                tx.put_deployment(
                    {
                        **dep,
                        "Status": "failed",
                        "StatusDescription": "Failed due to unhealthy allocations",
                        "ModifyIndex": tx.index,
                        "ModifyTime": now_ns(),
                    }
                )
            return
        if all(g["HealthyAllocs"] >= g["DesiredTotal"] for g in groups):
            with st.txn("DeploymentStatusUpdate") as tx:
                tx.put_deployment(
                    {
                        **dep,
                        "Status": "successful",
                        "StatusDescription": "Deployment completed successfully",
                        "ModifyIndex": tx.index,
                        "ModifyTime": now_ns(),
                    }
                )
                if job is not None and job["Version"] == dep["JobVersion"]:
                    stable = {**job, "Stable": True, "ModifyIndex": tx.index}
                    tx.put_job(stable)
                    versions = st.job_versions.get(key) or []
                    for i, v in enumerate(versions):
                        if v["Version"] == job["Version"]:
                            versions[i] = {**v, "Stable": True}
            return
        if job is None:
            return
        plans = reconcile(job, st.allocs_of(key), [n.id for n in self.nodes])
        if any(p.destructive for p in plans):
            with st.txn("EvaluationUpdated") as tx:
                ev = new_eval(job, "deployment-watcher", tx.index, DeploymentID=dep_id)
                tx.put_eval(ev)
            self.enqueue(ev["ID"])


def _idx(alloc: dict[str, Any]) -> int:
    return name_index(alloc)
