"""Nomad -> Consul service registration for the devstack, done the way a Nomad client does it.

A real Nomad client registers every `provider = "consul"` service of a running allocation with
its local Consul agent and removes it before it kills anything when the allocation stops (the
group's services first, each task's just before that task is killed), so clients stop picking
an instance while it still serves, for the shutdown delay. The controller verifies the
mesh through exactly those registrations (the TLS port, https checks), so the devstack must
produce them with Nomad's IDs and check translation: service ID
`_nomad-task-<alloc>-<task | group-<group>>-<service>-<port label>`, meta
`external-source = nomad`, address and port from the allocation's port mapping, intervals as
Go duration strings. It talks to Consul over its HTTP API only, so it works against the twin
and against a real agent alike. Script checks are not registered (Nomad would heartbeat them as
TTL checks from its script runner; the devstack has none): they are listed in `notes`.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import json
import logging
from collections.abc import Collection, Mapping
from typing import Any
from urllib.parse import urljoin

import aiohttp

from devstack import godur
from devstack.nomad.hooks import CheckView
from devstack.nomad.svcaddr import get_address as _address
from devstack.nomad.svcaddr import interpolate as _interpolate
from devstack.nomad.svcaddr import join_host_port as _join
from devstack.nomad.svcaddr import service_env as _env
from devstack.nomad.svcaddr import service_id
from devstack.nomad.svcaddr import workload_ports as _ports

log = logging.getLogger(__name__)
Reg = dict[str, Any]


def check_registration(
    check: dict[str, Any], svc_id: str, svc_name: str, host: str, port: int
) -> Reg | None:
    """createCheckReg: a Nomad check as Consul's AgentServiceCheck (None for script checks)."""
    kind = check.get("Type", "")
    reg: Reg = {"Name": check.get("Name") or f'service: "{svc_name}" check'}
    digest = json.dumps([svc_id, check], sort_keys=True, default=str).encode()
    reg["CheckID"] = "_nomad-check-" + hashlib.sha256(digest).hexdigest()
    if check.get("InitialStatus"):
        reg["Status"] = check["InitialStatus"]
    if check.get("Notes"):
        reg["Notes"] = check["Notes"]
    reg["Interval"] = godur.format_ns(int(check.get("Interval") or 0))
    reg["Timeout"] = godur.format_ns(int(check.get("Timeout") or 0))
    for key in ("SuccessBeforePassing", "FailuresBeforeCritical", "FailuresBeforeWarning"):
        if check.get(key):
            reg[key] = int(check[key])
    if kind == "http":
        base = f"{check.get('Protocol') or 'http'}://{_join(host, port)}"
        reg["HTTP"] = urljoin(base, check.get("Path") or "")
        reg["TLSSkipVerify"] = bool(check.get("TLSSkipVerify"))
        for key in ("TLSServerName", "Method", "Header", "Body"):
            if check.get(key):
                reg[key] = check[key]
    elif kind == "tcp":
        reg["TCP"] = _join(host, port)
    elif kind == "grpc":
        target = _join(host, port)
        reg["GRPC"] = f"{target}/{check['GRPCService']}" if check.get("GRPCService") else target
        reg["GRPCUseTLS"] = bool(check.get("GRPCUseTLS"))
        reg["TLSSkipVerify"] = bool(check.get("TLSSkipVerify"))
    else:
        return None
    return reg


def registrations(
    alloc: dict[str, Any], removed: Collection[str] = ()
) -> tuple[list[Reg], list[str]]:
    """Every Consul registration for an allocation, and notes on what was left out.

    `removed` names owners whose services are gone already: task names, "" for the group."""
    job = alloc.get("Job") or {}
    group = next(
        (g for g in job.get("TaskGroups") or [] if g.get("Name") == alloc.get("TaskGroup")), None
    )
    if group is None:
        return [], [f"alloc {alloc.get('ID')}: task group {alloc.get('TaskGroup')!r} not in job"]
    owners = [("", f"group-{group['Name']}", group.get("Services") or [])]
    owners += [(t["Name"], t["Name"], t.get("Services") or []) for t in group.get("Tasks") or []]
    canary = bool((alloc.get("DeploymentStatus") or {}).get("Canary"))
    regs: list[Reg] = []
    notes: list[str] = []
    for task, owner, services in owners:
        if task in removed:
            continue
        env = _env(alloc, group["Name"], task)
        ports = _ports(alloc, task)
        for svc in services:
            if (svc.get("Provider") or "consul") != "consul":
                continue
            default = "${BASE}"
            name = _interpolate(svc.get("Name") or default, env)
            label = svc.get("PortLabel") or ""
            sid = service_id(alloc["ID"], owner, name, label)
            custom = _interpolate(svc.get("Address") or "", env)
            try:
                address, port = _address(
                    alloc, svc.get("AddressMode") or "auto", label, ports, custom
                )
            except ValueError as e:
                notes.append(f"{sid}: {e}")
                continue
            tags = (svc.get("CanaryTags") if canary else None) or svc.get("Tags") or []
            meta = (svc.get("CanaryMeta") if canary else None) or svc.get("Meta") or {}
            reg: Reg = {
                "ID": sid,
                "Name": name,
                "Tags": [_interpolate(t, env) for t in tags],
                "Address": address,
                "Port": port,
                "Meta": {**{k: _interpolate(v, env) for k, v in meta.items()}},
                "EnableTagOverride": bool(svc.get("EnableTagOverride")),
                "Checks": [],
            }
            reg["Meta"]["external-source"] = "nomad"
            for key in ("Weights", "TaggedAddresses"):
                if svc.get(key):
                    reg[key] = svc[key]
            for check in svc.get("Checks") or []:
                mode = check.get("AddressMode") or ("auto" if custom else "host")
                check_label = check.get("PortLabel") or label
                try:
                    host, cport = _address(alloc, mode, check_label, ports, custom)
                except ValueError as e:
                    notes.append(f"{sid}: check {check.get('Name')!r}: {e}")
                    continue
                creg = check_registration(check, sid, name, host, cport)
                if creg is None:
                    notes.append(
                        f"{sid}: {check.get('Type')} check {check.get('Name')!r} not registered"
                    )
                else:
                    reg["Checks"].append(creg)
            regs.append(reg)
    return regs, notes


