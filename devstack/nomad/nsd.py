"""Nomad-native service discovery (``provider = "nomad"``): the catalog and the client checks.

Nomad keeps these services in its own state store instead of Consul, and the client runs their
checks itself. The twin does both as Nomad 1.10 does, so a mesh on a cluster without Consul
can be verified against the same answers:

- Registration (``client/serviceregistration/nsd/nsd.go``
  ``generateNomadServiceRegistration``): one ``ServiceRegistration`` per service, ID
  ``_nomad-task-<alloc>-<task | group-<group>>-<service>-<port label>``, address and port from
  ``GetAddress``, ``CanaryTags`` for a canary, the node's ID and datacenter, the job's
  namespace. One workload (the group's services, or one task's) is one upsert
  (``ServiceRegistration.Upsert``; ``upsertServiceRegistrationTxn`` skips an unchanged
  registration and keeps ``CreateIndex``); each removal is one ``DeleteByID``.
- Events (``nomad/state/events.go``): topic ``Service``, types ``ServiceRegistration`` and
  ``ServiceDeregistration``, key the registration ID, filter keys JobID and service name,
  payload ``{"Service": registration}``.
- Checks (``client/allocrunner/checks_hook.go``, ``client/serviceregistration/checks``): each
  check of a Nomad service of the group (group and task services) gets a pending stub
  (``nomad: waiting to run``) when the allocation starts, a first probe after half its
  interval and one per interval after that; results are kept per allocation by check ID
  (``structs.NomadCheckID``) and purged when the allocation is killed (``PreKill``).
"""

from __future__ import annotations

import asyncio
import contextlib
import copy
import errno
import hashlib
import logging
import struct
import time
from typing import Any
from urllib.parse import urljoin

import aiohttp

from devstack.nomad.ctx import VERSION
from devstack.nomad.state import NomadState
from devstack.nomad.svcaddr import (
    get_address,
    interpolate,
    join_host_port,
    service_env,
    service_id,
    workload_ports,
)

log = logging.getLogger(__name__)

# helper/useragent.String(): "Nomad/<version> (+<projectURL>; <go runtime>)"; 1.10.5 is built
# with the Go of its .go-version.
USER_AGENT = f"Nomad/{VERSION} (+https://developer.hashicorp.com/nomad/; go1.24.7)"
OUTPUT_SIZE_LIMIT = 3 * 1024  # checks/client.go outputSizeLimit
WAITING = "nomad: waiting to run"  # checks/result.go Stub
TABLE = "service_registrations"
NS = 1_000_000_000


def nomad_check_id(alloc_id: str, group: str, check: dict[str, Any]) -> str:
    """structs/checks.go ``NomadCheckID``: md5 over the check's identity fields, in order;
    durations as little-endian int64 nanoseconds (``hashDuration``)."""
    h = hashlib.md5(usedforsecurity=False)
    for part in (
        alloc_id,
        group,
        check.get("TaskName") or "",
        check.get("Name") or "",
        check.get("Type") or "",
        check.get("PortLabel") or "",
        check.get("OnUpdate") or "",
        check.get("AddressMode") or "",
    ):
        h.update(part.encode())
    h.update(struct.pack("<q", int(check.get("Interval") or 0)))
    h.update(struct.pack("<q", int(check.get("Timeout") or 0)))
    for part in (check.get("Protocol") or "", check.get("Path") or "", check.get("Method") or ""):
        h.update(part.encode())
    h.update(b"true" if check.get("TLSSkipVerify") else b"false")
    return h.hexdigest()


def check_mode(check: dict[str, Any]) -> str:
    """structs/checks.go ``GetCheckMode``: ``on_update = "ignore"`` makes a readiness check."""
    return "readiness" if check.get("OnUpdate") == "ignore" else "healthiness"


def result(
    cid: str,
    mode: str,
    status: str,
    output: str,
    group: str,
    task: str,
    service: str,
    check: str,
    status_code: int = 0,
) -> dict[str, Any]:
    """``structs.CheckQueryResult`` in field order (StatusCode and Task are omitempty)."""
    out: dict[str, Any] = {"ID": cid, "Mode": mode, "Status": status}
    if status_code:
        out["StatusCode"] = status_code
    out |= {"Output": output, "Timestamp": int(time.time()), "Group": group}
    if task:
        out["Task"] = task
    out |= {"Service": service, "Check": check}
    return out


