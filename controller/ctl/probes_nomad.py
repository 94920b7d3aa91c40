"""I/O for ``controllerctl check``: Nomad reachable, its TLS, version, clock, and the token.

The token's capabilities are probed by ``token_probes`` with calls that cannot change anything;
a 403 is the only answer that means "missing capability".
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime

import aiohttp

from controller.ctl import checks
from controller.ctl.checks import CheckResult, Mark
from controller.ctl.common import CALL_TIMEOUT, Clients
from controller.ctl.token_probes import capabilities
from controller.nomad.errors import (
    NomadError,
    PermissionDenied,
    TlsVerificationError,
)
from controller.tls import client_tls

SECTION = "Nomad"


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
    """Each capability of the table, in order; ``pre`` keeps the ones wanted before install."""
    return [
        await _capability(row.name, row.probe, row.missing)
        for row in capabilities(clients)
        if row.before_install or not pre
    ]


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
