"""`controllerctl render`: shapes in and out, exit codes, settings, --uninject, --diff, HCL."""

from __future__ import annotations

import json
import socket
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner, Result

from controller.cli import controllerctl
from crds_equivalent import keys
from tests.golden_jobs import JOBS, clean_env, run_render

MESHED_CASE = JOBS / "permissive-canary.in.json"


def meshed_job() -> dict[str, Any]:
    job: dict[str, Any] = json.loads(MESHED_CASE.read_text())
    return job


def invoke(args: list[str], stdin: str | None = None, **env: str) -> Result:
    return CliRunner().invoke(
        controllerctl, ["render", *args], input=stdin, env={**clean_env(), **env}
    )


def test_bare_job_from_stdin_comes_back_bare_and_injected() -> None:
    result = invoke(["-"], json.dumps(meshed_job()))
    assert result.exit_code == 0, result.output
    out = json.loads(result.stdout)
    assert out["ID"] == "shop"
    assert keys.INJECTED_GROUP_META in out["TaskGroups"][0]["Meta"]
    assert result.stdout.startswith('{\n    "ID": "shop",')  # Nomad's key order, 4-space indent


def test_wrapped_job_keeps_the_wrapper() -> None:
    doc = {"Job": meshed_job(), "EnforceIndex": True, "JobModifyIndex": 7}
    result = invoke([], json.dumps(doc))
    assert result.exit_code == 0, result.output
    out = json.loads(result.stdout)
    assert list(out) == ["Job", "EnforceIndex", "JobModifyIndex"]
    assert out["EnforceIndex"] is True and out["JobModifyIndex"] == 7
    assert any(t["Name"] == keys.SIDECAR_TASK for t in out["Job"]["TaskGroups"][0]["Tasks"])


def test_unmeshed_job_is_printed_unchanged() -> None:
    text = (JOBS / "example-short-unmeshed.in.json").read_text()
    result = invoke([str(JOBS / "example-short-unmeshed.in.json")])
    assert result.exit_code == 0
    assert result.stdout == text


def test_invalid_spec_exits_1_with_the_reason_on_stderr_only() -> None:
    job = meshed_job()
    job["Meta"]["mesh.tls.protocol"] = "grpc"
    result = invoke([], json.dumps(job))
    assert result.exit_code == 1
    assert result.stdout == ""
    assert 'meta "mesh.tls.protocol" = "grpc": expected one of http, tcp' in result.stderr


def test_uninject_gives_the_users_job_back() -> None:
    rendered = invoke([str(MESHED_CASE)]).stdout
    result = invoke(["--uninject"], rendered)
    assert result.exit_code == 0
    assert json.loads(result.stdout) == meshed_job()


def test_uninject_with_a_corrupt_record_exits_1() -> None:
    out = json.loads(invoke([str(MESHED_CASE)]).stdout)
    out["TaskGroups"][0]["Meta"][keys.UNDO_GROUP_META] = "{"
    result = invoke(["--uninject"], json.dumps(out))
    assert result.exit_code == 1
    assert "undo record is not JSON" in result.stderr


def test_diff_is_a_unified_diff_against_the_input() -> None:
    result = invoke(["--diff", str(MESHED_CASE)])
    assert result.exit_code == 0
    lines = result.stdout.splitlines()
    assert lines[0] == f"--- a/{str(MESHED_CASE).lstrip('/')}"
    assert lines[1] == f"+++ b/{str(MESHED_CASE).lstrip('/')}"
    assert f'+                    "Name": "{keys.SIDECAR_TASK}",' in lines
    assert not any(line.startswith("-") and "mesh" in line for line in lines[2:])


def test_diff_of_an_unmeshed_job_is_empty() -> None:
    result = invoke(["--diff", str(JOBS / "example-short-unmeshed.in.json")])
    assert result.exit_code == 0
    assert result.stdout == ""


