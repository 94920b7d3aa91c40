"""Our HCL2 job file, as parsed by python-hcl2, to the Nomad API JSON that `nomad job run
-output` would print: ``{"Job": {...}}`` with API field names, durations in nanoseconds and
every ``var.*`` resolved (defaults, overridden by ``-var``-style overrides).

Why our own conversion: Nomad's parser is Go, and the devstack and `controllerctl install`
register JSON, so the JSON is generated in the repo and a test keeps it fresh. The tables below
cover the blocks and attributes mesh-controller.nomad.hcl uses (plus close relatives); an
unknown one is an error, never silently dropped. This module is pure: the caller parses the
file (python-hcl2, a dev dependency) and hands the dict in.
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Mapping
from typing import Any

from crds_equivalent.goparse import parse_go_duration
from deploytools.hclexpr import HclError, Scope, evaluate

Raw = dict[str, Any]
Convert = Callable[[Any], Any]


def _ns(value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, str | int):
        raise HclError(f"duration {value!r} must be a string like '10s'")
    return value if isinstance(value, int) else round(parse_go_duration(value) * 1e9)


def _str(value: Any) -> str:
    if not isinstance(value, str):
        raise HclError(f"{value!r} must be a string")
    return value


def _int(value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise HclError(f"{value!r} must be a number")
    return value


def _bool(value: Any) -> bool:
    if not isinstance(value, bool):
        raise HclError(f"{value!r} must be true or false")
    return value


def _strs(value: Any) -> list[str]:
    if not isinstance(value, list):
        raise HclError(f"{value!r} must be a list of strings")
    return [_str(v) for v in value]


def _smap(value: Any) -> dict[str, str]:
    if not isinstance(value, dict):
        raise HclError(f"{value!r} must be a map")
    return {k: v if isinstance(v, str) else _scalar_text(v) for k, v in value.items()}


def _scalar_text(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return str(value)
    raise HclError(f"{value!r} must be a string")


# hcl attribute -> (API field, converter)
Fields = Mapping[str, tuple[str, Convert]]

JOB: Fields = {
    "type": ("Type", _str),
    "datacenters": ("Datacenters", _strs),
    "namespace": ("Namespace", _str),
    "region": ("Region", _str),
    "node_pool": ("NodePool", _str),
    "priority": ("Priority", _int),
    "all_at_once": ("AllAtOnce", _bool),
    "meta": ("Meta", _smap),
}
GROUP: Fields = {"count": ("Count", _int), "shutdown_delay": ("ShutdownDelay", _ns)}
TASK: Fields = {
    "driver": ("Driver", _str),
    "user": ("User", _str),
    "kill_timeout": ("KillTimeout", _ns),
    "kill_signal": ("KillSignal", _str),
    "leader": ("Leader", _bool),
    "shutdown_delay": ("ShutdownDelay", _ns),
}
UPDATE: Fields = {
    "max_parallel": ("MaxParallel", _int),
    "health_check": ("HealthCheck", _str),
    "min_healthy_time": ("MinHealthyTime", _ns),
    "healthy_deadline": ("HealthyDeadline", _ns),
    "progress_deadline": ("ProgressDeadline", _ns),
    "auto_revert": ("AutoRevert", _bool),
    "auto_promote": ("AutoPromote", _bool),
    "canary": ("Canary", _int),
    "stagger": ("Stagger", _ns),
}
RESTART: Fields = {
    "attempts": ("Attempts", _int),
    "interval": ("Interval", _ns),
    "delay": ("Delay", _ns),
    "mode": ("Mode", _str),
    "render_templates": ("RenderTemplates", _bool),
}
SERVICE: Fields = {
    "name": ("Name", _str),
    "port": ("PortLabel", _str),
    "provider": ("Provider", _str),
    "tags": ("Tags", _strs),
    "address_mode": ("AddressMode", _str),
    "task": ("TaskName", _str),
    "meta": ("Meta", _smap),
}
CHECK: Fields = {
    "type": ("Type", _str),
    "name": ("Name", _str),
    "path": ("Path", _str),
    "port": ("PortLabel", _str),
    "protocol": ("Protocol", _str),
    "method": ("Method", _str),
    "interval": ("Interval", _ns),
    "timeout": ("Timeout", _ns),
    "address_mode": ("AddressMode", _str),
    "on_update": ("OnUpdate", _str),
    "initial_status": ("InitialStatus", _str),
    "success_before_passing": ("SuccessBeforePassing", _int),
    "failures_before_critical": ("FailuresBeforeCritical", _int),
    "tls_skip_verify": ("TLSSkipVerify", _bool),
}
CHECK_RESTART: Fields = {
    "limit": ("Limit", _int),
    "grace": ("Grace", _ns),
    "ignore_warnings": ("IgnoreWarnings", _bool),
}
TEMPLATE: Fields = {
    "data": ("EmbeddedTmpl", _str),
    "source": ("SourcePath", _str),
    "destination": ("DestPath", _str),
    "env": ("Envvars", _bool),
    "change_mode": ("ChangeMode", _str),
    "change_signal": ("ChangeSignal", _str),
    "perms": ("Perms", _str),
    "splay": ("Splay", _ns),
    "once": ("Once", _bool),
    "error_on_missing_key": ("ErrMissingKey", _bool),
    "left_delimiter": ("LeftDelim", _str),
    "right_delimiter": ("RightDelim", _str),
}
RESOURCES: Fields = {
    "cpu": ("CPU", _int),
    "cores": ("Cores", _int),
    "memory": ("MemoryMB", _int),
    "memory_max": ("MemoryMaxMB", _int),
}
LOGS: Fields = {
    "max_files": ("MaxFiles", _int),
    "max_file_size": ("MaxFileSizeMB", _int),
    "disabled": ("Disabled", _bool),
}
IDENTITY: Fields = {
    "name": ("Name", _str),
    "aud": ("Audience", _strs),
    "env": ("Env", _bool),
    "file": ("File", _bool),
    "ttl": ("TTL", _ns),
}
VAULT: Fields = {
    "role": ("Role", _str),
    "cluster": ("Cluster", _str),
    "change_mode": ("ChangeMode", _str),
    "change_signal": ("ChangeSignal", _str),
    "env": ("Env", _bool),
    "disable_file": ("DisableFile", _bool),
}
PORT: Fields = {
    "static": ("Value", _int),
    "to": ("To", _int),
    "host_network": ("HostNetwork", _str),
}


class _Converter:
    def __init__(self, scope: Scope) -> None:
        self.scope = scope

    def attrs(
        self, body: Raw, fields: Fields, where: str, blocks: Collection[str]
    ) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for key, raw in body.items():
            if key.startswith("__") or key in blocks:
                continue
            if key not in fields:
                raise HclError(f"{where}: unsupported attribute or block {key!r}")
            value = evaluate(raw, self.scope)
            if value is None:  # HCL: a null attribute is the same as leaving it out
                continue
            api, convert = fields[key]
            out[api] = convert(value)
        return out

    def block(self, body: Raw, fields: Fields, where: str) -> dict[str, Any]:
        return self.attrs(body, fields, where, blocks=set())

    def job(self, label: str, body: Raw) -> dict[str, Any]:
        where = f"job {label}"
        job: dict[str, Any] = {"ID": label, "Name": label}
        job.update(self.attrs(body, JOB, where, _blocks_in(body)))
        handlers: dict[str, Callable[[Raw], None]] = {
            "meta": lambda b: job.setdefault("Meta", {}).update(_smap(evaluate(b, self.scope))),
            "update": lambda b: job.__setitem__("Update", self.block(b, UPDATE, where)),
        }
        self._dispatch(body, handlers, where, labeled_ok={"group"})
        job["TaskGroups"] = [self.group(n, b) for n, b in labeled(body, "group")]
        return job

    def group(self, name: str, body: Raw) -> dict[str, Any]:
        where = f"group {name}"
        group: dict[str, Any] = {"Name": name}
        group.update(self.attrs(body, GROUP, where, _blocks_in(body)))
        handlers: dict[str, Callable[[Raw], None]] = {
            "network": lambda b: group.setdefault("Networks", []).append(self.network(b)),
            "service": lambda b: group.setdefault("Services", []).append(self.service(b)),
            "restart": lambda b: group.__setitem__("RestartPolicy", self.block(b, RESTART, where)),
            "update": lambda b: group.__setitem__("Update", self.block(b, UPDATE, where)),
            "meta": lambda b: group.setdefault("Meta", {}).update(_smap(evaluate(b, self.scope))),
        }
        self._dispatch(body, handlers, where, labeled_ok={"task"})
        group["Tasks"] = [self.task(n, b) for n, b in labeled(body, "task")]
        return group

    def task(self, name: str, body: Raw) -> dict[str, Any]:
        where = f"task {name}"
        task: dict[str, Any] = {"Name": name}
        task.update(self.attrs(body, TASK, where, _blocks_in(body)))

        def config(b: Raw) -> None:
            value = evaluate(b, self.scope)
            task["Config"] = {k: v for k, v in value.items() if v is not None}

        handlers: dict[str, Callable[[Raw], None]] = {
            "config": config,
            "env": lambda b: task.setdefault("Env", {}).update(_smap(evaluate(b, self.scope))),
            "meta": lambda b: task.setdefault("Meta", {}).update(_smap(evaluate(b, self.scope))),
            "template": lambda b: task.setdefault("Templates", []).append(
                self.block(b, TEMPLATE, where)
            ),
            "resources": lambda b: task.__setitem__("Resources", self.block(b, RESOURCES, where)),
            "restart": lambda b: task.__setitem__("RestartPolicy", self.block(b, RESTART, where)),
            "logs": lambda b: task.__setitem__("LogConfig", self.block(b, LOGS, where)),
            "identity": lambda b: task.__setitem__("Identity", self.block(b, IDENTITY, where)),
            "vault": lambda b: task.__setitem__("Vault", self.block(b, VAULT, where)),
            "service": lambda b: task.setdefault("Services", []).append(self.service(b)),
        }
        self._dispatch(body, handlers, where, labeled_ok=set())
        return task

    def network(self, body: Raw) -> dict[str, Any]:
        net: dict[str, Any] = {}
        if "mode" in body:
            net["Mode"] = _str(evaluate(body["mode"], self.scope))
        for key in body:
            if not key.startswith("__") and key not in ("mode", "port"):
                raise HclError(f"network: unsupported attribute or block {key!r}")
        for label, port_body in labeled(body, "port"):
            port = {"Label": label, "Value": 0, "To": 0, "HostNetwork": "default"}
            port.update(self.block(port_body, PORT, f"port {label}"))
            kind = "ReservedPorts" if port["Value"] else "DynamicPorts"
            net.setdefault(kind, []).append(port)
        return net

    def service(self, body: Raw) -> dict[str, Any]:
        service = self.attrs(body, SERVICE, "service", {"check"})
        checks = []
        for check_body in unlabeled(body, "check"):
            check = self.attrs(check_body, CHECK, "check", {"check_restart"})
            for cr in unlabeled(check_body, "check_restart"):
                check["CheckRestart"] = self.block(cr, CHECK_RESTART, "check_restart")
            checks.append(check)
        if checks:
            service["Checks"] = checks
        return service

    def _dispatch(
        self,
        body: Raw,
        handlers: Mapping[str, Callable[[Raw], None]],
        where: str,
        labeled_ok: set[str],
    ) -> None:
        for key in _blocks_in(body):
            if key in labeled_ok:
                continue
            if key not in handlers:
                raise HclError(f"{where}: unsupported block {key!r}")
            for block in unlabeled(body, key):
                handlers[key](block)


def _is_block_list(value: Any) -> bool:
    return (
        isinstance(value, list)
        and bool(value)
        and all(isinstance(v, dict) for v in value)
        and all(v.get("__is_block__") or _labeled_entry(v) for v in value)
    )


def _labeled_entry(value: Raw) -> bool:
    keys = [k for k in value if not k.startswith("__")]
    return len(keys) == 1 and isinstance(value[keys[0]], dict) and "__is_block__" in value[keys[0]]


def _blocks_in(body: Raw) -> list[str]:
    """Names of the blocks in ``body``, in file order (the JSON must not depend on hashing)."""
    return [k for k, v in body.items() if not k.startswith("__") and _is_block_list(v)]


def unlabeled(body: Raw, name: str) -> list[Raw]:
    """Bodies of the unlabeled blocks ``name { ... }`` in ``body``."""
    out = []
    for block in body.get(name) or []:
        if _labeled_entry(block) and not block.get("__is_block__"):
            raise HclError(f"block {name!r} takes no label")
        out.append(block)
    return out


def labeled(body: Raw, name: str) -> list[tuple[str, Raw]]:
    """(label, body) of the one-label blocks ``name "label" { ... }`` in ``body``."""
    out = []
    for block in body.get(name) or []:
        if not _labeled_entry(block):
            raise HclError(f"block {name!r} needs one label")
        ((label, inner),) = [(k, v) for k, v in block.items() if not k.startswith("__")]
        if _labeled_entry(inner):
            raise HclError(f"block {name!r} takes one label, not two")
        out.append((label.strip('"'), inner))
    return out


def variable_defaults(doc: Raw) -> dict[str, Any]:
    """``variable "x" { default = ... }`` blocks -> {x: default} (no default -> absent)."""
    out: dict[str, Any] = {}
    for name, body in labeled(doc, "variable"):
        if "default" in body:
            out[name] = evaluate(body["default"], Scope())
    return out


def convert(doc: Raw, overrides: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """The parsed job file -> ``{"Job": {...}}`` (Nomad API JSON, as `-output` prints it)."""
    declared = {name for name, _ in labeled(doc, "variable")}
    unknown = set(overrides or {}) - declared
    if unknown:
        raise HclError(f"no such variable(s): {', '.join(sorted(unknown))}")
    variables = {**variable_defaults(doc), **(overrides or {})}
    missing = declared - set(variables)
    if missing:
        raise HclError(f"variable(s) without a value: {', '.join(sorted(missing))}")
    scope = Scope(variables=variables)
    resolved: dict[str, Any] = {}
    for body in unlabeled(doc, "locals"):
        for key, raw in body.items():
            if not key.startswith("__"):
                resolved[key] = evaluate(raw, Scope(variables=variables, locals=resolved))
    scope = Scope(variables=variables, locals=resolved)
    jobs = labeled(doc, "job")
    if len(jobs) != 1:
        raise HclError(f"expected exactly one job block, found {len(jobs)}")
    extra = {k for k in doc if not k.startswith("__")} - {"variable", "locals", "job"}
    if extra:
        raise HclError(f"unsupported top-level block(s): {', '.join(sorted(extra))}")
    label, body = jobs[0]
    return {"Job": _Converter(scope).job(label, body)}
