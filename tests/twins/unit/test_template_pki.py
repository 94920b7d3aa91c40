"""pkiCert's destination-file cache and renewal clock (no Vault needed for the cached path)."""

from __future__ import annotations

import datetime as dt

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec

from devstack.template import RenderContext, TemplateError, render_sync
from devstack.template import pem as pemmod

T0 = dt.datetime(2030, 1, 1, tzinfo=dt.UTC)
LIFE = dt.timedelta(hours=72)
TEMPLATE = (
    '{{ with pkiCert "pki_int/issue/mesh" "common_name=web.service.consul" }}'
    "{{ .Cert }}{{ range .CAChain }}{{ . }}{{ end }}{{ .Key }}{{ end }}"
)


def _name(cn: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(x509.NameOID.COMMON_NAME, cn)])


def _cert(subject: str, issuer: str, key, signer, ca: bool, start: dt.datetime, life) -> bytes:
    cert = (
        x509.CertificateBuilder()
        .subject_name(_name(subject))
        .issuer_name(_name(issuer))
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(start)
        .not_valid_after(start + life)
        .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True)
        .sign(signer, hashes.SHA256())
    )
    return cert.public_bytes(serialization.Encoding.PEM)


@pytest.fixture(scope="module")
def bundle() -> dict[str, bytes]:
    root_k, int_k, leaf_k = (ec.generate_private_key(ec.SECP256R1()) for _ in range(3))
    far = dt.timedelta(days=3650)
    root = _cert("root", "root", root_k, root_k, True, T0 - far, 2 * far)
    inter = _cert("int", "root", int_k, root_k, True, T0 - far, 2 * far)
    leaf = _cert("web.service.consul", "int", leaf_k, int_k, False, T0, LIFE)
    key = leaf_k.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.TraditionalOpenSSL,
        serialization.NoEncryption(),
    )
    return {"root": root, "int": inter, "leaf": leaf, "key": key}


def _ctx(dest: str, at: dt.datetime) -> RenderContext:
    return RenderContext(destination=dest, clock=lambda: at.timestamp())


def test_scan_sorts_blocks_like_consul_template(bundle) -> None:
    raw = b"junk\n" + bundle["key"] + bundle["int"] + b"\n\n" + bundle["leaf"] + bundle["root"]
    got, leaf = pemmod.scan(raw)
    assert leaf is not None and got.Cert == bundle["leaf"].decode()
    assert got.Key == bundle["key"].decode()
    first_ca = bundle["int"].decode()
    assert first_ca == got.CA, "CA is the first CA certificate found"
    assert got.CAChain == [bundle["int"].decode(), bundle["root"].decode()]
    assert got.Data is got


def test_cached_leaf_is_reused_until_ninety_percent_of_its_life(tmp_path, bundle) -> None:
    dest = tmp_path / "cert.pem"
    dest.write_bytes(bundle["leaf"] + bundle["int"] + bundle["root"] + bundle["key"])
    just_before = T0 + LIFE * 0.9 - dt.timedelta(seconds=1)
    res = render_sync(TEMPLATE, _ctx(str(dest), just_before))
    assert res.text == dest.read_text(), "re-rendering from the cache reproduces the file"
    assert res.next_refresh == pytest.approx((T0 + LIFE * 0.9).timestamp())
    assert [d.detail for d in res.dependencies] == ["cache"]


def test_at_ninety_percent_it_issues_again(tmp_path, bundle) -> None:
    dest = tmp_path / "cert.pem"
    dest.write_bytes(bundle["leaf"] + bundle["key"])
    with pytest.raises(TemplateError, match="no Vault configured"):
        render_sync(TEMPLATE, _ctx(str(dest), T0 + LIFE * 0.9))


@pytest.mark.parametrize("content", ["", "not pem at all", "only-ca"])
def test_missing_or_useless_cache_means_issue(tmp_path, bundle, content) -> None:
    dest = tmp_path / "cert.pem"
    dest.write_bytes(bundle["int"] if content == "only-ca" else content.encode())
    with pytest.raises(TemplateError, match="no Vault configured"):
        render_sync(TEMPLATE, _ctx(str(dest), T0 + dt.timedelta(hours=1)))


def test_expired_leaf_is_never_reused(tmp_path, bundle) -> None:
    dest = tmp_path / "cert.pem"
    dest.write_bytes(bundle["leaf"] + bundle["key"])
    assert pemmod.rotation_time(pemmod.scan(dest.read_bytes())[1], (T0 + LIFE).timestamp()) is None
    with pytest.raises(TemplateError, match="no Vault configured"):
        render_sync(TEMPLATE, _ctx(str(dest), T0 + LIFE + dt.timedelta(seconds=1)))


def test_cache_without_key_gives_an_empty_key_like_consul_template(tmp_path, bundle) -> None:
    dest = tmp_path / "cert.pem"
    dest.write_bytes(bundle["leaf"])
    out = render_sync(
        '{{ with pkiCert "p/issue/r" }}[{{ .Data.Key }}]{{ end }}',
        _ctx(str(dest), T0 + dt.timedelta(hours=1)),
    ).text
    assert out == "[]"
