"""The executor's template manager on a manual clock: when it re-renders, how it batches change
modes (restart wins, each signal once, noop, once, splay), and how it classifies failures."""

from __future__ import annotations

import asyncio
import random
from pathlib import Path
from typing import Any

import pytest

from devstack.executor.clock import ManualClock
from devstack.executor.templates import (
    ChangeHandlers,
    RetryPolicy,
    TemplateFailed,
    TemplateManager,
    TemplateSettings,
    dependency_of,
)
from devstack.template import (
    Dependency,
    MissingDependency,
    RenderResult,
    TemplateError,
    TemplateOutcome,
)

pytestmark = pytest.mark.timeout(10)
NS = 1_000_000_000


class Recorder:
    def __init__(self) -> None:
        self.calls: list[tuple[str, str]] = []
        self.events: list[tuple[str, str, dict[str, Any]]] = []

    def handlers(self) -> ChangeHandlers:
        async def restart(reason: str) -> None:
            self.calls.append(("restart", reason))

        async def signal(name: str) -> None:
            self.calls.append(("signal", name))

        async def fail(message: str) -> None:
            self.calls.append(("fail", message))

        def emit(type_: str, message: str = "", **fields: Any) -> None:
            self.events.append((type_, message, fields))

        return ChangeHandlers(emit=emit, restart=restart, signal=signal, fail=fail)


