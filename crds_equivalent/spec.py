"""MeshSpec: the parsed and validated effective meta of one task group.

The job is the user's; this module only reads it. Parsing is strict because a silently ignored
typo (`mesh.tls.mdoe`) would leave a service in plaintext while its team believes it is
encrypted. Every error names the group, the key, the value and what was expected.
"""

import json
import re
from collections.abc import Mapping
from enum import StrEnum
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from crds_equivalent import keys
from crds_equivalent.egress import (
    EgressError,
    Upstream,
    group_provider,
    parse_allow,
    parse_upstreams,
)
from crds_equivalent.goparse import GO_BOOL_VALUES, parse_go_bool, parse_go_duration

MIN_TTL_SECONDS = 3600
DEFAULT_TTL_SECONDS = 72 * 3600

_DNS_LABEL = re.compile(r"^(?!-)[A-Za-z0-9-]{1,63}(?<!-)$")
_PORT_LABEL = re.compile(r"^[A-Za-z0-9_-]+$")


class Mode(StrEnum):
    """How the service is registered in Consul."""

    STRICT = "strict"
    PERMISSIVE = "permissive"


class TlsProtocol(StrEnum):
    """What nginx proxies: HTTP (with X-Forwarded-*) or raw TCP (stream module)."""

    HTTP = "http"
    TCP = "tcp"


class Promote(StrEnum):
    """Who promotes canaries of a deployment the controller caused."""

    MANUAL = "manual"
    AUTO = "auto"


class MeshSpec(BaseModel):
    """What one task group asked for, with every default filled in."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    group: str = Field(description="Task group name.")
    enabled: bool = Field(default=False, description="`mesh.tls`: the group is meshed.")
    ports: tuple[str, ...] = Field(
        default=(),
        description="`mesh.tls.ports`: fronted port labels (default: every label a service of "
        "the group uses).",
    )
    mode: Mode = Field(default=Mode.STRICT, description="`mesh.tls.mode`.")
    protocol: TlsProtocol = Field(default=TlsProtocol.HTTP, description="`mesh.tls.protocol`.")
    ttl_seconds: int = Field(
        default=DEFAULT_TTL_SECONDS,
        ge=MIN_TTL_SECONDS,
        description="`mesh.tls.ttl` in seconds, before the per-job jitter.",
    )
    sans: tuple[str, ...] = Field(default=(), description="`mesh.tls.sans`: extra DNS SANs.")
    mtls: bool = Field(default=False, description="`mesh.tls.mtls`: require client certs.")
    upstreams: tuple[Upstream, ...] = Field(
        default=(),
        description="`mesh.tls.upstreams`: loopback ports the sidecar carries over mTLS to "
        "the named meshed services.",
    )
    allow: tuple[str, ...] = Field(
        default=(),
        description="`mesh.tls.allow` (with mtls): the only services whose certificates may "
        "call the group; empty: any mesh certificate.",
    )


class SpecError(ValueError):
    """An invalid meta value; the message names group, key, value and expectation."""

    def __init__(self, group: str, key: str, value: object, expected: str) -> None:
        self.group = group
        self.key = key
        self.value = value
        self.expected = expected
        # the expectation may quote parts of the value (an unknown label): cut it short too
        shown = expected if len(expected) <= EXPECTED_LIMIT else expected[:EXPECTED_LIMIT] + "…"
        super().__init__(f'group "{group}": meta "{key}" = {_show(value)}: expected {shown}')


EXPECTED_LIMIT = 400


def _show(value: object, limit: int = 120) -> str:
    """A value as JSON, cut short: errors must stay readable even for a megabyte of meta."""
    try:
        text = json.dumps(value, ensure_ascii=False)
    except (TypeError, ValueError):
        text = repr(value)
    return text if len(text) <= limit else text[:limit] + "…"


def effective_meta(job: Mapping[str, Any], group: Mapping[str, Any]) -> dict[str, Any]:
    """Job meta overlaid by group meta, as Nomad itself merges them for the group's tasks."""
    merged: dict[str, Any] = {}
    for source in (job.get("Meta"), group.get("Meta")):
        if isinstance(source, Mapping):
            merged.update(source)
    return merged


