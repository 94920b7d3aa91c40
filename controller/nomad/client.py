"""One aiohttp session to Nomad, with the HashiCorp conventions every call needs.

Every Nomad call shares the same concerns: base address, ``X-Nomad-Token`` (never logged),
region/namespace query parameters, TLS verification, a timeout per call, Nomad's plain-text
errors, and the ``X-Nomad-Index`` header that python-nomad hides. Idempotent reads are retried
here (jittered exponential backoff, bounded by a total delay); writes never are — a retried
register could apply twice, so write retries belong to the work queue, where the reconciler
re-reads first.

``max_in_flight`` bounds the requests one client has open at once (an asyncio semaphore held
for one attempt, released while a retry backs off; the long-lived event stream never takes a
slot). Bulk work then queues here, in the process, instead of as a pile of requests at Nomad;
the leader lock has a client of its own, so its renewals never wait behind that queue.
"""

from __future__ import annotations

import asyncio
import random
import ssl
import time
from collections.abc import AsyncIterator, Mapping, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any, Final

import aiohttp
import structlog

from controller.config import NomadSettings
from controller.nomad.errors import (
    Conflict,
    NomadError,
    TlsVerificationError,
    TransientError,
    error_for,
)
from controller.nomad.inflight import InFlight
from controller.runtime import jsonwire
from controller.tls import client_tls

log = structlog.get_logger(__name__)

DEFAULT_ADDR: Final = "http://127.0.0.1:4646"
# Backoff between attempts of a retried read: a random wait in [0, min(RETRY_CAP,
# RETRY_BASE * 2 ** (attempt - 1))] seconds ("full jitter", tenacity's wait_random_exponential).
RETRY_BASE: Final = 0.1
RETRY_CAP: Final = 2.0

ParamValue = str | int | bool
Params = Mapping[str, ParamValue] | Sequence[tuple[str, ParamValue]]


class _Default:
    """Marker for "use the client's namespace" (``None`` means "send no namespace")."""


DEFAULT_NS: Final = _Default()


@dataclass(frozen=True, slots=True)
class NomadResponse:
    """A decoded answer: JSON body (``None`` when empty) and Nomad's index headers."""

    status: int
    body: Any
    index: int | None
    next_token: str | None


def _bool_param(value: ParamValue) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


