"""consul-template's helper functions (strings, JSON, env, math) and writeToFile.

Argument order follows consul-template, where the piped value comes last: `join "," .Tags`,
`.Value | trimPrefix "/"`. Functions that consul-template has but this subset does not are
listed in UNSUPPORTED so the parser can name them instead of rendering something else.
"""

from __future__ import annotations

import base64
import grp
import hashlib
import json
import os
import pwd
from typing import Any

from devstack.template.context import RenderState
from devstack.template.errors import TemplateError
from devstack.template.files import write_atomic
from devstack.template.gofmt import MISSING, go_str, go_type


def _jsonable(v: Any) -> Any:
    if hasattr(v, "go_json"):  # a Go json.Marshaler
        return v.go_json()
    if v is MISSING:
        return None
    if isinstance(v, dict):
        return {str(k): _jsonable(x) for k, x in v.items()}
    if isinstance(v, list | tuple):
        return [_jsonable(x) for x in v]
    if hasattr(v, "go_fields"):
        return {k: _jsonable(x) for k, x in v.go_fields()}
    return v


def _go_json_escape(s: str) -> str:
    return s.replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026")


def to_json(v: Any) -> str:
    return _go_json_escape(json.dumps(_jsonable(v), separators=(",", ":"), sort_keys=True))


def to_json_pretty(v: Any) -> str:
    return _go_json_escape(json.dumps(_jsonable(v), indent=2, sort_keys=True))


def _str(v: Any, fn: str) -> str:
    if isinstance(v, str):
        return v
    raise TemplateError(f"{fn}: expected string, got {go_type(v)}")


def _num(v: Any, fn: str) -> int | float:
    if isinstance(v, bool) or not isinstance(v, int | float):
        raise TemplateError(f"{fn}: expected a number, got {go_type(v)}")
    return v


def parse_bool(s: str) -> bool:
    if s in ("1", "t", "T", "TRUE", "true", "True"):
        return True
    if s in ("0", "f", "F", "FALSE", "false", "False", ""):
        return False
    raise TemplateError(f'parseBool: invalid syntax: "{s}"')


def parse_int(s: str) -> int:
    try:
        return int(s.strip() or "0", 10)
    except ValueError as e:
        raise TemplateError(f'parseInt: invalid syntax: "{s}"') from e


def divide(b: Any, a: Any) -> Any:
    if _num(b, "divide") == 0:
        raise TemplateError("divide: division by zero")
    if isinstance(a, int) and isinstance(b, int):
        return int(a / b)
    return a / b


def loop(*args: int) -> list[int]:
    if len(args) == 1:
        return list(range(args[0]))
    if len(args) == 2:
        return list(range(args[0], args[1]))
    raise TemplateError("loop: expected 1 or 2 integers")


def helpers(state: RenderState) -> dict[str, Any]:
    env = state.ctx.env

    def must_env(name: str) -> str:
        if name not in env:
            raise TemplateError(f'mustEnv: environment variable "{name}" is not set')
        return env[name]

    return {
        "env": lambda name: env.get(_str(name, "env"), ""),
        "envOrDefault": lambda name, default: env.get(name) or default,
        "mustEnv": must_env,
        "toJSON": to_json,
        "toJSONPretty": to_json_pretty,
        "toLower": lambda s: _str(s, "toLower").lower(),
        "toUpper": lambda s: _str(s, "toUpper").upper(),
        "trimSpace": lambda s: _str(s, "trimSpace").strip(" \t\n\r\v\f"),
        "trim": lambda cut, s: _str(s, "trim").strip(cut),
        "trimPrefix": lambda p, s: _str(s, "trimPrefix").removeprefix(p),
        "trimSuffix": lambda p, s: _str(s, "trimSuffix").removesuffix(p),
        "replaceAll": lambda old, new, s: _str(s, "replaceAll").replace(old, new),
        "split": lambda sep, s: _str(s, "split").split(sep) if s else [],
        "join": lambda sep, items: sep.join(go_str(i, False) for i in items),
        "contains": lambda v, items: v in items,
        "in": lambda items, v: v in items,
        "indent": lambda n, s: "\n".join(" " * n + line for line in _str(s, "indent").split("\n")),
        "parseBool": parse_bool,
        "parseInt": parse_int,
        "parseFloat": lambda s: float(s),
        "parseJSON": lambda s: json.loads(s) if s else {},
        "base64Encode": lambda s: base64.b64encode(_str(s, "base64Encode").encode()).decode(),
        "base64Decode": lambda s: base64.b64decode(_str(s, "base64Decode")).decode(),
        "sha256Hex": lambda s: hashlib.sha256(_str(s, "sha256Hex").encode()).hexdigest(),
        "add": lambda b, a: _num(a, "add") + _num(b, "add"),
        "subtract": lambda b, a: _num(a, "subtract") - _num(b, "subtract"),
        "multiply": lambda b, a: _num(a, "multiply") * _num(b, "multiply"),
        "divide": divide,
        "modulo": lambda b, a: _num(a, "modulo") % _num(b, "modulo"),
        "minimum": lambda b, a: min(_num(a, "minimum"), _num(b, "minimum")),
        "maximum": lambda b, a: max(_num(a, "maximum"), _num(b, "maximum")),
        "loop": loop,
        "writeToFile": lambda *a: write_to_file(state, *a),
    }


