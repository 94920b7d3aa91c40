"""`controllerctl render`: shapes in and out, exit codes, settings, --uninject, --diff, HCL."""

from __future__ import annotations

import datetime as dt
import json
import socket
import ssl
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner, Result
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from controller.cmd import controllerctl
from crds_equivalent import keys
from tests.support.golden_jobs import JOBS, clean_env, run_render

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


# --- HCL through Nomad's parser over TLS: the NOMAD_* TLS settings, as for every Nomad call ------

NOMAD_NAME = "nomad.test"  # the only name in the server certificate (no IP SAN)


def _cert(
    cn: str,
    key: ec.EllipticCurvePrivateKey,
    issuer: tuple[x509.Certificate, ec.EllipticCurvePrivateKey] | None = None,
    dns: str | None = None,
) -> x509.Certificate:
    now = dt.datetime.now(dt.UTC)
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)])
    builder = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(issuer[0].subject if issuer else name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(hours=1))
        .add_extension(x509.BasicConstraints(ca=issuer is None, path_length=None), critical=True)
    )
    if dns:
        builder = builder.add_extension(
            x509.SubjectAlternativeName([x509.DNSName(dns)]), critical=False
        )
    return builder.sign(issuer[1] if issuer else key, hashes.SHA256())


def _write_pair(directory: Path, stem: str, cert: x509.Certificate, key: Any) -> tuple[str, str]:
    crt, pem_key = directory / f"{stem}.pem", directory / f"{stem}-key.pem"
    crt.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    pem_key.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    pem_key.chmod(0o600)
    return str(crt), str(pem_key)


class _QuietServer(ThreadingHTTPServer):
    def handle_error(self, request: Any, client_address: Any) -> None:
        return  # refused handshakes are the point of some tests


@pytest.fixture
def nomad_tls(tmp_path: Path) -> Iterator[dict[str, str]]:
    """An https fake Nomad that requires a client certificate from the same CA."""
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca = _cert("test nomad CA", ca_key)
    ca_file = tmp_path / "ca.pem"
    ca_file.write_bytes(ca.public_bytes(serialization.Encoding.PEM))
    server_key, client_key = (
        ec.generate_private_key(ec.SECP256R1()),
        ec.generate_private_key(ec.SECP256R1()),
    )
    server_pair = _write_pair(
        tmp_path, "server", _cert("server", server_key, (ca, ca_key), NOMAD_NAME), server_key
    )
    client_pair = _write_pair(
        tmp_path, "client", _cert("cli", client_key, (ca, ca_key)), client_key
    )
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.load_cert_chain(*server_pair)
    ctx.load_verify_locations(cafile=str(ca_file))
    ctx.verify_mode = ssl.CERT_REQUIRED
    server = _QuietServer(("127.0.0.1", 0), FakeParse)
    server.socket = ctx.wrap_socket(server.socket, server_side=True, do_handshake_on_connect=False)
    thread = threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    FakeParse.seen = []
    try:
        yield {
            "addr": f"https://127.0.0.1:{server.server_address[1]}",
            "ca": str(ca_file),
            "cert": client_pair[0],
            "key": client_pair[1],
        }
    finally:
        server.shutdown()
        server.server_close()


@pytest.mark.timeout(30)
@pytest.mark.parametrize(
    ("settings", "ok"),
    [
        ({"NOMAD_CACERT": "ca", "NOMAD_TLS_SERVER_NAME": NOMAD_NAME}, True),
        ({"NOMAD_CAPATH": "ca-dir", "NOMAD_TLS_SERVER_NAME": NOMAD_NAME}, True),
        ({"NOMAD_SKIP_VERIFY": "true"}, True),
        ({"NOMAD_CACERT": "ca"}, False),  # 127.0.0.1 is not in the certificate
        ({"NOMAD_TLS_SERVER_NAME": NOMAD_NAME}, False),  # system roots do not know the CA
    ],
)
def test_hcl_over_https_honours_the_nomad_tls_settings(
    nomad_tls: dict[str, str], settings: dict[str, str], ok: bool
) -> None:
    ca_dir = Path(nomad_tls["ca"]).parent / "ca-dir"
    ca_dir.mkdir(exist_ok=True)
    (ca_dir / "nomad-ca.pem").write_text(Path(nomad_tls["ca"]).read_text())
    paths = {"ca": nomad_tls["ca"], "ca-dir": str(ca_dir)}
    env = {k: paths.get(v, v) for k, v in settings.items()}
    env.update(
        NOMAD_ADDR=nomad_tls["addr"],
        NOMAD_CLIENT_CERT=nomad_tls["cert"],
        NOMAD_CLIENT_KEY=nomad_tls["key"],
    )
    result = invoke([], HCL, **env)
    if ok:
        assert result.exit_code == 0, result.output
        assert keys.INJECTED_GROUP_META in json.loads(result.stdout)["Job"]["TaskGroups"][0]["Meta"]
        assert len(FakeParse.seen) == 1
        assert "DISABLED" not in result.stdout, "warnings go to stderr, stdout is the job"
    else:
        assert result.exit_code == 2, result.output
        assert "CERTIFICATE_VERIFY_FAILED" in result.stderr, result.stderr
        assert FakeParse.seen == []


@pytest.mark.timeout(30)
def test_hcl_over_https_sends_the_client_certificate(nomad_tls: dict[str, str]) -> None:
    base = {"NOMAD_ADDR": nomad_tls["addr"], "NOMAD_CACERT": nomad_tls["ca"]}
    base["NOMAD_TLS_SERVER_NAME"] = NOMAD_NAME
    refused = invoke([], HCL, **base)
    assert refused.exit_code == 2 and FakeParse.seen == []
    accepted = invoke(
        [], HCL, **base, NOMAD_CLIENT_CERT=nomad_tls["cert"], NOMAD_CLIENT_KEY=nomad_tls["key"]
    )
    assert accepted.exit_code == 0, accepted.output
    assert len(FakeParse.seen) == 1


@pytest.mark.parametrize(
    ("env", "message"),
    [
        ({"NOMAD_CACERT": "/nonexistent/ca.pem"}, "nomad: CA file /nonexistent/ca.pem"),
        ({"NOMAD_SKIP_VERIFY": "maybe"}, "NOMAD_SKIP_VERIFY='maybe'"),
        ({"NOMAD_CLIENT_KEY": "/k.pem"}, "a client key is set but no client certificate"),
    ],
)
def test_hcl_with_unusable_nomad_tls_settings_exits_2(env: dict[str, str], message: str) -> None:
    result = invoke([], HCL, NOMAD_ADDR="https://127.0.0.1:1", **env)
    assert result.exit_code == 2
    assert "NOMAD_* settings are invalid" in result.stderr
    assert message in result.stderr
    assert result.stdout == ""


def test_golden_helper_runs_the_same_command() -> None:
    assert run_render([str(MESHED_CASE)]).stdout == invoke([str(MESHED_CASE)]).stdout
