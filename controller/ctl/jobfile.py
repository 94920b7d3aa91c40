"""What ``controllerctl render`` does with its input: read it, load it as a job, transform it.

A pipeline that submits the job already injected gives the controller nothing to do: no second
job version, no second deployment. Input is the Nomad API JSON of a job — bare (``{"ID": …}``)
or wrapped for register (``{"Job": {…}}``). HCL is converted by the cluster's own parser
(``POST /v1/jobs/parse``), because only Nomad knows its HCL exactly. The transform is the
controller's own pure ``plan_job``/``uninject``, so render cannot disagree with the controller.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import ssl
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from functools import partial
from typing import Any

import aiohttp
import structlog
from pydantic import ValidationError

from controller.config import NomadSettings
from controller.config.values import describe, env_name
from controller.logging import configure_logging
from controller.tls import ClientTls, TlsConfigError, client_tls
from crds_equivalent.config import MeshConfig
from reconcilers.injection.inject import uninject
from reconcilers.injection.plan import Apply, Invalid, Remove, plan_job

PARSE_TIMEOUT_S = 10.0

HCL_HINT = (
    "convert it to JSON first, e.g. `nomad job run -output job.nomad.hcl > job.json`, "
    "or set NOMAD_ADDR to a reachable Nomad agent"
)


class Unreadable(Exception):
    """The input is not a Nomad job we can read; the message says what to do."""


@dataclass(frozen=True)
class Rendered:
    """The job to print, and the groups left unmeshed with why (the job is still written)."""

    job: dict[str, Any]
    refused: tuple[str, ...] = ()


def transform(job: dict[str, Any], config: MeshConfig, undo: bool) -> Rendered | Invalid:
    """The meshed job (or with ``undo`` the user's job), the job itself when there is nothing
    to do, or Invalid. ``uninject`` raises UndoError when the undo record is unusable."""
    if undo:
        return Rendered(uninject(job))
    decision = plan_job(job, config)
    if isinstance(decision, Invalid):
        return decision
    if isinstance(decision, Remove):
        return Rendered(decision.job)
    if isinstance(decision, Apply):
        return Rendered(decision.job, decision.refused)
    return Rendered(job, decision.refused)


def read_source(source: str) -> str:
    """The text of FILE, or of stdin for ``-``."""
    try:
        if source == "-":
            return sys.stdin.read()
        with open(source, encoding="utf-8") as handle:
            return handle.read()
    except (OSError, UnicodeDecodeError) as err:
        raise Unreadable(f"cannot read: {err}") from None


def load_job(text: str) -> tuple[dict[str, Any] | None, dict[str, Any], bool]:
    """(wrapper document or None, the job, came from HCL)."""
    if not text.strip():
        raise Unreadable("empty input; expected a Nomad job as JSON")
    try:
        value = json.loads(text)
    except ValueError as err:
        if not _looks_like_hcl(text):
            raise Unreadable(f"not JSON ({err})") from None
        return None, _parse_hcl(text), True
    if isinstance(value, dict) and isinstance(value.get("Job"), dict):
        return value, value["Job"], False
    if isinstance(value, dict) and ("ID" in value or "TaskGroups" in value):
        return None, value, False
    raise Unreadable('JSON but not a Nomad job: expected {"Job": {...}} or {"ID": ...}')


def _looks_like_hcl(text: str) -> bool:
    return any(line.strip().startswith("job ") for line in text.splitlines())


def _parse_hcl(text: str) -> dict[str, Any]:
    with _logs_on_stderr():
        settings, tls = _nomad_client_settings()
        try:
            job = asyncio.run(_post_parse(settings, tls, text))
        except (aiohttp.ClientError, TimeoutError, OSError, ssl.SSLError) as err:
            raise Unreadable(
                f"this looks like HCL and Nomad at {settings.addr} could not parse it ({err}); "
                + HCL_HINT
            ) from None
    return job


@contextlib.contextmanager
def _logs_on_stderr() -> Iterator[None]:
    """Warnings (such as NOMAD_SKIP_VERIFY's) go to stderr: stdout carries only the job.

    The previous logging setup is restored afterwards, so an embedding process keeps its own.
    """
    was_configured, saved = structlog.is_configured(), structlog.get_config()
    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    configure_logging(level="warning", fmt="console", stream=sys.stderr)
    try:
        yield
    finally:
        if was_configured:
            structlog.configure(**saved)
        else:
            structlog.reset_defaults()
        root.handlers[:] = handlers
        root.setLevel(level)


def _nomad_client_settings() -> tuple[NomadSettings, ClientTls | None]:
    """NOMAD_* read and TLS built exactly as for every other Nomad call of the controller."""
    problem = "HCL is parsed by Nomad, but the NOMAD_* settings are invalid"
    try:
        settings = NomadSettings()
    except ValidationError as err:
        secrets = {n for n, f in NomadSettings.model_fields.items() if f.exclude}
        reason = describe(err, partial(env_name, NomadSettings), secrets)
        raise Unreadable(f"{problem}: {reason}") from None
    if not settings.addr.startswith("https"):
        return settings, None
    try:
        return settings, client_tls(settings, service="nomad")
    except TlsConfigError as err:
        raise Unreadable(f"{problem}: {err}") from None


async def _post_parse(settings: NomadSettings, tls: ClientTls | None, text: str) -> dict[str, Any]:
    headers = {}
    if settings.token is not None:
        headers["X-Nomad-Token"] = settings.token.get_secret_value()
    url = settings.addr.rstrip("/") + "/v1/jobs/parse"
    timeout = aiohttp.ClientTimeout(total=PARSE_TIMEOUT_S)
    body = {"JobHCL": text, "Canonicalize": False}
    async with (
        aiohttp.ClientSession(timeout=timeout) as session,
        session.post(
            url,
            json=body,
            headers=headers,
            ssl=tls.context if tls else True,
            server_hostname=tls.server_hostname if tls else None,
        ) as response,
    ):
        payload = await response.text()
        if response.status != 200:
            raise Unreadable(f"Nomad rejected the HCL (HTTP {response.status}): {payload.strip()}")
    job = json.loads(payload)
    if not isinstance(job, dict):
        raise Unreadable("Nomad's /v1/jobs/parse answered with something that is not a job")
    return job
