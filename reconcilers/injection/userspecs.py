"""The user's job and its parsed group specs, read once for several questions about one job.

Health asks two questions of every job it reconciles (which ports are fronted, which upstreams
are called), and each began by un-injecting the job and parsing its meta; a profile of the
control-plane benchmark put those repeats at several per cent of the controller's CPU. Reading
both from one :class:`UserSpecs` gives the same answers for half the work.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from crds_equivalent.config import MeshConfig
from crds_equivalent.spec import MeshSpec, SpecError, parse_job_specs
from reconcilers.injection.plan import default_ttl_seconds
from reconcilers.injection.undo import UndoError, uninject


@dataclass(frozen=True)
class UserSpecs:
    """``uninject(job)`` and the specs parsed from it (read-only, like ``uninject``'s result)."""

    user: dict[str, Any] = field(repr=False)
    specs: dict[str, MeshSpec]


def user_specs(job: Mapping[str, Any], config: MeshConfig) -> UserSpecs | None:
    """The user's job and its specs; None when its undo record or its meta is invalid (the mesh
    reconciler reports that job Invalid, and the other reconcilers leave it alone)."""
    try:
        user = uninject(job)
        specs = parse_job_specs(user, default_ttl_seconds=default_ttl_seconds(config))
    except (UndoError, SpecError):
        return None
    return UserSpecs(user, specs)