def _group_of(alloc: dict[str, Any]) -> dict[str, Any] | None:
    job = alloc.get("Job") or {}
    return next((g for g in job.get("TaskGroups") or [] if g["Name"] == alloc["TaskGroup"]), None)


def _nomad(services: list[dict[str, Any]] | None) -> list[dict[str, Any]]:
    return [s for s in services or [] if s.get("Provider") == "nomad"]


def _workloads(alloc: dict[str, Any]) -> list[tuple[str, str, list[dict[str, Any]]]]:
    """(task or "" for the group, owner in the service ID, its Nomad services)."""
    group = _group_of(alloc)
    if group is None:
        return []
    out = [("", f"group-{group['Name']}", _nomad(group.get("Services")))]
    out += [(t["Name"], t["Name"], _nomad(t.get("Services"))) for t in group.get("Tasks") or []]
    return [w for w in out if w[2]]


def _go_dial_error(exc: BaseException, addr: str) -> str:
    """A connect failure as Go's net.OpError prints it."""
    os_err = getattr(exc, "os_error", exc)
    code = getattr(os_err, "errno", None)
    if code == errno.ECONNREFUSED:
        return f"dial tcp {addr}: connect: connection refused"
    if code == errno.EHOSTUNREACH:
        return f"dial tcp {addr}: connect: no route to host"
    return f"dial tcp {addr}: {getattr(os_err, 'strerror', None) or os_err}"


