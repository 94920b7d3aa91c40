"""Nomad service -> Consul registration translation (pure), on allocations shaped as Nomad's."""

from __future__ import annotations

import copy
from typing import Any

import pytest

from devstack import godur
from devstack.registrar import registrations, service_id

ALLOC_ID = "b4e61df9-b095-d64e-f241-23860da1375f"
S = godur.SECOND


def alloc(**over: Any) -> dict[str, Any]:
    job = {
        "ID": "shop",
        "Name": "shop",
        "TaskGroups": [
            {
                "Name": "web",
                "Services": [
                    {
                        "Name": "web",
                        "PortLabel": "mesh_tls_http",
                        "Tags": ["mesh-tls", "${NOMAD_GROUP_NAME}"],
                        "Meta": {"team": "a"},
                        "Provider": "consul",
                        "Checks": [
                            {
                                "Name": "alive",
                                "Type": "http",
                                "Protocol": "https",
                                "Path": "/health",
                                "Interval": 10 * S,
                                "Timeout": 2 * S,
                                "TLSSkipVerify": True,
                                "TLSServerName": "web.service.consul",
                                "Method": "HEAD",
                                "Header": {"X-Probe": ["1"]},
                                "SuccessBeforePassing": 2,
                            }
                        ],
                    }
                ],
                "Tasks": [
                    {
                        "Name": "app",
                        "Services": [
                            {
                                "Name": "",
                                "PortLabel": "admin",
                                "Checks": [
                                    {"Type": "tcp", "Interval": 90 * S, "Timeout": S},
                                    {
                                        "Name": "script",
                                        "Type": "script",
                                        "Command": "/bin/true",
                                        "Interval": 5 * S,
                                        "Timeout": S,
                                    },
                                ],
                            },
                            {"Name": "local", "PortLabel": "admin", "Provider": "nomad"},
                        ],
                    }
                ],
            }
        ],
    }
    out: dict[str, Any] = {
        "ID": ALLOC_ID,
        "Name": "shop.web[2]",
        "Namespace": "default",
        "NodeName": "node-1",
        "TaskGroup": "web",
        "Job": job,
        "AllocatedResources": {
            "Shared": {
                "Ports": [
                    {"Label": "http", "Value": 24512, "To": 8080, "HostIP": "127.0.0.11"},
                    {"Label": "mesh_tls_http", "Value": 24513, "HostIP": "127.0.0.11"},
                    {"Label": "admin", "Value": 24514, "HostIP": "127.0.0.11"},
                ]
            }
        },
    }
    out.update(over)
    return out


