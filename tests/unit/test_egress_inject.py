"""Upstreams and allow lists through the pure compiler: what the sidecar gets, where its
listeners are reserved, the marker hash, the planner's refusals, round trips and the edge view."""

from __future__ import annotations

import copy
from typing import Any

import pytest

from crds_equivalent.config import MeshConfig
from crds_equivalent.spec import parse_job_specs
from reconcilers.injection.edges import AllowList, UpstreamEdge, allow_lists, upstream_edges
from reconcilers.injection.hashing import hash_inputs, spec_hash
from reconcilers.injection.identity import BadClientName, pure_client_cn, pure_client_name
from reconcilers.injection.inject import inject, uninject
from reconcilers.injection.plan import Apply, Invalid, NoOp, NoOpReason, plan_job

CONFIG = MeshConfig()


def client_job(meta: dict[str, str], *, mode: str | None = None, job_id: str = "nightly") -> dict:
    group: dict[str, Any] = {
        "Name": "report",
        "Tasks": [{"Name": "run", "Driver": "raw_exec", "Config": {"command": "/bin/run"}}],
        "Meta": {"mesh.tls": "true", **meta},
    }
    if mode is not None:
        group["Networks"] = [{"Mode": mode}]
    return {"ID": job_id, "Type": "batch", "TaskGroups": [group]}


def server_job(meta: dict[str, str], mode: str = "host") -> dict[str, Any]:
    port: dict[str, Any] = {"Label": "http", "To": 8080} if mode == "bridge" else {"Label": "http"}
    return {
        "ID": "billing",
        "TaskGroups": [
            {
                "Name": "api",
                "Networks": [{"Mode": mode, "DynamicPorts": [port]}],
                "Services": [{"Name": "billing", "PortLabel": "http"}],
                "Tasks": [{"Name": "app", "Driver": "docker", "Config": {}}],
                "Meta": {"mesh.tls": "true", **meta},
            }
        ],
    }


def sidecar(job: dict[str, Any]) -> dict[str, Any]:
    out = inject(job, parse_job_specs(job), CONFIG)
    return out["TaskGroups"][0]["Tasks"][-1]


def template(task: dict[str, Any], dest: str) -> str:
    return next(t["EmbeddedTmpl"] for t in task["Templates"] if t["DestPath"] == dest)


UPSTREAMS = {"mesh.tls.upstreams": "billing:9001, search:9002/tcp@nomad"}


def test_a_pure_client_is_injected_with_a_leaf_named_after_its_job() -> None:
    task = sidecar(client_job(UPSTREAMS))
    cert = template(task, "secrets/mesh-tls.pem")
    assert '"common_name=nightly.service.consul"' in cert
    assert task["Env"] == {"MESH_TLS_ALT_NAMES": "alt_names=", "MESH_TLS_IP_SANS": "ip_sans="}
    assert [t["DestPath"] for t in task["Templates"]] == [
        "secrets/mesh-tls.pem",
        "local/mesh-ca.pem",  # the upstreams' trust anchors
        "local/nginx.conf",
    ]


def test_http_upstream_listens_on_loopback_and_verifies_the_upstream() -> None:
    conf = template(sidecar(client_job(UPSTREAMS)), "local/nginx.conf")
    http = conf[conf.index("http {") : conf.index("stream {")]
    for line in (
        '{{ with service "mesh-tls.billing" }}',
        "upstream mesh_up_9001 {",
        "server {{ .Address }}:{{ .Port }};",
        "keepalive 64;",
        "listen 127.0.0.1:9001;",
        "proxy_pass https://mesh_up_9001;",
        "proxy_http_version 1.1;",
        "proxy_ssl_verify on;",
        "proxy_ssl_name billing.service.consul;",
        "proxy_ssl_server_name on;",
        'proxy_ssl_certificate {{ env "NOMAD_SECRETS_DIR" }}/mesh-tls.pem;',
        'proxy_ssl_certificate_key {{ env "NOMAD_SECRETS_DIR" }}/mesh-tls.pem;',
        'proxy_ssl_trusted_certificate {{ env "NOMAD_TASK_DIR" }}/mesh-ca.pem;',
        'return 503 "mesh: no healthy mesh-tls instance of billing in consul\\n";',
    ):
        assert line in http, line
    assert " ssl;" not in http  # a pure client serves no TLS
    assert "0.0.0.0" not in conf and "NOMAD_ADDR" not in conf


def test_tcp_upstream_is_a_stream_proxy_that_closes_when_empty() -> None:
    conf = template(sidecar(client_job(UPSTREAMS)), "local/nginx.conf")
    stream = conf[conf.index("stream {") :]
    for line in (
        '{{ with nomadService "mesh-tls.search" }}',
        "listen 127.0.0.1:9002;",
        "proxy_pass mesh_up_9002;",
        "proxy_ssl on;",
        "proxy_ssl_verify on;",
        "proxy_ssl_name search.service.consul;",
        'return "";',
    ):
        assert line in stream, line
    assert conf.startswith("# nomad-tls-mesh sidecar")
    assert "load_module" not in conf  # docker-less default config: no module path set here


