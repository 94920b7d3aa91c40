"""The rotation nonce: a new job version that re-issues leaves, and that inject keeps."""

from __future__ import annotations

import copy
from typing import Any

import pytest

from crds_equivalent import keys
from crds_equivalent.config import MeshConfig
from crds_equivalent.spec import parse_job_specs
from reconcilers.injection import jobview, nginx
from reconcilers.injection.inject import inject, uninject
from reconcilers.injection.plan import Apply, NoOp, plan_job
from reconcilers.injection.reissue import CannotReissue, carries, meshed_groups, nonces, with_nonce

CONFIG = MeshConfig()


def user_job(meshed: bool = True) -> dict[str, Any]:
    def group(name: str, flag: bool) -> dict[str, Any]:
        return {
            "Name": name,
            "Networks": [{"Mode": "bridge", "DynamicPorts": [{"Label": "http", "To": 8080}]}],
            "Services": [{"Name": f"shop-{name}", "PortLabel": "http", "Provider": "consul"}],
            "Tasks": [{"Name": "app", "Driver": "docker"}],
            "Meta": {"mesh.tls": "true"} if flag else None,
        }

    return {
        "ID": "shop",
        "Namespace": "default",
        "TaskGroups": [group("web", meshed), group("admin", False)],
    }


def injected(job: dict[str, Any]) -> dict[str, Any]:
    decision = plan_job(job, CONFIG)
    assert isinstance(decision, Apply)
    return decision.job


def cert_template(job: dict[str, Any], group: str = "web") -> str:
    for g in jobview.groups(job):
        if jobview.group_name(g) == group:
            for task in jobview.tasks(g):
                if task["Name"] == keys.SIDECAR_TASK:
                    text: str = task["Templates"][0]["EmbeddedTmpl"]
                    return text
    raise AssertionError("no sidecar")


def test_a_nonce_changes_the_certificate_template_and_nothing_the_planner_fights() -> None:
    before = injected(user_job())
    after = with_nonce(before, "ca-1234", CONFIG)
    assert cert_template(after) != cert_template(before)
    assert "{{/* mesh.tls.rotation ca-1234 */}}" in cert_template(after)
    assert cert_template(after).endswith(cert_template(before))  # the same pkiCert call
    assert isinstance(plan_job(after, CONFIG), NoOp)  # our own write is "up to date"
    marker = keys.INJECTED_GROUP_META
    web = next(g for g in jobview.groups(after) if g["Name"] == "web")
    old_web = next(g for g in jobview.groups(before) if g["Name"] == "web")
    assert web["Meta"][marker] != old_web["Meta"][marker]
    assert carries(after, "ca-1234", CONFIG) and not carries(before, "ca-1234", CONFIG)


def test_only_meshed_groups_get_the_nonce() -> None:
    after = with_nonce(injected(user_job()), "n1", CONFIG)
    assert nonces(after, CONFIG) == {"web": "n1"}
    admin = next(g for g in jobview.groups(after) if g["Name"] == "admin")
    assert admin["Meta"] is None
    assert meshed_groups(after, CONFIG) == ["web"]


def test_the_nonce_survives_uninject_and_reinjection() -> None:
    after = with_nonce(injected(user_job()), "n1", CONFIG)
    user = uninject(after)
    assert next(g["Meta"] for g in user["TaskGroups"]) == {
        "mesh.tls": "true",
        keys.ROTATION_GROUP_META: "n1",
    }
    specs = parse_job_specs(user, default_ttl_seconds=72 * 3600)
    assert inject(user, specs, CONFIG) == after  # re-injection is idempotent, nonce kept
    assert inject(after, specs, CONFIG) == after
    assert uninject(inject(user, specs, CONFIG)) == user
    # a CI re-submit of the nonce-carrying user spec is re-injected with the same template
    assert cert_template(injected(user)) == cert_template(after)


def test_a_job_never_reissued_keeps_its_hash() -> None:
    plain = injected(user_job())
    with_key = copy.deepcopy(user_job())
    with_key["TaskGroups"][0]["Meta"][keys.ROTATION_GROUP_META] = ""
    assert (
        injected(with_key)["TaskGroups"][0]["Meta"][keys.INJECTED_GROUP_META]
        == (plain["TaskGroups"][0]["Meta"][keys.INJECTED_GROUP_META])
    )


def test_each_nonce_is_a_different_version_and_the_same_nonce_is_the_same() -> None:
    base = injected(user_job())
    one, two = with_nonce(base, "a", CONFIG), with_nonce(base, "b", CONFIG)
    assert cert_template(one) != cert_template(two)
    assert with_nonce(one, "a", CONFIG) == one


def test_a_nonce_cannot_close_the_template_comment() -> None:
    text = nginx.cert_template("pki_int/issue/mesh", "a.service.consul", 3600, "x */ {{ evil }}")
    comment = text.split("}}", 1)[0]
    assert "*/" not in comment.removesuffix(" */")
    assert text.count("{{") == text.count("}}")


def test_unmeshed_jobs_cannot_be_reissued() -> None:
    with pytest.raises(CannotReissue):
        with_nonce(user_job(meshed=False), "n1", CONFIG)
    with pytest.raises(ValueError, match="must not be empty"):
        with_nonce(injected(user_job()), "", CONFIG)


def test_the_sidecar_re_renders_its_certificate_on_restart() -> None:
    sidecar = injected(user_job())["TaskGroups"][0]["Tasks"][-1]
    assert sidecar["Name"] == keys.SIDECAR_TASK
    assert sidecar["RestartPolicy"] == {"RenderTemplates": True}
