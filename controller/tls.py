"""TLS client settings for the Nomad, Vault and Consul APIs, verified unless told otherwise.

One builder serves all three: the settings groups share field names (``cacert``, ``capath``,
``client_cert``, ``client_key``, ``tls_server_name``, ``skip_verify``), so this module reads a
structural ``TlsOptions`` and does not import the settings. Semantics follow the HashiCorp
clients: a CA file or directory *replaces* the system roots; ``*_TLS_SERVER_NAME`` is the name
sent (SNI) and verified; skipping verification happens only when explicitly asked for, and is
logged as a warning once per service (paths only, never key material).
"""

from __future__ import annotations

import os
import ssl
import stat
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import structlog

_log = structlog.get_logger("controller.tls")
_warned_skip: set[str] = set()


class TlsOptions(Protocol):
    @property
    def cacert(self) -> str | None: ...
    @property
    def capath(self) -> str | None: ...
    @property
    def client_cert(self) -> str | None: ...
    @property
    def client_key(self) -> str | None: ...
    @property
    def tls_server_name(self) -> str | None: ...
    @property
    def skip_verify(self) -> bool: ...


class TlsConfigError(ValueError):
    """A configured CA, certificate or key cannot be used."""


@dataclass(frozen=True)
class ClientTls:
    """What an HTTP client needs: the context, and the name to send and verify.

    With aiohttp: ``session.get(url, ssl=tls.context, server_hostname=tls.server_hostname)``.
    """

    context: ssl.SSLContext
    server_hostname: str | None
    verify: bool


def client_tls(opts: TlsOptions, *, service: str) -> ClientTls:
    """Build the TLS client configuration of ``service`` ("nomad", "vault", "consul")."""
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)  # CERT_REQUIRED + check_hostname
    ctx.minimum_version = ssl.TLSVersion.TLSv1_2
    if opts.skip_verify:
        ctx.check_hostname = False
        ctx.verify_mode = ssl.CERT_NONE
        if service not in _warned_skip:
            _warned_skip.add(service)
            _log.warning(
                "TLS verification is DISABLED by configuration",
                service=service,
                hint="unset the *_SKIP_VERIFY setting and provide a CA instead",
            )
    else:
        _load_roots(ctx, opts, service)
    if opts.client_cert:
        _load_client_cert(ctx, opts.client_cert, opts.client_key, service)
    elif opts.client_key:
        raise TlsConfigError(f"{service}: a client key is set but no client certificate")
    return ClientTls(ctx, opts.tls_server_name or None, not opts.skip_verify)


def ssl_context(opts: TlsOptions, *, service: str) -> ssl.SSLContext:
    return client_tls(opts, service=service).context


def requests_kwargs(opts: TlsOptions) -> dict[str, Any]:
    """``verify``/``cert`` for requests-based clients (hvac, python-nomad).

    requests cannot override the verified server name; use ``client_tls`` where that matters.
    """
    verify: bool | str = True
    if opts.skip_verify:
        verify = False
    elif opts.cacert:
        verify = opts.cacert
    elif opts.capath:
        verify = opts.capath
    out: dict[str, Any] = {"verify": verify}
    if opts.client_cert:
        out["cert"] = (opts.client_cert, opts.client_key) if opts.client_key else opts.client_cert
    return out


def _load_roots(ctx: ssl.SSLContext, opts: TlsOptions, service: str) -> None:
    if not opts.cacert and not opts.capath:
        ctx.load_default_certs(ssl.Purpose.SERVER_AUTH)
        return
    if opts.cacert:
        try:
            ctx.load_verify_locations(cafile=opts.cacert)
        except (OSError, ssl.SSLError) as exc:
            raise TlsConfigError(f"{service}: CA file {opts.cacert}: {exc}") from None
    if opts.capath:
        _load_ca_dir(ctx, Path(opts.capath), service)


def _load_ca_dir(ctx: ssl.SSLContext, directory: Path, service: str) -> None:
    """Every PEM certificate in the directory (Go's rootcerts does not need c_rehash links)."""
    if not directory.is_dir():
        raise TlsConfigError(f"{service}: CA path {directory} is not a directory")
    loaded = 0
    for path in sorted(directory.iterdir()):
        if not path.is_file():
            continue
        try:
            text = path.read_text(encoding="ascii", errors="ignore")
        except OSError:
            continue
        if "-----BEGIN CERTIFICATE-----" not in text:
            continue
        try:
            ctx.load_verify_locations(cadata=text)
        except ssl.SSLError as exc:
            raise TlsConfigError(f"{service}: CA file {path}: {exc}") from None
        loaded += 1
    if not loaded:
        raise TlsConfigError(f"{service}: no PEM certificates in CA path {directory}")


def _load_client_cert(ctx: ssl.SSLContext, cert: str, key: str | None, service: str) -> None:
    if key:
        _warn_if_readable_by_others(key, service)
    try:
        ctx.load_cert_chain(certfile=cert, keyfile=key or None)
    except (OSError, ssl.SSLError) as exc:
        raise TlsConfigError(f"{service}: client certificate {cert} / key {key}: {exc}") from None


def _warn_if_readable_by_others(key: str, service: str) -> None:
    try:
        mode = os.stat(key).st_mode
    except OSError:
        return  # load_cert_chain reports the real problem
    if mode & (stat.S_IRWXG | stat.S_IRWXO):
        _log.warning(
            "client key is accessible to group/others; chmod 600 it",
            service=service,
            path=key,
            mode=oct(stat.S_IMODE(mode)),
        )
