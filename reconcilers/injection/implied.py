"""PURE: the constraints Nomad's server adds because of the sidecar, and dropping them again.

Constraints are the one group field Nomad's server writes *because of* the sidecar: on register
``nomad/job_endpoint_hooks.go`` ``jobImpliedConstraints.Mutate`` adds ``${attr.vault.version}
semver >= 0.6.1`` (the sidecar's Vault block, ``vaultConstraintFn``) and ``${attr.os.signals}
set_contains ...`` (its KillSignal, ``Job.RequiredSignals``/``getSignalConstraint``), and
``nomad/job_endpoint_hook_implicit_identities.go`` appends ``${attr.nomad.version} semver >=
1.7.0-a`` — without any dedupe — whenever a task has an identity (the sidecar's Vault block
gets ``vault_default`` on workload-identity clusters). They are not restored verbatim (a
constraint the user adds to the injected job must stay), so ``uninject`` drops only
constraints *of those shapes* beyond what the group had before injection, counted as a
multiset: the user's constraints, and the implied ones the user's own tasks caused before we
came, stay; the ones we caused go. Nomad re-adds on the next register whatever the job still
implies, so dropping an implied constraint the user's job also implies costs nothing, and
repeated writes cannot grow the list. A record written before this field existed drops
nothing (the controller cannot tell then).
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from typing import Any

from reconcilers.injection import jobview


def is_sidecar_implied(constraint: object) -> bool:
    """A constraint exactly as Nomad's server adds it because of what the sidecar carries.

    ``vaultConstraintFn`` (``${attr.vault.version} semver >= 0.6.1``, or
    ``${attr.vault.<cluster>.version} semver >= 1.11.0`` for a non-default cluster),
    ``getSignalConstraint`` (``${attr.os.signals} set_contains`` the sorted union of the
    group's signals, which with the sidecar always holds its SIGHUP and SIGQUIT) and
    ``implicitIdentityClientVersionConstraint`` (``${attr.nomad.version} semver >= 1.7.0-a``),
    in nomad v1.10.0 ``nomad/job_endpoint_hooks.go`` and
    ``nomad/job_endpoint_hook_implicit_identities.go``. Exact values, not just the LTarget, so
    a user's own ``${attr.vault.version} >= 1.15`` is never taken for ours.
    """
    if not isinstance(constraint, Mapping):
        return False
    left = constraint.get("LTarget")
    right = constraint.get("RTarget")
    operand = constraint.get("Operand")
    if not (isinstance(left, str) and isinstance(right, str)):
        return False
    if left == "${attr.os.signals}" and operand == "set_contains":
        return set(right.split(",")) >= _SIDECAR_SIGNALS
    if operand != "semver":
        return False
    if left == "${attr.vault.version}":
        return right == ">= 0.6.1"
    if _VAULT_CLUSTER_VERSION.fullmatch(left):
        return right == ">= 1.11.0"
    return (left, right) == ("${attr.nomad.version}", ">= 1.7.0-a")


# The signals the sidecar makes Nomad require: its templates' ChangeSignal and its KillSignal.
_SIDECAR_SIGNALS = frozenset({"SIGHUP", "SIGQUIT"})
_VAULT_CLUSTER_VERSION = re.compile(r"\$\{attr\.vault\.[^.{}]+\.version\}")


def _constraint_key(constraint: object) -> str:
    """Equality as Nomad's ``Constraint.Equal`` sees it (LTarget, RTarget, Operand)."""
    c = jobview.as_map(constraint)
    return json.dumps([c.get("LTarget"), c.get("RTarget"), c.get("Operand")])


def _allowance(before: object) -> dict[str, int]:
    """How many of each sidecar-implied constraint the group had before injection.

    Only implied constraints are counted: the keys looked up are those of implied constraints,
    and a constraint with the same key is implied too (the check reads only the three fields
    the key holds), so the others could never match. Skipping them (and every key when the
    group had none) keeps ``uninject`` cheap: it runs on every reconcile of every meshed job.
    """
    counts: dict[str, int] = {}
    for constraint in jobview.as_list(before):
        if is_sidecar_implied(constraint):
            key = _constraint_key(constraint)
            counts[key] = counts.get(key, 0) + 1
    return counts


def drop_implied(group: dict[str, Any], before: object) -> None:
    """Drop the sidecar-implied constraints the group did not have before injection."""
    current = group.get("Constraints")
    if not isinstance(current, list):
        return
    allowance = _allowance(before)
    kept: list[Any] = []
    for constraint in current:
        if is_sidecar_implied(constraint):
            if not allowance:
                continue
            key = _constraint_key(constraint)
            if allowance.get(key, 0) <= 0:
                continue
            allowance[key] -= 1
        kept.append(constraint)
    if len(kept) == len(current):
        return
    if kept:
        group["Constraints"] = kept
    elif before == "absent":
        del group["Constraints"]
    elif before is None:
        group["Constraints"] = None
    else:
        group["Constraints"] = kept
