"""controller.vault against a real OpenBao: bootstrap idempotence, policies, reads, rotation."""

from __future__ import annotations

import re
from datetime import UTC, datetime

import hvac
import pytest
from cryptography import x509

from controller.vault import (
    CONTROLLER_POLICY,
    WORKLOAD_POLICY,
    PkiLayout,
    VaultBadRequest,
    VaultClient,
    VaultConnection,
    VaultPermissionDenied,
    VaultUnavailable,
    bootstrap_pki,
    ca_chain_pem,
    create_intermediate,
    default_issuer_id,
    list_issuers,
    read_issuer,
    root_pem,
    set_default_issuer,
    set_issuer_usage,
)
from controller.vault.grants import VaultCertGrants
from controller.vault.workload_auth import JWT_MOUNT, auth_accessor
from devstack.vault import OpenBao, start_openbao
from devstack.workload_login import identity_issuer

pytestmark = pytest.mark.timeout(90)


def _client(bao: OpenBao, token: str | None = None) -> VaultClient:
    return VaultClient(VaultConnection(bao.addr, token or bao.root_token))


def _token(bao: OpenBao, *policies: str) -> str:
    root = hvac.Client(url=bao.addr, token=bao.root_token)
    resp = root.auth.token.create(policies=list(policies), ttl="10m", no_default_policy=False)
    return str(resp["auth"]["client_token"])


def _leaf_names(pem: str) -> tuple[str, list[str]]:
    cert = x509.load_pem_x509_certificate(pem.encode())
    cn = cert.subject.get_attributes_for_oid(x509.NameOID.COMMON_NAME)[0].value
    sans = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    return str(cn), [str(n) for n in sans.get_values_for_type(x509.DNSName)]


async def test_bootstrap_creates_everything_then_changes_nothing(tmp_path) -> None:
    bao = await start_openbao(data_dir=str(tmp_path))
    try:
        client = _client(bao)
        first = await bootstrap_pki(client)
        assert first.changed
        assert len(first.done) == 9  # 2 mounts, 2 CAs, role, 2 policies, JWT method and role
        assert "enabled the JWT auth method jwt-nomad/" in first.done
        assert "created JWT role auth/jwt-nomad/role/mesh-workload" in first.done
        # Without a JWKS URL the method's config is left as found, and bootstrap says so.
        assert first.present == [
            "auth/jwt-nomad/config (jwks_url NONE: workloads cannot log in until it is set)"
        ]
        issuers_before = await list_issuers(client, "pki_int")
        second = await bootstrap_pki(client)
        assert not second.changed
        assert second.done == []
        assert len(second.present) == 10
        assert second.default_issuer == first.default_issuer
        assert await list_issuers(client, "pki_int") == issuers_before
        # A drifted role is put back, and only the role.
        hvac.Client(url=bao.addr, token=bao.root_token).write_data(
            "pki_int/roles/mesh", data={"allowed_domains": ["example.com"], "key_type": "rsa"}
        )
        third = await bootstrap_pki(client)
        assert third.done == ["updated role pki_int/roles/mesh"]
        role = (await client.read("pki_int/roles/mesh") or {})["data"]
        assert role["key_type"] == "ec" and role["key_bits"] == 256
        assert "service.consul" in role["allowed_domains"]
    finally:
        await bao.stop()


async def test_layout_chain_and_reads(openbao: OpenBao) -> None:
    client = _client(openbao)
    report = await bootstrap_pki(client)
    info = await read_issuer(client, "pki_int")
    assert info.is_default and info.issuer_id == report.default_issuer
    assert info.key_id, "the intermediate's key lives in the mount"
    assert info.not_after > datetime.now(UTC)
    assert info.common_name == "nomad-tls-mesh Intermediate CA"
    root = x509.load_pem_x509_certificate((await root_pem(client, "pki")).encode())
    inter = x509.load_pem_x509_certificate(info.certificate.encode())
    inter.verify_directly_issued_by(root)
    assert inter.public_key().curve.name == "secp256r1"  # type: ignore[union-attr]
    pems = x509.load_pem_x509_certificates((await ca_chain_pem(client, "pki_int")).encode())
    assert [c.subject for c in pems] == [inter.subject, root.subject]