def test_host_mode_reserves_each_listener_as_a_static_port() -> None:
    job = client_job(UPSTREAMS)
    group = inject(job, parse_job_specs(job), CONFIG)["TaskGroups"][0]
    assert group["Networks"] == [
        {
            "Mode": "host",
            "ReservedPorts": [
                {"Label": "mesh_tls_upstream_9001", "Value": 9001, "To": 0, "HostNetwork": ""},
                {"Label": "mesh_tls_upstream_9002", "Value": 9002, "To": 0, "HostNetwork": ""},
            ],
        }
    ]


def test_bridge_mode_reserves_nothing_and_the_docker_sidecar_joins_the_namespace() -> None:
    job = client_job(UPSTREAMS, mode="bridge")
    cfg = MeshConfig(sidecar_driver="docker")
    out = inject(job, parse_job_specs(job), cfg)
    group = out["TaskGroups"][0]
    assert group["Networks"] == [{"Mode": "bridge"}]
    assert "network_mode" not in group["Tasks"][-1]["Config"]
    host = inject(client_job(UPSTREAMS), parse_job_specs(client_job(UPSTREAMS)), cfg)
    assert host["TaskGroups"][0]["Tasks"][-1]["Config"]["network_mode"] == "host"


def test_allow_list_is_a_map_over_the_client_cn_with_403_and_a_log_line() -> None:
    job = server_job({"mesh.tls.mtls": "true", "mesh.tls.allow": "frontend, reports"})
    conf = template(sidecar(job), "local/nginx.conf")
    assert "map $ssl_client_s_dn $mesh_caller_denied {" in conf
    assert '"~*(^|,)CN=frontend[.]service[.]consul(,|$)" 0;' in conf
    assert '"~*(^|,)CN=reports[.]service[.]consul(,|$)" 0;' in conf
    location = conf[conf.index("location / {") :]
    assert 'map "$ssl_client_verify:$mesh_caller_denied" $mesh_denial_logged {' in conf
    assert location.index("access_log /dev/stdout mesh_denied if=$mesh_denial_logged;") < (
        location.index("if ($mesh_caller_denied) { return 403; }")
    )
    assert location.index("return 403") < location.index("proxy_pass http://mesh_app_0;")
    assert '"caller":"$ssl_client_s_dn"' in conf


def test_tcp_allow_list_sends_the_rest_to_a_dead_upstream() -> None:
    job = server_job(
        {"mesh.tls.mtls": "true", "mesh.tls.allow": "frontend", "mesh.tls.protocol": "tcp"}
    )
    conf = template(sidecar(job), "local/nginx.conf")
    assert "upstream mesh_denied { server 127.0.0.1:1 down; }" in conf
    assert (
        "map $mesh_caller_denied $mesh_target_mesh_app_0 { 0 mesh_app_0; default mesh_denied; }"
    ) in conf
    assert "proxy_pass $mesh_target_mesh_app_0;" in conf


def test_without_allow_or_upstreams_the_config_is_as_before() -> None:
    before = template(sidecar(server_job({"mesh.tls.mtls": "true"})), "local/nginx.conf")
    assert "mesh_caller_denied" not in before and "127.0.0.1:9" not in before


@pytest.mark.parametrize(
    "job",
    [
        client_job(UPSTREAMS),
        client_job(UPSTREAMS, mode="bridge"),
        server_job({"mesh.tls.mtls": "true", "mesh.tls.allow": "x", **UPSTREAMS}),
        server_job({"mesh.tls.upstreams": "ledger:9101/tcp"}, mode="bridge"),
    ],
)
def test_inject_round_trips_and_plans_up_to_date(job: dict[str, Any]) -> None:
    original = copy.deepcopy(job)
    decision = plan_job(job, CONFIG)
    assert isinstance(decision, Apply)
    assert uninject(decision.job) == original
    assert inject(decision.job, parse_job_specs(original), CONFIG) == decision.job
    again = plan_job(decision.job, CONFIG)
    assert isinstance(again, NoOp) and again.reason == NoOpReason.UP_TO_DATE


def test_a_dropped_listener_port_is_put_back() -> None:
    decision = plan_job(client_job(UPSTREAMS), CONFIG)
    assert isinstance(decision, Apply)
    edited = copy.deepcopy(decision.job)
    edited["TaskGroups"][0]["Networks"][0]["ReservedPorts"].pop()
    assert isinstance(plan_job(edited, CONFIG), Apply)


