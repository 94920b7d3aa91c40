"""Consul's request decoding, reproduced: case-insensitive keys, snake_case aliases, no unknowns.

Consul decodes `PUT /v1/agent/service/register` with Go's encoding/json and
DisallowUnknownFields: a key matches a field regardless of case ("name", "NAME" -> Name), a few
snake_case aliases are accepted (py-consul sends some of them), and anything else is a 400
`Request decode failed: json: unknown field "x"`. Durations are Go strings or nanoseconds. A
client that works against this decoder therefore sends what a real agent would accept.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from devstack import godur


class DecodeError(ValueError):
    """The body does not decode; str() is the text after `Request decode failed: `."""


Kind = str  # one of the _KINDS keys below, or "check"/"checks"

CHECK_FIELDS: dict[str, Kind] = {
    "CheckID": "str",
    "Name": "str",
    "Status": "str",
    "Notes": "str",
    "ScriptArgs": "list",
    "HTTP": "str",
    "H2PING": "str",
    "H2PingUseTLS": "bool",
    "Header": "header",
    "Method": "str",
    "Body": "str",
    "DisableRedirects": "bool",
    "TCP": "str",
    "TCPUseTLS": "bool",
    "UDP": "str",
    "OSService": "str",
    "Interval": "duration",
    "AliasNode": "str",
    "AliasService": "str",
    "DockerContainerID": "str",
    "Shell": "str",
    "GRPC": "str",
    "GRPCUseTLS": "bool",
    "TLSServerName": "str",
    "TLSSkipVerify": "bool",
    "Timeout": "duration",
    "TTL": "duration",
    "SuccessBeforePassing": "int",
    "FailuresBeforeWarning": "int",
    "FailuresBeforeCritical": "int",
    "ProxyHTTP": "str",
    "ProxyGRPC": "str",
    "DeregisterCriticalServiceAfter": "duration",
    "OutputMaxSize": "int",
}
CHECK_ALIASES = {
    "args": "ScriptArgs",
    "script_args": "ScriptArgs",
    "deregister_critical_service_after": "DeregisterCriticalServiceAfter",
    "docker_container_id": "DockerContainerID",
    "tls_server_name": "TLSServerName",
    "tls_skip_verify": "TLSSkipVerify",
    "grpc_use_tls": "GRPCUseTLS",
    "h2ping_use_tls": "H2PingUseTLS",
    "service_id": "ServiceID",
}

SERVICE_FIELDS: dict[str, Kind] = {
    "Kind": "str",
    "ID": "str",
    "Name": "str",
    "Tags": "list",
    "Address": "str",
    "TaggedAddresses": "tagged",
    "Meta": "meta",
    "Port": "int",
    "SocketPath": "str",
    "Check": "check",
    "Checks": "checks",
    "Weights": "weights",
    "Token": "str",
    "EnableTagOverride": "bool",
    "Proxy": "object",
    "Connect": "object",
    "Namespace": "str",
    "Partition": "str",
    "Locality": "object",
}
SERVICE_ALIASES = {
    "enable_tag_override": "EnableTagOverride",
    "tagged_addresses": "TaggedAddresses",
}

_GO_TYPES = {
    "str": "string",
    "int": "int",
    "bool": "bool",
    "list": "[]string",
    "meta": "map[string]string",
    "header": "map[string][]string",
    "tagged": "map[string]structs.ServiceAddress",
    "weights": "structs.Weights",
    "object": "struct",
    "duration": "time.Duration",
    "check": "structs.CheckType",
    "checks": "structs.CheckTypes",
}


def _json_type(value: object) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "bool"
    if isinstance(value, int | float):
        return "number"
    if isinstance(value, str):
        return "string"
    if isinstance(value, list):
        return "array"
    return "object"


def _mismatch(value: object, struct: str, field: str, kind: Kind) -> DecodeError:
    return DecodeError(
        f"json: cannot unmarshal {_json_type(value)} into Go struct field "
        f"{struct}.{field} of type {_GO_TYPES[kind]}"
    )


def _is_str_list(value: object) -> bool:
    return isinstance(value, list) and all(isinstance(v, str) for v in value)


def _value(value: object, struct: str, field: str, kind: Kind) -> object:
    """Type-check one field; null means "unset" as in Go (the zero value)."""
    if value is None:
        return None
    ok: dict[Kind, Callable[[object], bool]] = {
        "str": lambda v: isinstance(v, str),
        "int": lambda v: isinstance(v, int) and not isinstance(v, bool),
        "bool": lambda v: isinstance(v, bool),
        "list": _is_str_list,
        "meta": lambda v: isinstance(v, dict) and all(isinstance(x, str) for x in v.values()),
        "header": lambda v: isinstance(v, dict) and all(_is_str_list(x) for x in v.values()),
        "object": lambda v: isinstance(v, dict),
    }
    if kind in ok:
        if not ok[kind](value):
            raise _mismatch(value, struct, field, kind)
        return value
    if kind == "duration":
        try:
            return godur.coerce(value)
        except godur.DurationError as e:
            if isinstance(value, str):
                raise DecodeError(str(e)) from e
            raise _mismatch(value, struct, field, kind) from e
    if kind == "weights":
        return _weights(value, struct, field)
    if kind == "tagged":
        return _tagged(value, struct, field)
    if kind == "check":
        return decode_check(value)
    if kind == "checks":
        if not isinstance(value, list):
            raise _mismatch(value, struct, field, kind)
        return [decode_check(c) for c in value]
    raise AssertionError(kind)  # pragma: no cover - the tables above are closed


def _weights(value: object, struct: str, field: str) -> dict[str, int]:
    raw = _fields(value, {"Passing": "int", "Warning": "int"}, {}, "structs.Weights")
    return {k: int(v) for k, v in raw.items() if v is not None}


def _tagged(value: object, struct: str, field: str) -> dict[str, dict[str, Any]]:
    if not isinstance(value, dict):
        raise _mismatch(value, struct, field, "tagged")
    out: dict[str, dict[str, Any]] = {}
    for name, addr in value.items():
        raw = _fields(addr, {"Address": "str", "Port": "int"}, {}, "structs.ServiceAddress")
        out[name] = {"Address": raw.get("Address") or "", "Port": raw.get("Port") or 0}
    return out


def _fields(
    body: object, fields: Mapping[str, Kind], aliases: Mapping[str, str], struct: str
) -> dict[str, Any]:
    """Match keys as Go does (exact, then case-insensitive), aliases too; reject unknowns."""
    if not isinstance(body, dict):
        raise DecodeError(
            f"json: cannot unmarshal {_json_type(body)} into Go value of type {struct}"
        )
    lower = {name.lower(): name for name in fields}
    out: dict[str, Any] = {}
    for key, value in body.items():
        name = key if key in fields else lower.get(key.lower())
        if name is None and key in aliases:
            name = aliases[key]
            if name not in fields:  # an alias for a field this endpoint ignores (service_id)
                continue
        if name is None:
            raise DecodeError(f'json: unknown field "{key}"')
        out[name] = _value(value, struct.split(".")[-1], name, fields[name])
    return out


def decode_check(body: object) -> dict[str, Any]:
    """One check (structs.CheckType) with canonical keys; unset fields absent."""
    return {
        k: v
        for k, v in _fields(body, CHECK_FIELDS, CHECK_ALIASES, "structs.CheckType").items()
        if v is not None
    }


def decode_service(body: object) -> dict[str, Any]:
    """A service definition (structs.ServiceDefinition) with canonical keys."""
    return {
        k: v
        for k, v in _fields(
            body, SERVICE_FIELDS, SERVICE_ALIASES, "structs.ServiceDefinition"
        ).items()
        if v is not None
    }


DEFINITION_FIELDS: dict[str, Kind] = {
    "ID": "str",
    "ServiceID": "str",
    "Token": "str",
    **{k: v for k, v in CHECK_FIELDS.items() if k != "CheckID"},
}


def decode_check_definition(body: object) -> dict[str, Any]:
    """A standalone check (structs.CheckDefinition, PUT /v1/agent/check/register)."""
    return {
        k: v
        for k, v in _fields(
            body, DEFINITION_FIELDS, CHECK_ALIASES, "structs.CheckDefinition"
        ).items()
        if v is not None
    }
