"""Nomad's side of templates: task env, ${} interpolation, Template blocks written to disk."""

from __future__ import annotations

import os
import stat

import pytest

from devstack.template import (
    PortMapping,
    RenderContext,
    TemplateError,
    interpolate,
    render_nomad_template,
    task_env,
)

JOB = {
    "ID": "web",
    "Namespace": "apps",
    "Meta": {"owner": "team-a", "mesh.tls": "true"},
    "TaskGroups": [
        {
            "Name": "frontend",
            "Meta": {"tier": "edge"},
            "Tasks": [
                {
                    "Name": "app",
                    "Resources": {"CPU": 250, "MemoryMB": 128},
                    "Env": {"LISTEN": "${NOMAD_ADDR_http}", "KEEP": "${node.unique.id}"},
                    "Meta": {"tier": "app"},
                }
            ],
        }
    ],
}


def test_task_env_matches_nomads_rules(tmp_path) -> None:
    env = task_env(
        job=JOB,
        group="frontend",
        task="app",
        alloc_id="0b7e3f0a-1111-2222-3333-444455556666",
        alloc_dir=str(tmp_path),
        ports=[
            PortMapping("http", 24001, host_ip="127.0.0.11"),
            PortMapping("mesh-tls.http", 24002, to=8443, host_ip="127.0.0.11"),
        ],
        alloc_index=2,
        datacenter="dc7",
        bridge_ip="172.26.64.5",
    )
    assert env["NOMAD_TASK_DIR"] == os.path.join(tmp_path, "app", "local")
    assert env["NOMAD_SECRETS_DIR"] == os.path.join(tmp_path, "app", "secrets")
    assert env["NOMAD_ALLOC_DIR"] == os.path.join(tmp_path, "alloc")
    assert env["NOMAD_SHORT_ALLOC_ID"] == "0b7e3f0a"
    assert env["NOMAD_ALLOC_NAME"] == "web.frontend[2]"
    assert env["NOMAD_NAMESPACE"] == "apps" and env["NOMAD_DC"] == "dc7"
    assert env["NOMAD_CPU_LIMIT"] == "250" and env["NOMAD_MEMORY_LIMIT"] == "128"
    # Ports: NOMAD_PORT_ is `To` when set, the host port otherwise; labels sanitised.
    assert env["NOMAD_PORT_http"] == "24001"
    assert env["NOMAD_ADDR_http"] == "127.0.0.11:24001"
    assert env["NOMAD_PORT_mesh_tls_http"] == "8443"
    assert env["NOMAD_HOST_PORT_mesh_tls_http"] == "24002"
    assert env["NOMAD_ALLOC_ADDR_mesh_tls_http"] == "172.26.64.5:8443"
    assert env["NOMAD_IP_http"] == env["NOMAD_HOST_IP_http"] == "127.0.0.11"
    # Meta: job < group < task, in original and upper case.
    assert env["NOMAD_META_owner"] == env["NOMAD_META_OWNER"] == "team-a"
    assert env["NOMAD_META_tier"] == "app"
    assert env["NOMAD_META_mesh.tls"] == "true"
    # Task Env is interpolated; unknown ${...} is left alone, as Nomad does.
    assert env["LISTEN"] == "127.0.0.11:24001"
    assert env["KEEP"] == "${node.unique.id}"


def test_interpolate_leaves_unknown_names() -> None:
    env = {"NOMAD_TASK_DIR": "/a/local"}
    assert interpolate("-c ${NOMAD_TASK_DIR}/nginx.conf ${NOPE}", env) == (
        "-c /a/local/nginx.conf ${NOPE}"
    )


def _mode(path: str) -> int:
    return stat.S_IMODE(os.stat(path).st_mode)


def test_template_block_is_written_with_perms_and_change_mode(tmp_path) -> None:
    task_root = tmp_path / "app"
    env = {"NOMAD_PORT_http": "8080", "NOMAD_SECRETS_DIR": str(task_root / "secrets")}
    tmpl = {
        "DestPath": "${NOMAD_SECRETS_DIR}/app.conf",
        "EmbeddedTmpl": 'port [[ env "NOMAD_PORT_http" ]] {{ literal }}\n',
        "LeftDelim": "[[",
        "RightDelim": "]]",
        "Perms": "0600",
        "ChangeMode": "signal",
        "ChangeSignal": "sighup",
    }
    out = render_nomad_template(tmpl, RenderContext(env=env), task_root=str(task_root))
    dest = task_root / "secrets" / "app.conf"
    assert out.dest == str(dest) and out.changed
    assert dest.read_text() == "port 8080 {{ literal }}\n"
    assert _mode(str(dest)) == 0o600
    assert (out.change_mode, out.change_signal) == ("signal", "SIGHUP")
    again = render_nomad_template(tmpl, RenderContext(env=env), task_root=str(task_root))
    assert not again.changed, "identical output does not count as a change"


def test_env_template_and_default_perms(tmp_path) -> None:
    tmpl = {"DestPath": "local/app.env", "EmbeddedTmpl": "A=1\n# c\nB = two\n", "Envvars": True}
    out = render_nomad_template(tmpl, RenderContext(), task_root=str(tmp_path))
    assert out.env == {"A": "1", "B": "two"}
    assert _mode(out.dest) == 0o644
    assert out.change_mode == "restart" and out.change_signal == ""


def test_destination_cannot_escape_the_sandbox(tmp_path) -> None:
    task_root = tmp_path / "alloc" / "app"
    with pytest.raises(TemplateError, match="escapes the allocation directory"):
        render_nomad_template(
            {"DestPath": "../../../outside", "EmbeddedTmpl": "x"},
            RenderContext(),
            task_root=str(task_root),
            sandbox_dir=str(tmp_path / "alloc"),
        )


def test_nomad_denies_write_to_file_by_default(tmp_path) -> None:
    tmpl = {"DestPath": "local/x", "EmbeddedTmpl": '{{ "k" | writeToFile "local/k" "" "" "0600" }}'}
    with pytest.raises(TemplateError, match="function_denylist"):
        render_nomad_template(tmpl, RenderContext(), task_root=str(tmp_path))
    out = render_nomad_template(
        tmpl, RenderContext(), task_root=str(tmp_path), function_denylist=()
    )
    assert (tmp_path / "local" / "k").read_text() == "k" and out.result.text == ""


def test_template_uid_gid_are_applied_when_running_as_root(tmp_path) -> None:
    tmpl = {"DestPath": "secrets/k.pem", "EmbeddedTmpl": "k", "Perms": "0600", "Uid": 65534}
    tmpl["Gid"] = 65534
    out = render_nomad_template(tmpl, RenderContext(), task_root=str(tmp_path))
    st = os.stat(out.dest)
    want = 65534 if os.geteuid() == 0 else os.geteuid()
    assert st.st_uid == want
    assert stat.S_IMODE(st.st_mode) == 0o600
