"""The Nomad token's capabilities, probed with calls that cannot change anything.

Each probe is a method that raises ``PermissionDenied`` when the capability is missing and
returns otherwise. Calls that could write are made so that they cannot: a plan (Nomad checks
``submit-job`` before it validates the job, and a plan is never stored), a delete of a path
that does not exist, a restart of a task that does not exist, a lock renew with an ID nobody
holds. Nomad checks the ACL first, so any answer but 403 means "allowed".

The volume rights cannot be probed with a plan: ``Job.Plan`` checks only ``submit-job``
(nomad/job_endpoint.go Plan), while ``Job.Register`` also checks every group's volumes, after
``submit-job`` and before it looks the job up. So those probes *register* a valid job that
mounts one volume, under a random ID, fenced with ``EnforceIndex`` at a JobModifyIndex the job
cannot have: an allowed token gets ``Enforcing job modify index 1: job does not exist`` (500),
the next check in Register, and nothing is written.

``token_checks`` walks one table of (what, probe, what is missing, wanted before install), so
a new capability is one row.
"""

from __future__ import annotations

import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from controller.ctl.common import Clients
from controller.nomad.client import NomadClient
from controller.nomad.errors import NomadError, NotFound, PermissionDenied
from controller.nomad.variables import var_url
from crds_equivalent.keys import VAR_LEADER, VAR_STATUS_PREFIX

PROBE_JOB = "mesh-controllerctl-probe"


def probe_job(namespace: str) -> dict[str, Any]:
    """A job that is only ever planned, never registered."""
    return {
        "ID": PROBE_JOB,
        "Name": PROBE_JOB,
        "Namespace": namespace,
        "Type": "batch",
        "Datacenters": ["*"],
        "TaskGroups": [
            {
                "Name": "probe",
                "Count": 1,
                "Tasks": [
                    {"Name": "probe", "Driver": "raw_exec", "Config": {"command": "/bin/true"}}
                ],
            }
        ],
    }


# One volume per probe, valid for Nomad's job validation (structs VolumeRequest.Validate runs in
# the admission controllers, before the ACL checks): a host volume mounted read-write (the
# stronger right), a CSI volume with the modes a one-allocation group may use.
HOST_VOLUME = {
    "Name": "probe",
    "Type": "host",
    "Source": "mesh-controllerctl-probe",
    "ReadOnly": False,
}
CSI_VOLUME = {
    "Name": "probe",
    "Type": "csi",
    "Source": "mesh-controllerctl-probe",
    "ReadOnly": False,
    "AccessMode": "single-node-writer",
    "AttachmentMode": "file-system",
}
# EnforceIndex against a job that does not exist: any JobModifyIndex but 0 fails the fence.
ABSENT_JOB_INDEX = 1


def volume_probe_job(namespace: str, volume: dict[str, Any]) -> dict[str, Any]:
    """A job that mounts ``volume``, under an ID nobody uses; only ever refused."""
    job = probe_job(namespace)
    job["ID"] = job["Name"] = f"{PROBE_JOB}-{uuid.uuid4().hex[:12]}"
    group = job["TaskGroups"][0]
    group["Volumes"] = {"probe": dict(volume)}
    group["Tasks"][0]["VolumeMounts"] = [
        {"Volume": "probe", "Destination": "/probe", "ReadOnly": bool(volume["ReadOnly"])}
    ]
    return job


async def allowed_unless_denied(call: Awaitable[object]) -> object:
    """A 403 is the answer that matters; any other error came after the ACL check passed."""
    try:
        return await call
    except PermissionDenied:
        raise
    except NomadError as exc:
        return exc


