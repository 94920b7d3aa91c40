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
from collections import deque
from typing import Any

from devstack.nomad import netindex
from devstack.nomad import reschedule as resched
from devstack.nomad.allocs import new_alloc
from devstack.nomad.canon import spec_of
from devstack.nomad.codec import NS, new_id, now_ns, parse_rfc3339, rfc3339
from devstack.nomad.nodes import Node
from devstack.nomad.portfit import PortFit, fit_plans
from devstack.nomad.reconcile import GroupPlan, name_index, reconcile
from devstack.nomad.state import NomadState, Txn
from devstack.nomad.volumes import (
    FILTER_HOST_VOLUMES,
    CSIVolumes,
    csi_feasible,
    filter_node,
    group_volumes,
    has_host_volumes,
    new_metric,
)
from devstack.nomad.wire import alloc_terminal, client_terminal

# generic_sched.go blockedEvalFailedPlacements.
BLOCKED_DESC = "created to place remaining allocations"

# structs.go DeploymentStatusDescription* (the texts Nomad reports).
FAILED_ALLOCS = "Failed due to unhealthy allocations"
PROGRESS_DEADLINE = "Failed due to progress deadline"
FAILED_BY_USER = "Deployment marked as failed"

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
        self._deadlines: dict[str, tuple[int, asyncio.TimerHandle]] = {}
        self._delayed: dict[str, asyncio.TimerHandle] = {}  # eval ID -> WaitUntil timer
        self.csi = CSIVolumes(nodes)
        self._allowed: dict[str, list[Node]] = {}  # group -> feasible nodes, this eval
        self._port_nodes: dict[str, deque[Node]] = {}  # group -> chosen nodes, this eval

    def start(self) -> None:
        self._worker = asyncio.get_running_loop().create_task(self._work())

    async def close(self) -> None:
        if self._worker is not None:
            self._worker.cancel()
            for _, handle in self._deadlines.values():
                handle.cancel()
            for handle in self._delayed.values():
                handle.cancel()
            with contextlib.suppress(BaseException):
                await self._worker

    def enqueue(self, eval_id: str) -> None:
        self._queue.put_nowait(eval_id)

    def enqueue_at(self, eval_id: str, wait_until: int) -> None:
        """The eval broker's delay heap: a pending eval with ``WaitUntil`` is handed to a
        worker only once that time has passed (``eval_broker.go`` ``runDelayedEvalsWatcher``)."""
        delay = max(0.0, (wait_until - now_ns()) / NS)
        handle = asyncio.get_running_loop().call_later(delay, self._release, eval_id)
        self._delayed[eval_id] = handle

    def _release(self, eval_id: str) -> None:
        self._delayed.pop(eval_id, None)
        self.enqueue(eval_id)

    def release_delayed(self) -> list[str]:
        """Test seam: hand every delayed eval to the worker now, as if its ``WaitUntil`` had
        passed. Nomad refuses reschedule delays under 5 s, so tests drive the delay heap
        instead of sleeping; the reconciler still matches the alloc's ``FollowupEvalID``."""
        released = list(self._delayed)
        for eval_id in released:
            self._delayed.pop(eval_id).cancel()
            self.enqueue(eval_id)
        return released

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
        now = now_ns()
        plans = reconcile(job, allocs, [n.id for n in self.nodes], self._active(job), ev["ID"], now)
        rolling = system_rolling_limit(job, plans)
        had_work = any(not p.empty() for p in plans)
        failed, queued = self._feasibility(job, plans)
        placed: list[str] = []
        updated: list[str] = []
        dep_id = ""
        followups: list[dict[str, Any]] = []
        if job is not None and not ev.get("WaitUntil") and any(p.later for p in plans):
            # generic_sched.go: follow-up evals are created (planner.CreateEval) before the
            # plan is submitted, unless this eval was itself a delayed one.
            with st.txn("EvaluationUpdated") as tx:
                for plan in plans:
                    followups += _followup_evals(job, plan, ev, tx)
        next_eval = None
        if rolling and job is not None and had_work:
            # scheduler_system.go process: the next rolling eval is created (CreateEval)
            # before the plan is submitted, and waits the job's stagger in the broker.
            with st.txn("EvaluationUpdated") as tx:
                next_eval = new_eval(
                    job,
                    "rolling-update",
                    tx.index,
                    JobModifyIndex=ev["JobModifyIndex"],
                    Priority=ev["Priority"],
                    Wait=job["Update"]["Stagger"],
                    PreviousEval=ev["ID"],
                )
                tx.put_eval(next_eval)
        blocked = None
        if failed and job is not None and ev["Status"] != "blocked":
            # generic_sched.go createBlockedEval (Evaluation.CreateBlockedEval): submitted
            # through planner.CreateEval before the plan.
            with st.txn("EvaluationUpdated") as tx:
                blocked = new_eval(
                    job,
                    "queued-allocs",
                    tx.index,
                    Status="blocked",
                    StatusDescription=BLOCKED_DESC,
                    JobModifyIndex=ev["JobModifyIndex"],
                    Priority=ev["Priority"],
                    PreviousEval=ev["ID"],
                    FailedTGAllocs=failed,
                )
                tx.put_eval(blocked)
        pruned_all = had_work and all(p.empty() for p in plans)
        if any(not p.empty() for p in plans) or (
            # A plan whose placements all failed still carries a new deployment
            # (Plan.IsNoOp is false with a Deployment), as for any service job.
            pruned_all and job is not None and job["Type"] == "service"
        ):
            with st.txn("PlanResult") as tx:
                dep_id = self._deployment(tx, job, plans, allocs, force=pruned_all)
                placed, updated = self._apply(tx, job, plans, ev, dep_id)
        with st.txn("EvaluationUpdated") as tx:
            # setStatus: FailedTGAllocs, BlockedEval and QueuedAllocations of this eval;
            # nestedUpsertEval copies QueuedAllocations into the job summary's Queued.
            if job is not None:
                st.queued[key] = {**st.queued.get(key, {}), **queued}
            tx.put_eval(
                {
                    **ev,
                    "Status": "complete",
                    "DeploymentID": dep_id or ev["DeploymentID"],
                    "FailedTGAllocs": failed or None,
                    "BlockedEval": blocked["ID"] if blocked else ev["BlockedEval"],
                    "NextEval": next_eval["ID"] if next_eval else ev["NextEval"],
                    "QueuedAllocations": queued,
                    "SnapshotIndex": tx.index - 1,
                    "ModifyIndex": tx.index,
                    "ModifyTime": now_ns(),
                }
            )
        if dep_id:
            self._arm_deadline(dep_id)
        for fe in followups:
            self.enqueue_at(fe["ID"], parse_rfc3339(fe["WaitUntil"]))
        if next_eval is not None:  # eval_broker.go processWaitingEnqueue: held for Wait
            self.enqueue_at(next_eval["ID"], now_ns() + int(next_eval["Wait"]))
        for aid in updated:
            self.client.alloc_updated(aid)
        for aid in placed:
            self.client.alloc_placed(aid)
        if ev["DeploymentID"] and not placed:
            # reconcile.go marks a deployment complete when an eval finds nothing left
            # to do (e.g. after a promotion that only stops the replaced allocations).
            self.deployment_changed(ev["DeploymentID"])

    def _deployment(
        self,
        tx: Txn,
        job: dict[str, Any] | None,
        plans: list[GroupPlan],
        allocs: list[dict[str, Any]],
        force: bool = False,
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
        updating = force or any(p.inplace or p.destructive or p.canaries for p in plans)
        if had_current and not updating:
            return ""
        now = now_ns()
        # reconcile.go: a group wants canaries only when its update is destructive.
        desired_canaries = {
            p.name: groups[p.name]["Update"].get("Canary", 0)
            for p in plans
            if p.name in groups and p.canaries
        }
        desc = "Deployment is running"
        if desired_canaries:
            auto = all(groups[n]["Update"].get("AutoPromote") for n in desired_canaries)
            desc = (
                "Deployment is running pending automatic promotion"
                if auto
                else "Deployment is running but requires manual promotion"
            )
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
                    # Zero until the first placement (updateDeploymentWithAlloc).
                    "RequireProgressBy": None,
                    "Promoted": False,
                    "PlacedCanaries": None,
                    "DesiredCanaries": desired_canaries.get(name, 0),
                    "DesiredTotal": g["Count"],
                    "PlacedAllocs": 0,
                    "HealthyAllocs": 0,
                    "UnhealthyAllocs": 0,
                }
                for name, g in groups.items()
            },
            "Status": "running",
            "StatusDescription": desc,
            "EvalPriority": job["Priority"],
            "CreateIndex": tx.index,
            "ModifyIndex": tx.index,
            "CreateTime": now,
            "ModifyTime": now,
        }
        st.deployments[dep["ID"]] = dep
        tx.put_deployment(dep)
        return str(dep["ID"])

    def _active(self, job: dict[str, Any] | None) -> dict[str, Any] | None:
        """The running deployment of the job's current version (canary promotion state)."""
        if job is None:
            return None
        dep = self.latest_deployment(job["Namespace"], job["ID"])
        if dep is None or dep["Status"] not in ("running", "paused"):
            return None
        return dep if dep["JobVersion"] == job["Version"] else None

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

        def place(
            group: str,
            index: int,
            node: Node,
            previous: dict[str, Any] | None,
            canary: bool = False,
            tracker: dict[str, Any] | None = None,
        ) -> str:
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
            if tracker is not None:
                alloc["RescheduleTracker"] = tracker
            if canary:
                alloc["DeploymentStatus"] = {
                    "Healthy": None,
                    "Timestamp": None,
                    "Canary": True,
                    "ModifyIndex": 0,
                }
            tx.put_alloc(alloc)
            placed.append(alloc["ID"])
            if group in dep_groups:
                _placed(dep_groups[group], alloc["ModifyTime"])
                if canary:
                    row = dep_groups[group]
                    row["PlacedCanaries"] = [*(row["PlacedCanaries"] or []), alloc["ID"]]
            return str(alloc["ID"])

        for plan in plans:
            for alloc, desc in plan.stop:
                stop(alloc, desc)
            for alloc in plan.reschedule:
                # computeReplacements + generic_sched computePlacements: the replacement
                # carries PreviousAllocation and the tracker (updateRescheduleTracker); the
                # failed alloc is stopped with allocRescheduled, its tracker annotated "ok"
                # (annotateRescheduleTracker) and NextAllocation set by the state store.
                new = place(
                    plan.name,
                    _idx(alloc),
                    self._pick(job, plan.name, alloc["NodeID"]),
                    alloc,
                    tracker=resched.new_tracker(alloc, now),
                )
                prev_tracker = alloc.get("RescheduleTracker") or {"Events": None}
                stop(
                    alloc,
                    resched.RESCHEDULED,
                    NextAllocation=new,
                    RescheduleTracker={**prev_tracker, "LastReschedule": "ok"},
                )
            for alloc, _ in plan.later:
                # createRescheduleLaterEvals: an attribute update marks the follow-up eval.
                tx.put_alloc(
                    {
                        **self.state.allocs[alloc["ID"]],
                        "ModifyIndex": tx.index,
                        "AllocModifyIndex": tx.index,
                        "ModifyTime": now,
                    }
                )
            for alloc in plan.migrate:
                new = place(
                    plan.name, _idx(alloc), self._pick(job, plan.name, alloc["NodeID"]), alloc
                )
                stop(alloc, "alloc is being migrated", NextAllocation=new)
            for alloc in plan.destructive:
                node = self._pick(job, plan.name)
                if job is not None and job["Type"] in ("system", "sysbatch"):
                    # system_util.go evictAndPlace: the replacement goes where the old ran
                    node = next((n for n in self.nodes if n.id == alloc["NodeID"]), node)
                new = place(plan.name, _idx(alloc), node, alloc)
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
                    _placed(dep_groups[plan.name], now)
                updated.append(alloc["ID"])
            for index in plan.canaries:
                place(plan.name, index, self._pick(job, plan.name), None, canary=True)
            targets = [n for n in self.nodes if n.id in plan.node_targets]
            for i, index in enumerate(plan.place):
                node = targets[i] if targets else self._pick(job, plan.name)
                place(plan.name, index, node, None)
        if dep is not None:
            tx.put_deployment({**self.state.deployments[dep_id], "TaskGroups": dep_groups})
        return placed, updated

    def _pick(self, job: dict[str, Any] | None, group: str, avoid: str = "") -> Node:
        assert job is not None
        chosen = self._port_nodes.get(group)
        if chosen:  # static ports: the node portfit chose for this placement
            return chosen.popleft()
        feasible = self._allowed.get(group, self.nodes)
        candidates = [n for n in feasible if n.id != avoid] or feasible
        return self._choose(job, group, candidates, {})

    def _choose(
        self, job: dict[str, Any], group: str, candidates: list[Node], placed: dict[str, int]
    ) -> Node:
        """Fewest live allocations of the group (plus ``placed`` in this eval), then the
        fewest used ports, then the node order."""
        key = (job["Namespace"], job["ID"])
        live = [a for a in self.state.allocs_of(key) if a["DesiredStatus"] == "run"]
        per_node = {n.id: placed.get(n.id, 0) for n in self.nodes}
        for a in live:
            if a["TaskGroup"] == group and a["NodeID"] in per_node:
                per_node[a["NodeID"]] += 1
        return min(candidates, key=lambda n: (per_node[n.id], len(n.used), n.index))

    def _fit_ports(self, job: dict[str, Any], plans: list[GroupPlan]) -> dict[str, dict[str, Any]]:
        """Nodes for the placements of groups with static ports, decided before the plan is
        written (``portfit``); returns the groups that failed to place, with their metric."""
        if not any(netindex.static_ports(g) for g in job["TaskGroups"] or []):
            return {}
        fit = PortFit(self.nodes, list(self.state.allocs.values()))
        pool = job.get("NodePool") or "default"
        self._port_nodes, failed = fit_plans(
            job,
            plans,
            fit,
            self._allowed,
            lambda: new_metric(self.nodes, pool),
            lambda group, nodes, placed: self._choose(job, group, nodes, placed),
        )
        return failed

    # ---- feasibility (scheduler/feasible.go, generic_sched.go computePlacements) ---------
    def _feasibility(
        self, job: dict[str, Any] | None, plans: list[GroupPlan]
    ) -> tuple[dict[str, dict[str, Any]], dict[str, int]]:
        """Run the volume checkers for every group that places something. A group with no
        feasible node places nothing: its first failed placement records the
        ``AllocMetric`` and every further one adds a ``CoalescedFailures``; the previous
        allocations of destructive updates and migrations are not stopped (``PopUpdate``).
        Returns ``failedTGAllocs`` and ``queuedAllocs`` (placements still owed per group).
        System jobs skip infeasible nodes without a failure, as the system scheduler does
        for nodes filtered by constraints."""
        self._allowed = {}
        self._port_nodes = {}
        failed: dict[str, dict[str, Any]] = {}
        queued = {p.name: 0 for p in plans}
        if job is None:
            return failed, queued
        groups = {g["Name"]: g for g in job["TaskGroups"] or []}
        for plan in plans:
            requests = group_volumes(groups.get(plan.name) or {})
            if not requests:
                continue
            metric = new_metric(self.nodes, job.get("NodePool") or "default")
            feasible = []
            for node in self.nodes:
                metric["NodesEvaluated"] += 1
                reason = "" if has_host_volumes(node, requests) else FILTER_HOST_VOLUMES
                if not reason:
                    reason = csi_feasible(
                        node,
                        job["Namespace"],
                        job["ID"],
                        requests,
                        self.csi_volume,
                        self.state.allocs.get,
                    )
                if reason:
                    filter_node(metric, reason)
                else:
                    feasible.append(node)
            self._allowed[plan.name] = feasible
            if plan.node_targets:
                ok = {n.id for n in feasible}
                keep = [i for i, nid in enumerate(plan.node_targets) if nid in ok]
                plan.place = [plan.place[i] for i in keep]
                plan.node_targets = [plan.node_targets[i] for i in keep]
                continue
            wanted = (
                len(plan.place)
                + len(plan.canaries)
                + len(plan.destructive)
                + len(plan.reschedule)
                + len(plan.migrate)
            )
            if feasible or not wanted:
                continue
            metric["CoalescedFailures"] = wanted - 1
            failed[plan.name] = metric
            queued[plan.name] = wanted
            plan.place, plan.canaries, plan.destructive = [], [], []
            plan.reschedule, plan.migrate = [], []
        for name, metric in self._fit_ports(job, plans).items():
            failed[name] = metric
            queued[name] = 1 + metric["CoalescedFailures"]
        return failed, queued

    def csi_volume(self, namespace: str, vol_id: str) -> dict[str, Any] | None:
        """A CSI volume as ``CSIVolumeByID`` + denormalisation return it (None if absent)."""
        vol = self.csi.volumes.get((namespace, vol_id))
        if vol is None:
            return None
        return self.csi.denormalize(vol, self.state.allocs.values())

    # ---- deployment watcher (nomad/deploymentwatcher/deployment_watcher.go) -------------
    def deployment_changed(self, dep_id: str) -> None:
        """``watch`` on an allocation update: ``handleAllocUpdate``, then progress."""
        st = self.state
        dep = st.deployments.get(dep_id)
        if dep is None or dep["Status"] != "running":
            return
        key = (dep["Namespace"], dep["JobID"])
        job = st.jobs.get(key)
        allocs = [a for a in st.allocs_of(key) if a.get("DeploymentID") == dep_id]
        fail = rollback = False
        replace: list[dict[str, Any]] = []
        for alloc in allocs:
            dstate = dep["TaskGroups"].get(alloc["TaskGroup"])
            if dstate is None:
                continue
            early = self._should_fail_early(dep, alloc, dstate, job)
            transition = alloc.get("DesiredTransition") or {}
            if (
                (alloc.get("DeploymentStatus") or {}).get("Healthy") is False
                and not early
                and not transition.get("Reschedule")
            ):
                # handleAllocUpdate: an unhealthy alloc that may be rescheduled is marked
                # for replacement (createBatchedUpdate -> AllocUpdateDesiredTransition).
                replace.append(alloc)
                continue
            if early:
                fail = True
                rollback = rollback or bool(dstate["AutoRevert"])
        if replace and job is not None and not fail:
            with st.txn("AllocUpdateDesiredTransition") as tx:
                for alloc in replace:
                    tx.put_alloc(
                        {
                            **alloc,
                            "DesiredTransition": {
                                **(alloc.get("DesiredTransition") or {}),
                                "Reschedule": True,
                            },
                            "ModifyIndex": tx.index,
                        }
                    )
                ev = new_eval(job, "deployment-watcher", tx.index, DeploymentID=dep_id)
                tx.put_eval(ev)
            self.enqueue(ev["ID"])
        if fail:
            self.fail_deployment(dep_id, FAILED_ALLOCS, rollback)
            return
        if self._auto_promote(dep, allocs):
            return
        if job is not None and self._done(dep, allocs):
            self._succeed(dep, job)
            return
        self._arm_deadline(dep_id)
        if job is None:
            return
        plans = reconcile(job, st.allocs_of(key), [n.id for n in self.nodes], dep)
        if any(p.destructive or p.place or p.stop or p.canaries for p in plans):
            with st.txn("EvaluationUpdated") as tx:
                ev = new_eval(job, "deployment-watcher", tx.index, DeploymentID=dep_id)
                tx.put_eval(ev)
            self.enqueue(ev["ID"])

    def _auto_promote(self, dep: dict[str, Any], allocs: list[dict[str, Any]]) -> bool:
        """deployment_watcher.go autoPromoteDeployment: every canary group auto_promote and
        all its desired canaries healthy."""
        groups = dep["TaskGroups"]
        if not any(g["PlacedCanaries"] for g in groups.values()):
            return False
        if not any(g["DesiredCanaries"] > 0 and not g["Promoted"] for g in groups.values()):
            return False
        by_id = {a["ID"]: a for a in allocs}
        for g in groups.values():
            if g["DesiredCanaries"] < 1:
                continue
            if not g["AutoPromote"] or len(g["PlacedCanaries"] or []) < g["DesiredCanaries"]:
                return False
            healthy = sum(
                1
                for c in g["PlacedCanaries"] or []
                if (by_id.get(c, {}).get("DeploymentStatus") or {}).get("Healthy") is True
            )
            if healthy != g["DesiredCanaries"]:
                return False
        return not isinstance(self.promote(dep["ID"], True, []), str)

    def promote(self, dep_id: str, all_groups: bool, groups: list[str]) -> dict[str, Any] | str:
        """state_store.go UpdateDeploymentPromotion (+ the watcher's eval); a str is the
        error text Nomad answers."""
        st = self.state
        dep = st.deployments[dep_id]
        key = (dep["Namespace"], dep["JobID"])
        job = st.jobs.get(key)
        chosen = set(groups)
        canary_ids = {c for g in dep["TaskGroups"].values() for c in g["PlacedCanaries"] or []}
        promotable: list[dict[str, Any]] = []
        healthy: dict[str, int] = {}
        for a in st.allocs_of(key):
            if a.get("DeploymentID") != dep_id or a["ID"] not in canary_ids:
                continue
            if not all_groups and a["TaskGroup"] not in chosen:
                continue
            if alloc_terminal(a) or (a.get("DeploymentStatus") or {}).get("Healthy") is not True:
                continue
            healthy[a["TaskGroup"]] = healthy.get(a["TaskGroup"], 0) + 1
            promotable.append(a)
        errors = [
            f'Task group "{name}" has {healthy.get(name, 0)}/{g["DesiredCanaries"]} '
            "healthy allocations"
            for name, g in sorted(dep["TaskGroups"].items())
            if (all_groups or name in chosen)
            and g["DesiredCanaries"]
            and healthy.get(name, 0) < g["DesiredCanaries"]
        ]
        if errors:
            head = "1 error occurred:" if len(errors) == 1 else f"{len(errors)} errors occurred:"
            return head + "".join(f"\n\t* {e}" for e in errors) + "\n\n"
        now = now_ns()
        rows = copy.deepcopy(dep["TaskGroups"])
        for name, row in rows.items():
            if not all_groups and name not in chosen:
                continue
            if row["ProgressDeadline"] and row.get("RequireProgressBy"):
                row["RequireProgressBy"] = rfc3339(now + row["ProgressDeadline"])
            row["Promoted"] = True
        desc = dep["StatusDescription"]
        if not any(r["DesiredCanaries"] > 0 and not r["Promoted"] for r in rows.values()):
            desc = "Deployment is running"
        with st.txn("DeploymentPromotion") as tx:
            tx.put_deployment(
                {
                    **dep,
                    "TaskGroups": rows,
                    "StatusDescription": desc,
                    "ModifyIndex": tx.index,
                    "ModifyTime": now,
                }
            )
            ev = None
            if job is not None:
                ev = new_eval(
                    job, "deployment-watcher", tx.index, DeploymentID=dep_id, JobModifyIndex=0
                )
                tx.put_eval(ev)
            for a in promotable:
                tx.put_alloc(
                    {
                        **a,
                        "DeploymentStatus": {
                            **a["DeploymentStatus"],
                            "Canary": False,
                            "ModifyIndex": tx.index,
                        },
                        "ModifyIndex": tx.index,
                        "AllocModifyIndex": tx.index,
                    }
                )
        if ev is not None:
            self.enqueue(ev["ID"])
        self._disarm(dep_id)
        self._arm_deadline(dep_id)
        return {
            "EvalID": ev["ID"] if ev else "",
            "EvalCreateIndex": tx.index,
            "DeploymentModifyIndex": tx.index,
            "RevertedJobVersion": None,
            "Index": tx.index,
        }

    def pause(self, dep_id: str, want: bool) -> dict[str, Any]:
        """``PauseDeployment``: paused (``Deployment is paused``) or running again
        (``Deployment is running`` + a ``deployment-watcher`` eval), one
        ``DeploymentStatusUpdate``. While paused the reconciler places and replaces nothing
        but reschedules (``deploymentPlaceReady``) and the progress deadline does not run."""
        st = self.state
        dep = st.deployments[dep_id]
        job = st.jobs.get((dep["Namespace"], dep["JobID"]))
        status, desc = (
            ("paused", "Deployment is paused") if want else ("running", "Deployment is running")
        )
        with st.txn("DeploymentStatusUpdate") as tx:
            tx.put_deployment(
                {
                    **dep,
                    "Status": status,
                    "StatusDescription": desc,
                    "ModifyIndex": tx.index,
                    "ModifyTime": now_ns(),
                }
            )
            ev = None
            if not want and job is not None:
                ev = new_eval(
                    job, "deployment-watcher", tx.index, DeploymentID=dep_id, JobModifyIndex=0
                )
                tx.put_eval(ev)
        if want:
            self._disarm(dep_id)
        else:
            self._arm_deadline(dep_id)
        if ev is not None:
            self.enqueue(ev["ID"])
        return {
            "EvalID": ev["ID"] if ev else "",
            "EvalCreateIndex": tx.index if ev else 0,
            "DeploymentModifyIndex": tx.index,
            "RevertedJobVersion": None,
            "Index": tx.index,
        }

    def set_alloc_health(
        self, dep_id: str, healthy: list[str], unhealthy: list[str]
    ) -> dict[str, Any] | str:
        """``deploymentWatcher.SetAllocHealth`` + ``UpdateDeploymentAllocHealth``: each alloc
        gets ``DeploymentStatus.Healthy`` and the deployment's counters move
        (``updateDeploymentWithAlloc``); any unhealthy alloc fails the deployment with
        ``Failed due to unhealthy allocations`` (rolling back when its group auto-reverts).
        A str is the state store's error text."""
        st = self.state
        for aid in [*healthy, *unhealthy]:
            alloc = st.allocs.get(aid)
            if alloc is None:
                return f'unknown alloc "{aid}"'
            if alloc.get("DeploymentID") != dep_id:
                return f'alloc "{aid}" is not part of deployment "{dep_id}"'
        dep = st.deployments[dep_id]
        job = st.jobs.get((dep["Namespace"], dep["JobID"]))
        now = now_ns()
        with st.txn("DeploymentAllocHealth") as tx:
            for aid, ok in [*((a, True) for a in healthy), *((a, False) for a in unhealthy)]:
                old = st.allocs[aid]
                before = (old.get("DeploymentStatus") or {}).get("Healthy")
                alloc = {
                    **old,
                    "DeploymentStatus": {
                        **(old.get("DeploymentStatus") or {"Canary": False}),
                        "Healthy": ok,
                        "Timestamp": rfc3339(now),
                        "ModifyIndex": tx.index,
                    },
                    "ModifyIndex": tx.index,
                    "ModifyTime": now,
                }
                self.client.count_health(tx, alloc, before, ok, now)
                tx.put_alloc(alloc)
            ev = None
            if not unhealthy and job is not None:
                ev = new_eval(
                    job, "deployment-watcher", tx.index, DeploymentID=dep_id, JobModifyIndex=0
                )
                tx.put_eval(ev)
        if unhealthy:
            rollback = any(
                dep["TaskGroups"].get(st.allocs[a]["TaskGroup"], {}).get("AutoRevert")
                for a in unhealthy
            )
            return self.fail_deployment(dep_id, FAILED_ALLOCS, rollback)
        assert ev is not None or job is None
        if ev is not None:
            self.enqueue(ev["ID"])
        self.deployment_changed(dep_id)
        return {
            "EvalID": ev["ID"] if ev else "",
            "EvalCreateIndex": tx.index,
            "DeploymentModifyIndex": tx.index,
            "RevertedJobVersion": None,
            "Index": tx.index,
        }

    def _should_fail_early(
        self,
        dep: dict[str, Any],
        alloc: dict[str, Any],
        dstate: dict[str, Any],
        job: dict[str, Any] | None,
    ) -> bool:
        """deployment_watcher.go shouldFailEarly."""
        if (alloc.get("DeploymentStatus") or {}).get("Healthy") is not False:
            return False
        if not dstate["ProgressDeadline"]:
            return True
        group = next(
            (g for g in (job or {}).get("TaskGroups") or [] if g["Name"] == alloc["TaskGroup"]),
            None,
        )
        policy = (group or {}).get("ReschedulePolicy")
        return not reschedule_eligible(alloc, policy, now_ns())

    def _done(self, dep: dict[str, Any], allocs: list[dict[str, Any]]) -> bool:
        """Every group has DesiredTotal healthy, running allocations of this deployment.

        Nomad's reconciler marks the deployment successful (``deploymentComplete``) once
        ``doneGroups`` holds for all groups; the twin decides it here, from the same count."""
        healthy: dict[str, int] = {}
        for a in allocs:
            ok = (a.get("DeploymentStatus") or {}).get("Healthy") is True
            if ok and a["DesiredStatus"] == "run" and not client_terminal(a):
                healthy[a["TaskGroup"]] = healthy.get(a["TaskGroup"], 0) + 1
        return all(
            healthy.get(name, 0) >= g["DesiredTotal"]
            and not (g["DesiredCanaries"] and not g["Promoted"])
            for name, g in dep["TaskGroups"].items()
        )

    def _succeed(self, dep: dict[str, Any], job: dict[str, Any]) -> None:
        """updateDeploymentStatusImpl: successful, then updateJobStabilityImpl (Stable)."""
        st = self.state
        key = (job["Namespace"], job["ID"])
        self._disarm(dep["ID"])
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
            if job["Version"] == dep["JobVersion"]:
                tx.put_job({**job, "Stable": True, "ModifyIndex": tx.index})
            versions = st.job_versions.get(key) or []
            for i, v in enumerate(versions):
                if v["Version"] == dep["JobVersion"]:
                    versions[i] = {**v, "Stable": True}

    def fail_deployment(
        self, dep_id: str, desc: str, rollback: bool, *, no_target_note: bool = True
    ) -> dict[str, Any]:
        """The end of ``watch`` (and ``FailDeployment``): failed, an eval, maybe a revert.

        The revert registers the latest stable version again (``latestStableJob``) in the
        same ``DeploymentStatusUpdate`` transaction, as ``upsertDeploymentStatusUpdate``
        does; ``handleRollbackValidity`` skips it when the spec is unchanged."""
        st = self.state
        dep = st.deployments[dep_id]
        key = (dep["Namespace"], dep["JobID"])
        job = st.jobs.get(key)
        self._disarm(dep_id)
        revert: dict[str, Any] | None = None
        if rollback and job is not None:
            stable = next((v for v in st.job_versions.get(key) or [] if v["Stable"]), None)
            if stable is None:
                if no_target_note:
                    desc = f"{desc} - no stable job version to auto revert to"
            elif spec_of(stable) != spec_of(job):
                desc = f"{desc} - rolling back to job version {stable['Version']}"
                revert = stable
            else:
                desc = (
                    f"{desc} - not rolling back to stable job version {stable['Version']} "
                    "as current job has same specification"
                )
        with st.txn("DeploymentStatusUpdate") as tx:
            tx.put_deployment(
                {
                    **dep,
                    "Status": "failed",
                    "StatusDescription": desc,
                    "ModifyIndex": tx.index,
                    "ModifyTime": now_ns(),
                }
            )
            ev = None
            if job is not None:
                ev = new_eval(
                    job,
                    "deployment-watcher",
                    tx.index,
                    DeploymentID=dep_id,
                    JobModifyIndex=0,
                    Priority=dep["EvalPriority"] or job["Priority"],
                )
            reverted = None
            if revert is not None and job is not None:
                # upsertJobImpl: a new version on top of the current one; Stable and
                # SubmitTime come with the stable version's copy.
                reverted = {
                    **revert,
                    "Version": job["Version"] + 1,
                    "CreateIndex": job["CreateIndex"],
                    "ModifyIndex": tx.index,
                    "JobModifyIndex": tx.index,
                }
                tx.put_job(reverted)
                st.job_versions[key] = [reverted, *(st.job_versions.get(key) or [])][:6]
                tx.tables.add("job_version")
                if ev is not None:
                    ev["JobModifyIndex"] = tx.index
            if ev is not None:
                tx.put_eval(ev)
        if ev is not None:
            self.enqueue(ev["ID"])
        return {
            "EvalID": ev["ID"] if ev else "",
            "EvalCreateIndex": tx.index,
            "DeploymentModifyIndex": tx.index,
            "RevertedJobVersion": revert["Version"] if reverted and revert else None,
            "Index": tx.index,
        }

    # ---- progress deadline ------------------------------------------------------
    def _cutoff(self, dep: dict[str, Any]) -> int:
        """getDeploymentProgressCutoff: the earliest RequireProgressBy of unfinished groups."""
        key = (dep["Namespace"], dep["JobID"])
        allocs = [a for a in self.state.allocs_of(key) if a.get("DeploymentID") == dep["ID"]]
        healthy: dict[str, int] = {}
        for a in allocs:
            if alloc_terminal(a) or (a.get("DeploymentStatus") or {}).get("Healthy") is not True:
                continue
            healthy[a["TaskGroup"]] = healthy.get(a["TaskGroup"], 0) + 1
        cutoff = 0
        for name, g in dep["TaskGroups"].items():
            done = not (g["DesiredCanaries"] and not g["Promoted"]) and (
                healthy.get(name, 0) >= g["DesiredTotal"]
            )
            by = parse_rfc3339(g.get("RequireProgressBy"))
            if done or not by:
                continue
            cutoff = by if not cutoff else min(cutoff, by)
        return cutoff

    def _arm_deadline(self, dep_id: str) -> None:
        dep = self.state.deployments.get(dep_id)
        if dep is None or dep["Status"] != "running":
            return
        cutoff = self._cutoff(dep)
        if not cutoff:
            return  # not tracking a progress deadline yet: keep any timer armed
        old = self._deadlines.get(dep_id)
        if old is not None and old[0] == cutoff:
            return
        if old is not None:
            old[1].cancel()
        delay = max(0.0, (cutoff - now_ns()) / NS)
        handle = asyncio.get_running_loop().call_later(delay, self._deadline_hit, dep_id)
        self._deadlines[dep_id] = (cutoff, handle)

    def _disarm(self, dep_id: str) -> None:
        old = self._deadlines.pop(dep_id, None)
        if old is not None:
            old[1].cancel()

    def _deadline_hit(self, dep_id: str) -> None:
        """The deadline timer of ``watch``: fail unless ``shouldFail`` says otherwise."""
        self._deadlines.pop(dep_id, None)
        dep = self.state.deployments.get(dep_id)
        if dep is None or dep["Status"] != "running":
            return
        job = self.state.jobs.get((dep["Namespace"], dep["JobID"]))
        fail, rollback = False, False
        for name, g in dep["TaskGroups"].items():
            if g["DesiredCanaries"] > 0 and not g["Promoted"]:
                if g["HealthyAllocs"] >= g["DesiredCanaries"]:
                    continue
            elif g["HealthyAllocs"] >= g["DesiredTotal"]:
                continue
            fail = True
            group = next(
                (t for t in (job or {}).get("TaskGroups") or [] if t["Name"] == name), None
            )
            if ((group or {}).get("Update") or {}).get("AutoRevert"):
                rollback = True
                break
        if fail:
            self.fail_deployment(dep_id, PROGRESS_DEADLINE, rollback)


