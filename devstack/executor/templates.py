"""A task's templates, the way Nomad's template hook runs them around the task.

First render happens before the task starts and blocks it: a dependency that cannot be fetched
(Vault sealed or away, permission denied) is retried with backoff, and while it is missing the
task shows `Template` events "Missing: <dependency>" (at most one per event interval); a
dependency consul-template blocks on (a `nomadVar` path that does not exist yet) is waited for
without spending retries; a
template that cannot render at all (unknown function, bad syntax), or a fetch that is still
failing after the retries, fails the task with "Template failed: ...".

Afterwards every template re-renders when its earliest dependency needs refreshing (pkiCert at
90 % of the leaf's life, a secret at 0.90 +/- 0.05, Consul and Nomad reads every poll
interval); a changed file triggers its ChangeMode
after a random splay, batched like Nomad: restart wins over signals, each distinct signal is
sent once, noop only rewrites the file. `once` templates are never watched.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import re
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from devstack.executor.clock import Clock, SystemClock
from devstack.nomad.codec import NS
from devstack.template import (
    MissingDependency,
    NomadTarget,
    RenderContext,
    TemplateError,
    TemplateOutcome,
    VaultTarget,
    render_nomad_template_async,
)

log = logging.getLogger(__name__)

# A failed dependency fetch inside a render: retried, reported as missing.
_FETCH = re.compile(r"error calling \w+: ((?:vault|consul|health|kv|nomad)\.[\w.]+\(.*?\)):")
MIN_GAP = 0.05  # never re-render in a tighter loop than this


class TemplateFailed(Exception):
    """The template cannot be rendered; the task must fail."""


@dataclass(frozen=True)
class RetryPolicy:
    """Nomad client `template.vault_retry` defaults: 12 attempts, 250ms doubling up to 1m."""

    attempts: int = 12
    backoff: float = 0.25
    max_backoff: float = 60.0

    def delay(self, attempt: int) -> float:
        return float(min(self.max_backoff, self.backoff * (2**attempt)))


@dataclass
class TemplateSettings:
    vault: VaultTarget | None = None
    consul_addr: str | None = None
    consul_poll: float | None = None  # re-query Consul this often (stands in for blocking queries)
    nomad: NomadTarget | None = None  # the server's API and the task's workload identity
    nomad_poll: float | None = None  # re-read Nomad Variables this often (same stand-in)
    retry: RetryPolicy = field(default_factory=RetryPolicy)
    event_interval: float = 3.0  # Nomad client `max_template_event_rate`
    clock: Clock = field(default_factory=SystemClock)
    rng: random.Random = field(default_factory=random.Random)


@dataclass
class ChangeHandlers:
    emit: Callable[..., None]  # emit(type, message, **fields)
    restart: Callable[[str], Awaitable[None]]
    signal: Callable[[str], Awaitable[None]]
    fail: Callable[[str], Awaitable[None]]


def dependency_of(err: TemplateError) -> str | None:
    m = _FETCH.search(str(err))
    return m.group(1) if m else None


class TemplateManager:
    def __init__(
        self,
        templates: list[dict[str, Any]],
        *,
        task_dir: Path,
        alloc_dir: Path,
        env: Mapping[str, str],
        settings: TemplateSettings,
        handlers: ChangeHandlers,
    ) -> None:
        self.templates = templates
        self.task_dir = task_dir
        self.alloc_dir = alloc_dir
        self.settings = settings
        self.handlers = handlers
        self.ctx = RenderContext(
            env=dict(env),
            vault=settings.vault,
            consul_addr=settings.consul_addr,
            consul_poll=settings.consul_poll,
            nomad=settings.nomad,
            nomad_poll=settings.nomad_poll,
            clock=settings.clock.now,
            rng=settings.rng,
        )
        self.outcomes: list[TemplateOutcome | None] = [None] * len(templates)
        self._watchers: list[asyncio.Task[None]] = []
        self._pending: set[int] = set()
        self._applier: asyncio.Task[None] | None = None
        self._last_event = float("-inf")
        self._closed = False
        self._closing = asyncio.Event()
        self._first_done = False

    @property
    def env_vars(self) -> dict[str, str]:
        """Variables from `env = true` templates, in template order."""
        out: dict[str, str] = {}
        for outcome in self.outcomes:
            if outcome is not None:
                out.update(outcome.env)
        return out

    # ---- rendering -------------------------------------------------------------------------
    async def _render_once(self, index: int) -> TemplateOutcome:
        return await render_nomad_template_async(
            self.templates[index],
            self.ctx,
            task_root=str(self.task_dir),
            sandbox_dir=str(self.alloc_dir),
        )

    async def _render(self, index: int) -> TemplateOutcome:
        """Render with dependency retries; raises TemplateFailed when it cannot succeed."""
        retry = self.settings.retry
        attempt = waited = 0
        while True:
            try:
                outcome = await self._render_once(index)
            except MissingDependency as err:
                # consul-template blocks on it without spending retries: wait, look again.
                self._missing(dependency_of(err) or "template dependency", err)
                await self._sleep(min(retry.delay(waited), self._missing_poll()))
                waited += 1
                if self._closed:
                    raise TemplateFailed("task is being stopped") from None
                continue
            except TemplateError as err:
                dep = dependency_of(err)
                if dep is None or attempt >= retry.attempts:
                    raise TemplateFailed(str(err)) from err
                log.info("template %d: %s (retry %d)", index, err, attempt + 1)
                self._missing(dep, err)
                await self._sleep(retry.delay(attempt))
                attempt += 1
                if self._closed:
                    raise TemplateFailed("task is being stopped") from None
                continue
            except OSError as err:
                raise TemplateFailed(f"template: {err}") from err
            self.outcomes[index] = outcome
            return outcome

    def _missing_poll(self) -> float:
        return self.settings.nomad_poll or self.settings.retry.max_backoff

    async def _sleep(self, seconds: float) -> None:
        """Sleep on the clock, but wake up at once when the manager is closed."""
        sleeper = asyncio.ensure_future(self.settings.clock.sleep(seconds))
        closer = asyncio.ensure_future(self._closing.wait())
        try:
            await asyncio.wait([sleeper, closer], return_when=asyncio.FIRST_COMPLETED)
        finally:
            for fut in (sleeper, closer):
                fut.cancel()

    def _missing(self, dep: str, err: TemplateError) -> None:
        if self._first_done:  # like Nomad, only a blocked first render reports what it misses
            return
        now = self.settings.clock.now()
        if now - self._last_event < self.settings.event_interval:
            return
        self._last_event = now
        self.handlers.emit("Template", f"Missing: {dep}", template_error=str(err))

    async def first_render(self) -> None:
        """Render every template before the task starts; raises TemplateFailed."""
        for index in range(len(self.templates)):
            await self._render(index)
        self._first_done = True

    async def render_all(self) -> None:
        """Restart with RenderTemplates: render again; changes need no change_mode."""
        for index in range(len(self.templates)):
            await self._render(index)

    # ---- watching --------------------------------------------------------------------------
    def watch(self) -> None:
        if self._watchers or self._closed:
            return
        loop = asyncio.get_running_loop()
        for index, tmpl in enumerate(self.templates):
            if not tmpl.get("Once"):
                self._watchers.append(loop.create_task(self._watch(index)))

    async def _watch(self, index: int) -> None:
        clock = self.settings.clock
        while not self._closed:
            outcome = self.outcomes[index]
            due = outcome.result.next_refresh if outcome is not None else clock.now()
            if due is None:
                return
            await self._sleep(max(MIN_GAP, due - clock.now() + MIN_GAP))
            if self._closed:
                return
            try:
                outcome = await self._render(index)
            except TemplateFailed as err:
                await self.handlers.fail(f"Template failed: {err}")
                return
            if outcome.changed:
                self._changed(index)

    def _changed(self, index: int) -> None:
        self._pending.add(index)
        if self._applier is None or self._applier.done():
            self._applier = asyncio.get_running_loop().create_task(self._apply())

    async def _apply(self) -> None:
        splay = max((int(self.templates[i].get("Splay") or 0) for i in self._pending), default=0)
        await self._sleep(self.settings.rng.uniform(0, splay / NS) if splay else 0)
        if self._closed:
            return
        changed, self._pending = sorted(self._pending), set()
        modes = [str(self.templates[i].get("ChangeMode") or "restart") for i in changed]
        if "restart" in modes:
            await self.handlers.restart("Template with change_mode restart re-rendered")
            return
        signals: list[str] = []
        for i, mode in zip(changed, modes, strict=True):
            sig = str(self.templates[i].get("ChangeSignal") or "SIGHUP").upper()
            if mode == "signal" and sig not in signals:
                signals.append(sig)
        for sig in signals:
            await self.handlers.signal(sig)

    async def close(self) -> None:
        self._closed = True
        self._closing.set()
        tasks = [*self._watchers, *([self._applier] if self._applier else [])]
        current = asyncio.current_task()
        for task in tasks:
            if task is not current:
                task.cancel()
        for task in tasks:
            if task is not current:
                with contextlib.suppress(BaseException):
                    await task
        self._watchers = []
