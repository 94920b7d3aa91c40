"""The sidecar's consul-template templates: the certificate file, the mesh CA bundle, nginx.conf.

Pure text. Nomad renders them inside the allocation (the devstack's renderer does the same), so
the templates use a deliberately small consul-template subset: ``with``/``else``/``end``,
``range``, ``env``, ``pkiCert`` and its ``.Cert``/``.Key``/``.CAChain`` fields, a parenthesised
``(env "X")`` argument, ``secret`` as a plain read (no arguments) with ``.Data.<field>``, and
(upstreams only, see ``upstreams``) ``service``/``nomadService`` with ``.Address``/``.Port``.
Values only known on the client (datacenter, allocation IP) reach the ``pkiCert`` call through
task environment variables that Nomad interpolates (``${NOMAD_DC}``), because Go templates
cannot splice an ``env`` result into a string literal without ``printf``.

One ``pkiCert`` call writes leaf + chain + key into ONE file: separate calls get mismatched
cert/key pairs (nomad#24803), and the file must hold the certificate because consul-template
reads its dates back to decide when to renew. The chain in it stops below the root
(``remove_roots_from_chain``): nginx serves the file's chain as it is, and a client must get
exactly leaf + intermediate. So mTLS cannot take its trust anchors from that file; it gets a
second, public file with the intermediate mount's CA chain (intermediate + root).

mTLS and Consul's http checks: Consul's agent never presents a client certificate, so a server
with ``ssl_verify_client on`` fails every check and Nomad never sees the deployment healthy.
A listener that carries such checks verifies ``optional``-ly instead: a certificate that is
presented must still verify (nginx answers 400 otherwise, before any location), and every
location refuses a request without one (400, as ``on`` would) except an exact-match location
per check, which forwards exactly the check's request (method, path, query) to the app. So
the check reflects nginx, TLS and the app's own health, and a client without a certificate
can reach nothing but the answer Consul already publishes as the check's output. Which check
paths can be matched that exactly is decided in ``checkpath``.
"""

from __future__ import annotations

import json
import re
from collections.abc import Sequence
from dataclasses import dataclass

from crds_equivalent.egress import Upstream
from reconcilers.injection import upstreams as egress
from reconcilers.injection.checkpath import UnsafeCheck as UnsafeCheck
from reconcilers.injection.checkpath import check_location as check_location

CERT_FILE = "mesh-tls.pem"
CERT_DEST = f"secrets/{CERT_FILE}"
CA_FILE = "mesh-ca.pem"
CA_DEST = f"local/{CA_FILE}"
CONF_FILE = "nginx.conf"
CONF_DEST = f"local/{CONF_FILE}"
ENV_ALT_NAMES = "MESH_TLS_ALT_NAMES"
ENV_IP_SANS = "MESH_TLS_IP_SANS"

# TLS 1.2 AEAD ECDHE suites only (TLS 1.3 suites are always AEAD and need no list).
CIPHERS = ":".join(
    (
        "ECDHE-ECDSA-AES128-GCM-SHA256",
        "ECDHE-RSA-AES128-GCM-SHA256",
        "ECDHE-ECDSA-AES256-GCM-SHA384",
        "ECDHE-RSA-AES256-GCM-SHA384",
        "ECDHE-ECDSA-CHACHA20-POLY1305",
        "ECDHE-RSA-CHACHA20-POLY1305",
    )
)
WORKER_PROCESSES = 1  # a sidecar per allocation: one worker per instance, not one per host CPU
WORKER_CONNECTIONS = 4096
UPSTREAM_KEEPALIVE = 64
# Long enough for blocking queries (Nomad/Consul wait up to 10 min plus jitter) through the proxy.
PROXY_TIMEOUT = "3600s"
# OpenSSL counts the CAs between the client's leaf and the trust anchor: leaf -> intermediate ->
# root needs 1 (measured with nginx 1.22 / OpenSSL 3.0: 0 refuses mesh clients). One spare level
# for an intermediate signed under an external root's own intermediate.
CLIENT_VERIFY_DEPTH = 2

