"""Field-level rewrites: struct-order insertion, copy-on-write, and the check rules."""

from __future__ import annotations

import copy
from typing import Any

import pytest

from crds_equivalent import keys
from crds_equivalent.config import MeshConfig
from reconcilers.injection import rewrite
from reconcilers.injection.jobview import PortView

CONFIG = MeshConfig()
TLS = {"http": "mesh_tls_http", "admin": "mesh_tls_admin"}


@pytest.mark.parametrize(
    ("before", "key", "after"),
    [
        (["Name", "Type", "Interval"], "Protocol", ["Name", "Type", "Protocol", "Interval"]),
        (["Interval", "Name"], "Path", ["Path", "Interval", "Name"]),  # before the first later key
        (["Name"], "OnUpdate", ["Name", "OnUpdate"]),
        (["Name", "Protocol"], "Protocol", ["Name", "Protocol"]),  # existing key keeps its place
        (["Name"], "XNotNomad", ["Name", "XNotNomad"]),
    ],
)
def test_set_ordered(before: list[str], key: str, after: list[str]) -> None:
    target: dict[str, Any] = dict.fromkeys(before, 0)
    rewrite.set_ordered(target, key, 1, rewrite.CHECK_ORDER)
    assert list(target) == after
    assert target[key] == 1


def test_tls_service_is_a_copy() -> None:
    service = {"Name": "web", "PortLabel": "http", "Tags": None, "Checks": [{"Type": "http"}]}
    frozen = copy.deepcopy(service)
    out = rewrite.tls_service(service, "web", TLS, CONFIG)
    assert service == frozen
    assert out["Tags"] == [keys.TLS_SERVICE_TAG]
    assert out["Checks"][0]["Protocol"] == "https"


@pytest.mark.parametrize(
    ("check", "expected"),
    [
        ({"Type": "http"}, {"Type": "http", "Protocol": "https"}),
        ({"Type": "HTTP", "PortLabel": "admin"}, {"PortLabel": "mesh_tls_admin"}),
        ({"Type": "http", "PortLabel": "metrics"}, {"PortLabel": "metrics"}),  # not fronted
        ({"Type": "tcp"}, {"Type": "tcp"}),
        ({"Type": "tcp", "PortLabel": "http"}, {"PortLabel": "mesh_tls_http"}),
        ({"Type": "grpc", "PortLabel": "admin"}, {"PortLabel": "admin"}),
        ({"Type": "grpc"}, {"PortLabel": "http"}),
        ({"Type": "script", "Command": "x"}, {"Command": "x"}),
    ],
)
def test_check_rules(check: dict[str, Any], expected: dict[str, Any]) -> None:
    service = {"Name": "web", "PortLabel": "http", "Checks": [check]}
    (out,) = rewrite.tls_service(service, "web", TLS, CONFIG)["Checks"]
    assert {k: out.get(k) for k in expected} == expected
    is_https = out.get("Protocol") == "https"
    assert is_https == ("TLSServerName" in out)
    if is_https:
        assert out["TLSServerName"] == "web.service.consul"


def test_rewrite_services_keeps_order_and_non_objects() -> None:
    services: list[Any] = [{"PortLabel": "x"}, None, {"Name": "web", "PortLabel": "http"}]
    out = rewrite.rewrite_services(services, {2: "web"}, TLS, True, CONFIG)
    assert out[0] == {"PortLabel": "x"} and out[1] is None
    assert [s["PortLabel"] for s in out[2:]] == ["http", "mesh_tls_http"]


def test_add_ports_creates_dynamic_ports_in_struct_order() -> None:
    networks = [{"Mode": "host", "ReservedPorts": [{"Label": "lb", "Value": 80}], "CNI": None}]
    port = PortView("lb", 0, "ReservedPorts", networks[0]["ReservedPorts"][0], "host")
    out = rewrite.add_ports(networks, [port])
    assert list(out[0]) == ["Mode", "ReservedPorts", "DynamicPorts", "CNI"]
    assert out[0]["DynamicPorts"] == [
        {"Label": "mesh_tls_lb", "Value": 0, "To": 0, "HostNetwork": ""}
    ]
    assert "DynamicPorts" not in networks[0]
