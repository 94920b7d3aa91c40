"""The twin's in-memory state store: tables, raft indexes and transactions.

Every write is one transaction with one raft index and one message type, like a raft
apply in Nomad. A transaction records which objects it wrote; on commit it recomputes
the status of every touched job (pending/running/dead, as ``setJobStatus`` does), emits
one event per written object with the transaction's Type, bumps the per-table indexes
that blocking queries watch, and wakes every waiter.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

from devstack.nomad.codec import now_ns
from devstack.nomad.events import Event, EventBroker, make_event
from devstack.nomad.notify import Notifier
from devstack.nomad.wire import alloc_event, alloc_terminal, eval_wire, group_summary

JobKey = tuple[str, str]


@dataclass
class Txn:
    state: NomadState
    index: int
    type: str
    jobs: dict[JobKey, bool] = field(default_factory=dict)  # key -> emit event
    allocs: list[str] = field(default_factory=list)
    evals: list[str] = field(default_factory=list)
    deployments: list[str] = field(default_factory=list)
    extra: list[Event] = field(default_factory=list)
    tables: set[str] = field(default_factory=set)
    deleted_jobs: dict[JobKey, dict[str, Any]] = field(default_factory=dict)

    def put_job(self, job: dict[str, Any]) -> None:
        key = (job["Namespace"], job["ID"])
        self.state.jobs[key] = job
        self.jobs[key] = True
        self.tables.update(("jobs", "job_summary"))

    def delete_job(self, key: JobKey) -> None:
        job = self.state.jobs.pop(key, None)
        if job is not None:
            self.deleted_jobs[key] = job
            self.tables.update(("jobs", "job_summary", "job_version"))

    def touch_job(self, key: JobKey) -> None:
        self.jobs.setdefault(key, False)

    def put_alloc(self, alloc: dict[str, Any]) -> None:
        st = self.state
        st.allocs[alloc["ID"]] = alloc
        st.allocs_by_job[(alloc["Namespace"], alloc["JobID"])].add(alloc["ID"])
        if alloc["ID"] not in self.allocs:
            self.allocs.append(alloc["ID"])
        self.touch_job((alloc["Namespace"], alloc["JobID"]))
        self.tables.update(("allocs", "job_summary"))

    def put_eval(self, ev: dict[str, Any]) -> None:
        self.state.evals[ev["ID"]] = ev
        self.state.evals_by_job[(ev["Namespace"], ev["JobID"])].add(ev["ID"])
        if ev["ID"] not in self.evals:
            self.evals.append(ev["ID"])
        self.touch_job((ev["Namespace"], ev["JobID"]))
        self.tables.add("evals")

    def put_deployment(self, dep: dict[str, Any]) -> None:
        self.state.deployments[dep["ID"]] = dep
        self.state.deployments_by_job[(dep["Namespace"], dep["JobID"])].add(dep["ID"])
        if dep["ID"] not in self.deployments:
            self.deployments.append(dep["ID"])
        self.tables.add("deployment")

    def put_service(self, reg: dict[str, Any]) -> None:
        """A Nomad-native service registration and its ``Service`` event (events.go)."""
        self.state.services[(reg["Namespace"], reg["ID"])] = reg
        self.tables.add("service_registrations")
        self.add_event(
            "Service",
            reg["ID"],
            reg["Namespace"],
            [reg["JobID"], reg["ServiceName"]],
            {"Service": reg},
        )

    def delete_service(self, key: tuple[str, str]) -> None:
        """Removes a registration; the event carries the deleted object, as events.go does."""
        reg = self.state.services.pop(key)
        self.tables.add("service_registrations")
        self.add_event(
            "Service",
            reg["ID"],
            reg["Namespace"],
            [reg["JobID"], reg["ServiceName"]],
            {"Service": reg},
        )

    def add_event(
        self, topic: str, key: str, ns: str, fkeys: list[str] | None, payload: Any
    ) -> None:
        self.extra.append(make_event(topic, self.type, key, ns, fkeys, self.index, payload))


VAULT_DEFAULT_IDENTITY: dict[str, Any] = {"Audience": ["vault.io"], "TTL": 3600 * 10**9}


class NomadState:
    def __init__(self, event_buffer_size: int = 100, region: str = "global") -> None:
        self.region = region
        self.index = 0
        self.table_index: dict[str, int] = defaultdict(int)
        # JobSummary.Summary[tg].Queued, as nestedUpsertEval sets it from each eval's
        # QueuedAllocations (placements the scheduler still owes).
        self.queued: dict[JobKey, dict[str, int]] = {}
        self.namespaces: dict[str, dict[str, Any]] = {}
        self.jobs: dict[JobKey, dict[str, Any]] = {}
        self.job_versions: dict[JobKey, list[dict[str, Any]]] = {}
        self.allocs: dict[str, dict[str, Any]] = {}
        self.allocs_by_job: dict[JobKey, set[str]] = defaultdict(set)
        self.evals: dict[str, dict[str, Any]] = {}
        self.evals_by_job: dict[JobKey, set[str]] = defaultdict(set)
        self.deployments: dict[str, dict[str, Any]] = {}
        self.deployments_by_job: dict[JobKey, set[str]] = defaultdict(set)
        self.variables: dict[tuple[str, str], dict[str, Any]] = {}
        # Nomad-native service registrations by (namespace, ID) (nsd.py)
        self.services: dict[tuple[str, str], dict[str, Any]] = {}
        self.acl_policies: dict[str, dict[str, Any]] = {}
        self.acl_tokens: dict[str, dict[str, Any]] = {}  # by SecretID
        self.nodes: list[dict[str, Any]] = []
        # The server's vault { default_identity {...} } (nomad/config.go VaultIdentityConfig):
        # Nomad 1.10 derives Vault tokens only through workload identities, so a cluster
        # whose jobs use Vault has one; jobImplicitIdentitiesHook adds it to Vault tasks.
        self.vault_default_identity: dict[str, Any] | None = dict(VAULT_DEFAULT_IDENTITY)
        self.broker = EventBroker(event_buffer_size)
        self.notifier = Notifier()
        with self.txn("NamespaceUpsert") as tx:
            self.namespaces["default"] = namespace_record(
                "default", "Default shared namespace", None, tx.index
            )
            tx.tables.add("namespaces")

    @contextmanager
    def txn(self, msg_type: str) -> Iterator[Txn]:
        tx = Txn(self, self.index + 1, msg_type)
        yield tx
        self._commit(tx)

    def _commit(self, tx: Txn) -> None:
        events: list[Event] = []
        for key, emit in tx.jobs.items():
            job = self.jobs.get(key)
            if job is None:
                continue
            status = self.compute_job_status(job)
            if status != job["Status"]:
                job = {**job, "Status": status, "ModifyIndex": tx.index}
                self.jobs[key] = job
                self._sync_version(job)
                tx.tables.add("jobs")
                emit = True
            if emit:
                events.append(_job_event(tx, job))
        for job in tx.deleted_jobs.values():
            events.append(_job_event(tx, job))
        for eid in tx.evals:
            ev = self.evals[eid]
            events.append(
                make_event(
                    "Evaluation",
                    tx.type,
                    eid,
                    ev["Namespace"],
                    [ev["JobID"], ev.get("DeploymentID", "")],
                    tx.index,
                    {"Evaluation": eval_wire(ev)},
                )
            )
        for aid in tx.allocs:
            a = self.allocs[aid]
            events.append(
                make_event(
                    "Allocation",
                    tx.type,
                    aid,
                    a["Namespace"],
                    [a["JobID"], a.get("DeploymentID", "")],
                    tx.index,
                    {"Allocation": alloc_event(a)},
                )
            )
        for did in tx.deployments:
            d = self.deployments[did]
            events.append(
                make_event(
                    "Deployment",
                    tx.type,
                    did,
                    d["Namespace"],
                    [d["JobID"]],
                    tx.index,
                    {"Deployment": d},
                )
            )
        events.extend(tx.extra)
        self.index = tx.index
        for table in tx.tables:
            self.table_index[table] = tx.index
        self.broker.publish(tx.index, events)
        self.notifier.fire()

    def _sync_version(self, job: dict[str, Any]) -> None:
        versions = self.job_versions.get((job["Namespace"], job["ID"]))
        if versions and versions[0]["Version"] == job["Version"]:
            versions[0] = job

    # ---- queries -------------------------------------------------------------
    def allocs_of(self, key: JobKey) -> list[dict[str, Any]]:
        ids = self.allocs_by_job.get(key, ())
        return sorted((self.allocs[i] for i in ids), key=lambda a: a["CreateIndex"])

    def evals_of(self, key: JobKey) -> list[dict[str, Any]]:
        return [self.evals[i] for i in self.evals_by_job.get(key, ())]

    def deployments_of(self, key: JobKey) -> list[dict[str, Any]]:
        """Newest first."""
        deps = [self.deployments[i] for i in self.deployments_by_job.get(key, ())]
        return sorted(deps, key=lambda d: -d["CreateIndex"])

    def compute_job_status(self, job: dict[str, Any]) -> str:
        # getJobStatus: a dispatched child is not IsParameterized and runs like any job.
        parameterized = job["ParameterizedJob"] and not job.get("Dispatched")
        if job["Type"] == "system" or job["Periodic"] or parameterized:
            return "dead" if job["Stop"] else "running"
        key = (job["Namespace"], job["ID"])
        allocs = self.allocs_of(key)
        if any(not alloc_terminal(a) for a in allocs):
            return "running"
        evals = self.evals_of(key)
        if any(e["Status"] in ("pending", "blocked") for e in evals):
            return "pending"
        if evals or allocs:
            return "dead"
        return "pending"

    def _children(self, job: dict[str, Any]) -> dict[str, int]:
        return _children_of(self, job)

    def summary(self, job: dict[str, Any]) -> dict[str, Any]:
        key = (job["Namespace"], job["ID"])
        groups = [tg["Name"] for tg in job["TaskGroups"] or []]
        return {
            "JobID": job["ID"],
            "Namespace": job["Namespace"],
            "Summary": group_summary(self.allocs_of(key), groups, self.queued.get(key)),
            "Children": self._children(job),
            "CreateIndex": job["CreateIndex"],
            "ModifyIndex": max(
                [job["ModifyIndex"], *(a["ModifyIndex"] for a in self.allocs_of(key))]
            ),
        }


def _children_of(state: NomadState, job: dict[str, Any]) -> dict[str, int]:
    """JobSummary.Children of a periodic/parameterized parent, by child status
    (``updateSummaryWithJob``/``setJobStatus`` keep the same counts)."""
    out = {"Pending": 0, "Running": 0, "Dead": 0}
    if not (job["Periodic"] or job["ParameterizedJob"]) or job.get("ParentID"):
        return out
    for (ns, _), child in state.jobs.items():
        if ns == job["Namespace"] and child.get("ParentID") == job["ID"]:
            status = (child["Status"] or "pending").capitalize()
            if status in out:
                out[status] += 1
    return out


def _job_event(tx: Txn, job: dict[str, Any]) -> Event:
    return make_event("Job", tx.type, job["ID"], job["Namespace"], None, tx.index, {"Job": job})


def namespace_record(
    name: str, desc: str, meta: dict[str, str] | None, index: int
) -> dict[str, Any]:
    return {
        "Name": name,
        "Description": desc,
        "Quota": "",
        "Capabilities": None,
        "NodePoolConfiguration": {"Default": "default", "Allowed": None, "Denied": None},
        "VaultConfiguration": None,
        "ConsulConfiguration": None,
        "Meta": meta,
        "CreateIndex": index,
        "ModifyIndex": index,
    }


def stamp() -> int:
    return now_ns()
