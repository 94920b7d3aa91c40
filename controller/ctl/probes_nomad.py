"""I/O for ``controllerctl check``: Nomad reachable, its TLS, version, clock, and the token.

The token is probed with calls that cannot change anything: LISTs and reads, a plan (Nomad
checks ``submit-job`` before it even validates the job, and a plan is never stored), and a
lock renew with an ID nobody holds (Nomad checks ``variables:write`` first, then answers 404
or 409). A 403 is the only answer that means "missing capability".
"""

from __future__ import annotations

import uuid
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from typing import Any

import aiohttp

from controller.ctl import checks
from controller.ctl.checks import CheckResult, Mark
from controller.ctl.common import CALL_TIMEOUT, Clients
from controller.nomad.errors import (
    NomadError,
    NotFound,
    PermissionDenied,
    TlsVerificationError,
)
from controller.nomad.variables import var_url
from controller.tls import client_tls
from crds_equivalent.keys import VAR_LEADER, VAR_STATUS_PREFIX

SECTION = "Nomad"
PROBE_JOB = "mesh-controllerctl-probe"


def transport(addr: str, skip_verify: bool, env: str) -> tuple[Mark, str, str]:
    """(mark, detail, hint) for how the API is reached."""
    if addr.startswith("https://"):
        if skip_verify:
            return (
                Mark.WARN,
                "https, certificate NOT verified",
                f"unset {env}_SKIP_VERIFY, set {env}_CACERT",
            )
        return Mark.OK, "https, certificate verified", ""
    host = addr.split("://", 1)[-1].split("/")[0].rsplit(":", 1)[0].strip("[]")
    if host in ("127.0.0.1", "localhost", "::1"):
        return Mark.OK, "plain http on loopback", ""
    return (
        Mark.WARN,
        "plain http: the token crosses the network unencrypted",
        f"use https and {env}_CACERT",
    )


async def server_date(clients: Clients) -> datetime | None:
    """Nomad's clock, from the Date header of a cheap GET."""
    settings = clients.settings.nomad
    url = settings.addr.rstrip("/") + "/v1/agent/health"
    tls = client_tls(settings, service="nomad") if url.startswith("https://") else None
    try:
        async with (
            aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=CALL_TIMEOUT)) as session,
            session.get(
                url,
                ssl=tls.context if tls else True,
                server_hostname=tls.server_hostname if tls else None,
            ) as resp,
        ):
            date = resp.headers.get("Date")
    except (aiohttp.ClientError, TimeoutError, OSError):
        return None
    try:
        return parsedate_to_datetime(date) if date else None
    except (TypeError, ValueError):
        return None


def _probe_job(namespace: str) -> dict[str, Any]:
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


async def _capability(
    name: str, call: Callable[[], Awaitable[object]], missing: str
) -> CheckResult:
    try:
        await call()
    except PermissionDenied as exc:
        return CheckResult(SECTION, name, Mark.FAIL, str(exc), f"the Nomad token needs {missing}")
    except NomadError as exc:
        return CheckResult(SECTION, name, Mark.WARN, f"could not probe: {exc}", "retry")
    return CheckResult(SECTION, name, Mark.OK)


