"""Request decoding with Go ``encoding/json`` semantics over the schema tables.

Nomad decodes bodies into ``api.*`` structs: field names match case-insensitively,
unknown fields are ignored, ``null`` leaves a field unset, and a value of the wrong JSON
type is a 400 carrying Go's error text (``json: cannot unmarshal string into Go struct
field Task.Job.TaskGroups.Tasks.KillTimeout of type time.Duration``). The output uses
the canonical Go spelling of every key, so later stages never care about case.
"""

from __future__ import annotations

import json
from typing import Any

from devstack.nomad.schema import GO_TYPES, request_fields

REQUESTS: dict[str, dict[str, str]] = {
    "JobRegisterRequest": {
        "Job": "@Job",
        "EnforceIndex": "b",
        "JobModifyIndex": "i",
        "PolicyOverride": "b",
        "PreserveCounts": "b",
        "PreserveResources": "b",
        "EvalPriority": "i",
        "Submission": "any",
        "Region": "s",
        "Namespace": "s",
        "SecretID": "s",
    },
    "JobPlanRequest": {"Job": "@Job", "Diff": "b", "PolicyOverride": "b"},
}


class DecodeError(Exception):
    """A body Go's decoder would reject; the message is Go's text."""


def parse_body(raw: bytes) -> Any:
    if not raw.strip():
        raise DecodeError("Request body is empty")
    try:
        return json.loads(raw)
    except (ValueError, UnicodeDecodeError) as exc:
        raise DecodeError(f"invalid character in JSON body: {exc}") from exc


def decode_request(kind: str, raw: bytes) -> dict[str, Any]:
    body = parse_body(raw)
    return decode_value(REQUESTS[kind], body, kind, [])


def decode_struct(struct: str, value: Any) -> dict[str, Any]:
    """Decode one api struct (e.g. a bare Job) outside of a request wrapper."""
    return decode_value(request_fields(struct), value, struct, [])


def _jtype(value: Any) -> str:
    if isinstance(value, bool):
        return "bool"
    if isinstance(value, int | float):
        return "number"
    if isinstance(value, str):
        return "string"
    if isinstance(value, list):
        return "array"
    return "object"


def _err(value: Any, struct: str, path: list[str], gotype: str) -> DecodeError:
    jt = _jtype(value)
    if jt == "number":
        jt = f"number {value}" if not isinstance(value, int) or gotype != "string" else "number"
    field = ".".join(path)
    return DecodeError(
        f"json: cannot unmarshal {jt} into Go struct field {struct}.{field} of type {gotype}"
    )


def decode_value(
    fields: dict[str, str], value: Any, struct: str, path: list[str]
) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise _err(value, struct, path or [struct], f"api.{struct}")
    lower = {name.lower(): name for name in fields}
    out: dict[str, Any] = {}
    for key, item in value.items():
        name = key if key in fields else lower.get(key.lower())
        if name is None or item is None:
            continue
        out[name] = _decode_kind(fields[name], item, struct, [*path, name])
    return out


def _decode_kind(kind: str, item: Any, struct: str, path: list[str]) -> Any:
    if kind == "any":
        return item
    if kind[0] in "@!":
        sub = kind[1:]
        return decode_value(request_fields(sub), item, sub, path)
    if kind[0] == "[":
        sub = kind[1:]
        if not isinstance(item, list):
            raise _err(item, struct, path, f"[]*api.{sub}")
        return [
            None if x is None else decode_value(request_fields(sub), x, sub, path) for x in item
        ]
    if kind[0] == "{":
        sub = kind[1:]
        if not isinstance(item, dict):
            raise _err(item, struct, path, f"map[string]*api.{sub}")
        return {k: decode_value(request_fields(sub), v, sub, path) for k, v in item.items()}
    gotype = GO_TYPES.get(kind, kind)
    if kind in ("s",):
        if not isinstance(item, str):
            raise _err(item, struct, path, gotype)
        return item
    if kind in ("b", "pb"):
        if not isinstance(item, bool):
            raise _err(item, struct, path, gotype)
        return item
    if kind in ("i", "pi", "d", "pd"):
        if isinstance(item, bool) or not isinstance(item, int | float):
            raise _err(item, struct, path, gotype)
        if isinstance(item, float) and not item.is_integer():
            raise _err(item, struct, path, gotype)
        return int(item)
    if kind == "f":
        if isinstance(item, bool) or not isinstance(item, int | float):
            raise _err(item, struct, path, gotype)
        return item
    if kind == "ms":
        if not isinstance(item, dict) or not all(isinstance(v, str) for v in item.values()):
            raise _err(item, struct, path, gotype)
        return dict(item)
    if kind == "ls":
        if not isinstance(item, list) or not all(isinstance(v, str) for v in item):
            raise _err(item, struct, path, gotype)
        return list(item)
    if kind == "b64":
        if not isinstance(item, str):
            raise _err(item, struct, path, gotype)
        return item
    return item