class NomadClient:
    """The process-wide Nomad HTTP client. Create once, ``await close()`` on shutdown."""

    def __init__(
        self,
        addr: str = DEFAULT_ADDR,
        *,
        token: str | None = None,
        region: str | None = None,
        namespace: str = "default",
        ssl_context: ssl.SSLContext | None = None,
        server_hostname: str | None = None,
        timeout: float = 10.0,
        retry_budget: float = 10.0,
        user_agent: str = "nomad-tls-mesh",
        max_in_flight: int | None = None,
    ) -> None:
        self.addr = addr.rstrip("/")
        self._token = token
        self.region = region
        self.namespace = namespace
        self._ssl: ssl.SSLContext | bool = ssl_context if ssl_context is not None else True
        self._server_hostname = server_hostname
        self.timeout = timeout
        self.retry_budget = retry_budget
        self._user_agent = user_agent
        self._session: aiohttp.ClientSession | None = None
        self.slots = InFlight(max_in_flight)

    @classmethod
    def from_settings(cls, settings: NomadSettings, **kwargs: Any) -> NomadClient:
        """NOMAD_ADDR, NOMAD_TOKEN, NOMAD_REGION, NOMAD_NAMESPACE and the NOMAD_* TLS settings
        (verification on unless NOMAD_SKIP_VERIFY)."""
        tls = client_tls(settings, service="nomad") if settings.addr.startswith("https") else None
        return cls(
            settings.addr,
            token=settings.token.get_secret_value() if settings.token else None,
            region=settings.region,
            namespace=settings.namespace or "default",
            ssl_context=tls.context if tls else None,
            server_hostname=tls.server_hostname if tls else None,
            **kwargs,
        )

    def __repr__(self) -> str:
        return f"NomadClient(addr={self.addr!r}, region={self.region!r}, ns={self.namespace!r})"

    def _headers(self) -> dict[str, str]:
        headers = {"User-Agent": self._user_agent}
        if self._token:
            headers["X-Nomad-Token"] = self._token
        return headers

    @property
    def session(self) -> aiohttp.ClientSession:
        if self._session is None or self._session.closed:
            connector = aiohttp.TCPConnector(ssl=self._ssl, limit=100)
            self._session = aiohttp.ClientSession(connector=connector, headers=self._headers())
        return self._session

    async def close(self) -> None:
        if self._session is not None and not self._session.closed:
            await self._session.close()
        self._session = None

    async def __aenter__(self) -> NomadClient:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    def _params(
        self, params: Params | None, namespace: str | _Default | None
    ) -> list[tuple[str, str]]:
        items = list(params.items()) if isinstance(params, Mapping) else list(params or ())
        out = [(k, _bool_param(v)) for k, v in items]
        ns = self.namespace if isinstance(namespace, _Default) else namespace
        if ns is not None and not any(k == "namespace" for k, _ in out):
            out.append(("namespace", ns))
        if self.region and not any(k == "region" for k, _ in out):
            out.append(("region", self.region))
        return out

    async def request(
        self,
        method: str,
        path: str,
        *,
        params: Params | None = None,
        body: Any = None,
        namespace: str | _Default | None = DEFAULT_NS,
        idempotent: bool | None = None,
        call_timeout: float | None = None,
    ) -> NomadResponse:
        """Call Nomad; raise a :class:`NomadError` subclass on any non-2xx answer.

        ``idempotent`` defaults to True for GET only; only idempotent calls are retried.
        """
        retry = method.upper() == "GET" if idempotent is None else idempotent
        if not retry:
            return await self._once(method, path, params, body, namespace, call_timeout)
        # A loop of our own, not a retry library's: most reads succeed at once, and building
        # the library's retry state for each was a quarter of a read's client CPU.
        start = time.monotonic()
        attempt = 0
        while True:
            attempt += 1
            try:
                return await self._once(method, path, params, body, namespace, call_timeout)
            except TransientError:
                if time.monotonic() - start >= self.retry_budget:
                    raise
            await asyncio.sleep(random.uniform(0, min(RETRY_CAP, RETRY_BASE * 2 ** (attempt - 1))))

    async def _once(
        self,
        method: str,
        path: str,
        params: Params | None,
        body: Any,
        namespace: str | _Default | None,
        call_timeout: float | None,
    ) -> NomadResponse:
        async with self.slots.slot():
            return await self._exchange(method, path, params, body, namespace, call_timeout)

    async def _exchange(
        self,
        method: str,
        path: str,
        params: Params | None,
        body: Any,
        namespace: str | _Default | None,
        call_timeout: float | None,
    ) -> NomadResponse:
        what = f"{method} {path}"
        data = None if body is None else jsonwire.dumps(body)
        headers = {"Content-Type": "application/json"} if data is not None else None
        try:
            async with self.session.request(
                method,
                self.addr + path,
                params=self._params(params, namespace),
                data=data,
                headers=headers,
                timeout=aiohttp.ClientTimeout(total=call_timeout or self.timeout),
                server_hostname=self._server_hostname,
            ) as resp:
                raw = await resp.read()
                if resp.status >= 300:
                    raise _error(resp.status, raw.decode("utf-8", "replace"), what)
                return NomadResponse(
                    status=resp.status,
                    body=jsonwire.loads(raw) if raw.strip() else None,
                    index=_int_header(resp.headers.get("X-Nomad-Index")),
                    next_token=resp.headers.get("X-Nomad-NextToken") or None,
                )
        except NomadError:
            raise
        except aiohttp.ClientConnectorCertificateError as exc:
            raise TlsVerificationError(f"{what}: TLS verification failed: {exc}") from exc
        except (aiohttp.ClientError, TimeoutError, OSError) as exc:
            raise TransientError(f"{what}: {type(exc).__name__}: {exc}") from exc
        except jsonwire.DecodeError as exc:
            raise TransientError(f"{what}: invalid JSON from Nomad: {exc}") from exc

    @asynccontextmanager
    async def stream(
        self,
        path: str,
        *,
        params: Params | None = None,
        namespace: str | _Default | None = DEFAULT_NS,
        connect_timeout: float = 10.0,
    ) -> AsyncIterator[aiohttp.ClientResponse]:
        """Open a long-lived GET (the event stream); non-2xx raises before yielding.

        No total or read timeout here: the caller runs an inactivity watchdog instead, because
        a silent connection is only detectable by the absence of heartbeats.
        """
        what = f"GET {path}"
        try:
            async with self.session.get(
                self.addr + path,
                params=self._params(params, namespace),
                headers={"Accept-Encoding": "identity"},
                timeout=aiohttp.ClientTimeout(total=None, sock_connect=connect_timeout),
                server_hostname=self._server_hostname,
            ) as resp:
                if resp.status >= 300:
                    raise _error(resp.status, await resp.text(), what)
                yield resp
        except NomadError:
            raise
        except aiohttp.ClientConnectorCertificateError as exc:
            raise TlsVerificationError(f"{what}: TLS verification failed: {exc}") from exc
        except (aiohttp.ClientError, OSError) as exc:
            raise TransientError(f"{what}: {type(exc).__name__}: {exc}") from exc


def _int_header(value: str | None) -> int | None:
    try:
        return int(value) if value else None
    except ValueError:
        return None


def _error(status: int, text: str, what: str) -> NomadError:
    err = error_for(status, text, what)
    if isinstance(err, Conflict) and status == 409:
        try:
            current = jsonwire.loads(text)
        except ValueError:
            current = None
        if isinstance(current, dict):
            err.current = current
    return err
