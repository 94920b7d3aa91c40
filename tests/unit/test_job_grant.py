"""The per-job grant: role names, their reading back, the names a job may issue, the policies."""

from __future__ import annotations

import copy
import json
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from controller.vault import PkiLayout
from controller.vault.policies import controller_policy, workload_policy
from crds_equivalent.config import MeshConfig
from crds_equivalent.spec import parse_job_specs
from reconcilers.injection.grant import (
    CannotBind,
    Grant,
    job_grant,
    job_leaf_names,
    job_role,
    parse_role,
    san_grant,
)
from reconcilers.injection.plan import Apply, Invalid, NoOp, plan_job
from tests.support import paths
from tests.support.fuzzing import examples
from tests.support.strategies import jobs

CONFIG = MeshConfig()


def job(job_id: str, services: list[str], namespace: str = "default") -> dict[str, Any]:
    return {
        "ID": job_id,
        "Namespace": namespace,
        "Meta": {"mesh.tls": "true"},
        "TaskGroups": [
            {
                "Name": "g",
                "Networks": [{"DynamicPorts": [{"Label": "http"}]}],
                "Services": [{"Name": s, "PortLabel": "http"} for s in services],
                "Tasks": [{"Name": "app", "Driver": "docker"}],
            }
        ],
    }


@pytest.mark.parametrize(
    ("namespace", "job_id", "role"),
    [
        ("default", "web", "mesh.default.web"),
        ("team-a", "api.v2", "mesh.team-a.api.v2"),
        ("prod", "x_1-y", "mesh.prod.x_1-y"),
    ],
)
def test_role_name_and_back(namespace: str, job_id: str, role: str) -> None:
    assert job_role(CONFIG, namespace, job_id) == role
    assert parse_role(CONFIG, role) == (namespace, job_id)


@pytest.mark.parametrize("job_id", ["web-", "web.", "a/b", "caf\u00e9", "a b", "a:b", ""])
def test_a_job_id_vault_cannot_hold_is_refused_naming_it(job_id: str) -> None:
    with pytest.raises(CannotBind, match="cannot name a Vault PKI role"):
        job_role(CONFIG, "default", job_id)


def test_not_our_roles_read_back_as_none() -> None:
    assert parse_role(CONFIG, "mesh") is None
    assert parse_role(CONFIG, "other.default.web") is None
    assert parse_role(CONFIG, "mesh.default") is None


@given(
    st.from_regex(r"[a-zA-Z0-9-]{1,20}", fullmatch=True),
    st.from_regex(r"[A-Za-z0-9_](?:[A-Za-z0-9_.-]{0,20}[A-Za-z0-9_])?", fullmatch=True),
)
def test_role_names_are_reversible(namespace: str, job_id: str) -> None:
    assert parse_role(CONFIG, job_role(CONFIG, namespace, job_id)) == (namespace, job_id)


def test_leaf_names_are_exactly_the_fronted_services_in_both_forms() -> None:
    j = job("shop", ["web", "api", "web"])
    assert job_leaf_names(j, parse_job_specs(j), CONFIG) == (
        "web.service.consul",
        "web.service.*.consul",
        "api.service.consul",
        "api.service.*.consul",
    )


def test_the_plan_carries_the_grant_and_refuses_what_cannot_bind() -> None:
    decision = plan_job(job("shop", ["web"]), CONFIG)
    assert isinstance(decision, Apply)
    assert decision.grant == Grant(
        "mesh.default.shop", ("web.service.consul", "web.service.*.consul")
    )
    assert (
        job_grant(job("shop", ["web"]), parse_job_specs(job("shop", ["web"])), CONFIG)
        == decision.grant
    )
    refused = plan_job(job("shop/x", ["web"]), CONFIG)
    assert isinstance(refused, Invalid) and "job ID 'shop/x'" in refused.reason


def test_the_sidecar_issues_from_its_jobs_own_role() -> None:
    decision = plan_job(job("shop", ["web"], namespace="team-a"), CONFIG)
    assert isinstance(decision, Apply)
    [sidecar] = [t for t in decision.job["TaskGroups"][0]["Tasks"] if t["Name"] == "mesh-tls-proxy"]
    assert 'pkiCert "pki_int/issue/mesh.team-a.shop"' in sidecar["Templates"][0]["EmbeddedTmpl"]


