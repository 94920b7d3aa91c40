"""The sidecar templates: the consul-template subset they use, and nginx accepting the config.

The config is rendered here with a tiny emulator of the subset (env lookups, one pkiCert call
answered with a throwaway CA, one `secret` read of the CA chain) and checked with the real
`nginx -t` (nginx 1.22, stream module loaded), which catches syntax and certificate errors
before any allocation runs.
"""

from __future__ import annotations

import datetime
import re
import shutil
import subprocess
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from crds_equivalent.config import MeshConfig
from reconcilers.injection import nginx
from reconcilers.injection.nginx import Listener

NGINX = "/usr/sbin/nginx"
STREAM_MODULE = MeshConfig().nginx_stream_module

ACTION = re.compile(r"\{\{(.*?)\}\}", re.S)
ALLOWED_ACTIONS = (
    re.compile(r'^ env "[A-Za-z0-9_]+" $'),
    re.compile(r'^ with pkiCert( "[^"]*"| \(env "[A-Z_]+"\))+ $'),
    re.compile(r"^ \.(Cert|Key|CA) $"),
    re.compile(r"^ range \.CAChain $"),
    re.compile(r'^ with secret "[^"]*" $'),
    re.compile(r"^ \.Data\.ca_chain $"),
    re.compile(r"^ \. $"),
    re.compile(r"^ end $"),
)


def render_env(text: str, env: dict[str, str]) -> str:
    """Render a template that only uses `env` (nginx.conf)."""

    def one(match: re.Match[str]) -> str:
        found = re.fullmatch(r' env "([A-Za-z0-9_]+)" ', match.group(1))
        assert found, f"unexpected action {match.group(0)!r}"
        return env[found.group(1)]

    return ACTION.sub(one, text)


def pki_call(text: str) -> list[str]:
    """The arguments of the single pkiCert call, as written (literals unquoted)."""
    calls = re.findall(r"\{\{ with pkiCert (.*?) \}\}", text)
    assert len(calls) == 1
    return [a.strip('"') for a in re.findall(r'"[^"]*"|\(env "[A-Z_]+"\)', calls[0])]


def render_cert(text: str, cert: str, chain: list[str], key: str) -> str:
    """Render the certificate template the way consul-template would for one pkiCert result."""
    body = re.fullmatch(r"\{\{ with pkiCert .*? \}\}(.*)\{\{ end \}\}", text, re.S)
    assert body, "the template must be one `with pkiCert` block"
    inner = body.group(1)
    loop = re.search(r"\{\{ range \.CAChain \}\}(.*?)\{\{ end \}\}", inner, re.S)
    assert loop
    expanded = "".join(loop.group(1).replace("{{ . }}", c) for c in chain)
    inner = inner.replace(loop.group(0), expanded)
    return inner.replace("{{ .Cert }}", cert).replace("{{ .Key }}", key)


def render_ca(text: str, chain: list[str]) -> str:
    """Render the CA bundle template for a `<mount>/cert/ca_chain` read (one PEM string)."""
    body = re.fullmatch(r'\{\{ with secret "[^"]*" \}\}(.*)\{\{ end \}\}', text, re.S)
    assert body, "the template must be one `with secret` block"
    return body.group(1).replace("{{ .Data.ca_chain }}", "\n".join(chain))


def _pem(cert: x509.Certificate) -> str:
    return cert.public_bytes(serialization.Encoding.PEM).decode().strip()


def make_cert_bundle() -> tuple[str, list[str], str]:
    now = datetime.datetime.now(datetime.UTC)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "test mesh CA")])
    ca = (
        x509.CertificateBuilder()
        .subject_name(ca_name)
        .issuer_name(ca_name)
        .public_key(ca_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=1))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(ca_key, hashes.SHA256())
    )
    key = ec.generate_private_key(ec.SECP256R1())
    leaf = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "web.service.consul")]))
        .issuer_name(ca_name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=1))
        .not_valid_after(now + datetime.timedelta(hours=1))
        .sign(ca_key, hashes.SHA256())
    )
    key_pem = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    ).decode()
    return _pem(leaf), [_pem(ca)], key_pem.strip()


def test_cert_template_uses_one_pkicert_call_and_the_subset_only() -> None:
    text = nginx.cert_template("pki_int/issue/mesh", "web.service.consul", 3600)
    for action in ACTION.finditer(text):
        assert any(p.match(action.group(0)[2:-2]) for p in ALLOWED_ACTIONS), action.group(0)
    assert text.count("pkiCert") == 1
    assert pki_call(text) == [
        "pki_int/issue/mesh",
        "common_name=web.service.consul",
        f'(env "{nginx.ENV_ALT_NAMES}")',
        f'(env "{nginx.ENV_IP_SANS}")',
        "ttl=3600s",
        "remove_roots_from_chain=true",
    ]