async def token_checks(clients: Clients, pre: bool) -> list[CheckResult]:
    nomad = clients.nomad
    ns_var = clients.namespace
    watched = clients.settings.controller.watched_namespaces
    plan_ns = "default" if watched == ("*",) else watched[0]

    async def list_jobs() -> object:
        # Nomad takes one namespace or "*" per call; "*" silently filters what the token may
        # not list, so the controller's own namespace is also asked by name (a 403 there).
        for namespace in dict.fromkeys([*watched, ns_var]):
            await nomad.request("GET", "/v1/jobs", params={"per_page": 1}, namespace=namespace)
        return None

    async def read_vars() -> object:
        await nomad.request(
            "GET", "/v1/vars", params={"prefix": VAR_STATUS_PREFIX + "/"}, namespace=ns_var
        )
        try:  # a list is filtered silently; a read of one path answers 403 when not allowed
            await nomad.request("GET", var_url(VAR_LEADER), namespace=ns_var)
        except NotFound:
            return None
        listed = await nomad.request(
            "GET", "/v1/vars", params={"prefix": VAR_LEADER}, namespace=ns_var
        )
        paths = [v.get("Path") for v in listed.body or [] if isinstance(v, dict)]
        if VAR_LEADER not in paths:  # readable, but the list hides it
            raise PermissionDenied(f"GET /v1/vars: {VAR_LEADER} exists but is not listed")
        return None

    async def destroy_vars() -> object:
        probe = f"{VAR_LEADER.rsplit('/', 1)[0]}/controllerctl-probe-{uuid.uuid4()}"
        try:  # the path does not exist: an allowed delete changes nothing
            return await nomad.request("DELETE", var_url(probe), namespace=ns_var, idempotent=False)
        except PermissionDenied:
            raise
        except NomadError as exc:
            return exc

    async def alloc_lifecycle() -> object:
        allocs = await nomad.request(
            "GET", "/v1/allocations", params={"per_page": 1}, namespace=plan_ns
        )
        found = [a for a in allocs.body or [] if isinstance(a, dict) and a.get("ID")]
        if not found:  # nothing to restart yet: nothing to probe against, nothing needed
            return None
        try:  # a task that does not exist: Nomad checks the capability first, restarts nothing
            return await nomad.request(
                "PUT",
                f"/v1/client/allocation/{found[0]['ID']}/restart",
                body={"TaskName": PROBE_JOB},
                namespace=plan_ns,
                idempotent=False,
            )
        except PermissionDenied:
            raise
        except NomadError as exc:
            return exc

    async def write_vars() -> object:
        body = {"Namespace": ns_var, "Path": VAR_LEADER, "Lock": {"ID": str(uuid.uuid4())}}
        try:
            return await nomad.request(
                "PUT",
                var_url(VAR_LEADER),
                params=[("lock-renew", "")],
                body=body,
                namespace=ns_var,
                idempotent=False,
            )
        except PermissionDenied:
            raise
        except NomadError as exc:
            return exc  # 404/409: allowed to write, nothing to renew

    async def plan() -> object:
        try:
            return await nomad.request(
                "POST",
                f"/v1/job/{PROBE_JOB}/plan",
                body={"Job": _probe_job(plan_ns)},
                namespace=plan_ns,
                idempotent=False,
            )
        except PermissionDenied:
            raise
        except NomadError as exc:
            return exc  # a validation error comes after the ACL check

    async def stream() -> object:
        async with nomad.stream(
            "/v1/event/stream", params=[("topic", "Job"), ("index", "0")], namespace="*"
        ):
            return None

    results = [
        await _capability(
            f"token may list jobs in {', '.join(watched)}",
            list_jobs,
            "namespace read-job/list-jobs",
        ),
        await _capability(
            f"token may submit jobs in {plan_ns} (plan probe)", plan, "namespace submit-job"
        ),
        await _capability("token may read the event stream", stream, "namespace read-job"),
    ]
    if not pre:
        results.append(
            await _capability(
                f"token may read Variables under mesh-controller/ in {ns_var}",
                read_vars,
                f"variables read+list on mesh-controller/* in namespace {ns_var}",
            )
        )
        results.append(
            await _capability(
                f"token may delete Variables under mesh-controller/ in {ns_var}",
                destroy_vars,
                f"variables destroy on mesh-controller/* in namespace {ns_var}",
            )
        )
        results.append(
            await _capability(
                f"token may restart sidecars in {plan_ns} (restart probe)",
                alloc_lifecycle,
                "namespace alloc-lifecycle",
            )
        )
    results.append(
        await _capability(
            f"token may write Variables under mesh-controller/ in {ns_var} (lock probe)",
            write_vars,
            f"variables write on mesh-controller/* in namespace {ns_var}",
        )
    )
    return results


async def nomad_checks(
    clients: Clients, pre: bool, now: Callable[[], datetime]
) -> list[CheckResult]:
    nomad = clients.nomad
    settings = clients.settings.nomad
    mark, how, hint = transport(nomad.addr, settings.skip_verify, "NOMAD")
    name = f"Nomad API reachable at {nomad.addr}"
    try:
        resp = await nomad.request("GET", "/v1/agent/self", namespace=None)
    except TlsVerificationError as exc:
        return [
            CheckResult(
                SECTION,
                name,
                Mark.FAIL,
                str(exc),
                "set NOMAD_CACERT (and NOMAD_TLS_SERVER_NAME)",
                unreachable=True,
            )
        ]
    except PermissionDenied as exc:
        version = ""
        results = [
            CheckResult(SECTION, name, mark, how + "; agent/self refused: " + str(exc), hint)
        ]
    except NomadError as exc:
        return [
            CheckResult(
                SECTION,
                name,
                Mark.FAIL,
                str(exc),
                "check NOMAD_ADDR and that Nomad runs",
                unreachable=True,
            )
        ]
    else:
        config = (resp.body or {}).get("config") or {}
        version = str((config.get("Version") or {}).get("Version") or "")
        results = [CheckResult(SECTION, name, mark, how, hint)]
    if version:
        results.append(checks.nomad_version(SECTION, version))
    else:
        results.append(
            CheckResult(
                SECTION,
                "Nomad is at least 1.7 (Variable locks for leader election)",
                Mark.WARN,
                "version unknown: this token may not read agent/self",
                "run `nomad version` on a server, or use a token with agent:read",
            )
        )
    results.append(checks.clock_skew(SECTION, "Nomad", await server_date(clients), now()))
    results += await token_checks(clients, pre)
    return results


def utcnow() -> datetime:
    return datetime.now(UTC)
