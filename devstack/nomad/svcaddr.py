"""Where a service of an allocation lives, as a Nomad client resolves it.

Shared by the two service providers of the devstack: the Consul registrar and the twin's own
Nomad-native catalog (``nsd.py``). Both follow ``client/serviceregistration/address.go``
``GetAddress`` and ``client/serviceregistration/id.go`` ``MakeAllocServiceID``, so the
address, port and ID of one service are the same whichever provider it names; keeping one copy
in the twin (which the registrar may import, the twin never imports the registrar) stops the
two from drifting.
"""

from __future__ import annotations

import re
from typing import Any

_VAR = re.compile(r"\$\{([^}]+)\}")


def service_id(alloc_id: str, owner: str, name: str, port_label: str) -> str:
    """Nomad's workload service ID; `owner` is the task name or `group-<group>`."""
    return f"_nomad-task-{alloc_id}-{owner}-{name}-{port_label}"


def interpolate(text: str, env: dict[str, str]) -> str:
    return _VAR.sub(lambda m: env.get(m.group(1), m.group(0)), text)


def service_env(alloc: dict[str, Any], group: str, task: str) -> dict[str, str]:
    job = alloc.get("Job") or {}
    index = re.search(r"\[(\d+)\]$", alloc.get("Name", ""))
    env = {
        "NOMAD_JOB_NAME": job.get("Name") or job.get("ID", ""),
        "NOMAD_JOB_ID": job.get("ID", ""),
        "NOMAD_GROUP_NAME": group,
        "NOMAD_TASK_NAME": task,
        "NOMAD_ALLOC_ID": alloc.get("ID", ""),
        "NOMAD_ALLOC_INDEX": index.group(1) if index else "0",
        "NOMAD_NAMESPACE": alloc.get("Namespace", "default"),
    }
    env |= {"JOB": env["NOMAD_JOB_NAME"], "TASKGROUP": group, "TASK": task}
    env["BASE"] = f"{env['JOB']}-{group}" + (f"-{task}" if task else "")
    return env


def workload_ports(alloc: dict[str, Any], task: str) -> dict[str, dict[str, Any]]:
    """Port label -> {Value, To, HostIP}: group ports, then legacy task-level networks."""
    res = alloc.get("AllocatedResources") or {}
    out = {p["Label"]: p for p in ((res.get("Shared") or {}).get("Ports") or [])}
    for net in ((res.get("Tasks") or {}).get(task) or {}).get("Networks") or []:
        for p in (net.get("ReservedPorts") or []) + (net.get("DynamicPorts") or []):
            out.setdefault(p["Label"], {**p, "HostIP": net.get("IP", "")})
    return out


def get_address(
    alloc: dict[str, Any], mode: str, label: str, ports: dict[str, dict[str, Any]], custom: str
) -> tuple[str, int]:
    """Nomad's getAddress: (address, port) for an address mode and a port label."""
    if custom and mode in ("", "auto"):
        host_port = (ports.get(label) or {}).get("Value")
        return custom, int(host_port or (label if label.isdigit() else 0))
    if mode in ("alloc", "driver"):
        net_ip = (alloc.get("NetworkStatus") or {}).get("Address", "")
        if label.isdigit():
            return net_ip, int(label)
        mapping = ports.get(label)
        if mapping is None:
            raise ValueError(f'invalid port "{label}": port label not found')
        return net_ip or mapping.get("HostIP", ""), int(mapping.get("To") or mapping["Value"])
    if not label:
        any_ip = next((p.get("HostIP", "") for p in ports.values()), "")
        return any_ip, 0
    mapping = ports.get(label)
    if mapping is None:
        raise ValueError(f'invalid port "{label}": port label not found')
    return mapping.get("HostIP", ""), int(mapping["Value"])


def join_host_port(host: str, port: int) -> str:
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