def _owner(user: str, group: str) -> tuple[int, int]:
    uid = gid = -1
    try:
        if user:
            uid = int(user) if user.isdigit() else pwd.getpwnam(user).pw_uid
        if group:
            gid = int(group) if group.isdigit() else grp.getgrnam(group).gr_gid
    except KeyError as e:
        raise TemplateError(f"writeToFile: unknown user or group: {e}") from e
    return uid, gid


def write_to_file(
    state: RenderState, path: str, user: str, group: str, perms: str, *rest: str
) -> str:
    """`{{ .Key | writeToFile "/p" "user" "group" "0600" ["append,newline"] }}` -> ""."""
    if not rest:
        raise TemplateError("writeToFile: missing content")
    flags = rest[0].split(",") if len(rest) == 2 else []
    content = rest[-1]
    ctx = state.ctx
    full = path if os.path.isabs(path) else os.path.join(ctx.task_dir or os.getcwd(), path)
    full = os.path.realpath(full)
    if ctx.sandbox_dir:
        root = os.path.realpath(ctx.sandbox_dir)
        if os.path.commonpath([root, full]) != root:
            raise TemplateError(f"writeToFile: {path} escapes the allocation directory")
    if "append" in flags and os.path.exists(full):
        with open(full, encoding="utf-8") as f:
            content = f.read() + content
    if "newline" in flags:
        content += "\n"
    uid, gid = _owner(user, group) if os.geteuid() == 0 else (-1, -1)
    try:
        mode = int(perms, 8) if perms else 0o644
    except ValueError as e:
        raise TemplateError(f"writeToFile: bad perms {perms!r}") from e
    write_atomic(full, content, mode, uid, gid)
    state.files.append(full)
    return ""


# Functions consul-template (or Go) has that this renderer refuses by name.
UNSUPPORTED: tuple[str, ...] = (
    "js",
    "call",
    "caLeaf",
    "caRoots",
    "connect",
    "datacenters",
    "exportedServices",
    "importedServices",
    "file",
    "keyExists",
    "ls",
    "safeLs",
    "node",
    "nodes",
    "partitions",
    "peerings",
    "secrets",
    "services",
    "tree",
    "safeTree",
    "byKey",
    "byTag",
    "byMeta",
    "containsAll",
    "containsAny",
    "containsNone",
    "containsNotAll",
    "executeTemplate",
    "explode",
    "explodeMap",
    "mergeMap",
    "mergeMapWithOverride",
    "parseUint",
    "parseYAML",
    "plugin",
    "regexMatch",
    "regexReplaceAll",
    "md5sum",
    "hmacSHA256Hex",
    "splitToMap",
    "timestamp",
    "toTitle",
    "toTOML",
    "toYAML",
    "sockaddr",
    "nomadServices",
    "spew_dump",
    "spew_sdump",
    "spew_printf",
    "spew_sprintf",
    "toUnescapedJSON",
    "toUnescapedJSONPretty",
    "scratch",
)