def group_port_labels(group: Mapping[str, Any]) -> list[str]:
    """Labels of every port the group declares, in declaration order.

    The group's networks first, then each task's ``Resources.Networks``: task-level networks
    are deprecated but Nomad still honours them ("network resources on the task resources are
    deprecated, but we must let them continue working", nomad/structs/structs.go,
    validateServices), so a service on such a port is a port the mesh can front.
    """
    labels: list[str] = []
    networks = list(_list(group.get("Networks")))
    for task in _list(group.get("Tasks")):
        resources = task.get("Resources") if isinstance(task, Mapping) else None
        if isinstance(resources, Mapping):
            networks.extend(_list(resources.get("Networks")))
    for network in networks:
        if not isinstance(network, Mapping):
            continue
        for kind in ("ReservedPorts", "DynamicPorts"):
            for port in _list(network.get(kind)):
                label = port.get("Label") if isinstance(port, Mapping) else None
                if isinstance(label, str) and label not in labels:
                    labels.append(label)
    return labels


def service_port_labels(group: Mapping[str, Any]) -> list[str]:
    """Port labels used by the group's services (group level first, then task level)."""
    services = list(_list(group.get("Services")))
    for task in _list(group.get("Tasks")):
        if isinstance(task, Mapping):
            services.extend(_list(task.get("Services")))
    labels: list[str] = []
    for service in services:
        label = service.get("PortLabel") if isinstance(service, Mapping) else None
        if isinstance(label, str) and label and label not in labels:
            labels.append(label)
    return labels


def parse_group_spec(
    job: Mapping[str, Any],
    group: Mapping[str, Any],
    *,
    default_ttl_seconds: int = DEFAULT_TTL_SECONDS,
) -> MeshSpec:
    """Parse the effective meta of one group; raise SpecError on the first invalid value."""
    name = str(group.get("Name", ""))
    meta = effective_meta(job, group)
    enabled = _parse_bool(name, meta, keys.MESH_TLS, default=False)
    if not enabled:
        return MeshSpec(group=name)
    _reject_unknown_keys(name, meta)
    _parse_choice(name, meta, keys.MESH_TLS_PROMOTE, Promote, Promote.MANUAL)  # validate only
    mtls = _parse_bool(name, meta, keys.MESH_TLS_MTLS, default=False)
    try:
        upstreams = parse_upstreams(
            _string(name, meta, keys.MESH_TLS_UPSTREAMS), group_provider(group)
        )
        allow = parse_allow(_string(name, meta, keys.MESH_TLS_ALLOW), mtls=mtls)
    except EgressError as err:
        raise SpecError(name, err.key, err.value, err.expected) from None
    return MeshSpec(
        group=name,
        enabled=True,
        ports=_parse_ports(name, meta, group),
        mode=Mode(_parse_choice(name, meta, keys.MESH_TLS_MODE, Mode, Mode.STRICT)),
        protocol=TlsProtocol(
            _parse_choice(name, meta, keys.MESH_TLS_PROTOCOL, TlsProtocol, TlsProtocol.HTTP)
        ),
        ttl_seconds=_parse_ttl(name, meta, default_ttl_seconds),
        sans=_parse_sans(name, meta),
        mtls=mtls,
        upstreams=upstreams,
        allow=allow,
    )


def promote_of(job: Mapping[str, Any], group: Mapping[str, Any]) -> Promote:
    """`mesh.tls.promote` of a meshed group (manual when absent).

    Kept out of MeshSpec on purpose: the spec is an input of the marker hash, and who promotes
    a deployment changes nothing the injection writes, so flipping it must not roll the job.
    ``parse_group_spec`` validates it like every other key (a typo makes the job Invalid)."""
    name = str(group.get("Name", ""))
    return Promote(
        _parse_choice(
            name, effective_meta(job, group), keys.MESH_TLS_PROMOTE, Promote, Promote.MANUAL
        )
    )


