"""The raw_exec task environment: NOMAD_* from the client, the agent's env minus its secrets,
`${...}` interpolation in env, command and args, and Nomad's command lookup."""

from __future__ import annotations

from pathlib import Path

import pytest

from devstack.executor.procs import parse_signal
from devstack.executor.taskenv import build_env, command_line, interpolate, resolve_command
from devstack.nomad.taskctx import TaskContext


def ctx(tmp_path: Path) -> TaskContext:
    env = {
        "NOMAD_DC": "dc7",
        "NOMAD_REGION": "eu",
        "NOMAD_TASK_DIR": str(tmp_path / "t" / "local"),
        "NOMAD_IP_http": "127.0.0.11",
        "NOMAD_PORT_http": "24000",
        "NOMAD_META_mesh.tls": "true",
        "GREETING": "raw ${NOMAD_DC}",  # the twin's env carries the task env uninterpolated
    }
    return TaskContext(
        alloc_id="a-1",
        task_name="t",
        node_id="node-uuid",
        node_name="node-1",
        node_address="127.0.0.11",
        alloc_dir=tmp_path,
        task_dir=tmp_path / "t",
        env=env,
    )


def test_env_layers_and_interpolation(tmp_path: Path) -> None:
    task = {
        "Env": {
            "GREETING": "hello from ${NOMAD_DC}",
            "WHERE": "${attr.unique.network.ip-address}:${NOMAD_PORT_http}",
            "NODE": "${node.unique.name}/${node.datacenter}/${node.region}",
            "RACK": "${meta.rack}",
            "ODD": '${env["NOMAD_META_mesh.tls"]}',
            "LATER": "${GREETING}!",
            "UNKNOWN": "${nope.value}",
        }
    }
    host = {"PATH": "/usr/bin", "VAULT_TOKEN": "agent-secret", "NOMAD_TOKEN": "x", "LANG": "C"}
    env, _ = build_env(task, ctx(tmp_path), host_env=host, node_meta={"rack": "r9"})
    assert env["GREETING"] == "hello from dc7"
    assert env["WHERE"] == "127.0.0.11:24000"
    assert env["NODE"] == "node-1/dc7/eu"
    assert env["RACK"] == "r9"
    assert env["ODD"] == "true"
    assert env["LATER"] == "hello from dc7!"
    assert env["UNKNOWN"] == "${nope.value}"  # Nomad leaves unknown names alone
    assert env["LANG"] == "C"
    assert "VAULT_TOKEN" not in env
    assert "NOMAD_TOKEN" not in env


def test_vault_token_only_when_given(tmp_path: Path) -> None:
    env, _ = build_env({}, ctx(tmp_path), host_env={}, vault_token="s.task")
    assert env["VAULT_TOKEN"] == "s.task"


def test_command_and_args_are_interpolated_and_resolved(tmp_path: Path) -> None:
    task_dir = tmp_path / "t"
    (task_dir / "local").mkdir(parents=True)
    script = task_dir / "local" / "run.sh"
    script.write_text("#!/bin/sh\n")
    _, table = build_env({}, ctx(tmp_path), host_env={"PATH": "/usr/bin:/bin"})
    task = {
        "Config": {"command": "run.sh", "args": ["--bind", "${NOMAD_IP_http}:${NOMAD_PORT_http}"]}
    }
    assert command_line(task, table, task_dir) == [str(script), "--bind", "127.0.0.11:24000"]
    assert resolve_command("sh", task_dir, "/usr/bin:/bin").endswith("/sh")
    with pytest.raises(FileNotFoundError):
        resolve_command("no-such-binary-here", task_dir, "/usr/bin")
    with pytest.raises(ValueError, match="command"):
        command_line({"Config": {}}, table, task_dir)


def test_interpolate_keeps_text_around_names() -> None:
    assert interpolate("a-${X}-b-${ Y }", {"X": "1", "Y": "2"}) == "a-1-b-2"


def test_signal_names() -> None:
    assert parse_signal("SIGHUP").name == "SIGHUP"
    assert parse_signal("hup").name == "SIGHUP"
    with pytest.raises(ValueError, match="unknown"):
        parse_signal("SIGNOPE")
    with pytest.raises(ValueError, match="no signal"):
        parse_signal("")
