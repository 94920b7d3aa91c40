"""Nomad-native services (``provider = "nomad"``) through the pure compiler.

Nomad's rules for such services decide the shape: only http and tcp checks, no Connect, and
no ``tls_server_name`` ("tls_server_name may only be set for Consul service checks",
nomad/structs/services.go, ServiceCheck.validateNomad); one provider per group
(structs.go, TaskGroup.validateServices). The native checker reads Protocol and TLSSkipVerify
only (client/serviceregistration/checks/result.go, GetCheckQuery).
"""

from __future__ import annotations

import copy
import json
from typing import Any

import pytest

from crds_equivalent import keys
from crds_equivalent.config import MeshConfig
from reconcilers.injection import rewrite
from reconcilers.injection.hashing import INJECTOR_VERSION
from reconcilers.injection.inject import uninject
from reconcilers.injection.plan import Apply, Invalid, plan_job
from tests.support.golden_jobs import JOBS

CONFIG = MeshConfig()
TLS = {"http": "mesh_tls_http"}


def native_job(meta: dict[str, str], checks: list[dict[str, Any]]) -> dict[str, Any]:
    return {
        "ID": "shop",
        "Namespace": "default",
        "Type": "service",
        "TaskGroups": [
            {
                "Name": "web",
                "Networks": [{"Mode": "host", "DynamicPorts": [{"Label": "http"}]}],
                "Services": [
                    {"Name": "shop", "PortLabel": "http", "Checks": checks, "Provider": "nomad"}
                ],
                "Tasks": [{"Name": "app", "Driver": "raw_exec", "Config": {"command": "app"}}],
                "Meta": meta,
            }
        ],
    }


HTTP = {"Name": "h", "Type": "http", "Path": "/health", "Interval": 10**10, "Timeout": 10**9}
TCP = {"Name": "t", "Type": "tcp", "Interval": 10**10, "Timeout": 10**9}


@pytest.mark.parametrize("skip", [True, False])
def test_a_native_http_check_speaks_https_on_the_tls_port_without_a_server_name(
    skip: bool,
) -> None:
    service = {"Name": "shop", "PortLabel": "http", "Checks": [HTTP], "Provider": "nomad"}
    config = MeshConfig(check_tls_skip_verify=skip)
    out = rewrite.tls_service(service, "shop", TLS, config)
    (check,) = out["Checks"]
    assert out["PortLabel"] == "mesh_tls_http" and out["Provider"] == "nomad"
    assert check["Protocol"] == "https" and check["TLSSkipVerify"] is skip
    assert "TLSServerName" not in check  # Nomad refuses it on a nomad-provider check
    assert check["PortLabel"] == "mesh_tls_http"  # its own port: a check ID of its own
    assert list(check) == ["Name", "Type", "Path", "Protocol", "PortLabel", "Interval",
                           "Timeout", "TLSSkipVerify"]  # fmt: skip


def test_the_same_check_on_a_consul_service_keeps_its_server_name() -> None:
    service = {"Name": "shop", "PortLabel": "http", "Checks": [HTTP], "Provider": "consul"}
    (check,) = rewrite.tls_service(service, "shop", TLS, CONFIG)["Checks"]
    assert check["TLSServerName"] == f"shop.{CONFIG.domain}"


@pytest.mark.parametrize("mode", ["strict", "permissive"])
def test_a_native_group_is_meshed_and_round_trips(mode: str) -> None:
    user = native_job({"mesh.tls": "true", "mesh.tls.mode": mode}, [HTTP, TCP])
    frozen = copy.deepcopy(user)
    decision = plan_job(user, CONFIG)
    assert isinstance(decision, Apply)
    assert user == frozen
    group = decision.job["TaskGroups"][0]
    services = group["Services"]
    tls = services[-1]
    assert tls["PortLabel"] == "mesh_tls_http" and keys.TLS_SERVICE_TAG in tls["Tags"]
    assert [c["PortLabel"] for c in tls["Checks"]] == ["mesh_tls_http", "mesh_tls_http"]
    assert tls["Checks"][1] == {**TCP, "PortLabel": "mesh_tls_http"}
    if mode == "strict":
        assert len(services) == 1
    else:
        plain = services[0]
        assert plain["PortLabel"] == "http" and plain["Tags"] == [keys.PLAINTEXT_SERVICE_TAG]
        assert plain["Checks"] == [HTTP, TCP] and plain["Provider"] == "nomad"
    assert uninject(decision.job) == frozen


def test_a_group_mixing_providers_is_refused_with_nomads_reason() -> None:
    user = native_job({"mesh.tls": "true"}, [HTTP])
    user["TaskGroups"][0]["Tasks"][0]["Services"] = [{"Name": "admin", "PortLabel": "http"}]
    decision = plan_job(user, CONFIG)
    assert decision == Invalid(
        'group "web": its services use more than one provider: "consul" (service "admin"), '
        '"nomad" (service "shop"); Nomad refuses such a group ("Multiple service providers '
        'used: task group services must use the same provider"): give every service of the '
        "group the same provider"
    )


def test_a_native_mtls_http_check_opens_its_path_in_nginx_as_a_consul_one_does() -> None:
    """Nomad's checker presents no client certificate either (checks/client.go builds a plain
    transport), so the mtls exception for check paths applies to native checks too."""
    user = native_job({"mesh.tls": "true", "mesh.tls.mtls": "true"}, [HTTP])
    decision = plan_job(user, CONFIG)
    assert isinstance(decision, Apply)
    sidecar = next(
        t for t in decision.job["TaskGroups"][0]["Tasks"] if t["Name"] == keys.SIDECAR_TASK
    )
    conf = next(t["EmbeddedTmpl"] for t in sidecar["Templates"] if "nginx.conf" in t["DestPath"])
    assert 'location = "/health"' in conf and "ssl_verify_client optional" in conf


def test_native_golden_fixtures_keep_the_provider_and_the_injector_version() -> None:
    """The native fixtures are new inputs: the output of existing inputs did not change, so the
    injector version stays."""
    for case in ("native-service-strict-raw-exec", "native-service-permissive-bridge"):
        out = json.loads((JOBS / f"{case}.out.json").read_text())
        job = out.get("Job", out)
        group = job["TaskGroups"][0]
        services = group.get("Services") or group["Tasks"][0]["Services"]
        assert {s["Provider"] for s in services} == {"nomad"}
        assert group["Meta"][keys.INJECTED_GROUP_META].startswith(f"{INJECTOR_VERSION}:")