class NativeServices:
    """The twin's service registration table and the client's check runners."""

    def __init__(self, state: NomadState, datacenters: dict[str, str]) -> None:
        self.state = state
        self.datacenters = datacenters  # node ID -> datacenter
        self.results: dict[str, dict[str, dict[str, Any]]] = {}  # alloc -> check ID -> result
        self._observers: dict[str, dict[str, asyncio.Task[None]]] = {}
        self._session: aiohttp.ClientSession | None = None

    # ---- catalog --------------------------------------------------------------------------
    def registrations(self, alloc: dict[str, Any], task: str) -> list[dict[str, Any]]:
        """``generateNomadServiceRegistration`` for one workload (the group's: task "")."""
        canary = bool((alloc.get("DeploymentStatus") or {}).get("Canary"))
        out: list[dict[str, Any]] = []
        for wtask, owner, services in _workloads(alloc):
            if wtask != task:
                continue
            env = service_env(alloc, alloc["TaskGroup"], task)
            ports = workload_ports(alloc, task)
            for svc in services:
                name = interpolate(svc.get("Name") or "", env)
                label = svc.get("PortLabel") or ""
                custom = interpolate(svc.get("Address") or "", env)
                try:
                    address, port = get_address(
                        alloc, svc.get("AddressMode") or "auto", label, ports, custom
                    )
                except ValueError as exc:
                    # RegisterWorkload fails as a whole: nothing of this workload is registered.
                    log.warning("unable to get address for service %q: %s", name, exc)
                    return []
                if address in ("0.0.0.0", "::"):  # ServiceRegistration.Validate (ipaddr.IsAny)
                    log.warning("invalid service registration address for %q", name)
                    return []
                tags = (svc.get("CanaryTags") if canary else None) or svc.get("Tags") or []
                out.append(
                    {
                        "ID": service_id(alloc["ID"], owner, name, label),
                        "ServiceName": name,
                        "Namespace": alloc["Namespace"],
                        "NodeID": alloc["NodeID"],
                        "Datacenter": self.datacenters.get(alloc["NodeID"], "dc1"),
                        "JobID": alloc["JobID"],
                        "AllocID": alloc["ID"],
                        "Tags": [interpolate(t, env) for t in tags],
                        "Address": address,
                        "Port": port,
                        "CreateIndex": 0,
                        "ModifyIndex": 0,
                    }
                )
        return out

    def upsert(self, regs: list[dict[str, Any]]) -> None:
        """``UpsertServiceRegistrations``: one transaction; unchanged entries are skipped and an
        upsert that changes nothing writes nothing."""
        changed = [r for r in regs if not self._unchanged(r)]
        if not changed:
            return
        with self.state.txn("ServiceRegistration") as tx:
            for reg in changed:
                key = (reg["Namespace"], reg["ID"])
                old = self.state.services.get(key)
                stored = {
                    **reg,
                    "CreateIndex": old["CreateIndex"] if old else tx.index,
                    "ModifyIndex": tx.index,
                }
                tx.put_service(stored)

    def _unchanged(self, reg: dict[str, Any]) -> bool:
        """``ServiceRegistration.Equal``: every field but the indexes, tags as a set."""
        old = self.state.services.get((reg["Namespace"], reg["ID"]))
        if old is None:
            return False
        skip = ("Tags", "CreateIndex", "ModifyIndex")
        same = all(old[k] == reg[k] for k in reg if k not in skip)
        return same and set(old["Tags"] or []) == set(reg["Tags"] or [])

    def delete(self, namespace: str, sid: str) -> int:
        """``DeleteServiceRegistrationByID``: one transaction; the raft index it wrote."""
        if (namespace, sid) not in self.state.services:
            raise LookupError("service registration not found")
        with self.state.txn("ServiceDeregistration") as tx:
            tx.delete_service((namespace, sid))
        return tx.index

    def register_alloc(self, alloc: dict[str, Any]) -> None:
        """The group's services, then each task's (each workload is its own upsert)."""
        for task, _, _ in _workloads(alloc):
            self.upsert(self.registrations(alloc, task))

    def update_alloc(self, alloc: dict[str, Any]) -> None:
        """``UpdateWorkload`` for an in-place update: register the new set, remove what left."""
        wanted = set()
        for task, _, _ in _workloads(alloc):
            regs = self.registrations(alloc, task)
            wanted |= {r["ID"] for r in regs}
            self.upsert(regs)
        for ns, sid in list(self._of_alloc(alloc["ID"])):
            if sid not in wanted:
                self.delete(ns, sid)
        self._update_checks(alloc)

    def deregister(self, alloc: dict[str, Any], task: str | None) -> None:
        """``RemoveWorkload``: the group's services (``task`` None) or one task's, by the IDs
        the workload's services make; one already gone is only logged, as nsd.go does."""
        for reg in self.registrations(alloc, task or ""):
            if (reg["Namespace"], reg["ID"]) in self.state.services:
                self.delete(reg["Namespace"], reg["ID"])
            else:
                log.info("attempted to delete non-existent service registration %s", reg["ID"])

    def deregister_all(self, alloc_id: str) -> None:
        for ns, sid in list(self._of_alloc(alloc_id)):
            self.delete(ns, sid)

    def _of_alloc(self, alloc_id: str) -> list[tuple[str, str]]:
        return sorted(k for k, r in self.state.services.items() if r["AllocID"] == alloc_id)

    # ---- checks ---------------------------------------------------------------------------
    def _check_specs(self, alloc: dict[str, Any]) -> dict[str, tuple[dict[str, Any], ...]]:
        """Check ID -> (service, check) for every check of the group's Nomad services,
        interpolated as ``taskenv.InterpolateServices`` does for the checks hook."""
        out: dict[str, Any] = {}
        for task, _, services in _workloads(alloc):
            env = service_env(alloc, alloc["TaskGroup"], task)
            for svc in services:
                svc = {**svc, "Name": interpolate(svc.get("Name") or "", env)}
                svc["Address"] = interpolate(svc.get("Address") or "", env)
                for check in svc.get("Checks") or []:
                    cid = nomad_check_id(alloc["ID"], alloc["TaskGroup"], check)
                    out[cid] = (svc, check)
        return out

    def start_checks(self, alloc: dict[str, Any]) -> None:
        """checks_hook.go ``Prerun`` → ``observe``: a pending stub, then the observer."""
        specs = self._check_specs(alloc)
        if not specs:
            return
        aid = alloc["ID"]
        observers = self._observers.setdefault(aid, {})
        loop = asyncio.get_running_loop()
        for cid, (svc, check) in specs.items():
            if cid in observers:
                continue
            stub = result(
                cid,
                check_mode(check),
                "pending",
                WAITING,
                alloc["Name"],
                svc.get("TaskName") or "",
                svc["Name"],
                check.get("Name") or "",
            )
            self._set(aid, stub)
            observers[cid] = loop.create_task(self._observe(copy.deepcopy(alloc), cid, svc, check))

    def _update_checks(self, alloc: dict[str, Any]) -> None:
        """checks_hook.go ``Update``: stop and drop checks that left, observe new ones."""
        aid = alloc["ID"]
        if aid not in self._observers:
            return
        wanted = self._check_specs(alloc)
        for cid in [c for c in self.results.get(aid, {}) if c not in wanted]:
            task = self._observers[aid].pop(cid, None)
            if task is not None:
                task.cancel()
            self.results[aid].pop(cid, None)
        self.start_checks(alloc)

    def purge_checks(self, alloc_id: str) -> None:
        """checks_hook.go ``PreKill``: stop every observer and forget the results."""
        for task in self._observers.pop(alloc_id, {}).values():
            task.cancel()
        self.results.pop(alloc_id, None)

    def alloc_results(self, alloc_id: str) -> dict[str, dict[str, Any]] | None:
        """checkstore ``List``: a copy, or None for an allocation without results."""
        found = self.results.get(alloc_id)
        return None if found is None else dict(found)

    def _set(self, alloc_id: str, res: dict[str, Any]) -> None:
        """checkstore ``Set``: a pending result never overwrites an existing one."""
        current = self.results.setdefault(alloc_id, {})
        if res["Status"] == "pending" and res["ID"] in current:
            return
        current[res["ID"]] = res

    async def _observe(
        self, alloc: dict[str, Any], cid: str, svc: dict[str, Any], check: dict[str, Any]
    ) -> None:
        """checks_hook.go ``observer.start``: first probe after Interval/2, then every
        Interval."""
        interval = max(int(check.get("Interval") or 0) / NS, 0.01)
        await asyncio.sleep(interval / 2)
        while True:
            try:
                res = await self.run_check(alloc, cid, svc, check)
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # a twin bug must not end the observer silently
                log.exception("check %s failed to run", cid)
                res = self._res(alloc, cid, svc, check, "failure", f"nomad: {exc}")
            if alloc["ID"] in self._observers:
                self._set(alloc["ID"], res)
            await asyncio.sleep(interval)

    def _res(
        self,
        alloc: dict[str, Any],
        cid: str,
        svc: dict[str, Any],
        check: dict[str, Any],
        status: str,
        output: str,
        code: int = 0,
    ) -> dict[str, Any]:
        return result(
            cid,
            check_mode(check),
            status,
            output,
            alloc["Name"],
            svc.get("TaskName") or "",
            svc["Name"],
            check.get("Name") or "",
            code,
        )

    def _address(self, alloc: dict[str, Any], svc: dict[str, Any], check: dict[str, Any]) -> str:
        """checks/client.go ``address``: the check's mode (default ``auto`` with a custom
        address, else ``host``) and port label (default the service's), over the
        allocation's shared ports and networks only (the hook passes no task networks)."""
        custom = svc.get("Address") or ""
        mode = check.get("AddressMode") or ("auto" if custom else "host")
        label = check.get("PortLabel") or svc.get("PortLabel") or ""
        host, port = get_address(alloc, mode, label, workload_ports(alloc, ""), custom)
        return join_host_port(host, port) if port > 0 else host

    async def run_check(
        self, alloc: dict[str, Any], cid: str, svc: dict[str, Any], check: dict[str, Any]
    ) -> dict[str, Any]:
        """checks/client.go ``checker.Do``: ``http`` runs checkHTTP, anything else checkTCP,
        both under the check's Timeout."""
        timeout = max(int(check.get("Timeout") or 0) / NS, 0.001)
        try:
            addr = self._address(alloc, svc, check)
        except ValueError as exc:
            return self._res(alloc, cid, svc, check, "failure", str(exc))
        if check.get("Type") == "http":
            return await self._http(alloc, cid, svc, check, addr, timeout)
        try:
            host, _, port = addr.rpartition(":")
            conn = asyncio.open_connection(host.strip("[]"), int(port))
            _, writer = await asyncio.wait_for(conn, timeout)
            writer.close()
            with contextlib.suppress(Exception):
                await writer.wait_closed()
        except TimeoutError:
            return self._res(alloc, cid, svc, check, "failure", f"dial tcp {addr}: i/o timeout")
        except (OSError, ValueError) as exc:
            return self._res(alloc, cid, svc, check, "failure", _go_dial_error(exc, addr))
        return self._res(alloc, cid, svc, check, "success", "nomad: tcp ok")

    async def _http(
        self,
        alloc: dict[str, Any],
        cid: str,
        svc: dict[str, Any],
        check: dict[str, Any],
        addr: str,
        limit: float,
    ) -> dict[str, Any]:
        """checks/client.go ``checkHTTP``: 200 → success ``nomad: http ok``; other codes
        below 400 → success, 400 and up → failure, both with the body (3 KiB) as output;
        a transport error → failure ``nomad: <url.Error>``. Only ``TLSSkipVerify`` is a TLS
        option (``TLSServerName`` is not read by Nomad's checker)."""
        protocol = check.get("Protocol") or "http"
        url = urljoin(f"{protocol}://{addr}", check.get("Path") or "")
        method = check.get("Method") or "GET"
        headers: list[tuple[str, str]] = []
        for name, values in (check.get("Header") or {}).items():
            headers += [(name, v) for v in values or []]
        if not any(n.lower() == "user-agent" for n, _ in headers):
            headers.append(("User-Agent", USER_AGENT))
        op = method[:1].upper() + method[1:].lower()  # net/http urlErrorOp
        verify = not check.get("TLSSkipVerify")
        session = self._client()
        try:
            async with session.request(
                method,
                url,
                headers=headers,
                data=(check.get("Body") or None),
                ssl=verify,
                timeout=aiohttp.ClientTimeout(total=limit),
            ) as resp:
                code = resp.status
                body = await resp.content.read(OUTPUT_SIZE_LIMIT)
        except TimeoutError:
            out = f'nomad: {op} "{url}": context deadline exceeded'
            return self._res(alloc, cid, svc, check, "failure", out)
        except aiohttp.ClientConnectorCertificateError as exc:
            reason = str(getattr(exc.certificate_error, "verify_message", "") or exc)
            if "unable to get local issuer" in reason or "self-signed" in reason:
                reason = "certificate signed by unknown authority"
            out = f'nomad: {op} "{url}": tls: failed to verify certificate: x509: {reason}'
            return self._res(alloc, cid, svc, check, "failure", out)
        except aiohttp.ClientConnectorError as exc:
            out = f'nomad: {op} "{url}": {_go_dial_error(exc, addr)}'
            return self._res(alloc, cid, svc, check, "failure", out)
        except (aiohttp.ClientError, OSError) as exc:
            return self._res(alloc, cid, svc, check, "failure", f'nomad: {op} "{url}": {exc}')
        if code == 200:
            return self._res(alloc, cid, svc, check, "success", "nomad: http ok", code)
        status = "success" if code < 400 else "failure"
        return self._res(
            alloc, cid, svc, check, status, body.decode("utf-8", errors="replace"), code
        )

    def _client(self) -> aiohttp.ClientSession:
        if self._session is None or self._session.closed:
            self._session = aiohttp.ClientSession(
                connector=aiohttp.TCPConnector(force_close=True),
                skip_auto_headers=("User-Agent",),
            )
        return self._session

    async def close(self) -> None:
        """Agent shutdown: observers stop; registrations stay (Nomad keeps them too)."""
        for aid in list(self._observers):
            for task in self._observers.pop(aid).values():
                task.cancel()
        if self._session is not None:
            await self._session.close()
