"""The process environment and command line of a raw_exec task, as the Nomad client builds them.

Nomad gives raw_exec tasks the client's own environment (minus the `env.denylist` secrets),
then the NOMAD_* variables, then the task's `env` block with `${...}` interpolated against the
NOMAD_* variables, the node (`${node.*}`, `${attr.*}`, `${meta.*}`) and earlier values. The same
interpolation applies to `config.command` and `config.args`. Unknown names stay as written.
Variable names are cleaned the way Nomad's CleanEnvVar does (anything but [A-Za-z0-9_.] -> _).
"""

from __future__ import annotations

import os
import platform
import re
import shutil
import socket
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from devstack.nomad.taskctx import TaskContext

# Nomad client default `env.denylist`: never hand the agent's credentials to a task.
ENV_DENYLIST = frozenset(
    {
        "CONSUL_TOKEN",
        "CONSUL_HTTP_TOKEN",
        "VAULT_TOKEN",
        "NOMAD_TOKEN",
        "AWS_ACCESS_KEY_ID",
        "AWS_SECRET_ACCESS_KEY",
        "AWS_SESSION_TOKEN",
        "GOOGLE_APPLICATION_CREDENTIALS",
    }
)

_VAR = re.compile(r"\$\{([^}]+)\}")
_INDEX = re.compile(r"""^env\[\s*"([^"]*)"\s*\]$""")
_BAD = re.compile(r"[^A-Za-z0-9_.]")


def clean_env_name(name: str) -> str:
    return _BAD.sub("_", name)


def node_attributes(ctx: TaskContext, datacenter: str, region: str) -> dict[str, str]:
    """What `${node.*}` / `${attr.*}` resolve to on this simulated client."""
    uname = platform.uname()
    arch = {"x86_64": "amd64", "aarch64": "arm64"}.get(uname.machine, uname.machine)
    return {
        "node.unique.id": ctx.node_id,
        "node.unique.name": ctx.node_name,
        "node.datacenter": datacenter,
        "node.region": region,
        "node.class": "",
        "node.pool": "default",
        "attr.unique.hostname": socket.gethostname(),
        "attr.unique.network.ip-address": ctx.node_address,
        "attr.kernel.name": uname.system.lower(),
        "attr.kernel.arch": uname.machine,
        "attr.kernel.version": uname.release,
        "attr.cpu.arch": arch,
        "attr.cpu.numcores": str(os.cpu_count() or 1),
        "attr.os.name": uname.system.lower(),
        "attr.driver.raw_exec": "1",
        "attr.nomad.version": "1.10.5",
    }


def interpolate(text: str, values: Mapping[str, str]) -> str:
    """Nomad's ReplaceEnv: `${NAME}`, `${attr.x}`, `${env["odd.name"]}`; unknown stay."""

    def one(m: re.Match[str]) -> str:
        name = m.group(1).strip()
        index = _INDEX.match(name)
        if index:
            name = index.group(1)
        return values.get(name, m.group(0))

    return _VAR.sub(one, text)


def build_env(
    task: Mapping[str, Any],
    ctx: TaskContext,
    *,
    host_env: Mapping[str, str] | None = None,
    node_meta: Mapping[str, str] | None = None,
    vault_token: str | None = None,
) -> tuple[dict[str, str], dict[str, str]]:
    """(process environment, interpolation table) for one task start."""
    user_env = {str(k): str(v) for k, v in (task.get("Env") or {}).items()}
    nomad = {k: v for k, v in ctx.env.items() if k not in user_env or k.startswith("NOMAD_")}
    nomad = {clean_env_name(k): v for k, v in nomad.items()}
    table: dict[str, str] = dict(nomad)
    table.update(
        node_attributes(ctx, nomad.get("NOMAD_DC", "dc1"), nomad.get("NOMAD_REGION", "global"))
    )
    table.update({f"meta.{k}": str(v) for k, v in (node_meta or {}).items()})
    env = {
        k: v
        for k, v in (os.environ if host_env is None else host_env).items()
        if k not in ENV_DENYLIST and not k.startswith("NOMAD_")
    }
    env.update(nomad)
    if vault_token:
        env["VAULT_TOKEN"] = vault_token
    for key, raw in user_env.items():
        value = interpolate(raw, table)
        env[clean_env_name(key)] = value
        table[key] = value
    return env, table


def command_line(task: Mapping[str, Any], table: Mapping[str, str], task_dir: Path) -> list[str]:
    """Interpolated `config.command` + `config.args`, the command resolved like Nomad does."""
    config = task.get("Config") or {}
    command = interpolate(str(config.get("command") or ""), table)
    if not command:
        raise ValueError("missing required config.command")
    args = [interpolate(str(a), table) for a in config.get("args") or []]
    return [resolve_command(command, task_dir, table.get("PATH")), *args]


def resolve_command(command: str, task_dir: Path, path: str | None) -> str:
    """Absolute paths as given; relative ones in the task dir first, then on PATH."""
    if os.path.isabs(command):
        return command
    for base in (task_dir / "local", task_dir):
        candidate = base / command
        if candidate.is_file():
            return str(candidate)
    found = shutil.which(command, path=path or os.environ.get("PATH"))
    if found is None:
        raise FileNotFoundError(f'failed to find command "{command}" in task dir or PATH')
    return found
