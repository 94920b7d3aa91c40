"""One execution of an HTTP(S) or TCP health check, with Consul's verdicts and output text.

Consul's agent runs these probes for real; so does the twin. 2xx is passing, 429 warning,
anything else critical; the output reads like the agent's (`HTTP GET <url>: 200 OK Output:
<body>`, `TCP connect <addr>: Success`, Go's dial and x509 errors), so operators and tests read
the same strings they would see from Consul.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import ssl
from http import HTTPStatus
from typing import Any
from urllib.parse import urlsplit

import aiohttp

from devstack import godur

DEFAULT_TIMEOUT = 10.0
DEFAULT_OUTPUT_MAX = 4096
USER_AGENT = "Consul Health Check"


def _timeout(defn: dict[str, Any]) -> float:
    ns = int(defn.get("Timeout", 0))
    return ns / godur.SECOND if ns > 0 else DEFAULT_TIMEOUT


def _tail(data: bytes, limit: int) -> str:
    """Consul keeps the last OutputMaxSize bytes (a circular buffer)."""
    return data[-limit:].decode("utf-8", errors="replace") if limit > 0 else ""


def _dial_addr(url: str) -> str:
    parts = urlsplit(url)
    port = parts.port or (443 if parts.scheme == "https" else 80)
    host = parts.hostname or ""
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


def _os_error(err: OSError | None) -> str:
    if err is None:
        return "connect: connection refused"
    code = err.errno
    if code == errno.ECONNREFUSED:
        return "connect: connection refused"
    if code in (errno.ENETUNREACH, errno.EHOSTUNREACH):
        return "connect: network is unreachable"
    return f"connect: {err.strerror or err}"


def _x509(err: BaseException | None, host: str) -> str:
    if isinstance(err, ssl.SSLCertVerificationError):
        code = err.verify_code
        if code in (18, 19, 20, 21):
            return "x509: certificate signed by unknown authority"
        if code == 10:
            return "x509: certificate has expired or is not yet valid"
        if code == 62:
            return f"x509: certificate is not valid for {host}"
        return f"x509: {err.verify_message}"
    return f"x509: {err}"


def _ssl_context(defn: dict[str, Any], cafile: str | None) -> ssl.SSLContext:
    ctx = ssl.create_default_context(cafile=cafile)
    if defn.get("TLSSkipVerify"):
        ctx.check_hostname = False
        ctx.verify_mode = ssl.CERT_NONE
    return ctx


async def http_probe(
    session: aiohttp.ClientSession, defn: dict[str, Any], *, cafile: str | None = None
) -> tuple[str, str]:
    """Run one HTTP check: (status, output)."""
    url = str(defn["HTTP"])
    method = str(defn.get("Method") or "GET").upper()
    headers: list[tuple[str, str]] = []
    for name, values in (defn.get("Header") or {}).items():
        headers.extend((name, v) for v in values)
    names = {n.lower() for n, _ in headers}
    if "user-agent" not in names:
        headers.append(("User-Agent", USER_AGENT))
    if "accept" not in names:
        headers.append(("Accept", "text/plain, text/*, */*"))
    limit = int(defn.get("OutputMaxSize") or DEFAULT_OUTPUT_MAX)
    host = urlsplit(url).hostname or ""
    kwargs: dict[str, Any] = {}
    if url.startswith("https:"):
        kwargs["ssl"] = _ssl_context(defn, cafile)
        if defn.get("TLSServerName"):
            kwargs["server_hostname"] = defn["TLSServerName"]
            host = str(defn["TLSServerName"])
    op = method[:1] + method[1:].lower()
    try:
        async with asyncio.timeout(_timeout(defn)):
            async with session.request(
                method,
                url,
                headers=headers,
                data=(defn.get("Body") or None),
                allow_redirects=not defn.get("DisableRedirects", False),
                max_redirects=10,
                **kwargs,
            ) as resp:
                body = await resp.read()
                code = resp.status
    except TimeoutError:
        return "critical", (
            f'{op} "{url}": context deadline exceeded '
            "(Client.Timeout exceeded while awaiting headers)"
        )
    except aiohttp.ClientConnectorCertificateError as e:
        return (
            "critical",
            f'{op} "{url}": tls: failed to verify certificate: {_x509(e.certificate_error, host)}',
        )
    except aiohttp.ClientConnectorSSLError as e:
        return "critical", f'{op} "{url}": remote error: tls: {e.os_error}'
    except aiohttp.ClientConnectorError as e:
        return "critical", f'{op} "{url}": dial tcp {_dial_addr(url)}: {_os_error(e.os_error)}'
    except (aiohttp.ClientError, OSError) as e:
        return "critical", f'{op} "{url}": {e}'
    try:
        reason = HTTPStatus(code).phrase
    except ValueError:
        reason = ""
    output = f"HTTP {method} {url}: {code} {reason} Output: {_tail(body, limit)}"
    if 200 <= code <= 299:
        return "passing", output
    if code == 429:
        return "warning", output
    return "critical", output


async def tcp_probe(defn: dict[str, Any]) -> tuple[str, str]:
    """Run one TCP check: connect and close."""
    addr = str(defn["TCP"])
    host, _, port = addr.rpartition(":")
    host = host.strip("[]")
    try:
        async with asyncio.timeout(_timeout(defn)):
            _, writer = await asyncio.open_connection(host, int(port))
    except TimeoutError:
        return "critical", f"dial tcp {addr}: i/o timeout"
    except ValueError:
        return "critical", f"dial tcp: address {addr}: missing port in address"
    except OSError as e:
        return "critical", f"dial tcp {addr}: {_os_error(e)}"
    writer.close()
    with contextlib.suppress(OSError):
        await writer.wait_closed()
    return "passing", f"TCP connect {addr}: Success"
