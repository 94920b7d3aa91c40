"""``controllerctl explain JOB``: the story of one job, computed the way the controller would.

Everything shown is derived with the controller's own pure functions — ``uninject`` and
``parse_job_specs`` for the spec, ``plan_job`` for the decision, the injected job's sidecar
task for the templates — so "explain" cannot disagree with what the controller does. The status
record adds what it concluded and when; any extra Items (``remediations``, ``last_error``...)
are shown as recorded. No I/O here except :func:`gather` (and :func:`explain_job`, which
opens the clients for it).
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from controller.config import Settings
from controller.ctl.common import Clients, human_duration, open_clients
from controller.ctl.jobtext import diff, pretty
from controller.nomad.jobs import NomadJobs
from controller.nomad.variables import NomadVariables
from controller.status.store import path_for
from crds_equivalent import keys
from crds_equivalent.config import MeshConfig
from crds_equivalent.egress import UpstreamProtocol
from crds_equivalent.goparse import format_go_duration
from crds_equivalent.spec import MeshSpec, SpecError, parse_job_specs
from crds_equivalent.status import MeshStatus
from reconcilers.injection import edges, jobview, nginx, upstreams
from reconcilers.injection.hashing import effective_ttl
from reconcilers.injection.inject import UndoError, uninject
from reconcilers.injection.plan import Apply, Invalid, NoOp, Remove, default_ttl_seconds, plan_job

STATUS_FIELDS = set(MeshStatus.model_fields)


@dataclass(frozen=True)
class Facts:
    namespace: str
    job_id: str
    job: Mapping[str, Any] | None
    items: Mapping[str, str] = field(default_factory=dict)  # the status Variable's Items


async def gather(clients: Clients, namespace: str, job_id: str) -> Facts:
    """Raises NomadError when Nomad cannot be read."""
    job = await NomadJobs(clients.nomad).get_job(job_id, namespace)
    var = await NomadVariables(clients.nomad, namespace=clients.namespace).get(
        path_for(namespace, job_id)
    )
    return Facts(namespace, job_id, job, dict(var.items) if var is not None else {})


async def explain_job(settings: Settings, namespace: str, job_id: str) -> dict[str, Any]:
    """The explanation of one job as of now. Raises NomadError when Nomad cannot be read."""
    async with open_clients(settings) as clients:
        facts = await gather(clients, namespace, job_id)
    return explain_doc(facts, settings.mesh, datetime.now(UTC))


def specs_view(job: Mapping[str, Any], config: MeshConfig) -> list[dict[str, Any]] | str:
    """Each group's spec with defaults (and the jittered TTL), or why it cannot be parsed."""
    try:
        user = uninject(job)
        specs = parse_job_specs(user, default_ttl_seconds=default_ttl_seconds(config))
    except (UndoError, SpecError) as err:
        return str(err)
    out = []
    for spec in specs.values():
        view: dict[str, Any] = {"group": spec.group, "meshed": spec.enabled}
        if spec.enabled:
            view |= {
                "ports": list(spec.ports),
                "mode": str(spec.mode),
                "protocol": str(spec.protocol),
                "ttl": format_go_duration(spec.ttl_seconds),
                "ttl_with_jitter": format_go_duration(effective_ttl(spec, user)),
                "sans": list(spec.sans),
                "mtls": spec.mtls,
                "allow": list(spec.allow),
                "upstreams": _upstreams_view(user, spec, config),
            }
        out.append(view)
    return out


