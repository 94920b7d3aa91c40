"""Small Nomad jobs for the injection tests, and what Nomad does to a job when it stores it.

Shared by the inject, hashing and property tests: each asserts something different about the same
job shapes, so the shapes live in one place instead of one test module importing another.
"""

from __future__ import annotations

from typing import Any

from crds_equivalent.config import MeshConfig, SidecarDriver
from crds_equivalent.spec import parse_job_specs
from reconcilers.injection.inject import inject

NS = 1_000_000_000  # Nomad durations are nanoseconds
DOCKER = MeshConfig()
RAW = MeshConfig(sidecar_driver=SidecarDriver.RAW_EXEC)


def job(
    mode: str = "bridge", meta: dict[str, str] | None = None, **group_extra: Any
) -> dict[str, Any]:
    """One meshed group with every check type and fields the injector must carry unread."""
    group: dict[str, Any] = {
        "Name": "web",
        "Networks": [
            {"Mode": mode, "DynamicPorts": [{"Label": "http", "To": 8080, "HostNetwork": "lan"}]}
        ],
        "Services": [
            {
                "Name": "web",
                "PortLabel": "http",
                "Tags": ["v1"],
                "Checks": [
                    {"Name": "h", "Type": "http", "Path": "/", "Interval": 10 * NS},
                    {"Name": "t", "Type": "tcp", "PortLabel": "http", "Interval": 10 * NS},
                    {"Name": "s", "Type": "script", "Command": "/bin/true"},
                    {"Name": "g", "Type": "grpc"},
                ],
            }
        ],
        "Tasks": [{"Name": "app", "Driver": "docker", "Config": {"image": "app"}}],
        "Meta": None,
        "XFutureField": {"kept": [1, 2]},
    }
    group.update(group_extra)
    return {
        "ID": "web",
        "Namespace": "default",
        "Meta": {"mesh.tls": "true", **(meta or {})},
        "TaskGroups": [group],
        "XUnknown": True,
    }


def meshed(j: dict[str, Any], config: MeshConfig = DOCKER) -> dict[str, Any]:
    """What the controller would write for ``j``."""
    return inject(j, parse_job_specs(j), config)


def canonicalise(value: Any) -> Any:
    """Roughly what Nomad does to a job on register: defaults filled, zero port fields dropped."""
    if isinstance(value, list):
        return [canonicalise(v) for v in value]
    if not isinstance(value, dict):
        return value
    out = {k: canonicalise(v) for k, v in value.items()}
    if "Label" in out and ("To" in out or "Value" in out):
        out = {k: v for k, v in out.items() if v not in (0, "", None, False)}
        out["HostNetwork"] = out.get("HostNetwork") or "default"
    if "PortLabel" in out and "Checks" in out:
        out.setdefault("Provider", "consul")
        out["AddressMode"] = out.get("AddressMode") or "auto"
        out["OnUpdate"] = out.get("OnUpdate") or "require_healthy"
        out["Cluster"] = "default"
    if "EmbeddedTmpl" in out:
        out.update(Uid=None, Gid=None, Wait=None, ErrMissingKey=False, Once=False)
    if "Driver" in out:
        out.setdefault("KillTimeout", 5 * NS)
        out.setdefault("Leader", False)
    if "TaskGroups" in out:
        out.update(Namespace=out.get("Namespace") or "default", Status="running", Version=3)
    return out
