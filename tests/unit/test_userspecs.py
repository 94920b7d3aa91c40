"""One un-injection and one parse of a job, shared by the health reconciler's two questions."""

from __future__ import annotations

from typing import Any

import pytest

from crds_equivalent.spec import parse_job_specs
from reconcilers.health.upstreams import job_calls, job_calls_of
from reconcilers.injection.inject import uninject
from reconcilers.injection.plan import default_ttl_seconds
from reconcilers.injection.userspecs import user_specs
from reconcilers.instances.matching import fronted_ports, fronted_ports_of
from tests.support.builders import DOCKER, job, meshed


def caller() -> dict[str, Any]:
    """A meshed job that also calls an upstream and names who may call it."""
    return job(meta={"mesh.tls.mtls": "true", "mesh.tls.upstreams": "billing:9001",
                     "mesh.tls.allow": "report"})  # fmt: skip


def test_user_specs_are_the_uninjected_job_and_the_specs_parsed_from_it() -> None:
    injected = meshed(job(meta={"mesh.tls.mode": "permissive", "mesh.tls.ttl": "48h"}))
    parsed = user_specs(injected, DOCKER)
    assert parsed is not None
    user = uninject(injected)
    assert parsed.user == user
    assert parsed.specs == parse_job_specs(user, default_ttl_seconds=default_ttl_seconds(DOCKER))
    assert parsed.specs["web"].ttl_seconds == 48 * 3600


def test_an_invalid_meta_or_undo_record_reads_as_nothing() -> None:
    assert user_specs(job(meta={"mesh.tls.mode": "loud"}), DOCKER) is None
    broken = meshed(job())
    broken["TaskGroups"][0]["Meta"]["mesh.tls.undo"] = "{not json"
    assert user_specs(broken, DOCKER) is None


@pytest.mark.parametrize(
    "subject",
    [job(), meshed(job()), meshed(job("host", {"mesh.tls.mode": "permissive"})), caller(),
     meshed(caller()), job(meta={"mesh.tls": "false"})],
    ids=["user", "injected", "permissive", "caller", "injected-caller", "unmeshed"],
)  # fmt: skip
def test_one_reading_answers_both_questions_as_each_did_alone(subject: dict[str, Any]) -> None:
    parsed = user_specs(subject, DOCKER)
    assert parsed is not None
    assert fronted_ports_of(parsed, DOCKER) == fronted_ports(subject, DOCKER)
    assert job_calls_of(parsed) == job_calls(subject, DOCKER)


def test_the_callers_edges_come_through_the_shared_reading() -> None:
    parsed = user_specs(meshed(caller()), DOCKER)
    assert parsed is not None
    assert [e.service for e in job_calls_of(parsed).edges] == ["billing"]
    assert [p.service for p in fronted_ports_of(parsed, DOCKER)] == ["web"]
