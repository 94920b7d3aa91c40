"""controllerctl explain, pure parts: spec, plan, conditions, remediations, nginx.conf."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

from controller.ctl.explain import Facts, explain_doc, nginx_conf_of
from controller.ctl.explain_text import render_text
from crds_equivalent import keys
from crds_equivalent.config import MeshConfig
from crds_equivalent.status import Condition, ConditionType, EdgeRecord, MeshStatus, Phase
from reconcilers.injection import nginx
from reconcilers.injection.plan import Apply, plan_job

NOW = datetime(2025, 3, 1, 12, 0, tzinfo=UTC)
CONFIG = MeshConfig()


def user_job(meta: dict[str, str]) -> dict[str, Any]:
    return {
        "ID": "web",
        "Name": "web",
        "Namespace": "default",
        "Type": "service",
        "Version": 3,
        "JobModifyIndex": 40,
        "Meta": meta,
        "TaskGroups": [
            {
                "Name": "app",
                "Count": 1,
                "Networks": [{"Mode": "bridge", "DynamicPorts": [{"Label": "http", "To": 8080}]}],
                "Services": [{"Name": "web", "PortLabel": "http"}],
                "Tasks": [{"Name": "app", "Driver": "docker", "Config": {"image": "x"}}],
            }
        ],
    }


def injected(meta: dict[str, str]) -> dict[str, Any]:
    decision = plan_job(user_job(meta), CONFIG)
    assert isinstance(decision, Apply)
    return decision.job


def status_items() -> dict[str, str]:
    status = MeshStatus(
        phase=Phase.DEGRADED,
        observed_index=40,
        conditions=(
            Condition(
                type=ConditionType.SPEC_VALID,
                status="True",
                reason="Parsed",
                last_transition="2025-03-01T09:00:00+00:00",
            ),
            Condition(
                type=ConditionType.CERT_VALID,
                status="False",
                reason="RenewalMissed",
                message="10.0.0.1:24001: 2.1h left of 72.0h",
                last_transition="2025-03-01T11:30:00+00:00",
            ),
        ),
        message="10.0.0.1:24001: 2.1h left of 72.0h",
    )
    remediation = [{"at": "2025-03-01T11:31:00+00:00", "action": "restart mesh-tls-proxy"}]
    return status.to_items() | {"remediations": json.dumps(remediation)}


def test_injected_job_explained() -> None:
    job = injected({"mesh.tls": "true", "mesh.tls.mtls": "true"})
    doc = explain_doc(Facts("default", "web", job, status_items()), CONFIG, NOW)
    [spec] = doc["specs"]
    assert spec["mode"] == "strict" and spec["protocol"] == "http" and spec["mtls"] is True
    assert spec["ports"] == ["http"] and spec["ttl"] == "72h0m0s"
    assert doc["plan"] == {"decision": "NoOp", "reason": "up to date", "diff": ""}
    cert = doc["status"]["conditions"][1]
    assert cert["type"] == "CertValid" and cert["since"] == "30m"
    assert doc["remediations"]["remediations"][0]["action"] == "restart mesh-tls-proxy"
    sidecar = next(t for t in job["TaskGroups"][0]["Tasks"] if t["Name"] == keys.SIDECAR_TASK)
    conf = next(t["EmbeddedTmpl"] for t in sidecar["Templates"] if t["DestPath"] == nginx.CONF_DEST)
    assert nginx_conf_of(doc, "app") == conf
    assert "ssl_verify_client on;" in conf
    text = render_text(doc)
    assert conf.rstrip("\n") in text
    assert "CertValid         False   RenewalMissed for 30m: 10.0.0.1:24001" in text
    assert doc["templates_from"] == "injected job"
    assert "restart mesh-tls-proxy" in text


def test_not_yet_injected_job_shows_the_planned_templates_and_diff() -> None:
    job = user_job({"mesh.tls": "true"})
    doc = explain_doc(Facts("default", "web", job), CONFIG, NOW)
    assert doc["plan"]["decision"] == "Apply"
    assert doc["templates_from"] == "planned injection (not applied yet)"
    assert 'listen {{ env "NOMAD_PORT_mesh_tls_http" }} ssl;' in nginx_conf_of(doc, "app")
    assert doc["status"] is None
    text = render_text(doc)
    assert "changed lines; --diff shows them" in text
    assert "none (the controller has not recorded this job)" in text
    assert '  +                    "Name": "mesh-tls-proxy",' in render_text(doc, show_diff=True)


def test_invalid_spec_and_missing_job() -> None:
    job = user_job({"mesh.tls": "true", "mesh.tls.mode": "strcit"})
    doc = explain_doc(Facts("default", "web", job), CONFIG, NOW)
    assert doc["plan"]["decision"] == "Invalid"
    assert 'meta "mesh.tls.mode" = "strcit"' in doc["specs"]
    assert doc["templates"] == {}
    gone = explain_doc(Facts("default", "web", None, status_items()), CONFIG, NOW)
    assert not gone["found"] and gone["status"]["phase"] == "Degraded"
    assert "not found in Nomad" in render_text(gone)


def test_explain_shows_upstreams_the_allow_list_and_the_rendered_upstream_config() -> None:
    meta = {
        "mesh.tls": "true",
        "mesh.tls.mtls": "true",
        "mesh.tls.allow": "frontend",
        "mesh.tls.upstreams": "billing:9001, search:9002/tcp@nomad",
    }
    doc = explain_doc(Facts("default", "web", injected(meta)), CONFIG, NOW)
    [spec] = doc["specs"]
    assert spec["allow"] == ["frontend"]
    assert spec["upstreams"] == [
        {
            "entry": "billing:9001/http@consul",
            "listen": "127.0.0.1:9001",
            "reserved": "no (the group's own network namespace)",
            "catalog": '{{ service "mesh-tls.billing" }}',
            "server_name": "billing.service.consul",
            "balancing": "per request, keep-alive",
        },
        {
            "entry": "search:9002/tcp@nomad",
            "listen": "127.0.0.1:9002",
            "reserved": "no (the group's own network namespace)",
            "catalog": '{{ nomadService "mesh-tls.search" }}',
            "server_name": "search.service.consul",
            "balancing": "per connection",
        },
    ]
    text = render_text(doc)
    assert "mtls=true sans=- allow=frontend" in text
    assert (
        "    upstream billing:9001/http@consul: app dials 127.0.0.1:9001 (reserved: no (the "
        'group\'s own network namespace)); sidecar -> {{ service "mesh-tls.billing" }} over '
        "mTLS, verified as billing.service.consul, per request, keep-alive"
    ) in text
    conf = nginx_conf_of(doc, "app")
    assert "listen 127.0.0.1:9001;" in conf and "proxy_ssl_name billing.service.consul;" in conf
    assert conf.rstrip("\n") in text  # the whole upstream config is printed
    assert f"group app, {nginx.CA_DEST}:" in text


def test_explain_of_a_host_mode_caller_names_its_reserved_port() -> None:
    job = user_job({"mesh.tls": "true", "mesh.tls.upstreams": "billing:9001"})
    job["TaskGroups"][0]["Networks"] = [{"Mode": "host", "DynamicPorts": [{"Label": "http"}]}]
    [spec] = explain_doc(Facts("default", "web", job), CONFIG, NOW)["specs"]
    assert spec["upstreams"][0]["reserved"] == "static port mesh_tls_upstream_9001 = 9001"


def test_explain_shows_the_recorded_edges_and_warnings() -> None:
    meta = {"mesh.tls": "true", "mesh.tls.upstreams": "billing:9001"}
    edge = EdgeRecord(
        group="app",
        service="billing",
        port=9001,
        protocol="http",
        provider="consul",
        state="healthy",
        healthy=2,
        handshake_error="10.0.0.9:7000 (billing.service.consul): unknown ca",
    )
    status = MeshStatus(phase=Phase.READY, edges=(edge,), warnings=("allow names nobody",))
    doc = explain_doc(Facts("default", "web", injected(meta), status.to_items()), CONFIG, NOW)
    assert doc["status"]["edges"][0]["state"] == "healthy"
    text = render_text(doc)
    assert (
        "  edge app -> billing:9001/http@consul: healthy (2 healthy); last handshake error: "
        "10.0.0.9:7000 (billing.service.consul): unknown ca"
    ) in text
    assert "  warning: allow names nobody" in text
