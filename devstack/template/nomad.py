"""Nomad's side of templates: the task environment, `${...}` interpolation, and rendering a
Template block (EmbeddedTmpl, DestPath, Perms, delimiters) into the task directory.

`task_env` derives the NOMAD_* variables the way the Nomad client does for raw_exec (host paths
under the alloc dir; ports per REPORT §4.4: NOMAD_PORT_<l> is `To` when set, else the host
port). The devstack executor and the data-plane test both use it.
"""

from __future__ import annotations

import asyncio
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from typing import Any

from devstack.template.context import RenderContext, RenderResult
from devstack.template.errors import TemplateError
from devstack.template.files import write_atomic
from devstack.template.render import render_sync

# Nomad client's default `template.function_denylist`.
NOMAD_FUNCTION_DENYLIST: tuple[str, ...] = ("plugin", "writeToFile")

_VAR = re.compile(r"\$\{([^}]+)\}")
_LABEL = re.compile(r"[^A-Za-z0-9_]")


def interpolate(text: str, env: Mapping[str, str]) -> str:
    """Replace `${NAME}` with env values; unknown names stay as they are (like Nomad)."""
    return _VAR.sub(lambda m: env.get(m.group(1).strip(), m.group(0)), text)


@dataclass(frozen=True)
class PortMapping:
    label: str
    value: int  # host port
    to: int = 0  # container/bridge port; 0 = same as host
    host_ip: str = "127.0.0.1"


def task_env(
    *,
    job: Mapping[str, Any],
    group: str,
    task: str,
    alloc_id: str,
    alloc_dir: str,
    ports: list[PortMapping] | tuple[PortMapping, ...] = (),
    alloc_index: int = 0,
    datacenter: str = "dc1",
    region: str = "global",
    bridge_ip: str | None = None,
    vault_token: str | None = None,
) -> dict[str, str]:
    """The environment Nomad gives task `task` of `group` (raw_exec layout)."""
    tg: Mapping[str, Any] = next(
        (g for g in job.get("TaskGroups") or [] if g.get("Name") == group), {}
    )
    tk: Mapping[str, Any] = next((t for t in tg.get("Tasks") or [] if t.get("Name") == task), {})
    res = tk.get("Resources") or {}
    task_root = os.path.join(alloc_dir, task)
    env: dict[str, str] = {
        "NOMAD_ALLOC_DIR": os.path.join(alloc_dir, "alloc"),
        "NOMAD_TASK_DIR": os.path.join(task_root, "local"),
        "NOMAD_SECRETS_DIR": os.path.join(task_root, "secrets"),
        "NOMAD_ALLOC_ID": alloc_id,
        "NOMAD_SHORT_ALLOC_ID": alloc_id[:8],
        "NOMAD_ALLOC_NAME": f"{job.get('ID', '')}.{group}[{alloc_index}]",
        "NOMAD_ALLOC_INDEX": str(alloc_index),
        "NOMAD_JOB_ID": str(job.get("ID", "")),
        "NOMAD_JOB_NAME": str(job.get("Name") or job.get("ID", "")),
        "NOMAD_GROUP_NAME": group,
        "NOMAD_TASK_NAME": task,
        "NOMAD_NAMESPACE": str(job.get("Namespace") or "default"),
        "NOMAD_REGION": region,
        "NOMAD_DC": datacenter,
        "NOMAD_CPU_LIMIT": str(res.get("CPU") or 100),
        "NOMAD_MEMORY_LIMIT": str(res.get("MemoryMB") or 300),
    }
    if job.get("ParentID"):
        env["NOMAD_JOB_PARENT_ID"] = str(job["ParentID"])
    meta: dict[str, str] = {}
    for layer in (job.get("Meta"), tg.get("Meta"), tk.get("Meta")):
        meta.update({str(k): str(v) for k, v in (layer or {}).items()})
    for k, v in meta.items():
        env[f"NOMAD_META_{k}"] = v
        env[f"NOMAD_META_{k.upper()}"] = v
    for p in ports:
        label = _LABEL.sub("_", p.label)
        port = p.to if p.to > 0 else p.value
        env[f"NOMAD_PORT_{label}"] = str(port)
        env[f"NOMAD_ALLOC_PORT_{label}"] = str(port)
        env[f"NOMAD_HOST_PORT_{label}"] = str(p.value)
        env[f"NOMAD_IP_{label}"] = env[f"NOMAD_HOST_IP_{label}"] = p.host_ip
        env[f"NOMAD_ADDR_{label}"] = env[f"NOMAD_HOST_ADDR_{label}"] = f"{p.host_ip}:{p.value}"
        if bridge_ip:
            env[f"NOMAD_ALLOC_IP_{label}"] = bridge_ip
            env[f"NOMAD_ALLOC_ADDR_{label}"] = f"{bridge_ip}:{port}"
    if vault_token:
        env["VAULT_TOKEN"] = vault_token
    for k, v in (tk.get("Env") or {}).items():
        env[str(k)] = interpolate(str(v), env)
    return env


