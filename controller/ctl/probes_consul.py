"""I/O for ``controllerctl check``'s Consul section: reachable, and what the token may read.

Consul does not refuse a read the token may not make; it filters the answer (``200 []``,
``agent/consul/acl.go`` ``aclFilter``) and says so in ``X-Consul-Results-Filtered-By-ACLs`` —
except to the anonymous token (``agent/consul/rpc.go`` ``maskResultsFilteredByACLs``). So each
right is probed against something that always exists: every Consul server registers the
``consul`` service on its own node (``agent/consul/leader.go`` ``handleAliveMember``). A token
that may read services lists it; one that may read nodes lists at least one node; one that may
read both sees a server's health. Seeing none of it, or a flagged answer, is the failure —
never "0 instances" reported as fine (audit §11).

``consul_checks`` walks one table of (what, probe, the rule that is missing), as the Nomad
token probes do (``controller.ctl.token_probes``): a new right is one row.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from controller.consul.acl import NODE_READ, READ_GRANT, SERVICE_READ
from controller.consul.client import FILTERED_BY_HEADER, SERVERS_SERVICE, ConsulClient
from controller.consul.wire import ConsulError, ConsulPermissionDenied
from controller.ctl.checks import CheckResult, Mark
from controller.ctl.common import Clients
from controller.ctl.probes_nomad import transport
from controller.ctl.rows import service_names
from controller.nomad.errors import NomadError
from controller.nomad.jobs import NomadJobs
from crds_equivalent import keys

SECTION = "Consul"


class Hidden(Exception):
    """The answer came back filtered: the token lacks the right the row probes."""


def _why(consul: ConsulClient, flagged: bool) -> str:
    if flagged:
        return "Consul filtered the answer (X-Consul-Results-Filtered-By-ACLs: true)"
    if consul.anonymous:
        return "no CONSUL_HTTP_TOKEN is set, and the anonymous token is not allowed to"
    return "Consul answered with nothing"


@dataclass(frozen=True)
class ConsulProbes:
    """The probes, bound to one client; each returns the OK line's detail or raises Hidden."""

    consul: ConsulClient

    async def services(self) -> str:
        listing = await self.consul.catalog_services()
        if listing.filtered or SERVERS_SERVICE not in listing.body:
            raise Hidden(
                f"the service list hides even the {SERVERS_SERVICE!r} service: "
                + _why(self.consul, listing.filtered)
            )
        return f"{len(listing.body)} service(s) listed"

    async def nodes(self) -> str:
        listing = await self.consul.catalog_nodes()
        if listing.filtered or not listing.body:
            raise Hidden("the node list is empty: " + _why(self.consul, listing.filtered))
        return f"{len(listing.body)} node(s) listed"

    async def health(self) -> str:
        health = await self.consul.health_service(SERVERS_SERVICE)
        if health.filtered or not health.entries:
            raise Hidden(
                f"0 {SERVERS_SERVICE} server instances visible: "
                + _why(self.consul, health.filtered_why == FILTERED_BY_HEADER)
            )
        return f"{len(health.entries)} {SERVERS_SERVICE} server instance(s) visible"


@dataclass(frozen=True)
class ConsulRead:
    """One row: what the check says, how it is probed, the rule the token lacks when it fails."""

    name: str
    probe: Callable[[], Awaitable[str]]
    missing: str


def reads(consul: ConsulClient) -> list[ConsulRead]:
    """Every read the controller's Consul token needs, in the order `check` prints them."""
    p = ConsulProbes(consul)
    return [
        ConsulRead("token may read services in Consul", p.services, SERVICE_READ),
        ConsulRead("token may read nodes in Consul", p.nodes, NODE_READ),
        # what the health reconciler reads: an instance needs both rules to be seen
        ConsulRead("token may read service health", p.health, READ_GRANT),
    ]


def _hint(missing: str, anonymous: bool) -> str:
    hint = f"the Consul token needs {missing} (policy consul-mesh-controller.hcl grants it)"
    if anonymous:
        hint += "; set CONSUL_HTTP_TOKEN to a token with that policy"
    return hint


