"""The Vault client the controller holds: native async calls for the hot path, hvac for the rest.

``read``/``list``/``write``/``delete``/``health`` go over aiohttp on the event loop
(controller.vault.http): reconcilers make them per job, and hvac's thread hand-off and requests'
session machinery per call cost more CPU than the call itself. Only ``patch`` (PKI
administration) still runs hvac, which is synchronous, in a worker thread through ``call``.
hvac and requests are imported when that first happens, not with this module: together they
are ~6 MB of the resident base (~180 modules) of a ``controller run`` that never calls them
(its token renewal is a plain ``write``). Both transports translate their failures into
controller.vault.errors (sealed/unreachable is transient, permission denied is not). TLS
verification is on unless the caller explicitly turns it off. The client owns an HTTP session:
``await close()`` it.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

from controller.vault.connection import VaultConnection
from controller.vault.errors import (
    VaultBadRequest,
    VaultError,
    VaultNotFound,
    VaultPermissionDenied,
    VaultUnavailable,
)
from controller.vault.http import VaultHttp

__all__ = [
    "VaultBadRequest",
    "VaultClient",
    "VaultConnection",
    "VaultError",
    "VaultNotFound",
    "VaultPermissionDenied",
    "VaultUnavailable",
    "make_hvac_client",
    "translate",
]

T = TypeVar("T")


def make_hvac_client(conn: VaultConnection) -> Any:
    """A configured hvac.Client (typed Any: hvac ships no type information)."""
    import hvac  # here, not at the top: see the module's docstring

    return hvac.Client(
        url=conn.addr,
        token=conn.token,
        verify=conn.verify,
        cert=conn.client_cert,
        namespace=conn.namespace,
        timeout=conn.timeout,
    )


def _first_error(exc: BaseException) -> str:
    errors = getattr(exc, "errors", None)
    if isinstance(errors, list) and errors:
        return "; ".join(" ".join(str(e).split()) for e in errors)
    return " ".join(str(exc).split()) or type(exc).__name__


def _raised_by_hvac(exc: BaseException) -> bool:
    """An hvac or requests error: what ``call`` translates (anything else is a bug, raised)."""
    import hvac.exceptions as hx  # loaded already: only hvac's calls get here
    import requests

    return isinstance(exc, hx.VaultError | requests.RequestException)


def translate(exc: BaseException, what: str) -> VaultError:
    """Map an hvac/requests exception to our hierarchy; `what` names the call (no secrets)."""
    if isinstance(exc, VaultError):
        return exc
    import hvac.exceptions as hx  # only hvac's calls raise these: see the module's docstring
    import requests

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
    """Vault for the asyncio world: the hot-path verbs over aiohttp, hvac calls in a thread."""

    def __init__(self, conn: VaultConnection, hvac_client: Any | None = None) -> None:
        self.conn = conn
        self._hvac: Any = hvac_client
        self.http = VaultHttp(conn)

    @property
    def hvac(self) -> Any:
        """The hvac client, made (and hvac imported) on first use."""
        if self._hvac is None:
            self._hvac = make_hvac_client(self.conn)
        return self._hvac

    def __repr__(self) -> str:
        return f"VaultClient(addr={self.conn.addr!r})"

    async def close(self) -> None:
        """Close the HTTP session (hvac's requests session needs no closing)."""
        await self.http.close()

    async def __aenter__(self) -> VaultClient:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    async def closing_after(self, work: Awaitable[T]) -> T:
        """``work``, then the session closed in the same event loop: a command that runs each
        step in its own ``asyncio.run`` must not leave a session behind in a finished loop."""
        try:
            return await work
        finally:
            await self.close()

    def call_sync(self, what: str, fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        if self.conn.source is not None:  # a rewritten token file is in use from now on
            self.hvac.token = self.conn.source.current()
        try:
            return fn(*args, **kwargs)
        except Exception as e:
            if not _raised_by_hvac(e):
                raise
            raise translate(e, what) from e

    async def call(self, what: str, fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        return await asyncio.to_thread(self.call_sync, what, fn, *args, **kwargs)

    async def read(self, path: str) -> dict[str, Any] | None:
        """GET; None when Vault answers 404."""
        return await self.http.read(path)

    async def list(self, path: str) -> list[str]:
        """LIST keys; an empty list when Vault answers 404 (its way of saying 'none')."""
        return await self.http.list(path)

    async def write(self, path: str, data: dict[str, Any]) -> dict[str, Any] | None:
        return await self.http.write(path, data)

    async def patch(self, path: str, data: dict[str, Any]) -> dict[str, Any] | None:
        """JSON merge patch (issuer names and usage; not on the hot path, so hvac's)."""
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
        await self.http.delete(path)

    async def health(self) -> dict[str, Any]:
        """GET /v1/sys/health without raising on sealed/standby codes: the body, plus `code`."""
        return await self.http.health()


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
