"""Play the Nomad client's part for one injected sidecar, without the scheduler or executor.

The data-plane test and the benchmark both need exactly what a Nomad client would produce for
the ``mesh-tls-proxy`` task of an injected job: host ports for the group's labels, the task's
environment, its templates rendered against a real Vault into ``local/`` and ``secrets/``, and
its command line with ``${...}`` interpolated. This module does that for one group on one
loopback address; the caller starts the process (``argv`` in ``cwd=task_root`` with ``env``).
"""

from __future__ import annotations

import socket
import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from crds_equivalent.keys import SIDECAR_TASK
from devstack.template import (
    NomadTarget,
    PortMapping,
    RenderContext,
    VaultTarget,
    interpolate,
    render_nomad_template_async,
    task_env,
)


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket() as s:
        s.bind((host, 0))
        return int(s.getsockname()[1])


def allocate_ports(
    group: Mapping[str, Any], host: str = "127.0.0.1", fixed: Mapping[str, int] | None = None
) -> list[PortMapping]:
    """What the scheduler does for a host-mode group: reserved ports as written, a free host
    port per dynamic label (or the caller's choice in ``fixed``, e.g. an app already running)."""
    fixed = fixed or {}
    out: list[PortMapping] = []
    for net in group.get("Networks") or []:
        for p in net.get("ReservedPorts") or []:
            out.append(PortMapping(p["Label"], int(p["Value"]), int(p.get("To") or 0), host))
        for p in net.get("DynamicPorts") or []:
            value = fixed.get(p["Label"]) or free_port(host)
            out.append(PortMapping(p["Label"], value, int(p.get("To") or 0), host))
    return out


async def render_task_templates(
    task: Mapping[str, Any], ctx: RenderContext, task_root: Path
) -> list[bool]:
    """Render every Template of the task like the Nomad client; True where a file changed."""
    changed = []
    for tmpl in task.get("Templates") or []:
        out = await render_nomad_template_async(dict(tmpl), ctx, task_root=str(task_root))
        changed.append(out.changed)
    return changed


@dataclass
class RenderedSidecar:
    """The sidecar task of one allocation, rendered and ready to start."""

    job: dict[str, Any]
    task: dict[str, Any]
    env: dict[str, str]
    ctx: RenderContext
    task_root: Path
    ports: dict[str, int]
    argv: list[str]
    first_render: list[bool]  # per template: whether the first render wrote its file

    @property
    def conf_path(self) -> Path:
        return self.task_root / "local" / "nginx.conf"

    async def render_templates(self) -> list[bool]:
        return await render_task_templates(self.task, self.ctx, self.task_root)


async def render_sidecar(
    injected_job: dict[str, Any],
    vault: VaultTarget,
    alloc_dir: Path,
    *,
    group_index: int = 0,
    fixed_ports: Mapping[str, int] | None = None,
    host: str = "127.0.0.1",
    datacenter: str = "dc1",
    consul_addr: str | None = None,
    nomad: NomadTarget | None = None,
) -> RenderedSidecar:
    """Ports, task env, directories and the first render of the sidecar of one group."""
    group = injected_job["TaskGroups"][group_index]
    task = next(t for t in group["Tasks"] if t["Name"] == SIDECAR_TASK)
    ports = allocate_ports(group, host, fixed_ports)
    env = task_env(
        job=injected_job,
        group=group["Name"],
        task=task["Name"],
        alloc_id=str(uuid.uuid4()),
        alloc_dir=str(alloc_dir),
        ports=ports,
        datacenter=datacenter,
    )
    task_root = alloc_dir / task["Name"]
    for sub in ("local", "secrets", "tmp"):
        (task_root / sub).mkdir(parents=True, exist_ok=True)
    (alloc_dir / "alloc").mkdir(exist_ok=True)
    ctx = RenderContext(env=env, vault=vault, consul_addr=consul_addr, nomad=nomad)
    first = await render_task_templates(task, ctx, task_root)
    cfg = task["Config"]
    argv = [interpolate(cfg["command"], env), *(interpolate(a, env) for a in cfg.get("args") or [])]
    return RenderedSidecar(
        job=injected_job,
        task=task,
        env=env,
        ctx=ctx,
        task_root=task_root,
        ports={p.label: p.value for p in ports},
        argv=argv,
        first_render=first,
    )
