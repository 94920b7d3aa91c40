"""Jobs, allocations and deployments: the Nomad calls the reconcilers make.

Jobs stay raw JSON dicts from end to end. Decoding a job into a model and re-encoding it would
silently drop every field we did not model (and Nomad adds new ones each release); the pure
transforms in ``reconcilers`` work on the dict and this module only moves it over the wire.
Every register is fenced with EnforceIndex so a stale writer fails instead of clobbering.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote

from controller.nomad.client import NomadClient, ParamValue
from controller.nomad.errors import NotFound

Job = dict[str, Any]
Keep = Callable[[dict[str, Any]], dict[str, Any] | None]


@dataclass(frozen=True, slots=True)
class JobList:
    """Job stubs of one LIST, and the ``X-Nomad-Index`` the stream should resume after."""

    stubs: list[dict[str, Any]]
    index: int


def _seg(value: str) -> str:
    return quote(value, safe="")


class NomadJobs:
    """Typed entry points over the raw job, allocation and deployment endpoints."""

    def __init__(
        self, client: NomadClient, *, per_page: int = 500, objects_per_page: int = 100
    ) -> None:
        self.client = client
        self.per_page = per_page
        # Allocation stubs carry their TaskStates (each task's recent events) and deployments
        # every group's counts: a page of 500 parsed was ~6.8 MB at once, the largest single
        # allocation of a fill. 100 a page costs a cluster of 10k jobs ~300 more reads per
        # fill (0.03 a job) and a fifth of that high-water.
        self.objects_per_page = objects_per_page

    async def list_jobs(
        self,
        namespace: str = "*",
        *,
        meta: bool = True,
        prefix: str | None = None,
        keep: Keep | None = None,
    ) -> JobList:
        """All job stubs (every page). The index is the first page's: the oldest, safest point
        to resume a stream from, since replayed frames are dropped by index anyway. ``keep``
        maps each stub as its page arrives (None drops it), as for ``list_allocations``."""
        params: dict[str, ParamValue] = {"meta": meta}
        if prefix:
            params["prefix"] = prefix
        return await self._paged("/v1/jobs", namespace, params, keep, per_page=self.per_page)

    async def get_job(self, job_id: str, namespace: str) -> Job | None:
        """The stored job as Nomad returns it, or None when it does not exist."""
        try:
            resp = await self.client.request("GET", f"/v1/job/{_seg(job_id)}", namespace=namespace)
        except NotFound:
            return None
        job: Job = resp.body
        return job

    async def register_job(self, job: Job, *, enforce_index: int | None) -> dict[str, Any]:
        """Register ``job``; with ``enforce_index`` only if its JobModifyIndex still matches
        (0 = only if it does not exist). Raises Conflict when the fence fails. Never retried.

        Returns Nomad's answer (EvalID, JobModifyIndex, Index, Warnings, ...).
        """
        body: dict[str, Any] = {"Job": job}
        if enforce_index is not None:
            body["EnforceIndex"] = True
            body["JobModifyIndex"] = enforce_index
        namespace = job.get("Namespace") or self.client.namespace
        resp = await self.client.request(
            "POST",
            f"/v1/job/{_seg(job['ID'])}",
            body=body,
            namespace=namespace,
            idempotent=False,
        )
        result: dict[str, Any] = resp.body or {}
        if "Index" not in result and resp.index is not None:
            result["Index"] = resp.index
        return result

    async def job_allocations(self, job_id: str, namespace: str) -> list[dict[str, Any]]:
        """Allocation stubs of the job (no AllocatedResources: read an allocation for ports)."""
        try:
            resp = await self.client.request(
                "GET", f"/v1/job/{_seg(job_id)}/allocations", namespace=namespace
            )
        except NotFound:
            return []
        return list(resp.body or [])

    async def child_allocations(self, parent_id: str, namespace: str) -> list[dict[str, Any]]:
        """The allocations of every child of ``parent_id`` that is not dead yet.

        A periodic or parameterized parent has no allocations of its own; its children do, and
        their IDs start with ``<parent>/`` (``PeriodicLaunchSuffix`` "/periodic-",
        ``DispatchLaunchSuffix`` "/dispatch-" in ``nomad/structs/structs.go``). The prefix
        LIST is narrowed to ``ParentID == parent_id`` (a job of another parent may share the
        prefix), and dead children are skipped: they run nothing, and a periodic parent keeps
        them until the job GC.
        """
        listing = await self.list_jobs(namespace, meta=False, prefix=f"{parent_id}/")
        live = [
            str(s["ID"])
            for s in listing.stubs
            if s.get("ParentID") == parent_id and s.get("Status") != "dead"
        ]
        out: list[dict[str, Any]] = []
        for child in live:
            out.extend(await self.job_allocations(child, namespace))
        return out

    async def list_allocations(self, namespace: str = "*", *, keep: Keep | None = None) -> JobList:
        """Every allocation stub (all pages) with its TaskStates (``AllocListStub``, default
        fields: no ``resources``). The index is the first page's, as for ``list_jobs``.
        ``keep`` maps each stub as its page arrives (None drops it), so a cluster's worth of
        stubs is never held at once."""
        return await self._paged(
            "/v1/allocations", namespace, {}, keep, per_page=self.objects_per_page
        )

    async def list_deployments(self, namespace: str = "*", *, keep: Keep | None = None) -> JobList:
        """Every deployment (all pages; ``Deployment.List`` answers whole deployments);
        ``keep`` as for ``list_allocations``."""
        return await self._paged(
            "/v1/deployments", namespace, {}, keep, per_page=self.objects_per_page
        )

    async def _paged(
        self,
        path: str,
        namespace: str,
        params: dict[str, ParamValue],
        keep: Keep | None,
        *,
        per_page: int,
    ) -> JobList:
        """Every page of a LIST, ``keep`` applied to each item as its page arrives; the index
        is the first page's."""
        out: list[dict[str, Any]] = []
        index: int | None = None
        token: str | None = None
        while True:
            query: dict[str, ParamValue] = {**params, "per_page": per_page}
            if token:
                query["next_token"] = token
            resp = await self.client.request("GET", path, params=query, namespace=namespace)
            if index is None:
                index = resp.index or 0
            token, page = resp.next_token, resp.body or []
            del resp  # the page is dropped below, before the next one is read and parsed
            for item in page:
                if isinstance(item, dict):
                    kept = keep(item) if keep is not None else item
                    if kept is not None:
                        out.append(kept)
            del page
            if not token:
                return JobList(stubs=out, index=index)

    async def read_allocation(self, alloc_id: str, namespace: str) -> dict[str, Any] | None:
        """The full allocation (with its job snapshot and ports), or None."""
        try:
            resp = await self.client.request(
                "GET", f"/v1/allocation/{_seg(alloc_id)}", namespace=namespace
            )
        except NotFound:
            return None
        alloc: dict[str, Any] = resp.body
        return alloc

    async def latest_deployment(self, job_id: str, namespace: str) -> dict[str, Any] | None:
        """The job's most recent deployment, or None (Nomad answers ``null``)."""
        try:
            resp = await self.client.request(
                "GET", f"/v1/job/{_seg(job_id)}/deployment", namespace=namespace
            )
        except NotFound:
            return None
        deployment: dict[str, Any] | None = resp.body
        return deployment

    async def job_deployments(self, job_id: str, namespace: str) -> list[dict[str, Any]]:
        """Every deployment of the job Nomad still keeps, newest first ([] when unknown)."""
        try:
            resp = await self.client.request(
                "GET", f"/v1/job/{_seg(job_id)}/deployments", namespace=namespace
            )
        except NotFound:
            return []
        found = [d for d in resp.body or [] if isinstance(d, dict)]
        return sorted(found, key=lambda d: int(d.get("CreateIndex") or 0), reverse=True)

    async def promote_deployment(self, deployment_id: str, namespace: str) -> dict[str, Any]:
        """Promote every canary group of a deployment (``POST /v1/deployment/promote/:id`` with
        ``All``). Nomad allows it with ``submit-job`` or ``promote-deployment`` on the namespace
        (``nomad/deployment_endpoint.go``, ``Deployment.Promote``). Never retried: a second
        promote of a promoted deployment is a 400 from Nomad, not a success."""
        resp = await self.client.request(
            "POST",
            f"/v1/deployment/promote/{_seg(deployment_id)}",
            body={"DeploymentID": deployment_id, "All": True},
            namespace=namespace,
            idempotent=False,
        )
        result: dict[str, Any] = resp.body or {}
        return result

    async def job_versions(self, job_id: str, namespace: str) -> list[Job]:
        """Every stored version of the job, newest first ([] when the job is unknown)."""
        try:
            resp = await self.client.request(
                "GET", f"/v1/job/{_seg(job_id)}/versions", namespace=namespace
            )
        except NotFound:
            return []
        return list((resp.body or {}).get("Versions") or [])

    async def restart_task(self, alloc_id: str, task: str, namespace: str) -> None:
        """Restart one task of an allocation in place (e.g. a sidecar that missed a renewal)."""
        await self.client.request(
            "POST",
            f"/v1/client/allocation/{_seg(alloc_id)}/restart",
            body={"TaskName": task},
            namespace=namespace,
            idempotent=False,
        )

    async def signal_task(self, alloc_id: str, signal: str, task: str, namespace: str) -> None:
        """Send ``signal`` (e.g. SIGHUP) to one task of an allocation."""
        await self.client.request(
            "POST",
            f"/v1/client/allocation/{_seg(alloc_id)}/signal",
            body={"Signal": signal, "Task": task},
            namespace=namespace,
            idempotent=False,
        )
