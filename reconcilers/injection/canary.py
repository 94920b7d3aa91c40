"""PURE: which meshed groups roll out through canaries, and who is to promote them.

A job whose group has ``update.canary > 0`` keeps every new version — the controller's
injection, a rotation or remediation nonce — in a deployment that waits for a promotion
(``Deployment is running but requires manual promotion``) unless the group sets
``auto_promote``. The controller promotes on the user's behalf only when the group's
``mesh.tls.promote`` says ``auto``; otherwise the job waits, and a rotation skips it rather
than wait for a human until its wave times out.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from crds_equivalent.config import MeshConfig
from crds_equivalent.spec import Promote, SpecError, promote_of
from reconcilers.injection import jobview
from reconcilers.injection.reissue import meshed_groups


def canary_groups(job: Mapping[str, Any], config: MeshConfig) -> dict[str, tuple[int, Promote]]:
    """Meshed groups whose new versions wait for a promotion: name -> (canaries, who promotes).
    Groups Nomad auto-promotes are not in it."""
    meshed = set(meshed_groups(job, config))
    found: dict[str, tuple[int, Promote]] = {}
    for group in jobview.groups(job):
        name = jobview.group_name(group)
        update = group.get("Update")
        if name not in meshed or not isinstance(update, Mapping):
            continue
        canaries = update.get("Canary")
        if not isinstance(canaries, int) or canaries <= 0 or update.get("AutoPromote"):
            continue
        try:
            who = promote_of(job, group)
        except SpecError:
            who = Promote.MANUAL  # an invalid value never lets the controller promote
        found[name] = (canaries, who)
    return found


def controller_promotes(job: Mapping[str, Any], config: MeshConfig) -> bool:
    """Every group that waits for a promotion asked the controller to give it (Nomad promotes
    a deployment's groups together, so one manual group keeps the whole deployment manual)."""
    groups = canary_groups(job, config)
    return bool(groups) and all(who is Promote.AUTO for _, who in groups.values())


def manual_promotion(job: Mapping[str, Any], config: MeshConfig) -> str:
    """Why a new version of this job would wait for a human ("" when it would not)."""
    groups = canary_groups(job, config)
    if not groups or controller_promotes(job, config):
        return ""
    name, (canaries, _) = next((n, g) for n, g in sorted(groups.items()) if g[1] is Promote.MANUAL)
    return (
        f'group "{name}" has update.canary = {canaries} without auto_promote and '
        f'mesh.tls.promote = "manual": a new version waits for a manual promotion'
    )