def test_cert_file_holds_leaf_then_chain_then_key() -> None:
    text = nginx.cert_template("pki_int/issue/mesh", "web.service.consul", 3600)
    # With remove_roots_from_chain, Vault's chain for a leaf is the intermediate alone.
    rendered = render_cert(text, "LEAF", ["INTER"], "KEY")
    assert rendered.split() == ["LEAF", "INTER", "KEY"]


def test_ca_template_reads_the_int_mounts_chain_with_the_subset_only() -> None:
    text = nginx.ca_template("pki_int")
    for action in ACTION.finditer(text):
        assert any(p.match(action.group(0)[2:-2]) for p in ALLOWED_ACTIONS), action.group(0)
    assert re.findall(r'with secret "([^"]*)"', text) == ["pki_int/cert/ca_chain"]
    assert render_ca(text, ["INTER", "ROOT"]) == "INTER\nROOT\n"
    assert "pkiCert" not in text, "the trust bundle never issues a certificate"


def test_cert_env_carries_dc_and_ip_sans_for_nomad_to_interpolate() -> None:
    env = nginx.cert_env(["web.service.${NOMAD_DC}.consul", "x.example"], ["mesh_tls_http-api"])
    assert env == {
        nginx.ENV_ALT_NAMES: "alt_names=web.service.${NOMAD_DC}.consul,x.example",
        nginx.ENV_IP_SANS: "ip_sans=${NOMAD_IP_mesh_tls_http_api}",
    }


def test_listeners_bind_alloc_address_in_host_mode_and_port_in_bridge_mode() -> None:
    host = Listener("mesh_tls_http", "http", namespaced=False)
    assert host.listen == '{{ env "NOMAD_ADDR_mesh_tls_http" }}'
    assert host.upstream == '{{ env "NOMAD_ADDR_http" }}'
    bridge = Listener("mesh_tls_http-api", "http-api", namespaced=True)
    assert bridge.listen == '{{ env "NOMAD_PORT_mesh_tls_http_api" }}'
    assert bridge.upstream == '127.0.0.1:{{ env "NOMAD_PORT_http_api" }}'


def test_http_config_has_the_tls_and_proxy_settings() -> None:
    conf = nginx.nginx_conf([Listener("mesh_tls_http", "http", True)], tcp=False, mtls=False)
    for line in (
        "ssl_protocols TLSv1.2 TLSv1.3;",
        f"ssl_ciphers {nginx.CIPHERS};",
        "ssl_prefer_server_ciphers on;",
        "ssl_session_tickets off;",
        "proxy_http_version 1.1;",
        "proxy_set_header X-Forwarded-Proto https;",
        "proxy_set_header X-Forwarded-For $proxy_add_x_forwarded_for;",
        "proxy_set_header X-Forwarded-Host $host;",
    ):
        assert line in conf
    assert "keepalive" in conf
    assert "ssl_verify_client" not in conf
    assert "load_module" not in conf
    assert all(":" not in c or "GCM" in c or "POLY1305" in c for c in nginx.CIPHERS.split(":"))
    assert all(c.startswith("ECDHE-") for c in nginx.CIPHERS.split(":"))


def test_mtls_verifies_clients_against_the_ca_bundle_not_the_cert_file() -> None:
    conf = nginx.nginx_conf([Listener("mesh_tls_http", "http", True)], tcp=False, mtls=True)
    assert "ssl_verify_client on;" in conf
    assert f'ssl_client_certificate {{{{ env "NOMAD_TASK_DIR" }}}}/{nginx.CA_FILE};' in conf
    # leaf -> intermediate -> root needs depth >= 1; 2 allows one more CA level, no more
    assert "ssl_verify_depth 2;" in conf


def test_mtls_check_locations_open_only_the_checks_request() -> None:
    checks = (("GET", "/health"), ("HEAD", "/health"), ("POST", "/ready?full=1"))
    conf = nginx.nginx_conf(
        [Listener("mesh_tls_http", "http", True, None, checks), Listener("mesh_tls_b", "b", True)],
        tcp=False,
        mtls=True,
    )
    servers = conf.split("  server {")[1:]
    assert len(servers) == 2
    opened, closed = servers
    assert "ssl_verify_client optional;" in opened
    assert 'location = "/health" {\n      limit_except GET HEAD { deny all; }' in opened
    assert 'set $mesh_check_uri "/health";' in opened
    assert 'location = "/ready" {\n      limit_except POST { deny all; }' in opened
    assert 'set $mesh_check_uri "/ready?full=1";' in opened
    assert opened.count("proxy_pass http://mesh_app_0$mesh_check_uri;") == 2
    # Everything else needs a verified client certificate; 496 is nginx's "no certificate".
    rest = opened.split("  location / {")[1]
    assert rest.splitlines()[1].strip() == "if ($ssl_client_verify != SUCCESS) { return 496; }"
    # A listener without checks keeps the http-level "on".
    assert "optional" not in closed and "location =" not in closed
    assert "ssl_verify_client on;" in conf