async def test_workload_token_issues_leaves_and_nothing_else(openbao: OpenBao) -> None:
    async with identity_issuer(openbao) as issuer:
        await VaultCertGrants(_client(openbao), PkiLayout()).grant(
            "mesh.default.web", ("web.service.consul", "web.service.*.consul")
        )
        workload = _client(openbao, await issuer.login("default", "web"))
        await _workload_checks(openbao, workload)


async def _workload_checks(openbao: OpenBao, workload: VaultClient) -> None:
    own = "pki_int/issue/mesh.default.web"
    leaf = await workload.write(
        own,
        {
            "common_name": "web.service.consul",
            "alt_names": "web.service.dc1.consul",
            "ip_sans": "127.0.0.11",
            "ttl": "1h",
        },
    )
    assert leaf is not None
    cn, dns = _leaf_names(leaf["data"]["certificate"])
    assert cn == "web.service.consul"
    assert set(dns) == {"web.service.consul", "web.service.dc1.consul"}
    cert = x509.load_pem_x509_certificate(leaf["data"]["certificate"].encode())
    eku = cert.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
    assert x509.ExtendedKeyUsageOID.SERVER_AUTH in eku
    assert x509.ExtendedKeyUsageOID.CLIENT_AUTH in eku
    stored = await _client(openbao).read(f"sys/policies/acl/{WORKLOAD_POLICY}")
    grants = re.findall(r'path "([^"]+)" \{\s*capabilities = \[([^]]*)\]', stored["data"]["policy"])
    accessor = await auth_accessor(_client(openbao), JWT_MOUNT)
    meta = f"identity.entity.aliases.{accessor}.metadata"
    assert sorted(grants) == [
        ("pki_int/cert/ca_chain", '"read"'),
        (
            f"pki_int/issue/mesh.{{{{{meta}.nomad_namespace}}}}.{{{{{meta}.nomad_job_id}}}}",
            '"update"',
        ),
    ], "least privilege: issue from the job's own role, read the CA chain, nothing else"
    # The sidecar's mTLS trust bundle: the intermediate mount's chain, intermediate then root.
    bundle = x509.load_pem_x509_certificates((await ca_chain_pem(workload, "pki_int")).encode())
    root = x509.load_pem_x509_certificate((await root_pem(_client(openbao), "pki")).encode())
    assert len(bundle) == 2 and bundle[1] == root
    bundle[0].verify_directly_issued_by(root)
    with pytest.raises(VaultPermissionDenied):
        await workload.write("pki_int/roles/mesh", {"allowed_domains": ["evil.com"]})
    with pytest.raises(VaultPermissionDenied):
        await workload.read("pki_int/roles/mesh")
    with pytest.raises(VaultPermissionDenied):
        await workload.read("pki_int/issuer/default")
    with pytest.raises(VaultPermissionDenied):
        await workload.write("pki/root/sign-intermediate", {"csr": "x"})
    with pytest.raises(VaultPermissionDenied):
        await workload.write("pki_int/issue/mesh", {"common_name": "web.service.consul"})
    with pytest.raises(VaultBadRequest, match="not allowed by this role"):
        await workload.write(own, {"common_name": "web.example.com"})
    for refused in ("*.service.consul", "service.consul", "localhost", "api.service.consul"):
        with pytest.raises(VaultBadRequest):
            await workload.write(own, {"common_name": refused})


async def test_controller_token_reads_what_it_needs_and_cannot_issue(openbao: OpenBao) -> None:
    await bootstrap_pki(_client(openbao))
    ctl = _client(openbao, _token(openbao, CONTROLLER_POLICY))
    assert (await ctl.health())["code"] == 200
    assert await default_issuer_id(ctl, "pki_int")
    infos = await list_issuers(ctl, "pki_int")
    assert any(i.is_default for i in infos)
    assert "BEGIN CERTIFICATE" in await ca_chain_pem(ctl, "pki_int")
    assert "BEGIN CERTIFICATE" in await root_pem(ctl, "pki")
    assert (await ctl.read("pki_int/roles/mesh") or {})["data"]["key_type"] == "ec"
    with pytest.raises(VaultPermissionDenied):
        await ctl.write("pki_int/issue/mesh", {"common_name": "web.service.consul"})
    with pytest.raises(VaultPermissionDenied):
        await ctl.write("pki_int/roles/mesh", {"key_type": "rsa"})
    with pytest.raises(VaultPermissionDenied):
        await ctl.read("sys/mounts")


