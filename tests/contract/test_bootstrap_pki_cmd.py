"""``controllerctl bootstrap-pki`` against a real OpenBao of its own: create, then change nothing;
a domain change; an external root; and the exit codes for unreachable, unauthorised, unusable."""

from __future__ import annotations

import asyncio
import datetime as dt
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import hvac
import pytest
from click.testing import CliRunner, Result
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from controller.cmd import controllerctl
from devstack.vault import OpenBao, start_openbao
from devstack.workload_login import static_jwks

pytestmark = pytest.mark.timeout(60)


@pytest.fixture(scope="module", autouse=True)
def nomad_addr() -> Iterator[str]:
    """Where Nomad would serve its JWKS: bootstrap-pki points Vault's JWT auth method at
    $NOMAD_ADDR/.well-known/jwks.json unless told otherwise."""
    with static_jwks() as addr, pytest.MonkeyPatch.context() as patch:
        patch.setenv("NOMAD_ADDR", addr)
        yield addr


@pytest.fixture(scope="module")
def bao(tmp_path_factory: pytest.TempPathFactory) -> Iterator[OpenBao]:
    loop = asyncio.new_event_loop()
    server = loop.run_until_complete(start_openbao(data_dir=str(tmp_path_factory.mktemp("bao"))))
    try:
        yield server
    finally:
        loop.run_until_complete(server.stop())
        loop.close()


def run(bao: OpenBao | None, *args: str, token: str | None = None, **mesh: str) -> Result:
    env: dict[str, str | None] = {
        "VAULT_ADDR": bao.addr if bao else "http://127.0.0.1:1",
        "VAULT_TOKEN": token if token is not None else (bao.root_token if bao else "x"),
        "VAULT_CACERT": None,
        "VAULT_SKIP_VERIFY": None,
        "VAULT_NAMESPACE": None,
    }
    for name in ("root_mount", "pki_mount", "pki_role", "domain"):
        env[f"MESH_{name.upper()}"] = mesh.get(name)
    return CliRunner().invoke(controllerctl, ["bootstrap-pki", *args], env=env)


def lines(result: Result) -> list[str]:
    return result.stdout.strip().splitlines()


def admin(bao: OpenBao) -> hvac.Client:
    return hvac.Client(url=bao.addr, token=bao.root_token)


def test_first_run_creates_everything_second_run_changes_nothing(
    bao: OpenBao, nomad_addr: str
) -> None:
    first = run(bao)
    assert first.exit_code == 0, first.output
    out = lines(first)
    # 2 mounts, 2 CAs, the role, 2 policies; the JWT auth method, its JWKS config, its role
    assert out[-1].startswith("changed: 10 change(s)")
    assert f"configured auth/jwt-nomad/config: jwks_url {nomad_addr}/.well-known/jwks.json" in out
    assert "enabled pki mount pki/ (max_lease_ttl 87600h)" in out
    assert any(line.startswith("generated intermediate CA in pki_int/") for line in out)
    assert "created role pki_int/roles/mesh" in out
    assert not any(line.startswith("already present") for line in out)
    default = admin(bao).read("pki_int/config/issuers")["data"]["default"]
    assert f"default issuer: {default}" in out

    second = run(bao)
    assert second.exit_code == 0, second.output
    out = lines(second)
    assert out[-1].startswith("unchanged: the mesh PKI was already in place")
    assert all(line.startswith(("already present: ", "default issuer: ")) for line in out[:-1])
    assert "already present: role pki_int/roles/mesh" in out
    assert admin(bao).read("pki_int/config/issuers")["data"]["default"] == default


def test_domain_flag_shapes_the_role_and_reruns_are_quiet(bao: OpenBao) -> None:
    names = {"root_mount": "d_root", "pki_mount": "d_int", "pki_role": "d_mesh"}
    first = run(bao, "--domain", "mesh.internal", **names)
    assert first.exit_code == 0, first.output
    role = admin(bao).read("d_int/roles/d_mesh")["data"]
    assert "mesh.internal" in role["allowed_domains"]
    leaf = admin(bao).write_data("d_int/issue/d_mesh", data={"common_name": "web.mesh.internal"})
    assert leaf["data"]["certificate"].startswith("-----BEGIN CERTIFICATE-----")

    again = run(bao, "--domain", "mesh.internal", **names)
    assert again.exit_code == 0 and lines(again)[-1].startswith("unchanged:"), again.output
    moved = run(bao, "--domain", "corp.example", **names)
    assert moved.exit_code == 0, moved.output
    assert "updated role d_int/roles/d_mesh" in lines(moved)
    assert lines(moved)[-1].startswith("changed: 1 change(s)")


