"""Deployment health of one allocation, decided on the client as Nomad's client decides it.

Follows ``client/allocrunner/health_hook.go`` (``init``, ``getHealthParams``, ``watchHealth``)
and ``client/allochealth/tracker.go`` (``watchTaskEvents``, ``watchConsulEvents``,
``watchNomadEvents``, ``evaluateConsulChecks``, ``taskHealthState.event``):

- ``health_check = "manual"``: the client never sets health (the operator does).
- The deadline is ``HealthyDeadline`` from when the watch starts; when it passes first the
  allocation is unhealthy and each task that contributed gets an ``Alloc Unhealthy`` event.
- Tasks are healthy once every task (poststop and succeeded poststart excluded) has started
  and ``MinHealthyTime`` has passed since the last start was seen; a failed task, a finished
  main task or a failed allocation is unhealthy at once.
- With ``health_check = "checks"`` (the default) and Consul checks in the group, the checks are
  read every 500 ms; they count only when the registered check names match the job's (names
  and counts, so unregistered checks are never healthy) and none is warning/critical
  (``on_update`` ``ignore_warnings`` / ``ignore`` relax this); they must stay so for
  ``MinHealthyTime``, while the tasks are healthy.
- Nomad-provider checks (only when the group has no Consul checks: ``Tracker.Start`` watches
  Consul first): the client's check store is read every 500 ms (``watchNomadEvents``); the
  checks pass when every result is ``success``, a readiness check (``on_update = "ignore"``)
  may also be ``failure``, and ``pending`` never passes; an empty store passes.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from typing import Any

from devstack.godur import format_ns
from devstack.nomad.codec import NS, parse_rfc3339
from devstack.nomad.hooks import CheckView, ServiceChecks

log = logging.getLogger(__name__)

CHECK_LOOKUP_INTERVAL = 0.5  # tracker.go checkLookupInterval
TICK = 0.02  # how often task states are looked at (Nomad: on every alloc update)
ALLOC_UNHEALTHY = "Alloc Unhealthy"  # tracker.go AllocHealthEventSource


def _hook(task: dict[str, Any]) -> tuple[str, bool]:
    life = task.get("Lifecycle") or {}
    return str(life.get("Hook") or ""), bool(life.get("Sidecar"))


def _consul_services(services: list[dict[str, Any]] | None) -> list[dict[str, Any]]:
    return [s for s in services or [] if (s.get("Provider") or "consul") != "nomad"]


def _count(services: list[dict[str, Any]] | None, provider: str) -> int:
    """tracker.go countChecks."""
    return sum(
        len(s.get("Checks") or [])
        for s in services or []
        if ((s.get("Provider") or "consul") == "nomad") == (provider == "nomad")
    )


def evaluate_checks(group: dict[str, Any], registered: list[CheckView]) -> bool:
    """tracker.go evaluateConsulChecks: same check names and counts, and none failing."""
    expected: dict[str, int] = {}
    on_update: dict[str, str] = {}
    services = _consul_services(group.get("Services"))
    for task in group.get("Tasks") or []:
        services += _consul_services(task.get("Services"))
    for svc in services:
        for check in svc.get("Checks") or []:
            expected[check["Name"]] = expected.get(check["Name"], 0) + 1
            on_update[check["Name"]] = check.get("OnUpdate") or "require_healthy"
    got: dict[str, int] = {}
    for c in registered:
        got[c.name] = got.get(c.name, 0) + 1
    if expected != got:
        return False
    for c in registered:
        mode = on_update.get(c.name, "require_healthy")
        if c.status == "warning" and mode not in ("ignore_warnings", "ignore"):
            return False
        if c.status == "critical" and mode != "ignore":
            return False
    return True


def nomad_checks_pass(results: dict[str, dict[str, Any]] | None) -> bool:
    """tracker.go ``watchNomadEvents``: success passes; failure passes only in readiness
    mode; anything else (pending) fails; no results at all pass."""
    for res in (results or {}).values():
        if res["Status"] == "success":
            continue
        if res["Status"] == "failure" and res["Mode"] == "readiness":
            continue
        return False
    return True


class HealthWatch:
    """One allocation's health hook + tracker; ``report(healthy, events)`` is SetHealth."""

    def __init__(
        self,
        alloc: dict[str, Any],
        task_states: Callable[[], dict[str, dict[str, Any]]],
        current: Callable[[], dict[str, Any]],
        checks: ServiceChecks | None,
        report: Callable[[bool, dict[str, tuple[str, str]]], None],
        nomad_results: Callable[[], dict[str, dict[str, Any]] | None] = lambda: None,
    ) -> None:
        self.alloc = alloc
        self.group = next(g for g in alloc["Job"]["TaskGroups"] if g["Name"] == alloc["TaskGroup"])
        self.update = self.group.get("Update") or {}
        self.task_states = task_states
        self.current = current
        self.checks = checks
        self.report = report
        self.nomad_results = nomad_results
        self.tasks = {t["Name"]: t for t in self.group.get("Tasks") or []}
        services = list(self.group.get("Services") or [])
        for t in self.tasks.values():
            services += t.get("Services") or []
        self.consul_checks = _count(services, "consul")
        self.nomad_checks = _count(services, "nomad")
        self.use_checks = self.update.get("HealthCheck", "checks") == "checks"
        self.registered: list[CheckView] | None = None

    @staticmethod
    def wanted(alloc: dict[str, Any]) -> bool:
        """health_hook.go init: deployments watch unless the update block is empty or manual."""
        group = next(g for g in alloc["Job"]["TaskGroups"] if g["Name"] == alloc["TaskGroup"])
        update = group.get("Update") or {}
        return (
            bool(alloc.get("DeploymentID"))
            and bool(update.get("MaxParallel"))
            and (update.get("HealthCheck", "checks") != "manual")
        )

    async def run(self) -> None:
        loop = asyncio.get_running_loop()
        start = loop.time()
        deadline = start + (self.update.get("HealthyDeadline") or 0) / NS
        min_healthy = (self.update.get("MinHealthyTime") or 0) / NS
        wants_checks = self.use_checks and (self.consul_checks > 0 or self.nomad_checks > 0)
        all_started: float | None = None  # the latest StartedAt seen (wall clock)
        tasks_since: float | None = None  # loop time the task timer was armed
        checks_since: float | None = None
        next_lookup = loop.time() + CHECK_LOOKUP_INTERVAL
        while True:
            alloc = self.current()
            if alloc.get("DesiredStatus") in ("stop", "evict"):
                return  # AllocStoppedCh: no health is set
            now = loop.time()
            if now >= deadline:
                self.report(False, self._events())
                return
            verdict, latest = self._tasks(alloc)
            if verdict is False:
                failed_alloc = alloc.get("ClientStatus") == "failed" and latest is None
                self.report(False, {} if failed_alloc else self._events())
                return
            if latest != all_started:
                all_started = latest
                tasks_since = now if latest is not None else None
            tasks_ok = tasks_since is not None and now - tasks_since >= min_healthy
            if not wants_checks:
                if tasks_ok:
                    self.report(True, {})
                    return
            else:
                if not tasks_ok:
                    checks_since = None if verdict is None else checks_since
                if now >= next_lookup:
                    next_lookup = now + CHECK_LOOKUP_INTERVAL
                    passed = await self._checks_pass()
                    if passed is False:
                        checks_since = None
                    elif passed and checks_since is None:
                        checks_since = now
                if checks_since is not None and now - checks_since >= min_healthy:
                    if tasks_ok:
                        self.report(True, {})
                        return
                    checks_since = None  # "checks are healthy but tasks are unhealthy"
            await asyncio.sleep(TICK)

    def _tasks(self, alloc: dict[str, Any]) -> tuple[bool | None, float | None]:
        """watchTaskEvents: (False: unhealthy now, None: waiting), latest start time."""
        states = self.task_states()
        latest: float | None = 0.0
        for name, st in states.items():
            hook, sidecar = _hook(self.tasks.get(name, {}))
            if hook == "poststop":
                continue
            if hook == "poststart" and not sidecar and st["State"] == "dead" and not st["Failed"]:
                continue
            if st["Failed"] or (st.get("FinishedAt") and hook != "prestart"):
                return False, 0.0
            if st["State"] == "pending":
                latest = None
                break
            if latest is not None:
                latest = max(latest, _parse_time(st.get("StartedAt")))
        if alloc.get("ClientStatus") == "failed":
            return False, None
        return None, latest

    async def _checks_pass(self) -> bool | None:
        """True/False per the checks; None when the lookup failed (keep the last view)."""
        if self.consul_checks == 0:
            return nomad_checks_pass(self.nomad_results())
        if self.checks is None:
            self.registered = []
            return evaluate_checks(self.group, [])
        try:
            got = await self.checks.alloc_checks([self.alloc["ID"]])
        except Exception as exc:  # Consul unreachable: tracker logs and keeps waiting
            log.debug("check lookup failed for %s: %s", self.alloc["ID"], exc)
            return None if self.registered is None else evaluate_checks(self.group, self.registered)
        self.registered = list(got.get(self.alloc["ID"]) or [])
        return evaluate_checks(self.group, self.registered)

    def _events(self) -> dict[str, tuple[str, str]]:
        """Tracker.TaskEvents via taskHealthState.event: why each task is unhealthy."""
        hd = format_ns(int(self.update.get("HealthyDeadline") or 0))
        mht = int(self.update.get("MinHealthyTime") or 0)
        states = self.task_states()
        out: dict[str, tuple[str, str]] = {}
        for name, task in self.tasks.items():
            msg = self._event(task, states.get(name), hd, mht)
            if msg:
                out[name] = (ALLOC_UNHEALTHY, msg)
        return out

    def _event(self, task: dict[str, Any], st: dict[str, Any] | None, hd: str, mht: int) -> str:
        desired = sum(len(s.get("Checks") or []) for s in task.get("Services") or [])
        require_checks = desired > 0 and self.use_checks
        if st is not None:
            if st["Failed"]:
                return "Unhealthy because of failed task"
            if st["State"] == "pending":
                return f"Task not running by healthy_deadline of {hd}"
            if st["State"] == "dead" and (not task.get("Lifecycle") or _hook(task)[1]):
                return "Unhealthy because of dead task"
            if st["State"] == "running":
                # The tracker's context has no deadline (context.WithCancel), so event()
                # compares StartedAt+min_healthy_time with the zero time: always after it.
                return (
                    f"Task not running for min_healthy_time of {format_ns(mht)} "
                    f"by healthy_deadline of {hd}"
                )
        names = {c["Name"]: s for s in task.get("Services") or [] for c in s.get("Checks") or []}
        regs = [c for c in self.registered or [] if c.name in names]
        if regs:
            not_passing: list[str] = []
            passing = 0
            for c in regs:
                if c.status != "passing":
                    if c.service not in not_passing:
                        not_passing.append(c.service)
                else:
                    passing += 1
            if not_passing:
                return f"Services not healthy by deadline: {', '.join(not_passing)}"
            if passing != desired:
                return f"Only {passing} out of {desired} checks registered and passing"
        elif require_checks:
            return "Service checks not registered"
        return ""


def _parse_time(value: Any) -> float:
    """A TaskState time (RFC3339) -> epoch seconds; 0 when unset."""
    return parse_rfc3339(value) / NS if value else 0.0