def _upstreams_view(
    user: Mapping[str, Any], spec: MeshSpec, config: MeshConfig
) -> list[dict[str, Any]]:
    """Each upstream as the sidecar serves it: the listener the app dials, how it is reserved,
    the catalog query, and the name the upstream's certificate must carry."""
    group = next((g for g in jobview.groups(user) if jobview.group_name(g) == spec.group), {})
    namespaced = edges.group_namespaced(group)
    return [
        {
            "entry": u.spelled(),
            "listen": f"{upstreams.LISTEN_HOST}:{u.port}",
            "reserved": "no (the group's own network namespace)"
            if namespaced
            else f"static port {keys.upstream_port_label(u.port)} = {u.port}",
            "catalog": "{{ " + upstreams.catalog_call(u) + " }}",
            "server_name": upstreams.server_name(u, config.domain),
            "balancing": "per request, keep-alive"
            if u.protocol is UpstreamProtocol.HTTP
            else "per connection",
        }
        for u in spec.upstreams
    ]


def plan_view(job: Mapping[str, Any], config: MeshConfig) -> dict[str, Any]:
    decision = plan_job(job, config)
    if isinstance(decision, NoOp):
        return {"decision": "NoOp", "reason": decision.reason, "diff": ""}
    if isinstance(decision, Invalid):
        return {"decision": "Invalid", "reason": decision.reason, "diff": ""}
    kind = "Apply" if isinstance(decision, Apply) else "Remove"
    assert isinstance(decision, Apply | Remove)
    text = diff(pretty(dict(job)), pretty(decision.job), f"{jobview.job_id(job)}.json")
    return {"decision": kind, "reason": decision.reason, "diff": text}


def sidecar_templates(job: Mapping[str, Any]) -> dict[str, dict[str, str]]:
    """group -> {destination: embedded template} of the managed sidecar."""
    out: dict[str, dict[str, str]] = {}
    for group in jobview.groups(job):
        for task in jobview.tasks(group):
            if not jobview.is_managed_sidecar(task):
                continue
            templates = {}
            for tmpl in jobview.as_list(task.get("Templates")):
                if isinstance(tmpl, Mapping):
                    dest = jobview.as_str(tmpl.get("DestPath"))
                    templates[dest] = jobview.as_str(tmpl.get("EmbeddedTmpl"))
            out[jobview.group_name(group)] = templates
    return out


def _remediations(items: Mapping[str, str]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in sorted(items.items()):
        if key in STATUS_FIELDS or key in ("namespace", "job"):
            continue
        try:
            out[key] = json.loads(value)
        except ValueError:
            out[key] = value
    return out


def explain_doc(facts: Facts, config: MeshConfig, now: datetime) -> dict[str, Any]:
    """PURE: the whole explanation as a JSON-able document."""
    status = None
    if facts.items:
        try:
            status = MeshStatus.from_items(facts.items)
        except ValueError:
            status = None
    doc: dict[str, Any] = {
        "namespace": facts.namespace,
        "job": facts.job_id,
        "found": facts.job is not None,
        "status": None,
        "remediations": _remediations(facts.items),
    }
    if status is not None:
        conditions = []
        for cond in status.conditions:
            age = ""
            try:
                when = datetime.fromisoformat(cond.last_transition.replace("Z", "+00:00"))
                age = human_duration((now - when).total_seconds())
            except ValueError:
                pass
            conditions.append(cond.model_dump(mode="json") | {"since": age})
        doc["status"] = status.model_dump(mode="json") | {"conditions": conditions}
    job = facts.job
    if job is None:
        return doc
    plan = plan_view(job, config)
    templates = sidecar_templates(job)
    source = "injected job"
    if not templates and plan["decision"] == "Apply":
        decision = plan_job(job, config)
        assert isinstance(decision, Apply)
        templates, source = sidecar_templates(decision.job), "planned injection (not applied yet)"
    doc |= {
        "version": job.get("Version"),
        "job_modify_index": job.get("JobModifyIndex"),
        "stopped": jobview.is_stopped(job),
        "specs": specs_view(job, config),
        "plan": plan,
        "templates_from": source if templates else "",
        "templates": templates,
    }
    return doc


def nginx_conf_of(doc: Mapping[str, Any], group: str) -> str:
    """The nginx.conf template text of one group, as the sidecar renders it."""
    return str((doc.get("templates") or {}).get(group, {}).get(nginx.CONF_DEST, ""))