@dataclass(frozen=True)
class TokenProbes:
    """The probes, bound to one client and the namespaces the controller works in."""

    nomad: NomadClient
    var_namespace: str
    watched: tuple[str, ...]

    @property
    def plan_namespace(self) -> str:
        return "default" if self.watched == ("*",) else self.watched[0]

    async def list_jobs(self) -> object:
        # Nomad takes one namespace or "*" per call; "*" silently filters what the token may
        # not list, so the controller's own namespace is also asked by name (a 403 there).
        for namespace in dict.fromkeys([*self.watched, self.var_namespace]):
            await self.nomad.request("GET", "/v1/jobs", params={"per_page": 1}, namespace=namespace)
        return None

    async def services(self) -> object:
        # Nomad's own catalog and the native check results need read-job in the job's
        # namespace (AllowServiceRegistrationReadList; client/alloc_endpoint.go Checks). A "*"
        # list filters silently, so a service name is read in each namespace by name: a 403
        # is the answer that matters, an empty list is a yes.
        named = [n for n in self.watched if n != "*"] or [self.plan_namespace]
        for namespace in named:
            await self.nomad.request("GET", f"/v1/service/{PROBE_JOB}", namespace=namespace)
        return None

    async def plan(self) -> object:
        ns = self.plan_namespace
        return await allowed_unless_denied(
            self.nomad.request(
                "POST",
                f"/v1/job/{PROBE_JOB}/plan",
                body={"Job": probe_job(ns)},
                namespace=ns,
                idempotent=False,
            )
        )

    async def _register_refused(self, volume: dict[str, Any]) -> object:
        ns = self.plan_namespace
        job = volume_probe_job(ns, volume)
        return await allowed_unless_denied(
            self.nomad.request(
                "POST",
                f"/v1/job/{job['ID']}",
                body={"Job": job, "EnforceIndex": True, "JobModifyIndex": ABSENT_JOB_INDEX},
                namespace=ns,
                idempotent=False,
            )
        )

    async def host_volumes(self) -> object:
        return await self._register_refused(HOST_VOLUME)

    async def csi_volumes(self) -> object:
        return await self._register_refused(CSI_VOLUME)

    async def stream(self) -> object:
        async with self.nomad.stream(
            "/v1/event/stream", params=[("topic", "Job"), ("index", "0")], namespace="*"
        ):
            return None

    async def read_vars(self) -> object:
        ns = self.var_namespace
        await self.nomad.request(
            "GET", "/v1/vars", params={"prefix": VAR_STATUS_PREFIX + "/"}, namespace=ns
        )
        try:  # a list is filtered silently; a read of one path answers 403 when not allowed
            await self.nomad.request("GET", var_url(VAR_LEADER), namespace=ns)
        except NotFound:
            return None
        listed = await self.nomad.request(
            "GET", "/v1/vars", params={"prefix": VAR_LEADER}, namespace=ns
        )
        paths = [v.get("Path") for v in listed.body or [] if isinstance(v, dict)]
        if VAR_LEADER not in paths:  # readable, but the list hides it
            raise PermissionDenied(f"GET /v1/vars: {VAR_LEADER} exists but is not listed")
        return None

    async def destroy_vars(self) -> object:
        probe = f"{VAR_LEADER.rsplit('/', 1)[0]}/controllerctl-probe-{uuid.uuid4()}"
        # the path does not exist: an allowed delete changes nothing
        return await allowed_unless_denied(
            self.nomad.request(
                "DELETE", var_url(probe), namespace=self.var_namespace, idempotent=False
            )
        )

    async def alloc_lifecycle(self) -> object:
        ns = self.plan_namespace
        allocs = await self.nomad.request(
            "GET", "/v1/allocations", params={"per_page": 1}, namespace=ns
        )
        found = [a for a in allocs.body or [] if isinstance(a, dict) and a.get("ID")]
        if not found:  # nothing to restart yet: nothing to probe against, nothing needed
            return None
        # a task that does not exist: Nomad checks the capability first, restarts nothing
        return await allowed_unless_denied(
            self.nomad.request(
                "PUT",
                f"/v1/client/allocation/{found[0]['ID']}/restart",
                body={"TaskName": PROBE_JOB},
                namespace=ns,
                idempotent=False,
            )
        )

    async def write_vars(self) -> object:
        ns = self.var_namespace
        body = {"Namespace": ns, "Path": VAR_LEADER, "Lock": {"ID": str(uuid.uuid4())}}
        # 404/409: allowed to write, nothing to renew
        return await allowed_unless_denied(
            self.nomad.request(
                "PUT",
                var_url(VAR_LEADER),
                params=[("lock-renew", "")],
                body=body,
                namespace=ns,
                idempotent=False,
            )
        )


@dataclass(frozen=True)
class Capability:
    """One row: what the check says, how it is probed, what the token lacks when it fails."""

    name: str
    probe: Callable[[], Awaitable[object]]
    missing: str
    before_install: bool  # also checked by `check --pre`


def capabilities(clients: Clients) -> list[Capability]:
    """Every capability the controller's Nomad token needs, in the order `check` prints them."""
    p = TokenProbes(
        clients.nomad, clients.namespace, tuple(clients.settings.controller.watched_namespaces)
    )
    ns, plan_ns, watched = p.var_namespace, p.plan_namespace, ", ".join(p.watched)
    return [
        Capability(
            f"token may list jobs in {watched}", p.list_jobs, "namespace read-job/list-jobs", True
        ),
        Capability(
            f"token may submit jobs in {plan_ns} (plan probe)", p.plan, "namespace submit-job", True
        ),
        Capability(
            f"token may re-register jobs that mount host volumes in {plan_ns} (register probe)",
            p.host_volumes,
            'host_volume "*" { capabilities = ["mount-readwrite"] }',
            True,
        ),
        Capability(
            f"token may re-register jobs that mount CSI volumes in {plan_ns} (register probe)",
            p.csi_volumes,
            'namespace csi-mount-volume and plugin { policy = "read" }',
            True,
        ),
        Capability("token may read the event stream", p.stream, "namespace read-job", True),
        Capability(
            f"token may read Nomad-native services and their checks in {watched}",
            p.services,
            "namespace read-job",
            True,
        ),
        Capability(
            f"token may read Variables under mesh-controller/ in {ns}",
            p.read_vars,
            f"variables read+list on mesh-controller/* in namespace {ns}",
            False,
        ),
        Capability(
            f"token may delete Variables under mesh-controller/ in {ns}",
            p.destroy_vars,
            f"variables destroy on mesh-controller/* in namespace {ns}",
            False,
        ),
        Capability(
            f"token may restart sidecars in {plan_ns} (restart probe)",
            p.alloc_lifecycle,
            "namespace alloc-lifecycle",
            False,
        ),
        Capability(
            f"token may write Variables under mesh-controller/ in {ns} (lock probe)",
            p.write_vars,
            f"variables write on mesh-controller/* in namespace {ns}",
            True,
        ),
    ]
