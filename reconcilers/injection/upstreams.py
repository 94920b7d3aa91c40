"""The sidecar's two new roles in nginx.conf: a TLS CLIENT for the group's upstreams, and the
`allow` list of an mTLS server. Pure text, like ``nginx``; kept apart so the server side's
layout there stays as it was.

Upstreams (`mesh.tls.upstreams`). For each ``service:port`` the sidecar listens on
``127.0.0.1:<port>`` in plaintext (never on an address other hosts reach: the listener
presents the group's identity to whoever connects) and carries each request (http) or
connection (tcp) over TLS to a ``mesh-tls`` instance of the service:
- instances come from the catalog, inside the template: ``service "mesh-tls.<name>"``
  (Consul: passing instances only, consul-template's default) or ``nomadService
  "mesh-tls.<name>"`` (Nomad's catalog, which has no health filter; nginx's passive checks
  skip an instance that refuses). The tag selects the TLS registrations only, so a
  permissive server's plaintext twin is never used, and a server that is not meshed at all
  has no instance here: the listener answers 503 (http) or closes (tcp) — never plaintext.
  A change of instances re-renders nginx.conf; its SIGHUP makes nginx reload gracefully
  (old workers finish their connections);
- the server must present a certificate chaining to the mesh CA (``proxy_ssl_verify on``,
  the same bundle the mTLS server side trusts) for ``<service>.<domain>``
  (``proxy_ssl_name``, sent as SNI too);
- the sidecar presents the group's own leaf (``proxy_ssl_certificate``): the caller's
  identity, which an mTLS server checks against its `allow` list;
- http: an upstream block with keep-alive, HTTP/1.1, so requests are balanced one by one
  (round robin) over reused connections; tcp: the stream module, one instance per connection.

Allow (`mesh.tls.allow`). nginx exposes no SAN variable without njs, but it does expose the
verified client certificate's subject (``$ssl_client_s_dn``, RFC 2253: ``CN=<name>``). The CN
of every mesh leaf is the name that identifies its group — its first fronted service, or the
job ID of a pure client (``identity``) — so the list is a ``map`` over the CN: any other
caller gets 403 (http) or a closed connection (tcp), and a JSON line with its subject in the
sidecar's stdout log (``nomad alloc logs``).
"""

from __future__ import annotations

import json
from collections.abc import Sequence

from crds_equivalent import keys
from crds_equivalent.egress import Provider, Upstream, UpstreamProtocol

LISTEN_HOST = "127.0.0.1"
UPSTREAM_KEEPALIVE = 64
PROXY_TIMEOUT = "3600s"  # as the server side: blocking queries pass through
VERIFY_DEPTH = 2  # leaf -> intermediate -> root, one spare level (as ssl_verify_depth)
TLS_PROTOCOLS = "TLSv1.2 TLSv1.3"
DENIED_VAR = "$mesh_caller_denied"
# Logged: a caller that proved an identity (its certificate verified) and is not allowed. A
# connection that never finishes a handshake (a tcp check, a scanner) was refused by mTLS
# itself, as before, and is not an allow-list event.
LOGGED_VAR = "$mesh_denial_logged"
DENIED_LOG_FORMAT = "mesh_denied"
DENIED_LOG = "/dev/stdout"  # the task's stdout: `nomad alloc logs`, apart from nginx's errors
DENIED_UPSTREAM = "mesh_denied"


def upstream_name(upstream: Upstream) -> str:
    """The nginx upstream block of one listener (ports are unique per group)."""
    return f"mesh_up_{upstream.port}"


def catalog_call(upstream: Upstream) -> str:
    """The template call listing the upstream's TLS instances in its catalog."""
    func = "nomadService" if upstream.provider is Provider.NOMAD else "service"
    return f"{func} {json.dumps(keys.TLS_SERVICE_TAG + '.' + upstream.service)}"


def server_name(upstream: Upstream, domain: str) -> str:
    """The name the upstream's leaf must carry: ``<service>.<domain>``."""
    return f"{upstream.service}.{domain}"


def _client_tls(prefix: str, upstream: Upstream, domain: str, cert: str, ca: str) -> list[str]:
    return [
        f"{prefix}proxy_ssl_certificate {cert};",
        f"{prefix}proxy_ssl_certificate_key {cert};",
        f"{prefix}proxy_ssl_trusted_certificate {ca};",
        f"{prefix}proxy_ssl_verify on;",
        f"{prefix}proxy_ssl_verify_depth {VERIFY_DEPTH};",
        f"{prefix}proxy_ssl_name {server_name(upstream, domain)};",
        f"{prefix}proxy_ssl_server_name on;",
        f"{prefix}proxy_ssl_protocols {TLS_PROTOCOLS};",
        f"{prefix}proxy_ssl_session_reuse on;",
    ]


def _servers(upstream: Upstream, extra: Sequence[str]) -> list[str]:
    """``upstream`` block with one server per catalog instance; the caller adds the rest."""
    return [
        "{{ with " + catalog_call(upstream) + " }}",
        f"upstream {upstream_name(upstream)} {{",
        "  {{ range . }}",
        "  server {{ .Address }}:{{ .Port }};",
        "  {{ end }}",
        *extra,
        "}",
    ]


