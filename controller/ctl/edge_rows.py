"""PURE: one report edge per upstream of a meshed group — caller -> upstream, and what the
caller's listener finds behind it.

With ``--live`` each edge is judged now, from the catalog answers ``gather`` read (the
upstreams' services are read with the fronted ones), by the same function the health
reconciler records with (``reconcilers.instances.edge_findings.edge_record``), so the report
and the record cannot disagree on what ``empty`` means. Without ``--live`` the edges are the
ones the controller last recorded in each caller's status. The last handshake error is always
the record's: only the controller probes the upstreams' instances.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from controller.consul.wire import HealthEntry
from controller.ctl.rows import NOMAD_PROVIDER, World
from crds_equivalent.config import MeshConfig
from crds_equivalent.jobkey import JobKey
from crds_equivalent.status import EdgeRecord, MeshStatus
from crds_equivalent.status_report import EdgeRow
from reconcilers.health.upstreams import job_calls
from reconcilers.injection import jobview
from reconcilers.injection.edges import UpstreamEdge
from reconcilers.instances.edge_findings import FAILING_STATES, edge_record


def upstream_services(job: Mapping[str, Any], config: MeshConfig, provider: str) -> list[str]:
    """The upstream services of ``job`` read from ``provider``'s catalog, sorted."""
    return sorted({e.service for e in job_calls(job, config).edges if e.provider == provider})


def _answer(
    world: World, namespace: str, edge: UpstreamEdge
) -> tuple[Sequence[HealthEntry] | None, str]:
    if edge.provider == NOMAD_PROVIDER:
        if world.native_health is None:
            return None, f"upstream {edge.service}: Nomad's service catalog did not answer"
        return world.native_health.get((namespace, edge.service)), ""
    if world.health is None:
        return None, f"upstream {edge.service}: Consul did not answer (or is not configured)"
    return world.health.get(edge.service), ""


def _row(key: JobKey, record: EdgeRecord, source: str) -> EdgeRow:
    return EdgeRow.model_validate(
        {
            "namespace": key[0],
            "job": key[1],
            **record.model_dump(mode="json"),
            "source": source,
            "in_sync": record.state not in FAILING_STATES,
        }
    )


def _with_handshakes(live: EdgeRecord, status: MeshStatus | None) -> EdgeRecord:
    """The live judgement with what only the controller's probe knows: the last handshake
    error and, when every instance failed it, that state (a catalog performs no handshake,
    so it cannot contradict one)."""
    same = next(
        (
            r
            for r in (status.edges if status is not None else ())
            if (r.group, r.service, r.port) == (live.group, live.service, live.port)
        ),
        None,
    )
    if same is None or not same.handshake_error:
        return live
    if live.state == "healthy" and same.state == "handshake failed":
        return live.model_copy(
            update={"state": same.state, "healthy": 0, "message": same.message}
            | {"handshake_error": same.handshake_error}
        )
    return live.model_copy(update={"handshake_error": same.handshake_error})


def build_edge_rows(world: World) -> list[EdgeRow]:
    """Every edge, sorted by (namespace, job, group, port)."""
    rows: list[EdgeRow] = []
    if world.jobs is None:
        for key, status in world.statuses.items():
            rows.extend(_row(key, record, "record") for record in status.edges)
    else:
        for key, facts in world.jobs.items():
            if facts.job is None or jobview.is_stopped(facts.job):
                continue
            recorded = world.statuses.get(key)
            for edge in job_calls(facts.job, world.config).edges:
                found, why = _answer(world, key[0], edge)
                judged = _with_handshakes(edge_record(edge, found, why), recorded)
                rows.append(_row(key, judged, "live"))
    rows.sort(key=lambda r: (r.namespace, r.job, r.group, r.port))
    return rows
