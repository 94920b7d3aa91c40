"""Keeps the controller's own Vault token alive, and says when it expires.

Without this, a periodic token given by hand (``controllerctl install`` makes one) lapses one
period after the last renewal, and the controller silently loses Vault: no trust bundle for its
TLS probes, no rotation. The keeper runs on every instance, leader or standby (a standby that
takes over must have a live token), and loops:

1. ``auth/token/lookup-self``: the facts (:mod:`controller.vault.token_facts`), and
   ``mesh_vault_token_expiry_timestamp_seconds`` set from them;
2. a token the controller owns (``VAULT_TOKEN``) that is renewable and expires: wait until half
   its TTL has passed, ``auth/token/renew-self``, and look it up again;
3. any other token (a root token, one that cannot be renewed, Nomad's token file): look again
   after half its TTL, at most every few minutes, so the gauge follows Nomad's renewals.

A failed lookup or renewal is logged with Vault's reason (never the token) and retried with
doubling delays kept within a quarter of the TTL, so a short period still gets several tries.
"""

from __future__ import annotations

import asyncio

import structlog
from prometheus_client import CollectorRegistry, Counter, Gauge

from controller.runtime.clock import Clock
from controller.vault.client import VaultClient, VaultError, VaultPermissionDenied
from controller.vault.token_facts import (
    TokenFacts,
    expiry_gauge,
    renew_delay,
    retry_delay,
    watch_delay,
)
from controller.vault.token_source import EnvToken, TokenSource

log = structlog.get_logger(__name__)


class TokenMetrics:
    """The token's expiry (the alert's input) and the outcome of each renewal."""

    def __init__(self, registry: CollectorRegistry) -> None:
        self.expiry = Gauge(
            "mesh_vault_token_expiry_timestamp_seconds",
            "When the controller's Vault token expires unless renewed (unix seconds); 0 means "
            "it has no TTL (a root token). Absent until the first successful lookup.",
            registry=registry,
        )
        self.renewals = Counter(
            "mesh_vault_token_renewals",
            "Renewals of the controller's own Vault token, by result (ok or error).",
            ["result"],
            registry=registry,
        )


class TokenKeeper:
    """The loop above, as a runnable for the manager (``run`` returns only when cancelled)."""

    name = "vault-token"
    needs_leader = False

    def __init__(
        self, vault: VaultClient, source: TokenSource, clock: Clock, metrics: TokenMetrics
    ) -> None:
        self.vault = vault
        self.source = source
        self.clock = clock
        self.metrics = metrics
        self.facts: TokenFacts | None = None  # the last lookup's answer
        self.renewed = 0  # successful renewals (tests, /status)

    async def run(self) -> None:
        failures = 0
        while True:
            try:
                facts = await self.lookup()
                if self._renews(facts):
                    if failures == 0:  # a retry renews at once; the TTL is already running
                        await self.clock.sleep(renew_delay(facts))
                    await self.renew(facts)
                    failures = 0
                    continue
                failures = 0
                await self.clock.sleep(watch_delay(facts, not self.source.renews_itself))
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # one failed look must not stop the controller
                failures += 1
                delay = retry_delay(failures, self.facts)
                self._failed(exc, failures, delay)
                await self.clock.sleep(delay)

    def _renews(self, facts: TokenFacts) -> bool:
        return self.source.renews_itself and facts.renewable and facts.expiring

    async def lookup(self) -> TokenFacts:
        answer = await self.vault.read("auth/token/lookup-self")
        facts = TokenFacts.from_lookup(answer)
        self.facts = facts
        self.metrics.expiry.set(expiry_gauge(facts, self.clock.now().timestamp()))
        return facts

    async def renew(self, facts: TokenFacts) -> None:
        increment = facts.increment()
        try:
            answer = await self.vault.write(
                "auth/token/renew-self", {} if increment is None else {"increment": increment}
            )
        except VaultError:
            self.metrics.renewals.labels("error").inc()
            raise
        self.metrics.renewals.labels("ok").inc()
        self.renewed += 1
        auth = answer.get("auth") if isinstance(answer, dict) else None
        granted = int((auth or {}).get("lease_duration") or 0)
        wanted = facts.period or facts.creation_ttl
        if wanted and 0 < granted < wanted:
            log.warning(
                "vault token renewal capped: it reaches its max TTL soon and then lapses",
                ttl=granted,
                wanted=wanted,
                origin=self.source.origin,
            )
        else:
            log.info("vault token renewed", ttl=granted, origin=self.source.origin)

    def _failed(self, exc: Exception, failures: int, delay: float) -> None:
        invalid = isinstance(exc, VaultPermissionDenied)
        log.error(
            "vault token invalid (expired or revoked)" if invalid else "vault token upkeep failed",
            error=str(exc) if isinstance(exc, VaultError) else f"{type(exc).__name__}: {exc}",
            origin=self.source.origin,
            failures=failures,
            retry_in=round(delay, 1),
        )


def build_token_keeper(
    vault: VaultClient, clock: Clock, registry: CollectorRegistry
) -> TokenKeeper:
    """The keeper of the token ``vault`` was built with (its VAULT_TOKEN or VAULT_TOKEN_FILE)."""
    source = vault.conn.source or EnvToken(vault.conn.token)
    return TokenKeeper(vault, source, clock, TokenMetrics(registry))