def _placed(row: dict[str, Any], modify_time: int) -> None:
    """updateDeploymentWithAlloc for a placement: count it, start the progress deadline."""
    row["PlacedAllocs"] += 1
    pd = row.get("ProgressDeadline") or 0
    if pd and row.get("RequireProgressBy") is None:
        row["RequireProgressBy"] = rfc3339(modify_time + pd)


def reschedule_eligible(alloc: dict[str, Any], policy: dict[str, Any] | None, now: int) -> bool:
    """structs.go RescheduleTracker.RescheduleEligible (see ``reschedule.eligible``)."""
    return resched.eligible(alloc, policy, now)


def system_rolling_limit(job: dict[str, Any] | None, plans: list[GroupPlan]) -> bool:
    """Nomad 1.10's system scheduler (``computeJobAllocs``, ``evictAndPlace``): with a rolling
    job-level update (``UpdateStrategy.Rolling``: stagger and max_parallel both set), one
    evaluation replaces at most ``max_parallel`` allocations across its groups; the rest are
    left for the next eval, ``stagger`` later. True when the limit held some back. The plan
    endpoint's annotations are computed before this limit, as Nomad's are."""
    if job is None or job["Type"] not in ("system", "sysbatch") or job["Stop"]:
        return False
    update = job.get("Update") or {}
    limit = int(update.get("MaxParallel") or 0)
    if not (int(update.get("Stagger") or 0) > 0 and limit > 0):
        return False
    reached = False
    for plan in plans:
        held = plan.destructive[limit:]
        reached = reached or bool(held)
        plan.destructive = plan.destructive[:limit]
        plan.ignore += len(held)
        limit -= len(plan.destructive)
    return reached


