"""What the status will say about a group's calls: an empty or unmeshed upstream (errors) and
an allow-list name nobody fronts (a warning), judged as the sidecar's template sees instances."""

from __future__ import annotations

from controller.consul.wire import HealthEntry
from reconcilers.injection.edges import AllowList, UpstreamEdge
from reconcilers.instances.edge_findings import (
    ALLOW_NAME_UNKNOWN,
    UPSTREAM_EMPTY,
    UPSTREAM_NOT_MESHED,
    allow_findings,
    upstream_findings,
)


def entry(tags: tuple[str, ...], status: str = "passing") -> HealthEntry:
    return HealthEntry.from_wire(
        {
            "Node": {"Node": "n1", "Address": "10.0.0.1"},
            "Service": {"ID": "x", "Service": "billing", "Port": 1, "Tags": list(tags)},
            "Checks": [{"Status": status}],
        }
    )


def edge(provider: str = "consul", protocol: str = "http") -> UpstreamEdge:
    return UpstreamEdge("default", "web", "api", "billing", 9001, protocol, provider)


def test_a_usable_instance_gives_no_finding() -> None:
    assert upstream_findings([edge()], {("consul", "billing"): [entry(("mesh-tls",))]}) == []


def test_an_unanswered_catalog_gives_no_finding() -> None:
    assert upstream_findings([edge()], {("nomad", "billing"): []}) == []


def test_plaintext_only_instances_mean_the_upstream_is_not_meshed() -> None:
    [finding] = upstream_findings([edge()], {("consul", "billing"): [entry(("v1",))]})
    assert (finding.severity, finding.reason) == ("error", UPSTREAM_NOT_MESHED)
    assert finding.message == (
        'group "api": upstream billing:9001/http: billing has 1 instance(s) in consul, none '
        'tagged "mesh-tls": it is not meshed, and the sidecar never falls back to plaintext '
        '(the listener answers 503); mesh it (meta "mesh.tls" = "true")'
    )


def test_no_passing_tls_instance_is_an_empty_upstream_in_consul_only() -> None:
    critical = {("consul", "billing"): [entry(("mesh-tls",), "critical")]}
    [finding] = upstream_findings([edge(protocol="tcp")], critical)
    assert finding.reason == UPSTREAM_EMPTY
    assert finding.message == (
        'group "api": upstream billing:9001/tcp: no healthy mesh-tls instance in consul '
        "(1 registered, none passing); the listener closes every connection"
    )
    [none] = upstream_findings([edge()], {("consul", "billing"): []})
    assert "(none registered)" in none.message
    # nomadService has no health filter: a registered TLS instance is used.
    native = {("nomad", "billing"): [entry(("mesh-tls",), "critical")]}
    assert upstream_findings([edge("nomad")], native) == []


def test_an_allow_name_nobody_fronts_is_a_warning() -> None:
    allow = [AllowList("default", "billing", "api", ("frontend", "reprots"))]
    [finding] = allow_findings(allow, {"Frontend", "reports"})
    assert (finding.severity, finding.reason, finding.group) == (
        "warning",
        ALLOW_NAME_UNKNOWN,
        "api",
    )
    assert 'names "reprots", which no meshed job fronts' in finding.message
