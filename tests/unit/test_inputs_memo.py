"""InputsMemo: the planner's memo of each group's inputs gives group_inputs' answers."""

from __future__ import annotations

from typing import Any

import pytest

from crds_equivalent.spec import MeshSpec
from reconcilers.injection import fronting, jobview


def group(service_name: str) -> dict[str, Any]:
    return {
        "Name": "web",
        "Networks": [{"Mode": "host", "DynamicPorts": [{"Label": "http"}]}],
        "Services": [{"Name": service_name, "PortLabel": "http"}],
        "Tasks": [{"Name": "app", "Driver": "docker"}],
    }


JOB = {"ID": "shop", "Name": "shop"}
SPEC = MeshSpec(group="web", enabled=True, ports=("http",))


def test_each_group_gets_its_own_inputs() -> None:
    memo = fronting.InputsMemo()
    first, second = group("${JOB}-front"), group("other")
    assert memo(JOB, first, SPEC) == fronting.group_inputs(JOB, first, SPEC)
    assert memo(JOB, second, SPEC) == fronting.group_inputs(JOB, second, SPEC)
    assert [s.name for s in memo(JOB, first, SPEC).services] == ["shop-front"]
    assert [s.name for s in memo(JOB, second, SPEC).services] == ["other"]


def test_another_spec_or_job_is_read_again() -> None:
    memo = fronting.InputsMemo()
    g = group("${JOB}")
    assert memo(JOB, g, SPEC).labels == ("http",)
    assert memo(JOB, g, MeshSpec(group="web", enabled=True, ports=("admin",))).labels == ()
    assert memo({"ID": "cart"}, g, SPEC).services[0].name == "cart"


def test_a_name_only_the_client_knows_raises_every_time() -> None:
    memo = fronting.InputsMemo()
    g = group("${NOMAD_ALLOC_ID}")
    for _ in range(2):
        with pytest.raises(jobview.UnresolvedName, match="NOMAD_ALLOC_ID"):
            memo(JOB, g, SPEC)
