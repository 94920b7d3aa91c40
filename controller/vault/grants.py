"""Per-job PKI roles: the Vault side of identity-bound leaves (reconcilers.ports.CertGrants).

The mesh reconciler grants a job its role (``<role>.<namespace>.<job ID>``, allowed names =
exactly the job's leaf names) before it registers the injected job, and withdraws it when the
job stops being meshed or is purged. A grant remembers what Vault holds, so a resync of
converged jobs reads each role at most once per controller life and writes nothing; a
withdrawal deletes (Vault answers a missing role's delete with 204 too, so it is idempotent).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from controller.vault.bootstrap import PkiLayout
from controller.vault.client import VaultClient
from crds_equivalent.goparse import parse_go_duration

_ABSENT = ()  # remembered for a withdrawn role


class VaultCertGrants:
    """Create, update and delete per-job roles under ``<int_mount>/roles/<role>.*``."""

    def __init__(self, client: VaultClient, layout: PkiLayout) -> None:
        self._client = client
        self._layout = layout
        self._known: dict[str, tuple[str, ...]] = {}
        self.writes = 0  # role writes and deletes, for tests and the bench

    def _path(self, role: str) -> str:
        prefix = self._layout.policy_paths().job_role_prefix
        if not role.startswith(prefix):
            raise ValueError(f"role {role!r} is not a per-job role (prefix {prefix!r})")
        return f"{self._layout.int_mount}/roles/{role}"

    async def grant(self, role: str, names: Sequence[str]) -> None:
        """Make the role allow exactly ``names`` (order kept, as the job lists them)."""
        want = tuple(names)
        if self._known.get(role) == want:
            return
        path = self._path(role)
        params = self._layout.job_role_params(want)
        if role not in self._known:
            have = await self._client.read(path)
            if have is not None and _matches(params, have.get("data") or {}):
                self._known[role] = want
                return
        await self._client.write(path, params)
        self.writes += 1
        self._known[role] = want

    async def withdraw(self, role: str) -> None:
        """Delete the role: the job's tokens can issue nothing any more."""
        if self._known.get(role) == _ABSENT:
            return
        await self._client.delete(self._path(role))
        self.writes += 1
        self._known[role] = _ABSENT


def _matches(want: dict[str, Any], have: dict[str, Any]) -> bool:
    """Vault answers TTLs in seconds and lists in its own order."""
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