async def test_controller_token_can_rotate_the_intermediate(tmp_path) -> None:
    bao = await start_openbao(data_dir=str(tmp_path))
    try:
        await bootstrap_pki(_client(bao))
        ctl = _client(bao, _token(bao, CONTROLLER_POLICY))
        old = await read_issuer(ctl, "pki_int")
        new_id = await create_intermediate(
            ctl,
            root_mount="pki",
            int_mount="pki_int",
            common_name="nomad-tls-mesh Intermediate CA v2",
            ttl="8760h",
            issuer_name="int-v2",
        )
        assert (await read_issuer(ctl, "pki_int")).issuer_id == old.issuer_id, "not default yet"
        await set_default_issuer(ctl, "pki_int", new_id)
        await set_issuer_usage(ctl, "pki_int", old.issuer_id, "read-only,crl-signing,ocsp-signing")
        now = await read_issuer(ctl, "pki_int")
        assert now.issuer_id == new_id and now.issuer_name == "int-v2"
        assert (await read_issuer(ctl, "pki_int", old.issuer_id)).usage.count("issuing") == 0
        async with identity_issuer(bao) as issuer:
            await VaultCertGrants(_client(bao), PkiLayout()).grant(
                "mesh.default.api", ("api.service.consul",)
            )
            workload = _client(bao, await issuer.login("default", "api"))
            leaf = await workload.write(
                "pki_int/issue/mesh.default.api", {"common_name": "api.service.consul"}
            )
        assert leaf is not None
        cert = x509.load_pem_x509_certificate(leaf["data"]["certificate"].encode())
        cert.verify_directly_issued_by(x509.load_pem_x509_certificate(now.certificate.encode()))
    finally:
        await bao.stop()


async def test_sealed_vault_is_unavailable_not_denied(tmp_path) -> None:
    bao = await start_openbao(data_dir=str(tmp_path))
    try:
        client = _client(bao)
        await bootstrap_pki(client)
        await bao.seal()
        with pytest.raises(VaultUnavailable):
            await read_issuer(client, "pki_int")
        assert (await client.health())["sealed"] is True
        await bao.unseal()
        assert (await read_issuer(client, "pki_int")).is_default
    finally:
        await bao.stop()


async def test_tls_is_verified_by_default(tmp_path) -> None:
    bao = await start_openbao(data_dir=str(tmp_path), tls=True)
    try:
        assert bao.addr.startswith("https://") and bao.ca_cert
        unverified = VaultClient(VaultConnection(bao.addr, bao.root_token))
        with pytest.raises(VaultUnavailable, match="SSL"):
            await unverified.health()
        trusted = VaultClient(VaultConnection(bao.addr, bao.root_token, verify=bao.ca_cert))
        assert (await trusted.health())["code"] == 200
    finally:
        await bao.stop()


def test_repr_never_shows_the_token() -> None:
    conn = VaultConnection("http://127.0.0.1:1", "s.secret-token")
    assert "secret-token" not in repr(conn)
    assert "secret-token" not in repr(VaultClient(conn))


def test_layout_defaults_match_the_mesh_config_defaults() -> None:
    from crds_equivalent.config import MeshConfig

    cfg, layout = MeshConfig(), PkiLayout()
    assert (layout.int_mount, layout.role, layout.domain) == (
        cfg.pki_mount,
        cfg.pki_role,
        cfg.domain,
    )
    assert layout.root_mount == cfg.root_mount
    assert layout.datacenter_domain == cfg.datacenter_domain


def test_connection_from_vault_settings_keeps_verification_on() -> None:
    from controller.config import VaultSettings

    default = VaultConnection.from_settings(VaultSettings())
    assert default.verify is True and default.token == ""
    pinned = VaultConnection.from_settings(
        VaultSettings(addr="https://v:8200", token="t0k", cacert="/etc/ca.pem", namespace="ns1")
    )
    assert (pinned.addr, pinned.verify, pinned.namespace) == (
        "https://v:8200",
        "/etc/ca.pem",
        "ns1",
    )
    assert pinned.token == "t0k" and "t0k" not in repr(pinned)
    skip = VaultConnection.from_settings(VaultSettings(skip_verify=True))
    assert skip.verify is False