def by_id(regs: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    return {r["ID"]: r for r in regs}


def test_ids_follow_nomads_format() -> None:
    assert (
        service_id(ALLOC_ID, "redis", "redis-http", "http")
        == "_nomad-task-b4e61df9-b095-d64e-f241-23860da1375f-redis-redis-http-http"
    )
    regs, _ = registrations(alloc())
    assert set(by_id(regs)) == {
        f"_nomad-task-{ALLOC_ID}-group-web-web-mesh_tls_http",
        f"_nomad-task-{ALLOC_ID}-app-shop-web-app-admin",
    }


def test_group_service_with_an_https_check() -> None:
    regs, _ = registrations(alloc())
    reg = by_id(regs)[f"_nomad-task-{ALLOC_ID}-group-web-web-mesh_tls_http"]
    assert reg["Name"] == "web"
    assert (reg["Address"], reg["Port"]) == ("127.0.0.11", 24513)
    assert reg["Tags"] == ["mesh-tls", "web"]
    assert reg["Meta"] == {"team": "a", "external-source": "nomad"}
    [check] = reg["Checks"]
    assert check["CheckID"].startswith("_nomad-check-")
    assert len(check["CheckID"]) == len("_nomad-check-") + 64
    assert check == {
        "CheckID": check["CheckID"],
        "Name": "alive",
        "Interval": "10s",
        "Timeout": "2s",
        "SuccessBeforePassing": 2,
        "HTTP": "https://127.0.0.11:24513/health",
        "TLSSkipVerify": True,
        "TLSServerName": "web.service.consul",
        "Method": "HEAD",
        "Header": {"X-Probe": ["1"]},
    }


def test_task_service_default_name_tcp_check_and_script_note() -> None:
    regs, notes = registrations(alloc())
    reg = by_id(regs)[f"_nomad-task-{ALLOC_ID}-app-shop-web-app-admin"]
    [check] = reg["Checks"]
    assert check["Name"] == 'service: "shop-web-app" check'
    assert (check["TCP"], check["Interval"], check["Timeout"]) == (
        "127.0.0.11:24514",
        "1m30s",
        "1s",
    )
    assert notes == [f"{reg['ID']}: script check 'script' not registered"]


def test_check_ids_are_stable_and_differ_per_definition() -> None:
    first, _ = registrations(alloc())
    again, _ = registrations(alloc())
    assert first == again
    changed = alloc()
    changed["Job"]["TaskGroups"][0]["Services"][0]["Checks"][0]["Path"] = "/ready"
    other, _ = registrations(changed)
    key = f"_nomad-task-{ALLOC_ID}-group-web-web-mesh_tls_http"
    assert by_id(first)[key]["Checks"][0]["CheckID"] != by_id(other)[key]["Checks"][0]["CheckID"]
    assert by_id(other)[key]["Checks"][0]["HTTP"] == "https://127.0.0.11:24513/ready"


def test_alloc_address_mode_uses_the_network_address_and_to_port() -> None:
    a = alloc(NetworkStatus={"Address": "172.26.64.5"})
    svc = a["Job"]["TaskGroups"][0]["Services"][0]
    svc["PortLabel"], svc["AddressMode"] = "http", "alloc"
    svc["Checks"][0]["AddressMode"] = "alloc"
    regs, _ = registrations(a)
    reg = by_id(regs)[f"_nomad-task-{ALLOC_ID}-group-web-web-http"]
    assert (reg["Address"], reg["Port"]) == ("172.26.64.5", 8080)
    assert reg["Checks"][0]["HTTP"] == "https://172.26.64.5:8080/health"


def test_custom_address_and_canary_tags() -> None:
    a = alloc(DeploymentStatus={"Canary": True})
    svc = a["Job"]["TaskGroups"][0]["Services"][0]
    svc["Address"], svc["CanaryTags"] = "web.example.internal", ["canary"]
    regs, _ = registrations(a)
    reg = by_id(regs)[f"_nomad-task-{ALLOC_ID}-group-web-web-mesh_tls_http"]
    assert (reg["Address"], reg["Port"], reg["Tags"]) == ("web.example.internal", 24513, ["canary"])
    assert reg["Checks"][0]["HTTP"] == "https://web.example.internal:24513/health"


@pytest.mark.parametrize("label", ["nope", "", "http"])
def test_unknown_port_label_is_noted_not_registered(label: str) -> None:
    a = copy.deepcopy(alloc())
    a["Job"]["TaskGroups"][0]["Services"][0]["PortLabel"] = "nope"
    a["Job"]["TaskGroups"][0]["Services"][0]["Checks"][0]["PortLabel"] = label
    regs, notes = registrations(a)
    assert f"_nomad-task-{ALLOC_ID}-group-web-web-nope" not in by_id(regs)
    assert any('invalid port "nope"' in n for n in notes)


def test_go_duration_strings() -> None:
    cases = {0: "0s", S: "1s", 90 * S: "1m30s", 3600 * S: "1h0m0s", 1500 * godur.MS: "1.5s"}
    cases |= {500 * godur.MS: "500ms", 1500: "1.5µs", 7: "7ns"}
    assert {ns: godur.format_ns(ns) for ns in cases} == cases
    for ns, text in cases.items():
        assert godur.parse(text) == ns
    assert godur.parse("1h2m3.5s") == 3723 * S + 500 * godur.MS
    for bad in ("", "1", "x", "1x", "s"):
        with pytest.raises(godur.DurationError):
            godur.parse(bad)