class ConsulRegistrar:
    """AllocHooks that keep Consul's agent in step with the running allocations.

    Failed calls (Consul paused, 5xx) are retried every `retry_interval` seconds until they
    succeed or are superseded, as Nomad's sync loop does; `close()` stops the retries.
    """

    def __init__(
        self, consul_addr: str, *, token: str | None = None, retry_interval: float = 1.0
    ) -> None:
        base = consul_addr if "://" in consul_addr else f"http://{consul_addr}"
        self._base = base.rstrip("/")
        self._headers = {"X-Consul-Token": token} if token else {}
        self._retry_interval = retry_interval
        self._session: aiohttp.ClientSession | None = None
        self._pending: dict[str, list[Reg] | None] = {}  # alloc ID -> wanted (None: removed)
        self._retry_task: asyncio.Task[None] | None = None
        self._removed: dict[str, set[str]] = {}  # alloc ID -> owners deregistered before a kill
        self.notes: list[str] = []

    async def on_alloc_running(self, alloc: dict[str, Any]) -> None:
        regs, notes = registrations(alloc)
        for note in notes:
            log.info("consul registration skipped: %s", note)
        self.notes.extend(notes)
        await self._apply(alloc["ID"], regs)

    async def on_alloc_stopping(self, alloc: dict[str, Any], task: str | None) -> None:
        removed = self._removed.setdefault(alloc["ID"], set())
        removed.add(task or "")
        regs, _ = registrations(alloc, removed)
        await self._apply(alloc["ID"], regs)

    async def on_alloc_stopped(self, alloc: dict[str, Any]) -> None:
        self._removed.pop(alloc["ID"], None)
        await self._apply(alloc["ID"], None)

    async def alloc_checks(self, alloc_ids: Collection[str]) -> Mapping[str, list[CheckView]]:
        """The Nomad twin's ``ServiceChecks``: the checks Consul's agent holds per allocation.

        Nomad's client reads them from its agent (``command/agent/consul/service_client.go``
        ``AllocRegistrations``: ``/v1/agent/services`` + ``/v1/agent/checks``, filtered by the
        ``_nomad-task-<alloc>-`` IDs it made). One read serves every tracked allocation; an
        error propagates so the tracker keeps its last view, as ``watchConsulEvents`` does."""
        session = self._session or aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=10))
        self._session = session
        async with session.get(f"{self._base}/v1/agent/checks", headers=self._headers) as r:
            r.raise_for_status()
            checks = await r.json()
        wanted = {f"_nomad-task-{a}-": a for a in alloc_ids}
        out: dict[str, list[CheckView]] = {a: [] for a in alloc_ids}
        for check in checks.values():
            sid = str(check.get("ServiceID") or "")
            if not sid.startswith("_nomad-task-"):
                continue
            alloc = wanted.get(sid[: len("_nomad-task-") + 37])
            if alloc is not None:
                out[alloc].append(
                    CheckView(str(check.get("ServiceName") or ""), check["Name"], check["Status"])
                )
        return out

    async def close(self) -> None:
        if self._retry_task is not None:
            self._retry_task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._retry_task
        if self._session is not None:
            await self._session.close()

    async def _apply(self, alloc_id: str, regs: list[Reg] | None) -> None:
        self._pending[alloc_id] = regs
        try:
            await self._sync(alloc_id, regs)
        except (aiohttp.ClientError, OSError, TimeoutError) as e:
            log.warning("consul sync of alloc %s failed, will retry: %s", alloc_id, e)
            if self._retry_task is None or self._retry_task.done():
                self._retry_task = asyncio.get_running_loop().create_task(self._retry())
            return
        if self._pending.get(alloc_id, regs) is regs:
            self._pending.pop(alloc_id, None)

    async def _retry(self) -> None:
        while self._pending:
            await asyncio.sleep(self._retry_interval)
            for alloc_id, regs in list(self._pending.items()):
                try:
                    await self._sync(alloc_id, regs)
                except (aiohttp.ClientError, OSError, TimeoutError):
                    continue
                if self._pending.get(alloc_id, regs) is regs:
                    self._pending.pop(alloc_id, None)

    async def _sync(self, alloc_id: str, regs: list[Reg] | None) -> None:
        session = self._session or aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=10))
        self._session = session
        for reg in regs or []:
            url = f"{self._base}/v1/agent/service/register?replace-existing-checks=true"
            async with session.put(url, data=json.dumps(reg), headers=self._headers) as r:
                if r.status >= 500:
                    raise aiohttp.ClientResponseError(r.request_info, (), status=r.status)
                if r.status != 200:
                    log.error("consul rejected %s: %s %s", reg["ID"], r.status, await r.text())
        wanted = {reg["ID"] for reg in regs or []}
        prefix = f"_nomad-task-{alloc_id}-"
        async with session.get(f"{self._base}/v1/agent/services", headers=self._headers) as r:
            r.raise_for_status()
            current = await r.json()
        for sid in current:
            if sid.startswith(prefix) and sid not in wanted:
                url = f"{self._base}/v1/agent/service/deregister/{sid}"
                async with session.put(url, headers=self._headers) as r:
                    if r.status >= 500:
                        raise aiohttp.ClientResponseError(r.request_info, (), status=r.status)
