"""I/O for ``controllerctl check``: Consul reachable and readable; a leader that renews and
whose event stream is recent (from the lock Variable and the leader's /status)."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime

from controller.consul.client import ConsulError, ConsulPermissionDenied
from controller.ctl import checks
from controller.ctl.checks import CheckResult, Mark
from controller.ctl.common import Clients
from controller.ctl.leader import fetch_status, lock_state, status_url_of, token_is_management
from controller.ctl.probes_nomad import transport
from controller.nomad.errors import NomadError
from controller.nomad.variables import NomadVariables
from crds_equivalent.goparse import parse_go_duration
from crds_equivalent.keys import VAR_LEADER

CONSUL = "Consul"
CONTROLLER = "Controller"


async def consul_checks(clients: Clients) -> list[CheckResult]:
    consul = clients.consul
    settings = clients.settings.consul
    mark, how, hint = transport(consul.url, settings.skip_verify, "CONSUL_HTTP")
    name = f"Consul API reachable at {consul.url}"
    try:
        health = await consul.health_service("consul")
    except ConsulPermissionDenied as exc:
        return [
            CheckResult(CONSUL, name, mark, how, hint),
            CheckResult(
                CONSUL,
                "token may read service health",
                Mark.FAIL,
                str(exc),
                'the Consul token needs service_prefix "" { policy = "read" } and node read',
            ),
        ]
    except ConsulError as exc:
        tls = "CERTIFICATE_VERIFY_FAILED" in str(exc)
        fix = "set CONSUL_CACERT (and CONSUL_TLS_SERVER_NAME)" if tls else "check CONSUL_HTTP_ADDR"
        return [CheckResult(CONSUL, name, Mark.FAIL, str(exc), fix, unreachable=True)]
    servers = len(health.entries)
    return [
        CheckResult(CONSUL, name, mark, how, hint),
        CheckResult(
            CONSUL,
            "token may read service health",
            Mark.OK,
            f"{servers} consul server instance(s) visible",
        ),
    ]


async def controller_checks(
    clients: Clients, status_url: str | None, now: Callable[[], datetime]
) -> list[CheckResult]:
    try:
        var = await NomadVariables(clients.nomad, namespace=clients.namespace).get(VAR_LEADER)
        management = await token_is_management(clients.nomad) if var is not None else None
    except NomadError as exc:
        return [
            CheckResult(
                CONTROLLER,
                "a controller leads and renews its lock",
                Mark.FAIL,
                str(exc),
                f"the token needs variables read on {VAR_LEADER}",
            )
        ]
    items = dict(var.items) if var is not None else None
    doc = await fetch_status(status_url_of(status_url, items or {}))
    ttl_text = (var.lock or {}).get("TTL") if var is not None else None
    ttl = parse_go_duration(ttl_text) if ttl_text else clients.settings.controller.leader_ttl
    lock = lock_state(var, management) if var is not None else "unknown"
    leading = bool(doc.body.get("leading")) if doc.body is not None else None
    limit = 2 * clients.settings.controller.heartbeat_timeout
    return [
        checks.leader(CONTROLLER, items, lock, ttl, now(), leading),
        checks.event_stream(CONTROLLER, doc.body, doc.error, limit),
    ]