def _followup_evals(
    job: dict[str, Any], plan: GroupPlan, ev: dict[str, Any], tx: Txn
) -> list[dict[str, Any]]:
    """reconcile.go ``createLostLaterEvals``: one eval per 5 s window of reschedule times
    (``batchedFailedAllocWindowSize``), TriggeredBy ``alloc-failure`` with ``WaitUntil``;
    only the first carries ``created for delayed rescheduling``. Each delayed alloc gets its
    eval's ID as ``FollowupEvalID`` (stored by the plan that follows)."""
    out: list[dict[str, Any]] = []
    batch_start = 0
    current: dict[str, Any] | None = None
    for alloc, when in sorted(plan.later, key=lambda item: item[1]):
        if current is None or when - batch_start >= resched.BATCH_WINDOW:
            batch_start = when
            current = new_eval(
                job,
                "alloc-failure",
                tx.index,
                JobModifyIndex=job["ModifyIndex"],
                Priority=ev["Priority"],
                StatusDescription="" if out else resched.FOLLOWUP_DESC,
                WaitUntil=rfc3339(when),
                PreviousEval=ev["ID"],
            )
            tx.put_eval(current)
            out.append(current)
        stored = tx.state.allocs[alloc["ID"]]
        tx.state.allocs[alloc["ID"]] = {**stored, "FollowupEvalID": current["ID"]}
    return out


def _idx(alloc: dict[str, Any]) -> int:
    return name_index(alloc)
