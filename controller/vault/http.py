"""Vault's HTTP API spoken natively over aiohttp, for the calls reconcilers make per job.

Every newly meshed job costs a Vault call (its PKI role, controller.vault.grants). Through hvac
each one ran in a worker thread on requests' session machinery, and a profile of a cold start
found ~13 % of the controller's CPU there. This module makes those calls on the event loop,
over one aiohttp session created lazily in the running loop and closed by ``close()``.

It keeps hvac's conventions so callers see no difference: the token is re-read from its source
before every call (a file Nomad rewrites) and sent as ``X-Vault-Token``, with
``X-Vault-Namespace`` when one is set; TLS is verified unless the connection says otherwise;
404 on a read means "absent" and on a LIST "none"; every other failure becomes one of
controller.vault.errors, with Vault's own error text and never the token.
"""

from __future__ import annotations

import asyncio
import json
import os
import ssl
from collections.abc import Collection, Mapping
from dataclasses import dataclass
from typing import Any, Final

import aiohttp

from controller.tls import client_tls
from controller.vault.connection import VaultConnection
from controller.vault.errors import (
    VaultBadRequest,
    VaultError,
    VaultNotFound,
    VaultPermissionDenied,
    VaultUnavailable,
)

# Connections one client keeps open to Vault at most. hvac's calls ran in the default thread
# pool (a handful of threads on a small machine); this bounds the burst a cold start sends.
POOL: Final = 16
_MAX_ERROR_TEXT: Final = 300  # a proxy's HTML error page is not a message


@dataclass(frozen=True)
class _ConnectionTls:
    """A connection's requests-style TLS settings, read as controller.tls options."""

    cacert: str | None
    capath: str | None
    client_cert: str | None
    client_key: str | None
    tls_server_name: str | None
    skip_verify: bool


def _tls_options(conn: VaultConnection) -> _ConnectionTls:
    """``verify`` is True (system roots), a CA file or directory (replaces them), or False."""
    ca = conn.verify if isinstance(conn.verify, str) else None
    ca_is_dir = ca is not None and os.path.isdir(ca)
    pair = conn.client_cert
    cert, key = pair if isinstance(pair, tuple) else (pair, None)
    return _ConnectionTls(
        cacert=None if ca_is_dir else ca,
        capath=ca if ca_is_dir else None,
        client_cert=cert,
        client_key=key,
        tls_server_name=None,  # requests (hvac) cannot send another name; neither do we
        skip_verify=conn.verify is False,
    )