async def consul_users(clients: Clients) -> list[str]:
    """``<namespace>/<job>: <service>`` for every meshed service registered in Consul (its
    provider is consul), over the jobs the controller watches whose job meta flags the mesh
    (as ``status`` finds them)."""
    jobs = NomadJobs(clients.nomad)
    found: list[str] = []
    for namespace in clients.settings.controller.watched_namespaces:
        listing = await jobs.list_jobs(namespace, meta=True)
        for stub in listing.stubs:
            meta = stub.get("Meta")
            if stub.get("ParentID") or not isinstance(meta, dict):
                continue
            if not any(str(k).startswith(keys.MESH_TLS) for k in meta):
                continue
            ns, job_id = str(stub.get("Namespace") or "default"), str(stub.get("ID") or "")
            job = await jobs.get_job(job_id, ns)
            if job is None:
                continue
            found += [f"{ns}/{job_id}: {n}" for n in service_names(job, clients.settings.mesh)]
    return sorted(set(found))


async def consul_not_configured(clients: Clients) -> list[CheckResult]:
    """Consul is optional: without CONSUL_HTTP_ADDR the mesh needs it only for meshed services
    whose provider is consul, so the row says whether there are any, and which."""
    what = "Consul not configured (CONSUL_HTTP_ADDR unset)"
    try:
        users = await consul_users(clients)
    except NomadError as exc:
        return [
            CheckResult(
                SECTION,
                what,
                Mark.WARN,
                f"could not list the meshed jobs to tell whether any needs Consul: {exc}",
                "retry once Nomad answers",
            )
        ]
    if not users:
        return [
            CheckResult(
                SECTION, what, Mark.OK, "no meshed service registers in Consul; none is needed"
            )
        ]
    shown = "; ".join(users[:5]) + (f" (+{len(users) - 5} more)" if len(users) > 5 else "")
    return [
        CheckResult(
            SECTION,
            what,
            Mark.FAIL,
            f"meshed services register in Consul (provider consul) and need it: {shown}",
            "set CONSUL_HTTP_ADDR (and CONSUL_HTTP_TOKEN), "
            'or give those services provider = "nomad"',
        )
    ]


async def consul_checks(clients: Clients) -> list[CheckResult]:
    """Reachability, then each row of the table; a Consul that does not answer the first probe
    is unreachable (exit 2); a token Consul does not know is one failure, not one per row.
    Without CONSUL_HTTP_ADDR, only whether a meshed service would need it."""
    consul = clients.consul
    if consul is None:
        return await consul_not_configured(clients)
    mark, how, hint = transport(consul.url, clients.settings.consul.skip_verify, "CONSUL_HTTP")
    reach = f"Consul API reachable at {consul.url}"
    results: list[CheckResult] = []
    for row in reads(consul):
        try:
            detail = await row.probe()
        except Hidden as exc:
            results.append(
                CheckResult(
                    SECTION, row.name, Mark.FAIL, str(exc), _hint(row.missing, consul.anonymous)
                )
            )
        except ConsulPermissionDenied as exc:
            if "ACL not found" in str(exc):  # no read can succeed: one line says why
                fix = (
                    "CONSUL_HTTP_TOKEN is not a token this Consul knows: create one with the "
                    "policy consul-mesh-controller.hcl"
                )
                known = CheckResult(SECTION, "Consul knows the token", Mark.FAIL, str(exc), fix)
                return [CheckResult(SECTION, reach, mark, how, hint), known]
            fix = _hint(row.missing, consul.anonymous)
            results.append(CheckResult(SECTION, row.name, Mark.FAIL, str(exc), fix))
        except ConsulError as exc:
            if not results:
                tls = "CERTIFICATE_VERIFY_FAILED" in str(exc)
                fix = (
                    "set CONSUL_CACERT (and CONSUL_TLS_SERVER_NAME)"
                    if tls
                    else "check CONSUL_HTTP_ADDR"
                )
                return [CheckResult(SECTION, reach, Mark.FAIL, str(exc), fix, unreachable=True)]
            results.append(
                CheckResult(SECTION, row.name, Mark.WARN, f"could not probe: {exc}", "retry")
            )
        else:
            results.append(CheckResult(SECTION, row.name, Mark.OK, detail))
    return [CheckResult(SECTION, reach, mark, how, hint), *results]
