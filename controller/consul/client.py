"""Consul reads (health, catalog, agent) over aiohttp, with Consul's own env conventions.

The controller only *reads* Consul: Nomad registers the services, we verify that each meshed
service is registered on its TLS port and passing. The one distinction that matters to the
reconcilers is "Consul answered, and the service is not healthy" (a condition to report) versus
"Consul did not answer" (:class:`ConsulUnavailable`: unknown, try later) — never conflate them.

A third answer looks like the first and is neither: with ACLs on, Consul *filters* what a token
may not read (``agent/consul/acl.go`` ``aclFilter``: an instance stays only with ``node:read``
on its node and ``service:read`` on its service) and answers ``200`` with what is left, ``[]``
when nothing is. Reads therefore say whether they were filtered (``filtered`` on the result),
so a blind token is reported as blind, not as "nothing registered" (audit §11).
"""

from __future__ import annotations

import asyncio
import json
import ssl
import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Final
from urllib.parse import quote

import aiohttp
from tenacity import (
    AsyncRetrying,
    retry_if_exception_type,
    stop_after_delay,
    wait_random_exponential,
)

from controller.config import ConsulSettings
from controller.config.values import reading
from controller.consul.wire import (
    ConsulError,
    ConsulPermissionDenied,
    ConsulUnavailable,
    HealthEntry,
    Listing,
    ServiceHealth,
)
from controller.tls import client_tls

DEFAULT_ADDR: Final = "127.0.0.1:8500"
# agent/http.go setResultsFilteredByACLs (Go writes it canonicalised, "...-By-Acls"; headers
# are case-insensitive).
FILTERED_HEADER: Final = "X-Consul-Results-Filtered-By-ACLs"
# Every Consul server registers itself as this service (agent/consul/leader.go
# handleAliveMember, structs.ConsulServiceName): a cluster in which a token sees no instance of
# it is a cluster whose catalog the token cannot read.
SERVERS_SERVICE: Final = "consul"
FILTERED_BY_HEADER: Final = f"Consul filtered the answer for this token ({FILTERED_HEADER}: true)"
ANONYMOUS_BLIND: Final = (
    "no Consul token is set, and the anonymous token cannot see even the consul servers, so "
    "Consul filters what it answers (it never says so to the anonymous token)"
)


def base_url(addr: str, use_ssl: bool = False) -> str:
    """``CONSUL_HTTP_ADDR`` is ``host:port`` or a URL; ``CONSUL_HTTP_SSL`` picks the scheme."""
    addr = addr.strip().rstrip("/")
    if "://" in addr:
        return addr
    return f"{'https' if use_ssl else 'http'}://{addr}"


@dataclass(frozen=True, slots=True)
class _Answer:
    body: Any
    index: int
    filtered: bool  # the header: only ever set for a token that is not anonymous