def _ca(cn: str) -> tuple[x509.Certificate, str]:
    key = ec.generate_private_key(ec.SECP256R1())
    now = dt.datetime.now(dt.UTC)
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)])
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(hours=1))
        .not_valid_after(now + dt.timedelta(days=3650 * 2))
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .add_extension(
            x509.KeyUsage(False, False, False, False, False, True, True, False, False), True
        )
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), False)
        .sign(key, hashes.SHA256())
    )
    pem_key = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    ).decode()
    return cert, cert.public_bytes(serialization.Encoding.PEM).decode() + pem_key


def test_external_root_is_imported_once_and_signs_the_intermediate(
    bao: OpenBao, tmp_path: Path
) -> None:
    names = {"root_mount": "x_root", "pki_mount": "x_int", "pki_role": "x_mesh"}
    corp, bundle = _ca("Corp Root CA")
    path = tmp_path / "corp.pem"
    path.write_text(bundle)
    path.chmod(0o600)

    first = run(bao, "--external-root", str(path), **names)
    assert first.exit_code == 0, first.output
    assert "imported external root CA CN=Corp Root CA into x_root/" in lines(first)
    issued = admin(bao).write_data("x_int/issue/x_mesh", data={"common_name": "web.service.consul"})
    chain = [x509.load_pem_x509_certificate(p.encode()) for p in issued["data"]["ca_chain"]]
    assert chain[0].issuer == corp.subject
    chain[0].verify_directly_issued_by(corp)

    again = run(bao, "--external-root", str(path), **names)
    assert again.exit_code == 0, again.output
    assert "already present: external root CA CN=Corp Root CA in x_root/" in lines(again)
    assert lines(again)[-1].startswith("unchanged:")

    _, other = _ca("Another Root")
    (tmp_path / "other.pem").write_text(other)
    refused = run(bao, "--external-root", str(tmp_path / "other.pem"), **names)
    assert refused.exit_code == 1
    assert "already has a different root CA (CN=Corp Root CA)" in refused.stderr
    assert admin(bao).read("x_root/cert/ca")["data"]["certificate"].strip() == (
        corp.public_bytes(serialization.Encoding.PEM).decode().strip()
    )


def test_external_root_without_its_key_is_refused_before_vault_is_touched(
    bao: OpenBao, tmp_path: Path
) -> None:
    corp, _ = _ca("Keyless")
    path = tmp_path / "cert-only.pem"
    path.write_text(corp.public_bytes(serialization.Encoding.PEM).decode())
    result = run(bao, "--external-root", str(path), root_mount="k_root", pki_mount="k_int")
    assert result.exit_code == 1
    assert "no private key" in result.stderr
    assert "k_root/" not in admin(bao).sys.list_mounted_secrets_engines()["data"]


def test_a_token_without_rights_exits_2_naming_capability_and_path(bao: OpenBao) -> None:
    client = admin(bao)
    client.sys.create_or_update_policy(
        "read-everything", 'path "*" {\n  capabilities = ["read", "list"]\n}\n'
    )
    token = client.auth.token.create(policies=["read-everything"], ttl="5m")["auth"]["client_token"]
    result = run(bao, token=token, root_mount="ro_root", pki_mount="ro_int")
    assert result.exit_code == 2
    assert '"create" or "update" capability on "sys/mounts/ro_root"' in result.stderr
    assert token not in result.output
    assert "ro_root/" not in client.sys.list_mounted_secrets_engines()["data"]


def test_a_bogus_token_exits_2(bao: OpenBao) -> None:
    result = run(bao, token="s.not-a-real-token")
    assert result.exit_code == 2
    assert "the Vault token is invalid or expired" in result.stderr
    assert "s.not-a-real-token" not in result.output


def test_unreachable_vault_and_missing_token_exit_2() -> None:
    result = run(None)
    assert result.exit_code == 2
    assert "cannot reach Vault at http://127.0.0.1:1" in result.stderr
    missing = run(None, token="")
    assert missing.exit_code == 2 and "VAULT_TOKEN is not set" in missing.stderr


def test_the_installed_entry_point_runs_it(bao: OpenBao, nomad_addr: str) -> None:
    controllerctl_bin = Path(sys.executable).parent / "controllerctl"
    proc = subprocess.run(
        [
            str(controllerctl_bin),
            "bootstrap-pki",
            "--jwks-url",
            f"{nomad_addr}/.well-known/jwks.json",
        ],
        env={"VAULT_ADDR": bao.addr, "VAULT_TOKEN": bao.root_token, "PATH": "/usr/bin:/bin"},
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip().splitlines()[-1].startswith(("changed:", "unchanged:"))