@dataclass
class TemplateOutcome:
    """One rendered Template block: where it went, whether the file changed, and what to do."""

    dest: str
    result: RenderResult
    changed: bool
    change_mode: str = "restart"
    change_signal: str = ""
    env: dict[str, str] = field(default_factory=dict)


def _inside(root: str, path: str) -> bool:
    root = os.path.realpath(root)
    return os.path.commonpath([root, os.path.realpath(path)]) == root


def _owner(tmpl: Mapping[str, Any]) -> tuple[int, int]:
    """Template Uid/Gid (null = the agent's user); applied only when we may chown (root)."""
    uid, gid = tmpl.get("Uid"), tmpl.get("Gid")
    if os.geteuid() != 0:
        return -1, -1
    return (int(uid) if uid is not None else -1), (int(gid) if gid is not None else -1)


def _parse_env_file(text: str) -> dict[str, str]:
    out: dict[str, str] = {}
    for line in text.splitlines():
        line = line.strip()
        if not line or line.startswith("#") or "=" not in line:
            continue
        k, v = line.split("=", 1)
        out[k.strip().removeprefix("export ").strip()] = v.strip().strip('"')
    return out


def render_nomad_template(
    tmpl: Mapping[str, Any],
    ctx: RenderContext,
    *,
    task_root: str,
    sandbox_dir: str | None = None,
    function_denylist: tuple[str, ...] = NOMAD_FUNCTION_DENYLIST,
) -> TemplateOutcome:
    """Render a Nomad `Template` (API JSON) into `task_root` and write it atomically."""
    dest_rel = interpolate(str(tmpl.get("DestPath") or ""), ctx.env)
    if not dest_rel:
        raise TemplateError("template: DestPath is empty")
    dest = os.path.realpath(os.path.join(task_root, dest_rel))
    sandbox = sandbox_dir or task_root
    if not _inside(sandbox, dest):
        raise TemplateError(f"template: destination {dest_rel} escapes the allocation directory")
    text = tmpl.get("EmbeddedTmpl") or ""
    if not text and tmpl.get("SourcePath"):
        src = os.path.join(task_root, interpolate(str(tmpl["SourcePath"]), ctx.env))
        if not _inside(sandbox, src):
            raise TemplateError("template: source escapes the allocation directory")
        with open(src, encoding="utf-8") as f:
            text = f.read()
    run_ctx = replace(
        ctx,
        destination=dest,
        task_dir=task_root,
        sandbox_dir=sandbox,
        name=dest_rel,
        left_delim=str(tmpl.get("LeftDelim") or "{{"),
        right_delim=str(tmpl.get("RightDelim") or "}}"),
        error_on_missing_key=bool(tmpl.get("ErrMissingKey")),
    )
    result = render_sync(str(text), run_ctx, function_denylist)
    perms = int(str(tmpl.get("Perms") or "0644"), 8)
    uid, gid = _owner(tmpl)
    changed = write_atomic(dest, result.text, perms, uid, gid)
    mode = str(tmpl.get("ChangeMode") or "restart")
    signal = str(tmpl.get("ChangeSignal") or ("SIGHUP" if mode == "signal" else "")).upper()
    env = _parse_env_file(result.text) if tmpl.get("Envvars") else {}
    return TemplateOutcome(dest, result, changed, mode, signal, env)


async def render_nomad_template_async(
    tmpl: Mapping[str, Any],
    ctx: RenderContext,
    *,
    task_root: str,
    sandbox_dir: str | None = None,
    function_denylist: tuple[str, ...] = NOMAD_FUNCTION_DENYLIST,
) -> TemplateOutcome:
    return await asyncio.to_thread(
        lambda: render_nomad_template(
            tmpl,
            ctx,
            task_root=task_root,
            sandbox_dir=sandbox_dir,
            function_denylist=function_denylist,
        )
    )
