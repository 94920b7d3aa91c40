"""``controllerctl explain`` as text: the explanation document laid out for a terminal.

The document (``ctl.explain.explain_doc``) is the truth and is what ``--output json`` prints;
this is only its layout: the job, the parsed spec, the plan (a count of changed lines, or the
diff with ``--diff``), the status record and its conditions, remediations, the templates.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from reconcilers.injection import nginx


def _section(title: str) -> str:
    return f"\n{title}\n{'-' * len(title)}\n"


def render_text(doc: Mapping[str, Any], *, show_diff: bool = False) -> str:
    out = [f"Job {doc['namespace']}/{doc['job']}"]
    out += _job_part(doc, show_diff)
    out += _status_part(doc)
    out += _templates_part(doc)
    return "\n".join(out) + "\n"


def _job_part(doc: Mapping[str, Any], show_diff: bool) -> list[str]:
    out: list[str] = []
    if not doc["found"]:
        out.append("  not found in Nomad")
    else:
        stopped = " (stopped)" if doc.get("stopped") else ""
        out.append(
            f"  version {doc.get('version')}, job modify index {doc.get('job_modify_index')}"
            + stopped
        )
        out.append(_section("Spec, as parsed (defaults filled in)"))
        specs = doc["specs"]
        if isinstance(specs, str):
            out.append(f"  invalid: {specs}")
        for spec in specs if isinstance(specs, list) else []:
            if not spec["meshed"]:
                out.append(f"  group {spec['group']}: not meshed")
                continue
            out.append(
                f"  group {spec['group']}: mode={spec['mode']} protocol={spec['protocol']} "
                f"ports={','.join(spec['ports']) or '-'} ttl={spec['ttl']} "
                f"(with jitter {spec['ttl_with_jitter']}) mtls={str(spec['mtls']).lower()} "
                f"sans={','.join(spec['sans']) or '-'}"
                + (f" allow={','.join(spec['allow'])}" if spec.get("allow") else "")
            )
            out += _upstream_lines(spec.get("upstreams") or [])
        plan = doc["plan"]
        out.append(_section("Plan the controller would make now"))
        out.append(f"  {plan['decision']}: {plan['reason']}")
        if plan["diff"]:
            lines = plan["diff"].splitlines()
            if show_diff:
                out += ["  " + line for line in lines]
            else:
                changed = sum(1 for li in lines if li[:1] in "+-" and li[:3] not in ("+++", "---"))
                out.append(f"  ({changed} changed lines; --diff shows them)")
    return out


def _upstream_lines(upstreams: list[Mapping[str, Any]]) -> list[str]:
    """One line per upstream: what the app dials, and where the sidecar carries it."""
    return [
        f"    upstream {u['entry']}: app dials {u['listen']} (reserved: {u['reserved']}); "
        f"sidecar -> {u['catalog']} over mTLS, verified as {u['server_name']}, "
        f"{u['balancing']}"
        for u in upstreams
    ]


def _edge_lines(status: Mapping[str, Any]) -> list[str]:
    """The recorded upstream edges (state, healthy count, last handshake error) and warnings."""
    out: list[str] = []
    for edge in status.get("edges") or []:
        count = "" if edge["healthy"] is None else f" ({edge['healthy']} healthy)"
        line = (
            f"  edge {edge['group']} -> {edge['service']}:{edge['port']}/{edge['protocol']}"
            f"@{edge['provider']}: {edge['state']}{count}"
        )
        if edge.get("handshake_error"):
            line += f"; last handshake error: {edge['handshake_error']}"
        out.append(line + (f"; {edge['message']}" if edge["message"] else ""))
    out += [f"  warning: {w}" for w in status.get("warnings") or []]
    return out


def _status_part(doc: Mapping[str, Any]) -> list[str]:
    out = [_section("Status record")]
    status = doc["status"]
    if status is None:
        out.append("  none (the controller has not recorded this job)")
    else:
        out.append(
            f"  phase {status['phase']}, observed index {status['observed_index']}, "
            f"updated {status['updated_at'] or '?'}"
        )
        if status["message"]:
            out.append(f"  message: {status['message']}")
        if status.get("last_error"):
            out.append(f"  last error: {status['last_error']}")
        if status.get("cert_not_after"):
            issuer = status["issuer"] or "?"
            out.append(f"  certificate: not after {status['cert_not_after']}, issuer {issuer}")
        for cond in status["conditions"]:
            since = f" for {cond['since']}" if cond["since"] else ""
            out.append(
                f"  {cond['type']:<17} {cond['status']:<7} {cond['reason'] or '-'}{since}"
                + (f": {cond['message']}" if cond["message"] else "")
            )
            out.append(f"  {'':<17} since {cond['last_transition'] or '?'}")
        out += _edge_lines(status)
    out.append(_section("Recent remediations"))
    remediations = doc["remediations"]
    if not remediations:
        out.append("  none recorded")
    for key, value in remediations.items():
        shown = value if isinstance(value, str) else json.dumps(value, indent=2)
        out.append(f"  {key}: " + shown.replace("\n", "\n    "))
    return out


def _templates_part(doc: Mapping[str, Any]) -> list[str]:
    out: list[str] = []
    templates = doc.get("templates") or {}
    if templates:
        out.append(_section(f"Sidecar templates (from the {doc['templates_from']})"))
        for group, files in templates.items():
            for dest in (nginx.CONF_DEST, nginx.CERT_DEST, nginx.CA_DEST):
                if dest in files:
                    out.append(f"  group {group}, {dest}:")
                    out.append(files[dest].rstrip("\n"))
                    out.append("")
    return out