_NOT_ENV = re.compile(r"[^A-Za-z0-9_.]")
_NOT_NONCE = re.compile(r"[^A-Za-z0-9_.:-]")  # a nonce can never close the comment early
ROTATION_COMMENT = "mesh.tls.rotation"


def env_label(label: str) -> str:
    """A port (or task) name as Nomad spells it in NOMAD_* variable names.

    client/taskenv/env.go (Builder.buildEnv) passes every NOMAD_ADDR_/NOMAD_IP_/NOMAD_PORT_
    key through helper.CleanEnvVar (helper/funcs.go), which keeps ``[A-Za-z0-9_.]`` and turns
    anything else into ``_`` — a dot survives, a dash does not.
    """
    return _NOT_ENV.sub("_", label)


def go_string(value: str) -> str:
    """A Go template string literal (JSON escaping is a valid subset of Go's)."""
    return json.dumps(value)


def _env(name: str) -> str:
    return "{{ env " + go_string(name) + " }}"


@dataclass(frozen=True)
class Listener:
    """One TLS port of the sidecar and the app port it forwards to.

    ``app_task`` names the task whose ``Resources.Networks`` declares the app port (None for
    a group port). Nomad gives a task's own network ports to that task only
    (client/taskenv/env.go, buildNetworkEnv); every OTHER task of the allocation, the sidecar
    included, sees them as ``NOMAD_ADDR_<task>_<label>`` = host IP:host port (Builder.setAlloc
    -> addPort, "Add ports from other tasks"). So a task port is reached on that variable.
    """

    tls_label: str
    app_label: str
    namespaced: bool  # bridge/CNI: listen on the port, reach the app on 127.0.0.1
    app_task: str | None = None
    # mTLS only: (method, path) of each Consul http check answered without a client certificate.
    health_checks: tuple[tuple[str, str], ...] = ()

    @property
    def listen(self) -> str:
        if self.namespaced:
            return _env(f"NOMAD_PORT_{env_label(self.tls_label)}")
        return _env(f"NOMAD_ADDR_{env_label(self.tls_label)}")

    @property
    def upstream(self) -> str:
        if self.app_task is not None:
            return _env(f"NOMAD_ADDR_{env_label(self.app_task)}_{env_label(self.app_label)}")
        if self.namespaced:
            return "127.0.0.1:" + _env(f"NOMAD_PORT_{env_label(self.app_label)}")
        return _env(f"NOMAD_ADDR_{env_label(self.app_label)}")


def cert_env(alt_names: Sequence[str], ip_labels: Sequence[str]) -> dict[str, str]:
    """Task env for the pkiCert arguments; Nomad interpolates ``${...}`` before rendering."""
    ips = ",".join("${NOMAD_IP_" + env_label(label) + "}" for label in ip_labels)
    return {ENV_ALT_NAMES: "alt_names=" + ",".join(alt_names), ENV_IP_SANS: "ip_sans=" + ips}


def cert_template(pki_path: str, common_name: str, ttl_seconds: int, rotation: str = "") -> str:
    """Leaf, then the CA chain without the root, then the key, from one ``pkiCert`` call.

    A rotation nonce becomes a template comment: it renders to nothing, but a new nonce is new
    template text, so Nomad replaces the allocations and every new one issues a fresh leaf.
    """
    args = " ".join(
        (
            go_string(pki_path),
            go_string(f"common_name={common_name}"),
            f'(env "{ENV_ALT_NAMES}")',
            f'(env "{ENV_IP_SANS}")',
            go_string(f"ttl={ttl_seconds}s"),
            go_string("remove_roots_from_chain=true"),
        )
    )
    comment = ""
    if rotation:
        comment = "{{/* " + ROTATION_COMMENT + " " + _NOT_NONCE.sub("_", rotation) + " */}}"
    return (
        comment + "{{ with pkiCert " + args + " }}"
        "{{ .Cert }}\n"
        "{{ range .CAChain }}{{ . }}\n{{ end }}"
        "{{ .Key }}\n"
        "{{ end }}"
    )


