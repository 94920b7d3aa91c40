"""Nomad Variables with check-and-set and locks (TTL + LockDelay), on an injectable clock.

Locks follow ``nomad/locks.go`` (v1.7.0-v1.10.x): ``CreateVariableLockTTLTimer`` arms the
leader's timer at **2 x TTL** ("a grace period" for clients), and ``RenewTTLTimer`` re-arms
it at 2 x TTL, so a renew between TTL and 2 x TTL still succeeds. When the timer fires it
is removed and ``invalidateVariableLock`` runs only after ``LockDelay``: until then the
Lock stays in the variable (others cannot acquire, reads show it) while a renew fails
(``RenewLock`` -> ``errVarIsLocked``, the timer being gone). The release is a raft write
(``VarOpLockRelease``: the index moves); a renew is not. Expiry is checked on every access
against ``clock()`` and, with a real clock, also by timers so blocking readers see it.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from typing import Any

from devstack import godur
from devstack.nomad.codec import NS, new_id, now_ns
from devstack.nomad.state import NomadState

MIN_TTL = 10 * NS
MAX_TTL = 24 * 3600 * NS
DEFAULT_TTL = 15 * NS
DEFAULT_DELAY = 15 * NS

Key = tuple[str, str]


def metadata(var: dict[str, Any], *, lock: bool = True) -> dict[str, Any]:
    out: dict[str, Any] = {"Namespace": var["Namespace"], "Path": var["Path"]}
    if lock and var.get("Lock"):
        lk = var["Lock"]
        out["Lock"] = {
            "TTL": godur.format_ns(lk["TTL"]),
            "LockDelay": godur.format_ns(lk["LockDelay"]),
            "ID": lk["ID"],
        }
    out.update(
        CreateIndex=var["CreateIndex"],
        CreateTime=var["CreateTime"],
        ModifyIndex=var["ModifyIndex"],
        ModifyTime=var["ModifyTime"],
    )
    return out


def decrypted(var: dict[str, Any], *, lock: bool = True, items: bool = True) -> dict[str, Any]:
    out = metadata(var, lock=lock)
    if items and var.get("Items"):
        out["Items"] = var["Items"]
    return out


def zero_stub(ns: str, path: str, *, zero_lock: bool = False) -> dict[str, Any]:
    out: dict[str, Any] = {"Namespace": ns, "Path": path}
    if zero_lock:
        out["Lock"] = {"TTL": "", "LockDelay": "", "ID": ""}
    out.update(CreateIndex=0, CreateTime=0, ModifyIndex=0, ModifyTime=0)
    return out


class VarConflict(Exception):
    def __init__(self, body: dict[str, Any] | str, index: int | None) -> None:
        super().__init__("conflict")
        self.body = body
        self.index = index


class VariableStore:
    def __init__(self, state: NomadState, clock: Callable[[], float] | None = None) -> None:
        self.state = state
        self.clock = clock or time.monotonic
        self.real_clock = clock is None
        self._expiry: dict[Key, float] = {}  # the 2 x TTL timer's deadline (clock seconds)
        self._release_at: dict[Key, float] = {}  # timer fired: release after LockDelay
        self._timers: dict[Key, asyncio.TimerHandle] = {}

    def use_clock(self, clock: Callable[[], float]) -> None:
        """Drive lock TTLs from ``clock`` (seconds); expiry is then checked on access."""
        self.clock = clock
        self.real_clock = False
        self.close()

    @property
    def vars(self) -> dict[Key, dict[str, Any]]:
        return self.state.variables

    def sweep(self) -> None:
        now = self.clock()
        for key, expires in list(self._expiry.items()):
            if now >= expires:
                self._timer_fired(key, expires)
        for key, release_at in list(self._release_at.items()):
            if now >= release_at:
                self._invalidate(key)

    def _timer_fired(self, key: Key, fired_at: float) -> None:
        """The 2 x TTL timer callback: ``StopAndRemove`` then ``time.AfterFunc(LockDelay)``."""
        self._expiry.pop(key, None)
        self._cancel_timer(key)
        var = self.vars.get(key)
        if var is None or not var.get("Lock"):
            return
        delay = var["Lock"]["LockDelay"] / NS
        self._release_at[key] = fired_at + delay
        self._schedule(key, delay)

    def _invalidate(self, key: Key) -> None:
        """``invalidateVariableLock``: the VarOpLockRelease raft write."""
        self._release_at.pop(key, None)
        self._cancel_timer(key)
        var = self.vars.get(key)
        if var is not None and var.get("Lock"):
            self._write(var, Lock=None)

    def _cancel_timer(self, key: Key) -> None:
        timer = self._timers.pop(key, None)
        if timer is not None:
            timer.cancel()

    def _schedule(self, key: Key, delay: float) -> None:
        self._cancel_timer(key)
        if self.real_clock:
            loop = asyncio.get_running_loop()
            self._timers[key] = loop.call_later(delay + 0.001, self.sweep)

    def _arm(self, key: Key, ttl_ns: int) -> None:
        """``CreateVariableLockTTLTimer``/``RenewTTLTimer``: ``lockTTL := TTL * 2``."""
        lock_ttl = 2 * ttl_ns / NS
        self._expiry[key] = self.clock() + lock_ttl
        self._schedule(key, lock_ttl)

    def _write(self, var: dict[str, Any], **changes: Any) -> dict[str, Any]:
        with self.state.txn("VarUpsert") as tx:
            now = now_ns()
            new = {**var, **changes, "ModifyIndex": tx.index, "ModifyTime": now}
            if not var.get("CreateIndex"):
                new["CreateIndex"], new["CreateTime"] = tx.index, now
            self.vars[(new["Namespace"], new["Path"])] = new
            tx.tables.add("variables")
        return new

    def _locked_by_other(self, var: dict[str, Any] | None, lock_id: str) -> bool:
        return bool(var and var.get("Lock") and var["Lock"]["ID"] != lock_id)

    # ---- plain operations ------------------------------------------------------------
    def put(
        self, ns: str, path: str, items: dict[str, str], cas: int | None, lock_id: str
    ) -> dict[str, Any]:
        self.sweep()
        key = (ns, path)
        var = self.vars.get(key)
        if cas is not None:
            self._check_cas(ns, path, var, cas)
        if self._locked_by_other(var, lock_id):
            raise VarConflict(zero_stub(ns, path), None)
        base = var or {
            "Namespace": ns,
            "Path": path,
            "Lock": None,
            "CreateIndex": 0,
            "CreateTime": 0,
        }
        return self._write(base, Items=dict(items))

    def _check_cas(self, ns: str, path: str, var: dict[str, Any] | None, cas: int) -> None:
        if var is None and cas != 0:
            raise VarConflict(zero_stub(ns, path), self.state.table_index["variables"])
        if var is not None and var["ModifyIndex"] != cas:
            raise VarConflict(decrypted(var), var["ModifyIndex"])

    def delete(self, ns: str, path: str, cas: int | None) -> int:
        self.sweep()
        key = (ns, path)
        var = self.vars.get(key)
        if cas is not None:
            self._check_cas(ns, path, var, cas)
        if var is not None and var.get("Lock"):
            raise VarConflict(zero_stub(ns, path), None)
        with self.state.txn("VarDelete") as tx:
            self.vars.pop(key, None)
            tx.tables.add("variables")
        return tx.index

    # ---- locks -------------------------------------------------------------------------
    def acquire(
        self, ns: str, path: str, items: dict[str, str] | None, ttl: int, delay: int
    ) -> dict[str, Any]:
        self.sweep()
        key = (ns, path)
        var = self.vars.get(key)
        if var is not None and var.get("Lock"):
            raise VarConflict(zero_stub(ns, path), None)
        base = var or {
            "Namespace": ns,
            "Path": path,
            "Items": None,
            "CreateIndex": 0,
            "CreateTime": 0,
        }
        changes: dict[str, Any] = {"Lock": {"ID": new_id(), "TTL": ttl, "LockDelay": delay}}
        if items:
            changes["Items"] = dict(items)
        new = self._write(base, **changes)
        self._arm(key, ttl)
        return new

    def renew(self, ns: str, path: str, lock_id: str) -> dict[str, Any]:
        self.sweep()
        key = (ns, path)
        var = self.vars.get(key)
        if var is None:
            raise LookupError("variable doesn't exist")
        if not var.get("Lock"):
            raise VarConflict("variable doesn't hold a lock", None)
        if var["Lock"]["ID"] != lock_id:
            raise VarConflict("attempting to modify locked variable", None)
        if key not in self._expiry:  # RenewTTLTimer: errTimerNotFound -> errVarIsLocked
            raise VarConflict("attempting to modify locked variable", None)
        self._arm(key, var["Lock"]["TTL"])
        return var

    def release(self, ns: str, path: str, lock_id: str) -> dict[str, Any]:
        self.sweep()
        key = (ns, path)
        var = self.vars.get(key)
        if var is None:
            raise RuntimeError("variable doesn't exist")
        if not var.get("Lock"):
            raise RuntimeError("variable doesn't hold a lock")
        if var["Lock"]["ID"] != lock_id:
            raise VarConflict(zero_stub(ns, path, zero_lock=True), None)
        self._expiry.pop(key, None)  # RemoveVariableLockTTLTimer: no LockDelay on release
        self._release_at.pop(key, None)
        self._cancel_timer(key)
        return self._write(var, Lock=None)

    def close(self) -> None:
        for timer in self._timers.values():
            timer.cancel()
        self._timers.clear()
