"""Who leads, since when, and how far it got: the lock holder's Items plus the /status endpoint.

The leader lock Variable (``mesh-controller/leader``) carries the holder's identity, host, pid,
version and ``since`` in its Items, which any token that may read the Variable sees. Whether
the lock is *held right now* is in its ``Lock`` block, which Nomad shows only to the holder and
to management tokens; with a lesser token we say "hidden" rather than guess. The event index and
queue depth live only in the running leader, behind its /status endpoint, reached through
MESH_STATUS_URL (or an address the holder published); when it cannot be reached, the report
says why and goes on without it.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

import aiohttp

from controller.ctl.common import CALL_TIMEOUT
from controller.nomad.client import NomadClient
from controller.nomad.errors import BadRequest, NomadError
from controller.nomad.variables import NomadVariables, Variable
from crds_equivalent.keys import VAR_LEADER
from crds_equivalent.status_report import LeaderInfo, LockState

STATUS_URL_ITEMS = ("status_url", "http_addr", "http")


@dataclass(frozen=True)
class StatusDoc:
    """The leader's /status document, or why there is none."""

    url: str
    body: dict[str, Any] | None
    error: str = ""


async def token_is_management(nomad: NomadClient) -> bool | None:
    """True for a management token or when ACLs are off; False for a client token; None if
    Nomad would not say."""
    try:
        resp = await nomad.request("GET", "/v1/acl/token/self", namespace=None)
    except BadRequest as exc:
        return "acl support disabled" in str(exc).lower() or None
    except NomadError:
        return None
    body = resp.body if isinstance(resp.body, dict) else {}
    return body.get("Type") == "management"


def lock_state(var: Variable, management: bool | None) -> LockState:
    if var.lock_id:
        return "held"
    if management:
        return "released"
    return "hidden" if management is False else "unknown"


def status_url_of(explicit: str | None, items: dict[str, str]) -> str:
    """The /status URL to use: the flag/env first, then one the holder published."""
    raw = explicit or next((items[k] for k in STATUS_URL_ITEMS if items.get(k)), "")
    if not raw:
        return ""
    if "://" not in raw:
        raw = "http://" + raw
    raw = raw.rstrip("/")
    return raw if raw.endswith("/status") else raw + "/status"


async def fetch_status(url: str) -> StatusDoc:
    if not url:
        return StatusDoc(url, None, "no /status address: set MESH_STATUS_URL or --status-url")
    try:
        timeout = aiohttp.ClientTimeout(total=CALL_TIMEOUT)
        async with aiohttp.ClientSession(timeout=timeout) as session, session.get(url) as resp:
            text = await resp.text()
            if resp.status != 200:
                return StatusDoc(url, None, f"{url} answered HTTP {resp.status}")
        body = json.loads(text)
    except (aiohttp.ClientError, TimeoutError, OSError, ValueError) as exc:
        return StatusDoc(url, None, f"{url}: {type(exc).__name__}: {exc}".rstrip(": "))
    if not isinstance(body, dict):
        return StatusDoc(url, None, f"{url} did not answer with a JSON object")
    return StatusDoc(url, body)


def _int(value: object) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def leader_info(var: Variable, management: bool | None, doc: StatusDoc) -> LeaderInfo:
    """PURE: merge the lock Variable and the /status document."""
    items = dict(var.items)
    stream: dict[str, Any] = {}
    queue: dict[str, Any] = {}
    if doc.body is not None:
        stream = doc.body.get("event_stream") or {}
        queue = doc.body.get("queue") or {}
    age = stream.get("last_line_age_s")
    return LeaderInfo(
        identity=items.get("identity", ""),
        host=items.get("host", ""),
        pid=items.get("pid", ""),
        version=items.get("version", ""),
        since=items.get("since", ""),
        lock=lock_state(var, management),
        status_url=doc.url,
        status_error=doc.error,
        last_event_index=_int(stream.get("last_index")),
        last_event_age_seconds=float(age) if isinstance(age, int | float) else None,
        queue_depth=_int(queue.get("depth")),
    )


async def read_leader(
    nomad: NomadClient, namespace: str, status_url: str | None
) -> tuple[LeaderInfo | None, StatusDoc, Variable | None]:
    """(leader info or None when the lock Variable does not exist, the /status doc, the var).

    Raises NomadError when Nomad cannot be read at all.
    """
    var = await NomadVariables(nomad, namespace=namespace).get(VAR_LEADER)
    doc = await fetch_status(status_url_of(status_url, dict(var.items) if var else {}))
    if var is None:
        return None, doc, None
    management = await token_is_management(nomad)
    return leader_info(var, management, doc), doc, var