def ca_template(pki_mount: str) -> str:
    """The mesh CA bundle (intermediate, then root) that client certificates must chain to.

    ``<mount>/cert/ca_chain`` is the default issuer's chain, which reaches the root because
    bootstrap imports the root into the intermediate mount. A read without arguments is a plain
    GET; consul-template re-reads it periodically, so a rotated intermediate reaches nginx too.
    """
    path = go_string(f"{pki_mount}/cert/ca_chain")
    return "{{ with secret " + path + " }}{{ .Data.ca_chain }}\n{{ end }}"


@dataclass(frozen=True)
class Edges:
    """The group's calls out (upstreams) and who may call in (allow, mTLS only); see
    ``upstreams``. Empty for a group that uses neither, whose nginx.conf stays as it was."""

    upstreams: tuple[Upstream, ...] = ()
    allow: tuple[str, ...] = ()
    domain: str = ""


def nginx_conf(
    listeners: Sequence[Listener],
    *,
    tcp: bool,
    mtls: bool,
    stream_module: str = "",
    edges: Edges | None = None,
) -> str:
    """nginx.conf for the sidecar: http reverse proxy, or stream proxy when ``tcp``; plus the
    upstream listeners (http ones in ``http {}``, tcp ones in ``stream {}``)."""
    edges = edges or Edges()
    task_dir = _env("NOMAD_TASK_DIR")
    cert = _env("NOMAD_SECRETS_DIR") + "/" + CERT_FILE
    ca = task_dir + "/" + CA_FILE
    http_servers = () if tcp else tuple(listeners)
    stream_servers = tuple(listeners) if tcp else ()
    http_out = egress.http_lines(edges.upstreams, edges.domain, cert, ca)
    stream_out = egress.stream_lines(edges.upstreams, edges.domain, cert, ca)
    lines = ["# nomad-tls-mesh sidecar; rendered by Nomad's template runner."]
    if (stream_servers or stream_out) and stream_module:
        lines.append(f"load_module {stream_module};")
    lines += [
        f"worker_processes {WORKER_PROCESSES};",
        f"pid {task_dir}/nginx.pid;",
        "error_log stderr warn;",
        f"events {{ worker_connections {WORKER_CONNECTIONS}; }}",
    ]
    tls = _tls_block(cert, ca if mtls else None)
    if http_servers or http_out:
        lines += _http_body(http_servers, tls, task_dir, edges, http_out)
    if stream_servers or stream_out:
        lines += _stream_body(stream_servers, tls, edges, stream_out)
    return "\n".join(lines) + "\n"


def _tls_block(cert: str, client_ca: str | None) -> list[str]:
    lines = [
        "ssl_protocols TLSv1.2 TLSv1.3;",
        f"ssl_ciphers {CIPHERS};",
        "ssl_prefer_server_ciphers on;",
        "ssl_session_timeout 1d;",
        "ssl_session_tickets off;",
        f"ssl_certificate {cert};",
        f"ssl_certificate_key {cert};",
    ]
    if client_ca is not None:
        lines += [
            f"ssl_client_certificate {client_ca};",
            "ssl_verify_client on;",
            f"ssl_verify_depth {CLIENT_VERIFY_DEPTH};",
        ]
    return lines


