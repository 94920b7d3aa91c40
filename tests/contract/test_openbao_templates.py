"""The devstack renderer's Vault functions against a real OpenBao, with the mesh's own template."""

from __future__ import annotations

import os
import random
import stat
import time

import hvac
import pytest
from cryptography import x509
from cryptography.hazmat.primitives.serialization import load_pem_private_key

from devstack.template import (
    PortMapping,
    RenderContext,
    TemplateError,
    VaultTarget,
    render,
    render_nomad_template_async,
    task_env,
)
from devstack.vault import OpenBao
from devstack.workload_login import workload_token
from reconcilers.injection import nginx

pytestmark = pytest.mark.timeout(60)


async def _workload_token(bao: OpenBao) -> str:
    """Job web's sidecar token (a JWT login), granted web's names."""
    return await workload_token(bao, "web", ("web.service.consul", "web.service.*.consul"))


def _cert_template() -> dict[str, object]:
    body = nginx.cert_template("pki_int/issue/mesh.default.web", "web.service.consul", 3600)
    return {"DestPath": nginx.CERT_DEST, "EmbeddedTmpl": body, "Perms": "0600"}


def _env(tmp_path) -> dict[str, str]:
    job = {
        "ID": "web",
        "TaskGroups": [
            {
                "Name": "g",
                "Tasks": [
                    {
                        "Name": "mesh-tls-proxy",
                        "Env": nginx.cert_env(
                            ["web.service.${NOMAD_DC}.consul"], ["mesh_tls_http"]
                        ),
                    }
                ],
            }
        ],
    }
    return task_env(
        job=job,
        group="g",
        task="mesh-tls-proxy",
        alloc_id="a1b2c3d4-0000-0000-0000-000000000001",
        alloc_dir=str(tmp_path),
        ports=[PortMapping("mesh_tls_http", 25001, host_ip="127.0.0.11")],
        datacenter="dc1",
    )


def _leaf(path: str) -> x509.Certificate:
    """The file's first certificate: the mesh template writes the leaf first."""
    with open(path, "rb") as f:
        return x509.load_pem_x509_certificates(f.read())[0]


def _read(path: str) -> bytes:
    with open(path, "rb") as f:
        return f.read()


async def test_mesh_cert_template_issues_once_then_reuses_until_ninety_percent(
    openbao: OpenBao, tmp_path
) -> None:
    token = await _workload_token(openbao)
    env = _env(tmp_path)
    now = [time.time()]
    ctx = RenderContext(env=env, vault=VaultTarget(openbao.addr, token), clock=lambda: now[0])
    task_root = str(tmp_path / "mesh-tls-proxy")
    first = await render_nomad_template_async(_cert_template(), ctx, task_root=task_root)
    assert first.changed and stat.S_IMODE(os.stat(first.dest).st_mode) == 0o600
    raw = _read(first.dest)
    certs = x509.load_pem_x509_certificates(raw)
    leaf = _leaf(first.dest)
    cn = leaf.subject.get_attributes_for_oid(x509.NameOID.COMMON_NAME)[0].value
    assert cn == "web.service.consul"
    sans = leaf.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert set(sans.get_values_for_type(x509.DNSName)) == {
        "web.service.consul",
        "web.service.dc1.consul",
    }
    assert [str(i) for i in sans.get_values_for_type(x509.IPAddress)] == ["127.0.0.11"]
    # leaf and intermediate (remove_roots_from_chain: the root is never in the served chain);
    # the key in the same file belongs to the leaf
    assert len(certs) == 2
    certs[0].verify_directly_issued_by(certs[1])
    assert certs[1].subject != certs[1].issuer, "the second certificate is not the root"
    key = load_pem_private_key(raw[raw.index(b"-----BEGIN EC PRIVATE KEY") :], None)
    assert key.public_key() == leaf.public_key()
    start, end = leaf.not_valid_before_utc.timestamp(), leaf.not_valid_after_utc.timestamp()
    rotate_at = start + 0.9 * (end - start)
    assert first.result.next_refresh == pytest.approx(rotate_at)

    now[0] = rotate_at - 1
    again = await render_nomad_template_async(_cert_template(), ctx, task_root=task_root)
    assert not again.changed and _read(again.dest) == raw, "cached leaf reused, nothing issued"
    assert _leaf(again.dest).serial_number == leaf.serial_number

    now[0] = rotate_at
    renewed = await render_nomad_template_async(_cert_template(), ctx, task_root=task_root)
    assert renewed.changed
    assert _leaf(renewed.dest).serial_number != leaf.serial_number


async def test_secret_write_read_and_refresh_window(openbao: OpenBao, tmp_path) -> None:
    root = hvac.Client(url=openbao.addr, token=openbao.root_token)
    root.secrets.kv.v2.create_or_update_secret(path="mesh/demo", secret={"pw": "s3cret"})
    await _workload_token(openbao)
    ctx = RenderContext(
        vault=VaultTarget(openbao.addr, openbao.root_token),
        rng=random.Random(7),
        clock=lambda: 1_000_000.0,
    )
    kv = await render('{{ with secret "secret/mesh/demo" }}{{ .Data.data.pw }}{{ end }}', ctx)
    assert kv.text == "s3cret"
    (dep,) = kv.dependencies
    assert dep.kind == "vault.read"
    # No lease: Nomad's default vault lease (5 m) with the 0.90 +/- 0.05 factor.
    assert 1_000_000 + 0.85 * 300 <= (dep.refresh_at or 0) <= 1_000_000 + 0.95 * 300

    live = RenderContext(vault=VaultTarget(openbao.addr, openbao.root_token), rng=random.Random(1))
    text = (
        '{{ with secret "pki_int/issue/mesh" "common_name=api.service.consul" "ttl=1h" }}'
        "{{ .Data.serial_number }}{{ end }}|"
        '{{ with secret "pki_int/issue/mesh" "ttl=1h" "common_name=api.service.consul" }}'
        "{{ .Data.serial_number }}{{ end }}"
    )
    res = await render(text, live)
    a, b = res.text.split("|")
    assert a == b, "identical secret calls in one render are one Vault write"
    (dep,) = res.dependencies
    assert dep.kind == "vault.write"
    remaining = 3600
    assert time.time() + 0.84 * remaining <= (dep.refresh_at or 0) <= time.time() + 0.96 * remaining


async def test_vault_refusals_fail_the_render(openbao: OpenBao, tmp_path) -> None:
    token = await _workload_token(openbao)
    ctx = RenderContext(vault=VaultTarget(openbao.addr, token), destination=str(tmp_path / "c.pem"))
    with pytest.raises(TemplateError, match="not allowed by this role"):
        await render(
            '{{ with pkiCert "pki_int/issue/mesh.default.web" "common_name=evil.com" }}{{ end }}',
            ctx,
        )
    with pytest.raises(TemplateError, match="Code: 403"):
        await render('{{ with secret "secret/mesh/demo" }}{{ end }}', ctx)
    assert not (tmp_path / "c.pem").exists()
