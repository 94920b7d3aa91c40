"""The per-job grant: role names, their reading back, the names a job may issue, the policies."""

from __future__ import annotations

import pytest
from hypothesis import given
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
)
from reconcilers.injection.plan import Apply, Invalid, plan_job

CONFIG = MeshConfig()


def job(job_id: str, services: list[str], namespace: str = "default") -> dict[str, object]:
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