class VaultHttp:
    """read/list/write/delete/health over one aiohttp session. ``await close()`` on shutdown."""

    def __init__(self, conn: VaultConnection, *, pool: int = POOL) -> None:
        self.conn = conn
        self._base = conn.addr.rstrip("/") + "/v1/"
        self._pool = pool
        self._timeout = aiohttp.ClientTimeout(total=conn.timeout)
        self._session: aiohttp.ClientSession | None = None
        self._loop: asyncio.AbstractEventLoop | None = None

    def __repr__(self) -> str:
        return f"VaultHttp(addr={self.conn.addr!r})"

    def _current_session(self) -> aiohttp.ClientSession:
        """The session of the running loop; a client used from a new loop gets a new one."""
        loop = asyncio.get_running_loop()
        if self._session is None or self._session.closed or self._loop is not loop:
            connector = aiohttp.TCPConnector(ssl=self._ssl(), limit=self._pool)
            self._session = aiohttp.ClientSession(connector=connector, timeout=self._timeout)
            self._loop = loop
        return self._session

    def _ssl(self) -> ssl.SSLContext | bool:
        if not self.conn.addr.startswith("https"):
            return True  # plain HTTP: nothing to verify, and no roots worth loading
        return client_tls(_tls_options(self.conn), service="vault").context

    @property
    def closed(self) -> bool:
        """No open session: never used, or closed."""
        return self._session is None or self._session.closed

    async def close(self) -> None:
        session, self._session = self._session, None
        if session is not None and not session.closed and self._loop is asyncio.get_running_loop():
            await session.close()
        self._loop = None

    def _headers(self, with_body: bool) -> dict[str, str]:
        headers = {"X-Vault-Request": "true"}
        token = self.conn.current_token()
        if token:
            headers["X-Vault-Token"] = token
        if self.conn.namespace:
            headers["X-Vault-Namespace"] = self.conn.namespace
        if with_body:
            headers["Content-Type"] = "application/json"
        return headers

    async def request(
        self,
        method: str,
        path: str,
        *,
        what: str,
        params: Mapping[str, str] | None = None,
        body: Mapping[str, Any] | None = None,
        accept: Collection[int] = (),
    ) -> tuple[int, dict[str, Any]]:
        """One call: the status and the decoded body (``{}`` when empty). A status of 400 or
        more raises, unless it is in ``accept``."""
        data = None if body is None else json.dumps(body, separators=(",", ":")).encode()
        url = self._base + _clean(path)
        try:
            async with self._current_session().request(
                method,
                url,
                params=params,
                data=data,
                headers=self._headers(data is not None),
            ) as resp:
                status, raw = resp.status, await resp.read()
        except (aiohttp.ClientError, TimeoutError, OSError) as exc:
            raise VaultUnavailable(f"{what}: {type(exc).__name__}: {exc}") from exc
        decoded = _decode(raw)
        if status >= 400 and status not in accept:
            raise status_error(status, decoded, raw, what)
        if not isinstance(decoded, dict):
            if decoded is _UNDECODABLE:
                raise VaultUnavailable(f"{what}: the answer is not JSON: {_excerpt(raw)}")
            return status, {"data": decoded}
        return status, decoded

    async def read(self, path: str) -> dict[str, Any] | None:
        """GET; None when Vault answers 404."""
        try:
            return (await self.request("GET", path, what=f"read {path}"))[1]
        except VaultNotFound:
            return None

    async def list(self, path: str) -> list[str]:
        """LIST keys (``GET ?list=true``); an empty list on 404, Vault's way of saying none."""
        try:
            _, answer = await self.request(
                "GET", path, what=f"list {path}", params={"list": "true"}
            )
        except VaultNotFound:
            return []
        keys = (answer.get("data") or {}).get("keys") or []
        return [str(k) for k in keys]

    async def write(self, path: str, data: Mapping[str, Any]) -> dict[str, Any]:
        """POST; the answer's body, ``{}`` for Vault's 204."""
        return (await self.request("POST", path, what=f"write {path}", body=data))[1]

    async def delete(self, path: str) -> None:
        await self.request("DELETE", path, what=f"delete {path}")

    async def health(self) -> dict[str, Any]:
        """GET sys/health whatever its code says (sealed, standby, uninitialised): the body,
        plus ``code``."""
        status, answer = await self.request(
            "GET", "sys/health", what="read sys/health", accept=range(400, 600)
        )
        return {"code": status, **answer}


_UNDECODABLE: Final = object()


def _clean(path: str) -> str:
    """As hvac and Vault's CLI do: a doubled slash counts as one."""
    path = path.lstrip("/")
    while "//" in path:
        path = path.replace("//", "/")
    return path


def _decode(raw: bytes) -> Any:
    if not raw.strip():
        return {}
    try:
        return json.loads(raw)
    except ValueError:
        return _UNDECODABLE


def _excerpt(raw: bytes) -> str:
    text = " ".join(raw.decode("utf-8", errors="replace").split())
    return text[:_MAX_ERROR_TEXT] + ("…" if len(text) > _MAX_ERROR_TEXT else "")


def status_error(status: int, decoded: Any, raw: bytes, what: str) -> VaultError:
    """Vault's answer ``status`` as one of our errors, with Vault's own words in it."""
    errors = decoded.get("errors") if isinstance(decoded, dict) else None
    if isinstance(errors, list) and errors:
        said = "; ".join(" ".join(str(e).split()) for e in errors)
    else:
        said = _excerpt(raw) if decoded is _UNDECODABLE else f"HTTP {status}"
    if status == 400:
        return VaultBadRequest(f"{what}: {said}")
    if status == 403:
        return VaultPermissionDenied(f"{what}: permission denied ({said})")
    if status == 404:
        return VaultNotFound(f"{what}: not found ({said})")
    if status == 429 or (status >= 500 and status != 501):  # 501: not initialised, not transient
        return VaultUnavailable(f"{what}: {said}")
    return VaultError(f"{what}: {said}")
