"""A Consul stand-in for the Nomad twin's ``ServiceChecks`` seam whose checks fail on demand.

Nomad judges a deployment by the Consul checks of each allocation's services
(``client/allochealth/tracker.go``). This stand-in reports every check of the allocation's
group services as registered, ``critical`` while ``broken`` is set for allocations that run the
mesh sidecar (a TLS check that never passes, a sidecar whose certificate never renders) and
``passing`` otherwise — so the user's un-injected version is healthy and the injected one is
not, until the test "fixes the cause" by clearing ``broken``.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping
from typing import Any

from crds_equivalent import keys
from devstack.nomad import NomadTwin
from devstack.nomad.hooks import CheckView

MS = 1_000_000


class SidecarChecks:
    def __init__(self) -> None:
        self.twin: NomadTwin | None = None
        self.broken = False

    async def alloc_checks(self, alloc_ids: Collection[str]) -> Mapping[str, list[CheckView]]:
        assert self.twin is not None
        out: dict[str, list[CheckView]] = {}
        for aid in alloc_ids:
            alloc = self.twin.state.allocs.get(aid)
            if alloc is None:
                continue
            group = next(g for g in alloc["Job"]["TaskGroups"] if g["Name"] == alloc["TaskGroup"])
            meshed = any(t["Name"] == keys.SIDECAR_TASK for t in group.get("Tasks") or [])
            status = "critical" if meshed and self.broken else "passing"
            out[aid] = [
                CheckView(service["Name"], check["Name"], status)
                for service in group.get("Services") or []
                for check in service.get("Checks") or []
            ]
        return out


def deploy_update(**overrides: Any) -> dict[str, Any]:
    """An update block with deadlines of about a second, so a failure shows up fast."""
    return {
        "MaxParallel": 1,
        "MinHealthyTime": 50 * MS,
        "HealthyDeadline": 1_500 * MS,
        "ProgressDeadline": 0,  # shouldFailEarly: fail at the first unhealthy allocation
        "AutoRevert": False,
        "HealthCheck": "checks",
    } | overrides
