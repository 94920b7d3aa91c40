"""I/O for ``controllerctl check``: a leader that renews and whose event stream is recent (from
the lock Variable and the leader's /status), and whose own Vault token has not expired (from
its /metrics: on a cluster only the controller holds that token). Consul's checks are in
``probes_consul``."""

from __future__ import annotations

import re
from collections.abc import Callable
from datetime import datetime

import aiohttp

from controller.ctl import checks
from controller.ctl.checks import CheckResult, Mark
from controller.ctl.common import CALL_TIMEOUT, Clients
from controller.ctl.leader import fetch_status, lock_state, status_url_of, token_is_management
from controller.ctl.rotation_view import ROTATION_CHECK, ROTATION_SECTION, rotation_check
from controller.ctl.token_verdict import controller_token_verdict
from controller.nomad.errors import NomadError
from controller.nomad.variables import NomadVariables
from crds_equivalent.goparse import parse_go_duration
from crds_equivalent.keys import VAR_LEADER, VAR_ROTATION
from reconcilers.rotation.view import read_summary

CONTROLLER = "Controller"
_EXPIRY = re.compile(r"^mesh_vault_token_expiry_timestamp_seconds (\S+)$", re.MULTILINE)


async def rotation_checks(clients: Clients, now: Callable[[], datetime]) -> list[CheckResult]:
    """A line when a CA rotation runs or failed (from ``mesh-controller/rotation``); none when
    there is none, or the last one is done."""
    store = NomadVariables(clients.nomad, namespace=clients.namespace)
    try:
        rotation = await read_summary(store)
    except NomadError as exc:
        return [
            CheckResult(
                ROTATION_SECTION,
                ROTATION_CHECK,
                Mark.FAIL,
                str(exc),
                f"the token needs variables read on {VAR_ROTATION}",
            )
        ]
    found = rotation_check(rotation, now())
    return [found] if found is not None else []


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
    results = [
        checks.leader(CONTROLLER, items, lock, ttl, now(), leading),
        checks.event_stream(CONTROLLER, doc.body, doc.error, limit),
    ]
    expiry, error = await fetch_token_expiry(doc.url) if doc.body is not None else (None, "-")
    token = controller_token_verdict(CONTROLLER, expiry, error, now().timestamp())
    return results + ([token] if token is not None else [])


async def fetch_token_expiry(status_url: str) -> tuple[float | None, str]:
    """``mesh_vault_token_expiry_timestamp_seconds`` from the /metrics beside ``status_url``:
    (value or None when not exported, "" or why it could not be read)."""
    url = status_url.removesuffix("/status") + "/metrics"
    try:
        timeout = aiohttp.ClientTimeout(total=CALL_TIMEOUT)
        async with aiohttp.ClientSession(timeout=timeout) as session, session.get(url) as resp:
            text = await resp.text()
    except (aiohttp.ClientError, TimeoutError, OSError) as exc:
        return None, f"{url}: {type(exc).__name__}"
    found = _EXPIRY.search(text)
    return (float(found.group(1)), "") if found else (None, "")