class FakeRenders(TemplateManager):
    """Renders come from a script instead of Vault: (changed, seconds until next refresh)."""

    def __init__(self, *args: Any, script: dict[int, list[Any]], **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.script = script
        self.renders: list[tuple[int, float]] = []

    async def _render_once(self, index: int) -> TemplateOutcome:
        now = self.settings.clock.now()
        self.renders.append((index, now))
        step = self.script[index].pop(0) if len(self.script[index]) > 1 else self.script[index][0]
        if isinstance(step, Exception):
            raise step
        changed, refresh_in = step
        deps = [Dependency("vault.pki", f"t{index}", now + refresh_in)] if refresh_in else []
        return TemplateOutcome(f"/dest/{index}", RenderResult("x", deps), changed)


def manager(
    templates: list[dict[str, Any]], script: dict[int, list[Any]], clock: ManualClock, rec: Recorder
) -> FakeRenders:
    return FakeRenders(
        templates,
        task_dir=Path("/nonexistent/task"),
        alloc_dir=Path("/nonexistent"),
        env={},
        settings=TemplateSettings(
            retry=RetryPolicy(attempts=3, backoff=1, max_backoff=2),
            event_interval=3,
            clock=clock,
            rng=random.Random(7),
        ),
        handlers=rec.handlers(),
        script=script,
    )


def tmpl(mode: str, signal: str = "", splay: int = 0, **extra: Any) -> dict[str, Any]:
    return {"ChangeMode": mode, "ChangeSignal": signal, "Splay": splay, **extra}


async def settle() -> None:
    for _ in range(20):
        await asyncio.sleep(0)


async def test_rerender_at_refresh_time_and_restart_wins_over_signals() -> None:
    clock, rec = ManualClock(1000.0), Recorder()
    templates = [tmpl("signal", "SIGHUP"), tmpl("restart"), tmpl("signal", "SIGUSR1")]
    script: dict[int, list[Any]] = {i: [(True, 60), (True, 60)] for i in range(3)}
    mgr = manager(templates, script, clock, rec)
    await mgr.first_render()
    assert [i for i, _ in mgr.renders] == [0, 1, 2]
    mgr.watch()
    await settle()
    await clock.advance(59)
    await settle()
    assert len(mgr.renders) == 3  # nothing is due before its refresh time
    await clock.advance(2)
    await settle()
    assert sorted(i for i, _ in mgr.renders[3:]) == [0, 1, 2]
    assert rec.calls == [("restart", "Template with change_mode restart re-rendered")]
    await mgr.close()


async def test_each_distinct_signal_once_noop_nothing_once_never_watched() -> None:
    clock, rec = ManualClock(0.0), Recorder()
    templates = [
        tmpl("signal", "SIGHUP"),
        tmpl("signal", "SIGHUP"),
        tmpl("signal", "SIGUSR1"),
        tmpl("noop"),
        tmpl("restart", Once=True),
    ]
    script: dict[int, list[Any]] = {i: [(True, 10)] for i in range(5)}
    mgr = manager(templates, script, clock, rec)
    await mgr.first_render()
    mgr.watch()
    await settle()
    await clock.advance(11)
    await settle()
    assert 4 not in [i for i, _ in mgr.renders[5:]]
    assert rec.calls == [("signal", "SIGHUP"), ("signal", "SIGUSR1")]
    await mgr.close()


async def test_unchanged_render_triggers_nothing_and_splay_delays_the_action() -> None:
    clock, rec = ManualClock(0.0), Recorder()
    templates = [tmpl("signal", "SIGHUP", splay=5 * NS), tmpl("restart")]
    script: dict[int, list[Any]] = {0: [(True, 10), (True, 100)], 1: [(True, 10), (False, 100)]}
    mgr = manager(templates, script, clock, rec)
    await mgr.first_render()
    mgr.watch()
    await settle()
    await clock.advance(10.1)
    await settle()
    assert rec.calls == []  # waiting out a random splay in [0, 5s)
    await clock.advance(5)
    await settle()
    assert rec.calls == [("signal", "SIGHUP")]
    await mgr.close()


async def test_missing_dependency_is_retried_and_reported_then_fails() -> None:
    clock, rec = ManualClock(0.0), Recorder()
    err = TemplateError(
        "template: secrets/x.pem:1: error calling pkiCert: "
        "vault.pki(pki_int/issue/mesh->/a/secrets/x.pem): Code: 503. Errors: Vault is sealed"
    )
    mgr = manager([tmpl("noop")], {0: [err]}, clock, rec)
    first = asyncio.ensure_future(mgr.first_render())
    for _ in range(4):
        await settle()
        await clock.advance(2)
    await settle()
    with pytest.raises(TemplateFailed, match="Vault is sealed"):
        await first
    assert len(mgr.renders) == 4  # the first try and three retries
    missing = [m for t, m, _ in rec.events if t == "Template"]
    assert missing[0] == "Missing: vault.pki(pki_int/issue/mesh->/a/secrets/x.pem)"
    assert len(missing) == 2  # at most one event per 3 s of missing
    assert rec.events[0][2]["template_error"] == str(err)


async def test_a_path_that_does_not_exist_yet_is_waited_for_without_spending_retries() -> None:
    clock, rec = ManualClock(0.0), Recorder()
    missing = MissingDependency(
        "template: secrets/env:1: error calling nomadVar: "
        "nomad.var.block(nomad/jobs/app@default.global): variable not found"
    )
    script: dict[int, list[Any]] = {0: [missing] * 6 + [(True, 0)]}
    mgr = manager([tmpl("restart")], script, clock, rec)
    first = asyncio.ensure_future(mgr.first_render())
    for _ in range(8):
        await settle()
        await clock.advance(2)
    await settle()
    await first  # six misses, more than the three retries a failing fetch gets
    assert len(mgr.renders) == 7
    assert mgr.outcomes[0] is not None
    missing_events = [m for t, m, _ in rec.events if t == "Template"]
    assert missing_events[0] == "Missing: nomad.var.block(nomad/jobs/app@default.global)"
    assert rec.calls == []


async def test_a_template_that_cannot_work_fails_at_once() -> None:
    clock, rec = ManualClock(0.0), Recorder()
    err = TemplateError('template: local/x:1: function "nosuch" not defined')
    mgr = manager([tmpl("noop")], {0: [err]}, clock, rec)
    with pytest.raises(TemplateFailed, match="not defined"):
        await mgr.first_render()
    assert rec.events == []
    assert len(mgr.renders) == 1


async def test_rerender_failure_fails_the_task() -> None:
    clock, rec = ManualClock(0.0), Recorder()
    bad = TemplateError("template: x:1: error calling pkiCert: not k=v pair 'x'")
    mgr = manager([tmpl("signal", "SIGHUP")], {0: [(True, 5), bad]}, clock, rec)
    await mgr.first_render()
    mgr.watch()
    await settle()
    await clock.advance(6)
    await settle()
    assert rec.calls == [
        ("fail", "Template failed: template: x:1: error calling pkiCert: not k=v pair 'x'")
    ]
    await mgr.close()


def test_dependency_of_reads_the_failed_fetch() -> None:
    consul = TemplateError(
        "template: t:1: error calling service: health.service(web|passing): "
        "ConnectionError: refused"
    )
    assert dependency_of(consul) == "health.service(web|passing)"
    nomad = TemplateError(
        "template: t:1: error calling nomadVar: nomad.var.block(nomad/jobs/x@default.global): "
        "Unexpected response code: 403 (Permission denied)"
    )
    assert dependency_of(nomad) == "nomad.var.block(nomad/jobs/x@default.global)"
    assert dependency_of(TemplateError("template: t:1: wrong number of args for env")) is None