def parse_job_specs(
    job: Mapping[str, Any], *, default_ttl_seconds: int = DEFAULT_TTL_SECONDS
) -> dict[str, MeshSpec]:
    """Specs of every task group of the job, keyed by group name."""
    specs: dict[str, MeshSpec] = {}
    for group in _list(job.get("TaskGroups")):
        if isinstance(group, Mapping):
            spec = parse_group_spec(job, group, default_ttl_seconds=default_ttl_seconds)
            specs[spec.group] = spec
    return specs


def _list(value: object) -> list[Any]:
    return value if isinstance(value, list) else []


def _string(group: str, meta: Mapping[str, Any], key: str) -> str | None:
    value = meta.get(key)
    if value is None:
        return None
    if not isinstance(value, str):
        raise SpecError(group, key, value, "a string")
    return value


def _parse_bool(group: str, meta: Mapping[str, Any], key: str, *, default: bool) -> bool:
    value = _string(group, meta, key)
    if value is None:
        return default
    try:
        return parse_go_bool(value)
    except ValueError:
        raise SpecError(group, key, value, f"a boolean ({GO_BOOL_VALUES})") from None


def _parse_choice(
    group: str, meta: Mapping[str, Any], key: str, choices: type[StrEnum], default: StrEnum
) -> str:
    value = _string(group, meta, key)
    if value is None:
        return str(default)
    allowed = [str(choice) for choice in choices]
    if value not in allowed:
        raise SpecError(group, key, value, "one of " + ", ".join(allowed))
    return value


def _split_list(value: str) -> list[str]:
    return [item.strip() for item in value.split(",")]


def _parse_ports(group: str, meta: Mapping[str, Any], tg: Mapping[str, Any]) -> tuple[str, ...]:
    declared = group_port_labels(tg)
    value = _string(group, meta, keys.MESH_TLS_PORTS)
    if value is None:
        return tuple(label for label in service_port_labels(tg) if label in declared)
    labels: list[str] = []
    for label in _split_list(value):
        if not label or not _PORT_LABEL.match(label):
            raise SpecError(
                group, keys.MESH_TLS_PORTS, value, "a comma-separated list of port labels"
            )
        if label not in declared:
            known = ", ".join(declared) if declared else "none declared"
            raise SpecError(
                group,
                keys.MESH_TLS_PORTS,
                value,
                f"port labels of the group's networks (unknown label {_show(label, 60)}; "
                f"known: {known})",
            )
        if label not in labels:
            labels.append(label)
    return tuple(labels)


def _parse_ttl(group: str, meta: Mapping[str, Any], default: int) -> int:
    value = _string(group, meta, keys.MESH_TLS_TTL)
    if value is None:
        return default
    expected = 'a Go duration of at least 1h (e.g. "72h", "90m", "1h30m")'
    try:
        seconds = parse_go_duration(value)
    except ValueError:
        raise SpecError(group, keys.MESH_TLS_TTL, value, expected) from None
    if seconds < MIN_TTL_SECONDS:
        raise SpecError(group, keys.MESH_TLS_TTL, value, expected)
    return int(seconds)


def _parse_sans(group: str, meta: Mapping[str, Any]) -> tuple[str, ...]:
    value = _string(group, meta, keys.MESH_TLS_SANS)
    if value is None or not value.strip():
        return ()
    sans: list[str] = []
    for name in _split_list(value):
        if not _is_dns_name(name):
            raise SpecError(
                group,
                keys.MESH_TLS_SANS,
                value,
                f'a comma-separated list of DNS names ("{name}" is not one)',
            )
        if name.lower() not in sans:
            sans.append(name.lower())
    return tuple(sans)


def _is_dns_name(name: str) -> bool:
    if not name or len(name) > 253 or not name.isascii():
        return False
    return all(_DNS_LABEL.match(label) for label in name.rstrip(".").split("."))


def _reject_unknown_keys(group: str, meta: Mapping[str, Any]) -> None:
    owned = {
        keys.INJECTED_GROUP_META,
        keys.UNDO_GROUP_META,
        keys.ROTATION_GROUP_META,
        keys.MANAGED_TASK_META,
    }
    for key in meta:
        if key.startswith(keys.MESH_TLS + ".") and key not in keys.USER_KEYS and key not in owned:
            raise SpecError(
                group, key, meta[key], "a known mesh key (" + ", ".join(keys.USER_KEYS) + ")"
            )
