"""Per-job PKI roles: the Vault side of identity-bound leaves (reconcilers.ports.CertGrants).

The mesh reconciler grants a job its role (``<role>.<namespace>.<job ID>``, allowed names =
exactly the job's leaf names) before it registers the injected job, and withdraws it when the
job stops being meshed or is purged. A grant remembers what Vault holds, so a resync of
converged jobs reads each role at most once per controller life and writes nothing; a
withdrawal deletes (Vault answers a missing role's delete with 204 too, so it is idempotent).

The memory is trusted for ``verify_interval`` (the controller passes half its resync
interval, so every jittered resync finds it due) and no longer: the first grant after that
LISTs ``<int_mount>/roles`` once — one call whatever the number of jobs, shared by concurrent
grants — and forgets every remembered role Vault no longer has, so a role deleted out of band
is written again at the job's next reconcile (the periodic resync reaches every job) instead
of only after a restart. A changed role that still exists is not re-read: the memory holds
names, and only a deletion is repaired this way. The names are remembered as a 16-byte digest:
the memory has one entry per meshed job for the life of the process, and the names themselves
(two per fronted service) cost ~0.4 kB a job.
"""

from __future__ import annotations

import asyncio
import hashlib
from collections.abc import Sequence
from typing import Any

import structlog

from controller.runtime.clock import Clock, SystemClock
from controller.vault.bootstrap import PkiLayout
from controller.vault.client import VaultClient, VaultError
from crds_equivalent.goparse import parse_go_duration

log = structlog.get_logger(__name__)

_ABSENT = b""  # remembered for a withdrawn role (no digest is empty)


def _digest(names: Sequence[str]) -> bytes:
    """What the memory keeps of a role's allowed names (NUL is in no DNS name)."""
    return hashlib.blake2b("\x00".join(names).encode(), digest_size=16).digest()


class _EveryRole(set[str]):
    """Contains every role: what a failed LIST leaves us knowing (read before writing)."""

    def __contains__(self, item: object) -> bool:
        return True


_EVERY_ROLE = _EveryRole()


class VaultCertGrants:
    """Create, update and delete per-job roles under ``<int_mount>/roles/<role>.*``."""

    def __init__(
        self,
        client: VaultClient,
        layout: PkiLayout,
        *,
        verify_interval: float = 600.0,
        clock: Clock | None = None,
    ) -> None:
        self._client = client
        self._layout = layout
        self._known: dict[str, bytes] = {}  # role -> _digest of its names, or _ABSENT
        self._verify_interval = verify_interval
        self._clock: Clock = clock or SystemClock()
        # Monotonic time of the last LIST: the memory starts empty, so nothing needs one yet.
        self._verified_at = self._clock.monotonic()
        self._verifying = asyncio.Lock()
        self._present: set[str] | None = None  # the roles of the first LIST (see _listed)
        self.writes = 0  # role writes and deletes, for tests and the bench
        self.lists = 0  # LISTs of the roles, for tests and the bench
        self.repaired: list[str] = []  # roles found missing and forgotten, for tests and logs

    def _path(self, role: str) -> str:
        prefix = self._layout.policy_paths().job_role_prefix
        if not role.startswith(prefix):
            raise ValueError(f"role {role!r} is not a per-job role (prefix {prefix!r})")
        return f"{self._layout.int_mount}/roles/{role}"

    async def grant(self, role: str, names: Sequence[str]) -> None:
        """Make the role allow exactly ``names`` (order kept, as the job lists them)."""
        want = tuple(names)
        digest = _digest(want)
        await self._verify()
        if self._known.get(role) == digest:
            return
        path = self._path(role)
        params = self._layout.job_role_params(want)
        if role not in self._known and role in await self._listed():
            have = await self._client.read(path)
            if have is not None and role_params_match(params, have.get("data") or {}):
                self._known[role] = digest
                return
        await self._client.write(path, params)
        self.writes += 1
        self._known[role] = digest
        if self._present is not None:
            self._present.add(role)

    async def _listed(self) -> set[str]:
        """The roles Vault held at this process's first grant (one LIST): a role not among
        them, and not written since, is new, so it is written without a read first — a cold
        start of N new jobs costs N writes, not N reads and N writes. A LIST that fails makes
        every unknown role read first, as before."""
        if self._present is None:
            async with self._verifying:
                if self._present is None:
                    try:
                        names = await self._client.list(f"{self._layout.int_mount}/roles")
                        self._present = set(names)
                        self.lists += 1
                    except VaultError as err:
                        log.warning("could not list per-job PKI roles", error=str(err))
                        return _EVERY_ROLE
        return self._present

    async def withdraw(self, role: str) -> None:
        """Delete the role: the job's tokens can issue nothing any more."""
        if self._known.get(role) == _ABSENT:
            return
        await self._client.delete(self._path(role))
        self.writes += 1
        self._known[role] = _ABSENT
        if self._present is not None:
            self._present.discard(role)

    async def _verify(self) -> None:
        """At most once per interval, forget remembered roles that Vault no longer holds."""
        if not self._due():
            return
        async with self._verifying:
            if not self._due():  # another grant LISTed while this one waited
                return
            prefix = self._layout.policy_paths().job_role_prefix
            self._verified_at = self._clock.monotonic()
            try:
                present = set(await self._client.list(f"{self._layout.int_mount}/roles"))
            except VaultError as err:  # a repair must never stop the grants it would repair
                log.warning(
                    "could not list per-job PKI roles; next try in an interval", error=str(err)
                )
                return
            self.lists += 1
            self._present = present
            for role, names in list(self._known.items()):
                if names != _ABSENT and role.startswith(prefix) and role not in present:
                    del self._known[role]
                    self.repaired.append(role)
                    log.warning("per-job PKI role missing in Vault; granting it again", role=role)

    def _due(self) -> bool:
        return self._clock.monotonic() - self._verified_at >= self._verify_interval


def role_params_match(want: dict[str, Any], have: dict[str, Any]) -> bool:
    """A PKI role as read back from Vault has the parameters we would write: Vault answers
    TTLs in seconds and lists in its own order."""
    for key, value in want.items():
        got = have.get(key)
        if key in ("ttl", "max_ttl"):
            same = int(parse_go_duration(str(value))) == int(got or 0)
        elif isinstance(value, list):
            same = sorted(map(str, value)) == sorted(map(str, got or []))
        else:
            same = value == got
        if not same:
            return False
    return True