def test_per_job_role_params_allow_only_the_names() -> None:
    params = PkiLayout().job_role_params(("web.service.consul", "web.service.*.consul"))
    assert params["allowed_domains"] == ["web.service.consul", "web.service.*.consul"]
    assert (params["allow_subdomains"], params["allow_bare_domains"]) == (False, True)
    assert params["allow_glob_domains"] is True
    assert (params["allow_wildcard_certificates"], params["allow_localhost"]) == (False, False)


def test_workload_policy_is_exactly_its_own_role_and_the_ca_chain() -> None:
    text = workload_policy(PkiLayout().policy_paths("auth_jwt_1234"))
    meta = "identity.entity.aliases.auth_jwt_1234.metadata"
    assert text == (
        f'path "pki_int/issue/mesh.{{{{{meta}.nomad_namespace}}}}.{{{{{meta}.nomad_job_id}}}}" {{\n'
        '  capabilities = ["update"]\n}\n'
        'path "pki_int/cert/ca_chain" {\n  capabilities = ["read"]\n}\n'
    )


def test_controller_manages_per_job_roles_but_never_issues() -> None:
    text = controller_policy(PkiLayout().policy_paths())
    assert (
        'path "pki_int/roles/mesh.*" {\n  capabilities = ["create", "read", "update", "delete"]'
        in text
    )
    assert "/issue/" not in text and "/sign/" not in text


def test_a_service_name_only_the_client_knows_is_invalid_naming_the_group() -> None:
    j = job("shop", ["web-${NOMAD_ALLOC_INDEX}"])
    refused = plan_job(j, CONFIG)
    assert isinstance(refused, Invalid) and refused.reason.startswith('group "g": ')


def pure_client(job_id: str) -> dict[str, object]:
    """A group that fronts nothing and calls one upstream (issue 18's pure client)."""
    return {
        "ID": job_id,
        "Namespace": "default",
        "Meta": {"mesh.tls": "true"},
        "TaskGroups": [
            {
                "Name": "g",
                "Meta": {"mesh.tls.upstreams": "web:18080"},
                "Tasks": [{"Name": "app", "Driver": "raw_exec"}],
            }
        ],
    }


def test_a_pure_client_is_granted_its_own_job_name_and_nothing_else() -> None:
    client = pure_client("reports")
    names = job_leaf_names(client, parse_job_specs(client), CONFIG)
    assert names == (f"reports.{CONFIG.domain}",)
    decision = plan_job(client, CONFIG)
    assert isinstance(decision, Apply)


def test_a_pure_client_whose_job_id_is_no_dns_label_cannot_be_bound() -> None:
    client = pure_client("Reports_2")
    with pytest.raises(CannotBind, match="not a DNS label"):
        job_leaf_names(client, parse_job_specs(client), CONFIG)


def with_sans(j: dict[str, Any], sans: str) -> dict[str, Any]:
    j["TaskGroups"][0]["Meta"] = {"mesh.tls.sans": sans}
    return j


def test_external_sans_are_granted_as_exact_names_and_own_names_add_nothing() -> None:
    j = with_sans(
        job("shop", ["web", "api"]),
        "shop.example.com, web.service.consul, api.service.dc1.consul, shop.internal",
    )
    decision = plan_job(j, CONFIG)
    assert isinstance(decision, Apply) and decision.grant is not None
    assert decision.grant.names == (
        "web.service.consul",
        "web.service.*.consul",
        "api.service.consul",
        "api.service.*.consul",
        "shop.example.com",
        "shop.internal",
    )
    params = PkiLayout().job_role_params(decision.grant.names)
    assert params["allow_ip_sans"] is True  # the sidecar's ip_sans need no name


@pytest.mark.parametrize(
    "san",
    [
        "billing.service.consul",  # another service's mesh name
        "billing.service.dc1.consul",  # another service's Consul name
        "web.service.dc1.eu.consul",  # the own glob covers one datacenter label only
        "service.consul",
        "billing.consul",
        "consul",
        "billing.service.consul.",
    ],
)
def test_a_san_in_the_mesh_namespace_that_the_job_does_not_front_is_invalid(san: str) -> None:
    decision = plan_job(with_sans(job("shop", ["web"]), san), CONFIG)
    assert isinstance(decision, Invalid)
    assert decision.reason.startswith(f'group "g": meta "mesh.tls.sans" names "{san}": ')
    assert "not a name this job fronts" in decision.reason