class ConsulClient:
    """The process-wide Consul HTTP client (one session). ``await close()`` on shutdown."""

    def __init__(
        self,
        addr: str = DEFAULT_ADDR,
        *,
        use_ssl: bool = False,
        token: str | None = None,
        ssl_context: ssl.SSLContext | None = None,
        verify: bool = True,
        server_hostname: str | None = None,
        timeout: float = 5.0,
        retry_budget: float = 5.0,
        visibility_ttl: float = 30.0,
    ) -> None:
        self.url = base_url(addr, use_ssl)
        self._token = token
        self.visibility_ttl = visibility_ttl
        self._blind: tuple[float, bool] | None = None  # (monotonic time, anonymous is blind)
        self._blind_lock = asyncio.Lock()
        self._ssl: ssl.SSLContext | bool = ssl_context if ssl_context is not None else verify
        self._verify = verify
        self._server_hostname = server_hostname
        self.timeout = timeout
        self.retry_budget = retry_budget
        self._session: aiohttp.ClientSession | None = None

    @classmethod
    def from_settings(cls, settings: ConsulSettings, **kwargs: Any) -> ConsulClient:
        """Address, token and TLS from ``ConsulSettings`` (CONSUL_HTTP_ADDR, CONSUL_HTTP_SSL,
        CONSUL_HTTP_SSL_VERIFY — false DISABLES verification —, CONSUL_HTTP_TOKEN, CONSUL_CACERT,
        CONSUL_CAPATH, CONSUL_CLIENT_CERT/KEY, CONSUL_TLS_SERVER_NAME)."""
        url = settings.url
        tls = client_tls(settings, service="consul") if url.startswith("https://") else None
        token = settings.http_token.get_secret_value() if settings.http_token else None
        return cls(
            url,
            token=token,
            ssl_context=tls.context if tls else None,
            server_hostname=tls.server_hostname if tls else None,
            verify=tls.verify if tls else True,
            **kwargs,
        )

    @classmethod
    def from_env(cls, env: Mapping[str, str], **kwargs: Any) -> ConsulClient:
        """``from_settings`` over the CONSUL_* variables in ``env``."""
        with reading(env):
            settings = ConsulSettings()
        return cls.from_settings(settings, **kwargs)

    def __repr__(self) -> str:
        return f"ConsulClient(url={self.url!r})"

    @property
    def anonymous(self) -> bool:
        """No token is sent: Consul uses the anonymous token and never flags filtering."""
        return not self._token

    @property
    def verifies_tls(self) -> bool:
        """False only when verification was switched off (CONSUL_HTTP_SSL_VERIFY=false)."""
        return self._verify

    @property
    def session(self) -> aiohttp.ClientSession:
        if self._session is None or self._session.closed:
            headers = {"X-Consul-Token": self._token} if self._token else {}
            self._session = aiohttp.ClientSession(
                connector=aiohttp.TCPConnector(ssl=self._ssl), headers=headers
            )
        return self._session

    async def close(self) -> None:
        if self._session is not None and not self._session.closed:
            await self._session.close()
        self._session = None

    async def _get(self, path: str, params: Mapping[str, str]) -> _Answer:
        result: _Answer | None = None
        async for attempt in AsyncRetrying(
            retry=retry_if_exception_type(ConsulUnavailable),
            wait=wait_random_exponential(multiplier=0.1, max=1.0),
            stop=stop_after_delay(self.retry_budget),
            reraise=True,
        ):
            with attempt:
                result = await self._get_once(path, params)
        assert result is not None
        return result

    async def _get_once(self, path: str, params: Mapping[str, str]) -> _Answer:
        what = f"GET {path}"
        try:
            async with self.session.get(
                self.url + path,
                params=dict(params),
                timeout=aiohttp.ClientTimeout(total=self.timeout),
                server_hostname=self._server_hostname,
            ) as resp:
                text = await resp.text()
                status = resp.status
                index = resp.headers.get("X-Consul-Index", "")
                filtered = resp.headers.get(FILTERED_HEADER, "").lower() == "true"
        except (aiohttp.ClientError, TimeoutError, OSError) as exc:
            raise ConsulUnavailable(f"{what}: {type(exc).__name__}: {exc}") from exc
        if status == 403:
            raise ConsulPermissionDenied(f"{what}: 403 {text.strip()}", status=status)
        if status >= 500 or status == 429:
            raise ConsulUnavailable(f"{what}: {status} {text.strip()}", status=status)
        if status >= 300:
            raise ConsulError(f"{what}: {status} {text.strip()}", status=status)
        try:
            body = json.loads(text) if text.strip() else None
        except ValueError as exc:
            raise ConsulUnavailable(f"{what}: invalid JSON: {exc}") from exc
        return _Answer(body, int(index) if index.isdigit() else 0, filtered)

    async def health_service(
        self, name: str, *, passing: bool = False, tag: str | None = None, dc: str | None = None
    ) -> ServiceHealth:
        """``/v1/health/service/:name``: every instance with its checks ([] when unknown)."""
        params: dict[str, str] = {}
        if passing:
            params["passing"] = "1"
        if tag:
            params["tag"] = tag
        if dc:
            params["dc"] = dc
        answer = await self._get(f"/v1/health/service/{quote(name, safe='')}", params)
        entries = tuple(HealthEntry.from_wire(e) for e in answer.body or ())
        why = ""
        if answer.filtered:
            why = FILTERED_BY_HEADER
        elif not entries and self.anonymous and await self.anonymous_is_blind():
            why = ANONYMOUS_BLIND
        return ServiceHealth(entries, answer.index, filtered=bool(why), filtered_why=why)

    async def anonymous_is_blind(self) -> bool:
        """Whether the anonymous token is shut out of the catalog, asked at most once per
        ``visibility_ttl`` (concurrent callers share one probe).

        Consul blanks the filtered flag for requests without a token (agent/consul/rpc.go
        ``maskResultsFilteredByACLs``), so an empty answer to one is ambiguous: nothing
        registered, or nothing this token may see. ``/v1/acl/token/self`` would only say
        whether ACLs are on (401 ``ACL support disabled`` when off; with them on, a tokenless
        request reads the secret "" and gets not-found, whatever the anonymous token's policy:
        agent/acl_endpoint.go ``ACLTokenSelf``), not what it may read. The
        servers' own ``consul`` service is always registered and needs the same ``node:read`` +
        ``service:read`` as any service's health, so an empty answer for it is the tell. Only
        asked for an empty answer, never for each service of each job."""
        async with self._blind_lock:
            now = time.monotonic()
            if self._blind is not None and now - self._blind[0] < self.visibility_ttl:
                return self._blind[1]
            answer = await self._get(f"/v1/health/service/{SERVERS_SERVICE}", {})
            self._blind = (time.monotonic(), not answer.body)
            return self._blind[1]

    async def catalog_services(self) -> Listing:
        """``/v1/catalog/services``: name -> tags of every service the token may read."""
        answer = await self._get("/v1/catalog/services", {})
        return Listing(dict(answer.body or {}), answer.index, answer.filtered)

    async def catalog_nodes(self) -> Listing:
        """``/v1/catalog/nodes``: every node the token may read."""
        answer = await self._get("/v1/catalog/nodes", {})
        return Listing(list(answer.body or ()), answer.index, answer.filtered)

    async def catalog_service(
        self, name: str, *, tag: str | None = None, dc: str | None = None
    ) -> list[dict[str, Any]]:
        """``/v1/catalog/service/:name``: registrations, raw ([] when unknown)."""
        params: dict[str, str] = {}
        if tag:
            params["tag"] = tag
        if dc:
            params["dc"] = dc
        answer = await self._get(f"/v1/catalog/service/{quote(name, safe='')}", params)
        return list(answer.body or ())

    async def agent_self(self) -> dict[str, Any]:
        """``/v1/agent/self``: the local agent's config (datacenter, node name, version)."""
        answer = await self._get("/v1/agent/self", {})
        return dict(answer.body or {})
