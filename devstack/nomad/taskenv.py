"""The NOMAD_* environment of a task, from its allocation (Nomad's client/taskenv).

Ports, in the order client/taskenv/env.go (Builder.buildEnv) applies them, later wins:
- the task's OWN task-level network (``AllocatedResources.Tasks[<task>].Networks``,
  buildNetworkEnv/buildPortEnv): NOMAD_IP_/NOMAD_IPv4_/NOMAD_HOST_PORT_/NOMAD_ADDR_/NOMAD_PORT_
  <label>, host values;
- every OTHER task's task-level ports (Builder.setAlloc -> addPort): NOMAD_ADDR_<task>_<label>,
  NOMAD_IP_<task>_<label>, NOMAD_PORT_<task>_<label>, host values;
- group ports (``Shared.Ports``, addPorts): NOMAD_PORT_<label> is ``To`` when set, else the
  host port; NOMAD_HOST_PORT_/NOMAD_ADDR_/NOMAD_IP_ carry the host side.
Names under the NOMAD_ADDR_/IP_/PORT_/HOST_PORT_ prefixes are cleaned as helper.CleanEnvVar
does: ``[A-Za-z0-9_.]`` kept, anything else becomes ``_`` (a dot survives).
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

_BAD = re.compile(r"[^A-Za-z0-9_.]")
_META_BAD = re.compile(r"[^A-Za-z0-9_.]")


def _clean(label: str) -> str:
    return _BAD.sub("_", label)


def _join(ip: str, port: str) -> str:
    """net.JoinHostPort: brackets around an IPv6 address."""
    return f"[{ip}]:{port}" if ":" in ip else f"{ip}:{port}"


def task_env(
    alloc: dict[str, Any], task: dict[str, Any], alloc_dir: Path, datacenter: str = "dc1"
) -> dict[str, str]:
    job = alloc["Job"]
    group = next(tg for tg in job["TaskGroups"] if tg["Name"] == alloc["TaskGroup"])
    name = alloc["Name"]
    env: dict[str, str] = {
        "NOMAD_ALLOC_DIR": str(alloc_dir / "alloc"),
        "NOMAD_TASK_DIR": str(alloc_dir / task["Name"] / "local"),
        "NOMAD_SECRETS_DIR": str(alloc_dir / task["Name"] / "secrets"),
        "NOMAD_ALLOC_ID": alloc["ID"],
        "NOMAD_SHORT_ALLOC_ID": alloc["ID"][:8],
        "NOMAD_ALLOC_NAME": name,
        "NOMAD_ALLOC_INDEX": name[name.rindex("[") + 1 : -1],
        "NOMAD_JOB_ID": job["ID"],
        "NOMAD_JOB_NAME": job["Name"],
        "NOMAD_JOB_PARENT_ID": job["ParentID"],
        "NOMAD_GROUP_NAME": group["Name"],
        "NOMAD_TASK_NAME": task["Name"],
        "NOMAD_NAMESPACE": alloc["Namespace"],
        "NOMAD_REGION": job["Region"],
        "NOMAD_DC": datacenter,
    }
    res = task.get("Resources") or {}
    env["NOMAD_CPU_LIMIT"] = str(res.get("CPU", 0))
    env["NOMAD_MEMORY_LIMIT"] = str(res.get("MemoryMB", 0))
    if res.get("MemoryMaxMB"):
        env["NOMAD_MEMORY_MAX_LIMIT"] = str(res["MemoryMaxMB"])
    resources = alloc.get("AllocatedResources") or {}
    task_resources = resources.get("Tasks") or {}
    for net in (task_resources.get(task["Name"]) or {}).get("Networks") or []:
        ip = net.get("IP", "")
        family = "NOMAD_IPv6_" if ":" in ip else "NOMAD_IPv4_"
        for port in (net.get("ReservedPorts") or []) + (net.get("DynamicPorts") or []):
            label, value = _clean(port["Label"]), str(port.get("Value", 0))
            env[f"NOMAD_IP_{label}"] = ip
            env[f"{family}{port['Label']}"] = ip
            env[f"NOMAD_HOST_PORT_{label}"] = value
            env[f"NOMAD_ADDR_{label}"] = _join(ip, value)
            env[f"NOMAD_PORT_{label}"] = value
    for other, res in task_resources.items():
        if other == task["Name"]:
            continue
        for net in (res or {}).get("Networks") or []:
            ip = net.get("IP", "")
            for port in (net.get("ReservedPorts") or []) + (net.get("DynamicPorts") or []):
                name, value = _clean(f"{other}_{port['Label']}"), str(port.get("Value", 0))
                env[f"NOMAD_ADDR_{name}"] = _join(ip, value)
                env[f"NOMAD_IP_{name}"] = ip
                env[f"NOMAD_PORT_{name}"] = value
    shared = resources.get("Shared") or {}
    for port in shared.get("Ports") or []:
        label = _clean(port["Label"])
        host_ip = port.get("HostIP", "")
        value = port.get("Value", 0)
        to = port.get("To", 0)
        inner = str(to if to > 0 else value)
        env[f"NOMAD_PORT_{label}"] = inner
        env[f"NOMAD_ALLOC_PORT_{label}"] = inner
        env[f"NOMAD_HOST_PORT_{label}"] = str(value)
        env[f"NOMAD_IP_{label}"] = host_ip
        env[f"NOMAD_HOST_IP_{label}"] = host_ip
        env[f"NOMAD_ADDR_{label}"] = f"{host_ip}:{value}"
        env[f"NOMAD_HOST_ADDR_{label}"] = f"{host_ip}:{value}"
    meta: dict[str, str] = {}
    for source in (job.get("Meta"), group.get("Meta"), task.get("Meta")):
        meta.update(source or {})
    for key, val in meta.items():
        name = _META_BAD.sub("_", key)  # meta keys keep dots (Nomad's CleanEnvVar)
        env[f"NOMAD_META_{name}"] = val
        env[f"NOMAD_META_{name.upper()}"] = val
    env.update(task.get("Env") or {})
    return env