def http_lines(upstreams: Sequence[Upstream], domain: str, cert: str, ca: str) -> list[str]:
    """Inside ``http {}``: per http upstream, the instances and its loopback server."""
    lines: list[str] = []
    for upstream in upstreams:
        if upstream.protocol is not UpstreamProtocol.HTTP:
            continue
        listen = f"  listen {LISTEN_HOST}:{upstream.port};"
        lines += [
            *_servers(upstream, [f"  keepalive {UPSTREAM_KEEPALIVE};"]),
            "server {",
            listen,
            "  location / {",
            f"    proxy_pass https://{upstream_name(upstream)};",
            "    proxy_http_version 1.1;",
            "    proxy_set_header Connection $mesh_connection;",
            "    proxy_set_header Upgrade $http_upgrade;",
            "    proxy_set_header Host $http_host;",
            f"    proxy_read_timeout {PROXY_TIMEOUT};",
            f"    proxy_send_timeout {PROXY_TIMEOUT};",
            *_client_tls("    ", upstream, domain, cert, ca),
            "  }",
            "}",
            "{{ else }}",
            "server {",
            listen,
            "  location / {",
            f"    return 503 {json.dumps(_empty_text(upstream))};",
            "  }",
            "}",
            "{{ end }}",
        ]
    return lines


def _empty_text(upstream: Upstream) -> str:
    return (
        f"mesh: no healthy {keys.TLS_SERVICE_TAG} instance of {upstream.service} "
        f"in {upstream.provider}\n"
    )


def stream_lines(upstreams: Sequence[Upstream], domain: str, cert: str, ca: str) -> list[str]:
    """Inside ``stream {}``: per tcp upstream, the instances and its loopback server."""
    lines: list[str] = []
    for upstream in upstreams:
        if upstream.protocol is not UpstreamProtocol.TCP:
            continue
        listen = f"  listen {LISTEN_HOST}:{upstream.port};"
        lines += [
            *_servers(upstream, []),
            "server {",
            listen,
            f"  proxy_pass {upstream_name(upstream)};",
            "  proxy_ssl on;",
            *_client_tls("  ", upstream, domain, cert, ca),
            f"  proxy_timeout {PROXY_TIMEOUT};",
            "}",
            "{{ else }}",
            "server {",
            listen,
            '  return "";',  # no instance: the connection closes at once
            "}",
            "{{ end }}",
        ]
    return lines


def allow_lines(allow: Sequence[str], domain: str, *, stream: bool) -> list[str]:
    """At ``http``/``stream`` level: ``$mesh_caller_denied`` (0 for a listed CN, else 1), the
    denial log format, and (stream) the dead upstream a denied connection is closed by."""
    if not allow:
        return []
    lines = [f"map $ssl_client_s_dn {DENIED_VAR} {{", "  default 1;"]
    for name in allow:
        escaped = f"{name}.{domain}".replace(".", "[.]")  # no backslash for nginx to unquote
        lines.append(f'  "~*(^|,)CN={escaped}(,|$)" 0;')
    lines.append("}")
    lines.append(
        f'map "$ssl_client_verify:{DENIED_VAR}" {LOGGED_VAR} {{ "SUCCESS:1" 1; default 0; }}'
    )
    request = "" if stream else ',"request":"$request"'
    lines.append(
        f'log_format {DENIED_LOG_FORMAT} escape=json \'{{"time":"$time_iso8601",'
        f'"event":"mesh.tls.allow denied","caller":"$ssl_client_s_dn",'
        f'"verify":"$ssl_client_verify","tls":"$ssl_protocol","client":"$remote_addr"{request},'
        '"status":"$status"}\';'
    )
    if stream:
        # A denied connection is handed to an upstream with no live server: nginx closes it.
        lines.append(f"upstream {DENIED_UPSTREAM} {{ server 127.0.0.1:1 down; }}")
    return lines


def stream_target(app_upstream: str, allow: Sequence[str]) -> tuple[list[str], str]:
    """(lines at stream level, the ``proxy_pass`` target) for one mTLS tcp listener: its app,
    or, for a caller not in ``allow``, the dead upstream (logged)."""
    if not allow:
        return [], app_upstream
    variable = f"$mesh_target_{app_upstream}"
    return [
        f"map {DENIED_VAR} {variable} {{ 0 {app_upstream}; default {DENIED_UPSTREAM}; }}"
    ], variable


def stream_server_guard(allow: Sequence[str]) -> list[str]:
    """Inside a stream ``server`` with an allow list: the denial log line."""
    if not allow:
        return []
    return [f"  access_log {DENIED_LOG} {DENIED_LOG_FORMAT} if={LOGGED_VAR};"]


def http_location_guard(allow: Sequence[str]) -> list[str]:
    """Inside ``location /`` of an mTLS server with an allow list: refuse and log the rest."""
    if not allow:
        return []
    return [
        f"    access_log {DENIED_LOG} {DENIED_LOG_FORMAT} if={LOGGED_VAR};",
        f"    if ({DENIED_VAR}) {{ return 403; }}",
    ]