@pytest.mark.parametrize(
    ("method", "path", "ok"),
    [
        ("GET", "/health", True),
        ("GET", "/v1/agent/health?format=text&x=%2F", True),
        ("OPTIONS", "/a-b_c.d~e/f:g@h", True),
        ("GET", "", False),
        ("GET", "health", False),
        ("GET", "/a%2Fb", False),
        ("GET", "/a/./b", False),
        ("GET", "/a/../b", False),
        ("GET", "//a", False),
        ("GET", "/a b", False),
        ("GET", '/a"b', False),
        ("GET", "/a$b", False),
        ("GET", "/{{ env }}", False),
        ("GET", "/a;b", False),
        ("GET", "/a?b c", False),
        ("GET", "/a?b$c", False),
        ("get", "/a", False),
        ("G ET", "/a", False),
    ],
)
def test_check_paths_the_sidecar_can_match_exactly(method: str, path: str, ok: bool) -> None:
    if ok:
        location, uri = nginx.check_location(method, path)
        assert (location, uri) == (path.partition("?")[0], path)
    else:
        with pytest.raises(nginx.UnsafeCheck):
            nginx.check_location(method, path)


def test_tcp_uses_stream_and_loads_the_module_only_when_configured() -> None:
    listeners = [Listener("mesh_tls_pg", "pg", False)]
    built_in = nginx.nginx_conf(listeners, tcp=True, mtls=False)
    assert "stream {" in built_in and "http {" not in built_in
    assert "load_module" not in built_in
    loaded = nginx.nginx_conf(listeners, tcp=True, mtls=False, stream_module=STREAM_MODULE)
    assert loaded.splitlines()[1] == f"load_module {STREAM_MODULE};"


def _nginx_t(tmp_path: Path, conf_template: str) -> subprocess.CompletedProcess[str]:
    task_dir = tmp_path / "local"
    secrets = tmp_path / "secrets"
    task_dir.mkdir()
    secrets.mkdir()
    cert, chain, key = make_cert_bundle()
    cert_tmpl = nginx.cert_template("pki_int/issue/mesh", "web.service.consul", 3600)
    pem = secrets / nginx.CERT_FILE
    pem.write_text(render_cert(cert_tmpl, cert, chain, key))
    pem.chmod(0o600)
    (task_dir / nginx.CA_FILE).write_text(render_ca(nginx.ca_template("pki_int"), chain))
    env = {
        "NOMAD_TASK_DIR": str(task_dir),
        "NOMAD_SECRETS_DIR": str(secrets),
        "NOMAD_PORT_http": "18080",
        "NOMAD_PORT_admin": "18081",
        "NOMAD_ADDR_http": "127.0.0.1:18080",
        "NOMAD_ADDR_admin": "127.0.0.1:18081",
        "NOMAD_PORT_mesh_tls_http": "28080",
        "NOMAD_PORT_mesh_tls_admin": "28081",
        "NOMAD_ADDR_mesh_tls_http": "127.0.0.1:28080",
        "NOMAD_ADDR_mesh_tls_admin": "127.0.0.1:28081",
    }
    conf = task_dir / nginx.CONF_FILE
    conf.write_text(render_env(conf_template, env))
    return subprocess.run(
        [NGINX, "-t", "-p", f"{task_dir}/", "-e", "stderr", "-c", str(conf)],
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )


CASES = {
    "http-bridge": dict(tcp=False, mtls=False, namespaced=True),
    "http-host-mtls": dict(tcp=False, mtls=True, namespaced=False),
    "http-bridge-mtls-checks": dict(tcp=False, mtls=True, namespaced=True, checks=True),
    "tcp-host": dict(tcp=True, mtls=False, namespaced=False),
    "tcp-bridge-mtls": dict(tcp=True, mtls=True, namespaced=True),
}


@pytest.mark.timeout(60)
@pytest.mark.parametrize("case", sorted(CASES))
def test_nginx_accepts_the_rendered_config(tmp_path: Path, case: str) -> None:
    assert shutil.which(NGINX) or Path(NGINX).exists()
    opts = CASES[case]
    namespaced = bool(opts["namespaced"])
    checks = (("GET", "/health"), ("HEAD", "/health"), ("POST", "/ready?full=1"))
    listeners = [
        Listener("mesh_tls_http", "http", namespaced, None, checks if opts.get("checks") else ()),
        Listener("mesh_tls_admin", "admin", namespaced),
    ]
    template = nginx.nginx_conf(
        listeners,
        tcp=bool(opts["tcp"]),
        mtls=bool(opts["mtls"]),
        stream_module=STREAM_MODULE if opts["tcp"] else "",
    )
    result = _nginx_t(tmp_path, template)
    assert result.returncode == 0, result.stderr
    assert "test is successful" in result.stderr