def test_the_mesh_namespace_follows_the_configured_domains() -> None:
    config = MeshConfig(domain="mesh.example.org", datacenter_domain="dc.example.org")
    refused = plan_job(with_sans(job("shop", ["web"]), "billing.mesh.example.org"), config)
    assert isinstance(refused, Invalid) and "billing.mesh.example.org" in refused.reason
    granted = plan_job(with_sans(job("shop", ["web"]), "billing.service.consul"), config)
    assert isinstance(granted, Apply) and granted.grant is not None
    assert granted.grant.names[-1] == "billing.service.consul"


def test_a_wildcard_san_is_never_granted() -> None:
    with pytest.raises(CannotBind, match="a wildcard would cover"):
        san_grant("*.example.com", "g", (), CONFIG)


def test_a_san_may_name_what_another_group_of_the_job_fronts() -> None:
    j = job("shop", ["web"])
    second = copy.deepcopy(j["TaskGroups"][0])
    second["Name"] = "h"
    second["Services"] = [{"Name": "api", "PortLabel": "http"}]
    j["TaskGroups"].append(second)
    with_sans(j, "api.service.consul")
    decision = plan_job(j, CONFIG)
    assert isinstance(decision, Apply) and decision.grant is not None
    assert "api.service.consul" in decision.grant.names


def fronted_by(san: str, grant: Grant) -> bool:
    """An oracle apart from grant.py: ``san`` is ``<svc>.service.consul`` or
    ``<svc>.service.<one label>.consul`` for a service the grant fronts."""
    services = {
        n.removesuffix(".service.consul") for n in grant.names if n.endswith(".service.consul")
    }
    labels = san.rstrip(".").split(".")
    if labels[1:] == ["service", "consul"]:
        return labels[0] in services
    return (
        len(labels) == 4
        and labels[1] == "service"
        and labels[3] == "consul"
        and labels[0] in services
    )


def granted(user: dict[str, Any]) -> Grant | None:
    decision = plan_job(user, CONFIG)
    return decision.grant if isinstance(decision, Apply | NoOp) else None


@settings(max_examples=examples(120), deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(jobs())
def test_a_planned_grant_holds_every_external_san_and_no_foreign_mesh_name(
    user: dict[str, Any],
) -> None:
    """Over generated jobs: the plan grants each declared SAN outside the mesh's namespaces,
    and a mesh-namespace SAN it accepts is one the job fronts."""
    grant = granted(user)
    if grant is None:
        return
    sans = {san for s in parse_job_specs(user).values() if s.enabled for san in s.sans}
    for san in sans:
        if san.rstrip(".").split(".")[-1] == "consul":
            assert fronted_by(san, grant), (san, grant)
            assert san not in grant.names or fronted_by(san, grant)
        else:
            assert san in grant.names, (san, grant)


@settings(max_examples=examples(120), deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(jobs())
def test_a_foreign_mesh_san_makes_the_plan_invalid_naming_it(user: dict[str, Any]) -> None:
    if granted(user) is None:
        return
    specs = parse_job_specs(user)
    group = next(g for g in user["TaskGroups"] if specs[g["Name"]].enabled)
    meta = group.get("Meta") if isinstance(group.get("Meta"), dict) else {}
    group["Meta"] = {**meta, "mesh.tls.sans": "zz-nobody.service.consul"}  # no NAMES has z
    decision = plan_job(user, CONFIG)
    assert isinstance(decision, Invalid), decision
    assert 'meta "mesh.tls.sans" names "zz-nobody.service.consul"' in decision.reason


def test_the_golden_sans_job_is_granted_its_external_san() -> None:
    """tests/fixtures/jobs/mtls-sans-ttl: the rendered sidecar asks for the declared SAN
    (alt_names), and the plan grants exactly it beside the fronted names."""
    user = json.loads((paths.FIXTURES / "jobs" / "mtls-sans-ttl.in.json").read_text())
    decision = plan_job(user, CONFIG)
    assert isinstance(decision, Apply) and decision.grant is not None
    assert decision.grant.names[-1] == "payments.internal.example.com"
    assert [n for n in decision.grant.names if not n.endswith("consul")] == [
        "payments.internal.example.com"
    ]
    [sidecar] = [t for t in decision.job["TaskGroups"][0]["Tasks"] if t["Name"] == "mesh-tls-proxy"]
    assert sidecar["Env"]["MESH_TLS_ALT_NAMES"].endswith(",payments.internal.example.com")
