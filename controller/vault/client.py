"""One place that turns connection settings into hvac calls the asyncio world can await.

hvac is synchronous (requests), so every call runs in a worker thread; hvac's exceptions are
translated into a small hierarchy the reconcilers can switch on (sealed/unreachable is transient,
permission denied is not). TLS verification is on unless the caller explicitly turns it off.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, TypeVar

import hvac
import hvac.exceptions as hx
import requests

from controller.config import VaultSettings
from controller.tls import requests_kwargs
from controller.vault.token_source import TokenSource, token_source

T = TypeVar("T")


class VaultError(Exception):
    """A Vault call failed. The message never contains the token."""


class VaultUnavailable(VaultError):
    """Vault is sealed, down, or unreachable: retry later."""


class VaultPermissionDenied(VaultError):
    """The token lacks a capability (403)."""


class VaultNotFound(VaultError):
    """The path or object does not exist (404)."""


class VaultBadRequest(VaultError):
    """Vault rejected the request (400), e.g. a role violation."""


@dataclass(frozen=True)
class VaultConnection:
    """How to reach Vault. `verify` is requests' convention: True, a CA file/dir path, or False.

    The composition root maps VAULT_ADDR/VAULT_TOKEN/VAULT_CACERT/VAULT_CAPATH/VAULT_CLIENT_CERT/
    VAULT_CLIENT_KEY/VAULT_SKIP_VERIFY/VAULT_NAMESPACE onto this.
    """

    addr: str
    token: str = field(repr=False)
    verify: bool | str = True
    client_cert: str | tuple[str, str] | None = None
    namespace: str | None = None
    timeout: float = 10.0
    # Where the token is re-read from before each call (a file Nomad rewrites); None: `token`.
    source: TokenSource | None = field(default=None, repr=False, compare=False)

    @classmethod
    def from_settings(cls, settings: VaultSettings, timeout: float = 10.0) -> VaultConnection:
        """VAULT_* settings (controller.config) -> a connection, TLS per controller.tls."""
        tls = requests_kwargs(settings)
        source = token_source(settings)
        return cls(
            addr=settings.addr,
            token=source.current(),
            verify=tls["verify"],
            client_cert=tls.get("cert"),
            namespace=settings.namespace,
            timeout=timeout,
            source=source,
        )


def make_hvac_client(conn: VaultConnection) -> Any:
    """A configured hvac.Client (typed Any: hvac ships no type information)."""
    return hvac.Client(
        url=conn.addr,
        token=conn.token,
        verify=conn.verify,
        cert=conn.client_cert,
        namespace=conn.namespace,
        timeout=conn.timeout,
    )


def _first_error(exc: hx.VaultError) -> str:
    errors = getattr(exc, "errors", None)
    if isinstance(errors, list) and errors:
        return "; ".join(" ".join(str(e).split()) for e in errors)
    return " ".join(str(exc).split()) or type(exc).__name__


def translate(exc: BaseException, what: str) -> VaultError:
    """Map an hvac/requests exception to our hierarchy; `what` names the call (no secrets)."""
    if isinstance(exc, VaultError):
        return exc
    if isinstance(exc, hx.Forbidden):
        return VaultPermissionDenied(f"{what}: permission denied ({_first_error(exc)})")
    if isinstance(exc, hx.InvalidPath):
        return VaultNotFound(f"{what}: not found ({_first_error(exc)})")
    if isinstance(exc, hx.InvalidRequest):
        return VaultBadRequest(f"{what}: {_first_error(exc)}")
    if isinstance(
        exc, hx.VaultDown | hx.InternalServerError | hx.BadGateway | hx.RateLimitExceeded
    ):
        return VaultUnavailable(f"{what}: {_first_error(exc)}")
    if isinstance(exc, requests.RequestException):
        return VaultUnavailable(f"{what}: {type(exc).__name__}: {exc}")
    if isinstance(exc, hx.VaultError):
        return VaultError(f"{what}: {_first_error(exc)}")
    return VaultError(f"{what}: {type(exc).__name__}: {exc}")


class VaultClient:
    """An hvac client whose calls are awaited in a thread and whose errors are translated."""

    def __init__(self, conn: VaultConnection, hvac_client: Any | None = None) -> None:
        self.conn = conn
        self.hvac: Any = hvac_client if hvac_client is not None else make_hvac_client(conn)

    def __repr__(self) -> str:
        return f"VaultClient(addr={self.conn.addr!r})"

    def call_sync(self, what: str, fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        if self.conn.source is not None:  # a rewritten token file is in use from now on
            self.hvac.token = self.conn.source.current()
        try:
            return fn(*args, **kwargs)
        except (hx.VaultError, requests.RequestException) as e:
            raise translate(e, what) from e

    async def call(self, what: str, fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        return await asyncio.to_thread(self.call_sync, what, fn, *args, **kwargs)

    async def read(self, path: str) -> dict[str, Any] | None:
        """GET; None when Vault answers 404."""
        res = await self.call(f"read {path}", self.hvac.read, path)
        return _as_dict(res)

    async def list(self, path: str) -> list[str]:
        """LIST keys; an empty list when Vault answers 404 (its way of saying 'none')."""
        res = _as_dict(await self.call(f"list {path}", self.hvac.list, path))
        if not res:
            return []
        keys = (res.get("data") or {}).get("keys") or []
        return [str(k) for k in keys]

    async def write(self, path: str, data: dict[str, Any]) -> dict[str, Any] | None:
        res = await self.call(f"write {path}", self.hvac.write_data, path, data=data)
        return _as_dict(res)

    async def patch(self, path: str, data: dict[str, Any]) -> dict[str, Any] | None:
        res = await self.call(
            f"patch {path}",
            self.hvac.adapter.request,
            "PATCH",
            f"/v1/{path}",
            json=data,
            headers={"Content-Type": "application/merge-patch+json"},
        )
        return _as_dict(res)

    async def delete(self, path: str) -> None:
        await self.call(f"delete {path}", self.hvac.delete, path)

    async def health(self) -> dict[str, Any]:
        """GET /v1/sys/health without raising on sealed/standby codes: the body, plus `code`."""

        def _get() -> dict[str, Any]:
            resp = self.hvac.sys.read_health_status(method="GET")
            if isinstance(resp, dict):
                return {"code": 200, **resp}
            body = resp.json() if resp.content else {}
            return {"code": int(resp.status_code), **body}

        return await self.call("read sys/health", _get)


def _as_dict(res: Any) -> dict[str, Any] | None:
    if res is None:
        return None
    if isinstance(res, dict):
        return res
    # hvac returns a requests.Response for 204 and non-JSON answers.
    if getattr(res, "status_code", None) == 204 or not getattr(res, "content", b""):
        return {}
    parsed = res.json()
    return parsed if isinstance(parsed, dict) else {"data": parsed}