def test_settings_from_env_and_flags_flags_win() -> None:
    job = json.dumps(meshed_job())
    by_env = json.loads(invoke([], job, MESH_SIDECAR_DRIVER="raw_exec").stdout)
    sidecar = by_env["TaskGroups"][0]["Tasks"][-1]
    assert sidecar["Driver"] == "raw_exec"
    flags = ["--sidecar-driver", "exec", "--nginx-bin", "/opt/nginx/sbin/nginx"]
    by_flag = json.loads(invoke(flags, job, MESH_SIDECAR_DRIVER="raw_exec").stdout)
    sidecar = by_flag["TaskGroups"][0]["Tasks"][-1]
    assert sidecar["Driver"] == "exec"
    assert sidecar["Config"]["command"] == "/opt/nginx/sbin/nginx"


@pytest.mark.parametrize(
    ("stdin", "args", "message"),
    [
        ("", [], "empty input"),
        ("{ nope", [], "not JSON"),
        ("[1, 2]", [], "not a Nomad job"),
        (None, ["/nonexistent/job.json"], "cannot read"),
        ('{"ID": "x"}', ["--sidecar-driver", "podman"], "invalid setting"),
    ],
)
def test_unreadable_input_exits_2(stdin: str | None, args: list[str], message: str) -> None:
    result = invoke(args, stdin)
    assert result.exit_code == 2
    assert message in result.stderr
    assert result.stdout == ""


# --- HCL through Nomad's parser ------------------------------------------------------------------

HCL = 'job "shop" {\n  group "web" {}\n}\n'


class FakeParse(BaseHTTPRequestHandler):
    """POST /v1/jobs/parse as Nomad answers it: an api.Job, or 400 with a plain-text reason."""

    seen: list[tuple[dict[str, Any], str | None]] = []

    def do_POST(self) -> None:
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        FakeParse.seen.append((body, self.headers.get("X-Nomad-Token")))
        if self.path != "/v1/jobs/parse" or "group" not in body["JobHCL"]:
            payload, status, kind = b"Failed to parse job: bad", 400, "text/plain"
        else:
            payload, status, kind = json.dumps(meshed_job()).encode(), 200, "application/json"
        self.send_response(status)
        self.send_header("Content-Type", kind)
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        self.wfile.write(payload)

    def log_message(self, *args: Any) -> None:
        return


@pytest.fixture
def nomad() -> Iterator[str]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), FakeParse)
    thread = threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    FakeParse.seen = []
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


@pytest.mark.timeout(30)
def test_hcl_is_parsed_by_nomad_and_comes_back_wrapped(nomad: str, tmp_path: Path) -> None:
    source = tmp_path / "shop.nomad.hcl"
    source.write_text(HCL)
    result = invoke([str(source)], NOMAD_ADDR=nomad, NOMAD_TOKEN="s3cret")
    assert result.exit_code == 0, result.output
    out = json.loads(result.stdout)
    assert list(out) == ["Job"]
    assert keys.INJECTED_GROUP_META in out["Job"]["TaskGroups"][0]["Meta"]
    ((body, token),) = FakeParse.seen
    assert body == {"JobHCL": HCL, "Canonicalize": False}
    assert token == "s3cret"
    assert "s3cret" not in result.output


@pytest.mark.timeout(30)
def test_hcl_rejected_by_nomad_exits_2(nomad: str) -> None:
    result = invoke([], 'job "x" {}\n', NOMAD_ADDR=nomad)
    assert result.exit_code == 2
    assert "Failed to parse job: bad" in result.stderr


@pytest.mark.timeout(30)
def test_hcl_without_a_reachable_nomad_explains_the_conversion() -> None:
    with socket.socket() as sock:  # a port nobody listens on
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    result = invoke([], HCL, NOMAD_ADDR=f"http://127.0.0.1:{port}")
    assert result.exit_code == 2
    assert "nomad job run -output" in result.stderr


def test_golden_helper_runs_the_same_command() -> None:
    assert run_render([str(MESHED_CASE)]).stdout == invoke([str(MESHED_CASE)]).stdout