def _hash(job: dict[str, Any]) -> str:
    specs = parse_job_specs(job)
    group = job["TaskGroups"][0]
    return spec_hash(specs[group["Name"]], CONFIG, job, group)


def test_the_hash_covers_upstreams_and_allow_and_only_when_set() -> None:
    plain = server_job({"mesh.tls.mtls": "true"})
    specs = parse_job_specs(plain)
    document = hash_inputs(specs["api"], CONFIG, plain, plain["TaskGroups"][0])
    assert "upstreams" not in document["spec"] and "allow" not in document["spec"]
    assert "upstreams" not in document and "allow" not in document
    hashes = {
        _hash(plain),
        _hash(server_job({"mesh.tls.mtls": "true", "mesh.tls.allow": "a"})),
        _hash(server_job({"mesh.tls.mtls": "true", "mesh.tls.allow": "b"})),
        _hash(server_job({"mesh.tls.mtls": "true", "mesh.tls.upstreams": "a:1"})),
        _hash(server_job({"mesh.tls.mtls": "true", "mesh.tls.upstreams": "a:2"})),
        _hash(server_job({"mesh.tls.mtls": "true", "mesh.tls.upstreams": "a:1/tcp"})),
        _hash(server_job({"mesh.tls.mtls": "true", "mesh.tls.upstreams": "a:1@nomad"})),
    }
    assert len(hashes) == 7


def test_a_pure_client_with_a_job_id_that_is_no_dns_label_is_invalid() -> None:
    decision = plan_job(client_job(UPSTREAMS, job_id="nightly_report"), CONFIG)
    assert isinstance(decision, Invalid)
    assert decision.reason.startswith('group "report": is a pure client (it calls upstreams')
    assert "job ID 'nightly_report' is not a DNS label" in decision.reason
    with pytest.raises(BadClientName):
        pure_client_name("a.b")
    assert pure_client_name("Nightly-Report") == "nightly-report"
    assert pure_client_cn({"ID": "nightly"}, "mesh.internal") == "nightly.mesh.internal"


def test_a_client_whose_first_network_is_no_object_is_refused_not_a_crash() -> None:
    """The listeners are reserved in the first network; a mangled one is the user's to fix
    (found by make chaos's fuzzer: the planner raised TypeError)."""
    job = client_job(UPSTREAMS)
    job["TaskGroups"][0]["Networks"] = [1.5]
    decision = plan_job(job, CONFIG)
    assert isinstance(decision, Invalid)
    assert "the group's first network is not an object" in decision.reason


def test_a_meshed_group_with_neither_ports_nor_upstreams_is_still_refused() -> None:
    decision = plan_job(client_job({}), CONFIG)
    assert isinstance(decision, Invalid)
    assert "is meshed but has no port to front" in decision.reason


def test_an_upstream_port_the_group_already_uses_is_refused() -> None:
    job = server_job({"mesh.tls.upstreams": "ledger:9001"})
    job["TaskGroups"][0]["Networks"][0]["ReservedPorts"] = [{"Label": "admin", "Value": 9001}]
    decision = plan_job(job, CONFIG)
    assert isinstance(decision, Invalid)
    assert decision.reason == (
        'group "api": port 9001 of upstream "ledger:9001" in meta "mesh.tls.upstreams" is '
        'already used by the group network (port "admin"); the sidecar listens on '
        "127.0.0.1:9001: give the upstream another port"
    )
    bridge = server_job({"mesh.tls.upstreams": "ledger:8080"}, mode="bridge")
    decision = plan_job(bridge, CONFIG)
    assert isinstance(decision, Invalid) and 'port "http"' in decision.reason


def test_a_fronted_label_that_would_take_a_listener_label_is_refused() -> None:
    job = server_job({"mesh.tls.upstreams": "ledger:9001"})
    job["TaskGroups"][0]["Networks"][0]["DynamicPorts"] = [{"Label": "upstream_9001"}]
    job["TaskGroups"][0]["Services"][0]["PortLabel"] = "upstream_9001"
    decision = plan_job(job, CONFIG)
    assert isinstance(decision, Invalid)
    assert 'fronted port label "upstream_9001" would give its TLS port the label' in (
        decision.reason
    )


def test_the_edge_view_lists_every_call_and_allow_list() -> None:
    job = server_job({"mesh.tls.mtls": "true", "mesh.tls.allow": "frontend", **UPSTREAMS})
    specs = parse_job_specs(job)
    assert upstream_edges(job, specs) == [
        UpstreamEdge("default", "billing", "api", "billing", 9001, "http", "consul"),
        UpstreamEdge("default", "billing", "api", "search", 9002, "tcp", "nomad"),
    ]
    assert allow_lists(job, specs) == [AllowList("default", "billing", "api", ("frontend",))]
    assert upstream_edges(server_job({"mesh.tls": "false"}), parse_job_specs(server_job({}))) == []
