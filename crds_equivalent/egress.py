"""The two ends of a meshed call: `mesh.tls.upstreams` (who a group calls) and `mesh.tls.allow`
(who may call it).

Kept apart from ``spec`` because these keys describe edges between jobs, not the TLS shape of
one group; ``spec.parse_group_spec`` calls the parsers here so every key is still validated
in one pass, with the same error style (group, key, value, what was expected).

`mesh.tls.upstreams` is a comma list of ``<service>:<port>[/<protocol>][@<provider>]``:
- ``service``: the name the upstream registers (a DNS label: its certificate names
  ``<service>.<domain>``, and Nomad refuses other service names anyway);
- ``port``: the port the app dials on ``127.0.0.1`` (1-65535), one upstream per port;
- ``protocol``: ``http`` (default; balanced per request, keep-alive) or ``tcp`` (per
  connection). It describes what the CALLER speaks, so the caller says it;
- ``provider``: the catalog the upstream is found in, ``consul`` or ``nomad``. Default: the
  provider of the group's own services (Nomad allows one per group), ``consul`` for a group
  with no service (Nomad's own default).
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from enum import StrEnum
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from crds_equivalent import keys

_SERVICE = r"[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?"
SERVICE_NAME = re.compile(rf"\A{_SERVICE}\Z")
_UPSTREAM = re.compile(
    rf"\A(?P<service>{_SERVICE}):(?P<port>[0-9]{{1,5}})"
    r"(?:/(?P<protocol>[A-Za-z0-9]+))?(?:@(?P<provider>[A-Za-z0-9]+))?\Z"
)
UPSTREAM_FORM = "<service>:<port>[/http|/tcp][@consul|@nomad]"
MAX_PORT = 65535


class UpstreamProtocol(StrEnum):
    """What the caller speaks through the upstream listener."""

    HTTP = "http"
    TCP = "tcp"


class Provider(StrEnum):
    """The catalog an upstream's TLS instances are found in (a Nomad service's ``provider``)."""

    CONSUL = "consul"
    NOMAD = "nomad"


class Upstream(BaseModel):
    """One upstream of a group: a loopback port and the meshed service behind it."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    service: str = Field(description="The upstream's service name (its `mesh-tls` registration).")
    port: int = Field(ge=1, le=MAX_PORT, description="The port the app dials on 127.0.0.1.")
    protocol: UpstreamProtocol = Field(
        default=UpstreamProtocol.HTTP, description="http: per request; tcp: per connection."
    )
    provider: Provider = Field(default=Provider.CONSUL, description="The catalog to look in.")

    def spelled(self) -> str:
        """The entry written out in full, as `explain` shows it."""
        return f"{self.service}:{self.port}/{self.protocol}@{self.provider}"


class EgressError(ValueError):
    """A bad `mesh.tls.upstreams` or `mesh.tls.allow` value: (key, value, expected)."""

    def __init__(self, key: str, value: object, expected: str) -> None:
        self.key = key
        self.value = value
        self.expected = expected
        super().__init__(f"{key}: {expected}")


def group_provider(group: Mapping[str, Any]) -> Provider:
    """The provider of the group's first service (group level, then tasks'); consul if none."""
    services = list(_list(group.get("Services")))
    for task in _list(group.get("Tasks")):
        if isinstance(task, Mapping):
            services.extend(_list(task.get("Services")))
    for service in services:
        if isinstance(service, Mapping):
            provider = service.get("Provider")
            return Provider.NOMAD if provider == "nomad" else Provider.CONSUL
    return Provider.CONSUL


def parse_upstreams(value: str | None, default_provider: Provider) -> tuple[Upstream, ...]:
    """The upstreams of one group; raises EgressError naming the first bad entry."""
    if value is None or not value.strip():
        return ()
    found: list[Upstream] = []
    for entry in (item.strip() for item in value.split(",")):
        match = _UPSTREAM.match(entry)
        if not match:
            raise EgressError(
                keys.MESH_TLS_UPSTREAMS,
                value,
                f"a comma-separated list of {UPSTREAM_FORM} ({json.dumps(entry)} is not one)",
            )
        upstream = _upstream(value, entry, match, default_provider)
        clash = next((u for u in found if u.port == upstream.port), None)
        if clash is not None:
            raise EgressError(
                keys.MESH_TLS_UPSTREAMS,
                value,
                f"one upstream per port (port {upstream.port} is given to "
                f'"{clash.service}" and to "{upstream.service}")',
            )
        found.append(upstream)
    return tuple(found)


def _upstream(value: str, entry: str, match: re.Match[str], default_provider: Provider) -> Upstream:
    port = int(match.group("port"))
    if not 1 <= port <= MAX_PORT:
        raise EgressError(
            keys.MESH_TLS_UPSTREAMS, value, f"ports from 1 to {MAX_PORT} ({entry!r} has {port})"
        )
    protocol = match.group("protocol") or UpstreamProtocol.HTTP
    if protocol not in tuple(UpstreamProtocol):
        raise EgressError(
            keys.MESH_TLS_UPSTREAMS, value, f"protocol http or tcp ({entry!r} has {protocol!r})"
        )
    provider = match.group("provider") or default_provider
    if provider not in tuple(Provider):
        raise EgressError(
            keys.MESH_TLS_UPSTREAMS, value, f"provider consul or nomad ({entry!r} has {provider!r})"
        )
    return Upstream(
        service=match.group("service"),
        port=port,
        protocol=UpstreamProtocol(protocol),
        provider=Provider(provider),
    )


def parse_allow(value: str | None, *, mtls: bool) -> tuple[str, ...]:
    """The service names allowed to call an mTLS group, de-duplicated; () for "any".

    Without mTLS a caller presents no certificate, so nobody could be told apart: a list there
    would be a promise the sidecar cannot keep, and is refused rather than ignored.
    """
    if value is None or not value.strip():
        return ()
    names: list[str] = []
    for name in (item.strip() for item in value.split(",")):
        if not SERVICE_NAME.match(name):
            raise EgressError(
                keys.MESH_TLS_ALLOW,
                value,
                f"a comma-separated list of service names ({json.dumps(name)} is not one: "
                "letters, digits and '-', at most 63)",
            )
        if name.lower() not in names:
            names.append(name.lower())
    if not mtls:
        raise EgressError(
            keys.MESH_TLS_ALLOW,
            value,
            f'"{keys.MESH_TLS_MTLS}" = "true" as well: without client certificates the '
            "sidecar cannot tell callers apart",
        )
    return tuple(names)


def _list(value: object) -> list[Any]:
    return value if isinstance(value, list) else []
