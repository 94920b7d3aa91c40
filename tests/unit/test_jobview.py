"""Read-only views over raw job dicts: request shape (nulls) and stored shape read the same."""

from __future__ import annotations

from typing import Any

import pytest

from crds_equivalent import keys
from reconcilers.injection import jobview
from reconcilers.injection.jobview import ServiceView, UnresolvedName


def group(**extra: Any) -> dict[str, Any]:
    tg: dict[str, Any] = {
        "Name": "api",
        "Networks": [
            {
                "Mode": "",
                "ReservedPorts": [{"Label": "lb", "Value": 8889}],
                "DynamicPorts": [{"Label": "http", "To": 8080, "HostNetwork": "public"}],
            },
            {"Mode": "bridge", "DynamicPorts": [{"Label": "http", "To": 1}, {"Label": "x"}]},
        ],
        "Services": [{"Name": "", "PortLabel": "http"}, None],
        "Tasks": [
            {"Name": "app", "Services": [{"Name": "${BASE}-x", "PortLabel": "lb"}]},
            {"Name": "log", "Services": None},
        ],
    }
    tg.update(extra)
    return tg


JOB: dict[str, Any] = {"ID": "shop", "Name": None, "Namespace": None, "TaskGroups": [group()]}


def test_identity_defaults_match_what_nomad_stores() -> None:
    assert jobview.namespace(JOB) == "default"
    assert jobview.namespace({"Namespace": "apps"}) == "apps"
    assert jobview.job_name(JOB) == "shop"
    assert jobview.job_name({"ID": "a", "Name": "b"}) == "b"
    assert not jobview.is_stopped(JOB)
    assert jobview.is_stopped({"Stop": True})


def test_ports_first_declaration_wins_and_modes_are_normalised() -> None:
    ports = jobview.ports(group())
    assert list(ports) == ["lb", "http", "x"]
    assert ports["lb"].kind == "ReservedPorts" and ports["lb"].mode == "host"
    assert ports["http"].host_network == "public"
    assert ports["http"].network_index == 0 and not ports["http"].namespaced
    assert ports["x"].namespaced and ports["x"].network_index == 1


def test_ports_tolerate_null_and_garbage() -> None:
    assert jobview.ports({"Networks": None}) == {}
    assert jobview.ports({"Networks": [None, {"DynamicPorts": [None, {"Label": ""}]}]}) == {}


@pytest.mark.parametrize(
    ("mode", "namespaced"),
    [("", False), ("host", False), ("bridge", True), ("cni/flannel", True), ("none", False)],
)
def test_namespaced_modes(mode: str, namespaced: bool) -> None:
    assert jobview.is_namespaced_mode(mode) is namespaced


def test_services_group_level_first_then_tasks() -> None:
    found = [(s.task, s.index, s.port_label) for s in jobview.services(group())]
    assert found == [(None, 0, "http"), ("app", 0, "lb")]


def test_service_defaults() -> None:
    view = next(jobview.services(group()))
    assert view.provider == "consul"
    assert view.address_mode == "auto"


@pytest.mark.parametrize(
    ("name", "task", "expected"),
    [
        ("", None, "shop-api"),
        ("", "app", "shop-api-app"),
        ("web", "app", "web"),
        ("${JOB}-${TASKGROUP}", None, "shop-api"),
        ("${BASE}-x", "app", "shop-api-app-x"),
        ("${TASK}", "app", "app"),
    ],
)
def test_service_name_resolution(name: str, task: str | None, expected: str) -> None:
    view = ServiceView(task, 0, {"Name": name})
    assert jobview.service_name(JOB, group(), view) == expected


@pytest.mark.parametrize(
    ("name", "task"), [("${NOMAD_META_x}", None), ("${TASK}", None), ("${node.datacenter}", "a")]
)
def test_service_name_runtime_interpolation_is_unresolved(name: str, task: str | None) -> None:
    with pytest.raises(UnresolvedName, match="uses"):
        jobview.service_name(JOB, group(), ServiceView(task, 0, {"Name": name}))


def test_managed_sidecar_needs_name_and_marker() -> None:
    ours = {"Name": keys.SIDECAR_TASK, "Meta": {keys.MANAGED_TASK_META: "true"}}
    assert jobview.is_managed_sidecar(ours)
    assert not jobview.is_managed_sidecar({"Name": keys.SIDECAR_TASK, "Meta": None})
    assert not jobview.is_managed_sidecar({"Name": "app", "Meta": ours["Meta"]})


def test_groups_and_tasks_skip_non_objects() -> None:
    job = {"TaskGroups": [None, {"Name": "a", "Tasks": [1, {"Name": "t"}]}]}
    assert [jobview.group_name(g) for g in jobview.groups(job)] == ["a"]
    assert [jobview.task_name(t) for t in jobview.tasks(jobview.groups(job)[0])] == ["t"]
    assert jobview.groups({"TaskGroups": None}) == []
