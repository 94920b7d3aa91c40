"""ACL: policies parsed from HCL or JSON rules, tokens, and capability checks.

A namespace rule grants a coarse ``policy`` (deny|read|write|scale, expanded to
capabilities the way Nomad expands them) plus explicit ``capabilities``, and
``variables { path "x/*" { capabilities = [...] } }``. Namespace names and variable
paths may be globs; the closest (longest) matching pattern wins. Management tokens may
do anything; with ACLs off every request is allowed.
"""

from __future__ import annotations

import fnmatch
import json
from dataclasses import dataclass, field
from typing import Any

import hcl2

READ_CAPS = [
    "list-jobs",
    "parse-job",
    "read-job",
    "csi-list-volume",
    "csi-read-volume",
    "read-job-scaling",
    "list-scaling-policies",
    "read-scaling-policy",
    "host-volume-read",
]
WRITE_CAPS = [
    *READ_CAPS,
    "scale-job",
    "submit-job",
    "dispatch-job",
    "read-logs",
    "read-fs",
    "alloc-exec",
    "alloc-lifecycle",
    "csi-write-volume",
    "csi-mount-volume",
    "submit-recommendation",
    "host-volume-create",
    "host-volume-write",
]
SCALE_CAPS = ["list-scaling-policies", "read-scaling-policy", "read-job-scaling", "scale-job"]
VAR_CAPS = {"read": ["read", "list"], "write": ["read", "list", "write", "destroy"]}


class PolicyError(ValueError):
    """Rules that do not parse."""


@dataclass
class NamespaceRule:
    capabilities: set[str] = field(default_factory=set)
    variables: dict[str, set[str]] = field(default_factory=dict)


@dataclass
class Rules:
    namespaces: dict[str, NamespaceRule] = field(default_factory=dict)
    coarse: dict[str, str] = field(default_factory=dict)  # node/agent/operator -> policy
    host_volumes: dict[str, set[str]] = field(default_factory=dict)  # name glob -> caps


# acl/policy.go expandHostVolumePolicy
HOST_VOLUME_POLICY = {
    "deny": ["deny"],
    "read": ["mount-readonly"],
    "write": ["mount-readonly", "mount-readwrite"],
}


def _blocks(value: Any) -> list[dict[str, Any]]:
    if isinstance(value, dict):
        return [value]
    return [v for v in value or [] if isinstance(v, dict)]


def parse_rules(text: str) -> Rules:
    if not text.strip():
        return Rules()
    try:
        data = json.loads(text)
    except ValueError:
        try:
            data = hcl2.loads(text)
        except Exception as exc:
            raise PolicyError(f"failed to parse rules: {exc}") from exc
    rules = Rules()
    for block in _blocks(data.get("namespace")):
        for name, body_raw in block.items():
            if name == "__is_block__":
                continue
            name = name.strip('"')
            for body in _blocks(body_raw):
                rules.namespaces[name] = _namespace_rule(body)
    for block in _blocks(data.get("host_volume")):
        for name, body_raw in block.items():
            if name == "__is_block__":
                continue
            for body in _blocks(body_raw):
                policy = str(body.get("policy", "")).strip('"')
                caps = _strip(body.get("capabilities")) + HOST_VOLUME_POLICY.get(policy, [])
                rules.host_volumes.setdefault(name.strip('"'), set()).update(caps)
    for kind in ("node", "agent", "operator", "quota", "plugin", "node_pool"):
        for body in _blocks(data.get(kind)):
            rules.coarse[kind] = str(body.get("policy", "")).strip('"')
    return rules


def _strip(values: Any) -> list[str]:
    return [str(v).strip('"') for v in (values or [])]


def _namespace_rule(body: dict[str, Any]) -> NamespaceRule:
    rule = NamespaceRule()
    policy = str(body.get("policy", "")).strip('"')
    if policy == "deny":
        rule.capabilities.add("deny")
    elif policy == "read":
        rule.capabilities.update(READ_CAPS)
        rule.variables["*"] = set(VAR_CAPS["read"])
    elif policy == "write":
        rule.capabilities.update(WRITE_CAPS)
        rule.variables["*"] = set(VAR_CAPS["write"])
    elif policy == "scale":
        rule.capabilities.update(SCALE_CAPS)
    elif policy:
        raise PolicyError(f"failed to parse rules: Invalid namespace policy: {policy}")
    rule.capabilities.update(_strip(body.get("capabilities")))
    for var_block in _blocks(body.get("variables")):
        for path_block in _blocks(var_block.get("path")):
            for path, pbody in path_block.items():
                if path == "__is_block__":
                    continue
                for b in _blocks(pbody):
                    caps = set(_strip(b.get("capabilities")))
                    rule.variables.setdefault(path.strip('"'), set()).update(caps)
    return rule


def _closest(patterns: dict[str, Any], name: str) -> Any:
    if name in patterns:
        return patterns[name]
    matches = [p for p in patterns if fnmatch.fnmatchcase(name, p)]
    if not matches:
        return None
    return patterns[max(matches, key=lambda p: len(p) - p.count("*"))]


@dataclass
class Authz:
    """What one token may do. ``None`` rules = management (or ACLs off)."""

    rules: list[Rules] | None

    @property
    def management(self) -> bool:
        return self.rules is None

    def allow_ns(self, namespace: str, capability: str) -> bool:
        if self.rules is None:
            return True
        granted = False
        for rules in self.rules:
            rule = _closest(rules.namespaces, namespace)
            if rule is None:
                continue
            if "deny" in rule.capabilities:
                return False
            granted = granted or capability in rule.capabilities
        return granted

    def allow_any_ns(self, namespace: str) -> bool:
        if self.rules is None:
            return True
        return any(_closest(r.namespaces, namespace) is not None for r in self.rules)

    def allow_var(self, namespace: str, path: str, capability: str) -> bool:
        if self.rules is None:
            return True
        for rules in self.rules:
            rule = _closest(rules.namespaces, namespace)
            if rule is None or "deny" in rule.capabilities:
                continue
            caps = _closest(rule.variables, path)
            if caps is not None and ("deny" not in caps) and capability in caps:
                return True
        return False

    def allow_host_volume(self, name: str, capability: str) -> bool:
        """acl/acl.go ``AllowHostVolumeOperation``: the policies' capability sets are merged
        per volume pattern (a ``deny`` clears and wins), then the exact name or the closest
        glob decides."""
        if self.rules is None:
            return True
        merged: dict[str, set[str]] = {}
        for rules in self.rules:
            for pattern, caps in rules.host_volumes.items():
                have = merged.setdefault(pattern, set())
                if "deny" in have:
                    continue
                merged[pattern] = {"deny"} if "deny" in caps else have | caps
        caps = _closest(merged, name)
        return caps is not None and capability in caps

    def allow_plugin_read(self) -> bool:
        """acl/acl.go ``AllowPluginRead``: the merged plugin policy (``maxPrivilege``:
        deny > write > read > list) must be exactly ``read`` — ``write`` does not imply it."""
        if self.rules is None:
            return True
        policies = {r.coarse.get("plugin", "") for r in self.rules}
        for level in ("deny", "write", "read", "list"):
            if level in policies:
                return level == "read"
        return False

    def allow_coarse(self, kind: str, need: str) -> bool:
        if self.rules is None:
            return True
        order = {"deny": -1, "": 0, "read": 1, "write": 2}
        return any(order.get(r.coarse.get(kind, ""), 0) >= order[need] for r in self.rules)