def _http_body(
    listeners: Sequence[Listener],
    tls: list[str],
    task_dir: str,
    edges: Edges,
    egress_lines: list[str],
) -> list[str]:
    inner = [
        "access_log off;",
        "server_tokens off;",
        "client_max_body_size 0;",
        *(
            f"{kind}_temp_path {task_dir}/{kind}_temp;"
            for kind in ("client_body", "proxy", "fastcgi", "uwsgi", "scgi")
        ),
    ]
    if listeners:
        inner += ["ssl_session_cache shared:mesh_tls_http:10m;", *tls]
    inner += ["map $http_upgrade $mesh_connection { default upgrade; '' ''; }"]
    if listeners:
        inner += egress.allow_lines(edges.allow, edges.domain, stream=False)
    for index, listener in enumerate(listeners):
        name = f"mesh_app_{index}"
        inner += [
            f"upstream {name} {{",
            f"  server {listener.upstream};",
            f"  keepalive {UPSTREAM_KEEPALIVE};",
            "}",
            "server {",
            f"  listen {listener.listen} ssl;",
        ]
        if listener.health_checks:
            inner += [
                "  ssl_verify_client optional;",
                *check_locations(name, listener.health_checks),
                "  location / {",
                "    if ($ssl_client_verify != SUCCESS) { return 496; }",
            ]
        else:
            inner += ["  location / {"]
        inner += egress.http_location_guard(edges.allow)
        inner += [f"    proxy_pass http://{name};", *_proxy_settings(), "  }", "}"]
    inner += egress_lines
    return ["http {", *("  " + line for line in inner), "}"]


def _proxy_settings() -> list[str]:
    return [
        "    proxy_http_version 1.1;",
        "    proxy_set_header Connection $mesh_connection;",
        "    proxy_set_header Upgrade $http_upgrade;",
        "    proxy_set_header Host $http_host;",
        "    proxy_set_header X-Forwarded-For $proxy_add_x_forwarded_for;",
        "    proxy_set_header X-Forwarded-Proto https;",
        "    proxy_set_header X-Forwarded-Host $host;",
        f"    proxy_read_timeout {PROXY_TIMEOUT};",
        f"    proxy_send_timeout {PROXY_TIMEOUT};",
    ]


def check_locations(upstream: str, checks: Sequence[tuple[str, str]]) -> list[str]:
    """One exact location per check path, open to the check's method(s) only.

    The URI sent upstream is the check's own, from a variable: with a variable in
    ``proxy_pass`` nginx sends that URI as it is, so neither the client's spelling of the path
    (``/x/../health`` normalises to ``/health``, and an app that does not normalise might
    route it elsewhere) nor its query string reaches the app. ``limit_except`` of GET also
    allows HEAD, as for any GET location.
    """
    methods: dict[str, list[str]] = {}
    uris: dict[str, str] = {}
    for method, path in checks:
        location, uri = check_location(method, path)
        if uri != uris.setdefault(location, uri):
            # One location cannot tell the two apart, and guessing would check the wrong thing.
            raise UnsafeCheck(
                f"http checks {uris[location]!r} and {uri!r} differ only in their query; "
                "the mTLS sidecar matches checks by path"
            )
        if method not in methods.setdefault(location, []):
            methods[location].append(method)
    lines: list[str] = []
    for location, allowed in methods.items():
        lines += [
            f"  location = {go_string(location)} {{",
            f"    limit_except {' '.join(allowed)} {{ deny all; }}",
            f"    set $mesh_check_uri {go_string(uris[location])};",
            f"    proxy_pass http://{upstream}$mesh_check_uri;",
            *_proxy_settings(),
            "  }",
        ]
    return lines


def _stream_body(
    listeners: Sequence[Listener], tls: list[str], edges: Edges, egress_lines: list[str]
) -> list[str]:
    inner: list[str] = []
    if listeners:
        inner += ["ssl_session_cache shared:mesh_tls_stream:10m;", *tls]
        inner += egress.allow_lines(edges.allow, edges.domain, stream=True)
    for index, listener in enumerate(listeners):
        name = f"mesh_app_{index}"
        allow_map, target = egress.stream_target(name, edges.allow)
        inner += [
            f"upstream {name} {{ server {listener.upstream}; }}",
            *allow_map,
            "server {",
            f"  listen {listener.listen} ssl;",
            *egress.stream_server_guard(edges.allow),
            f"  proxy_pass {target};",
            f"  proxy_timeout {PROXY_TIMEOUT};",
            "}",
        ]
    inner += egress_lines
    return ["stream {", *("  " + line for line in inner), "}"]
