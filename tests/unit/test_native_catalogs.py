"""Which catalog is read per fronted service, native check results judged like Consul's, and the
check IDs that tie a result to its registration."""

from __future__ import annotations

from typing import Any

import pytest

from controller.consul.wire import HealthEntry, ServiceHealth
from controller.nomad.errors import PermissionDenied, TransientError
from controller.nomad.services import (
    CheckResult,
    NativeCheck,
    NativeInstance,
    NativeServiceHealth,
    ServiceRegistration,
    checks_of,
    nomad_check_ids,
)
from crds_equivalent.config import MeshConfig
from crds_equivalent.spec import Mode, parse_job_specs
from reconcilers.health.verdicts import consul_conditions
from reconcilers.injection.inject import inject
from reconcilers.instances.catalogs import CatalogProblem, native_entry, read_catalogs
from reconcilers.instances.matching import FrontedPort, consul_findings, fronted_ports

CONFIG = MeshConfig()
ALLOC = "a1111111-2222-3333-4444-555555555555"
S = 1_000_000_000


def result(status: str, output: str = "") -> CheckResult:
    return CheckResult("id", "h", "shop.web[0]", "", "shop", status, 0, output, "healthiness", 1)


def registration(label: str, tags: tuple[str, ...], port: int = 20001) -> ServiceRegistration:
    return ServiceRegistration(
        id=f"_nomad-task-{ALLOC}-group-web-shop-{label}",
        service_name="shop",
        namespace="default",
        node_id="node-1",
        datacenter="dc1",
        job_id="shop",
        alloc_id=ALLOC,
        tags=tags,
        address="10.0.0.5",
        port=port,
        raw={},
    )


PORT = FrontedPort("web", "shop", "http", Mode.PERMISSIVE, "shop.service.consul", "nomad")


@pytest.mark.parametrize(
    ("status", "consul_status"),
    [("success", "passing"), ("failure", "critical"), ("pending", "critical")],
)
def test_native_results_read_as_consul_check_statuses(status: str, consul_status: str) -> None:
    entry = native_entry(
        NativeInstance(
            registration("mesh_tls_http", ("mesh-tls",)), (NativeCheck("h", result(status)),)
        )
    )
    assert entry.checks[0]["Status"] == consul_status
    assert entry.passing is (status == "success")
    assert (entry.effective_address, entry.port) == ("10.0.0.5", 20001)


def test_a_check_without_a_result_is_not_passing() -> None:
    entry = native_entry(
        NativeInstance(registration("mesh_tls_http", ()), (NativeCheck("h", None),))
    )
    assert not entry.passing and "no result" in str(entry.checks[0]["Output"])


def test_permissive_native_findings_judge_only_the_tls_registration_checks() -> None:
    tls = native_entry(
        NativeInstance(
            registration("mesh_tls_http", ("mesh-tls",)), (NativeCheck("h", result("success")),)
        )
    )
    plain = native_entry(
        NativeInstance(
            registration("http", ("mesh-plaintext",), 20000),
            (NativeCheck("h", result("failure", "dial tcp: refused")),),
        )
    )
    found = consul_findings([PORT], {"web": [ALLOC]}, {"shop": [plain, tls]})
    healthy, retired = consul_conditions(found)
    assert (str(healthy.status), healthy.reason) == ("True", "AllPassing")
    assert (str(retired.status), retired.reason) == ("True", "PermissiveTagged")


def test_fronted_ports_carry_the_provider() -> None:
    user: dict[str, Any] = {
        "ID": "shop",
        "Type": "service",
        "Meta": {"mesh.tls": "true"},
        "TaskGroups": [
            {
                "Name": "web",
                "Networks": [{"Mode": "host", "DynamicPorts": [{"Label": "http"}]}],
                "Services": [{"Name": "shop", "PortLabel": "http", "Provider": "nomad"}],
                "Tasks": [{"Name": "app", "Driver": "docker"}],
            }
        ],
    }
    job = inject(user, parse_job_specs(user), CONFIG)
    assert [p.provider for p in fronted_ports(job, CONFIG)] == ["nomad"]


class Native:
    def __init__(self, answer: NativeServiceHealth | Exception) -> None:
        self.answer = answer
        self.asked: list[tuple[str, str]] = []

    async def service_health(self, name: str, namespace: str) -> NativeServiceHealth:
        self.asked.append((name, namespace))
        if isinstance(self.answer, Exception):
            raise self.answer
        return self.answer


class Consul:
    def __init__(self) -> None:
        self.asked: list[str] = []

    async def health_service(self, name: str) -> ServiceHealth:
        self.asked.append(name)
        return ServiceHealth((), 1)


async def test_native_services_never_ask_consul() -> None:
    native, consul = Native(NativeServiceHealth((), 3)), Consul()
    answer = await read_catalogs([PORT], "team-a", consul=consul, native=native)
    assert native.asked == [("shop", "team-a")] and consul.asked == []
    assert answer.health == {"shop": ()} and answer.native == {"shop"}


async def test_a_consul_service_without_consul_is_not_configured() -> None:
    port = FrontedPort("web", "web", "http", Mode.STRICT, "web.service.consul", "consul")
    with pytest.raises(CatalogProblem) as raised:
        await read_catalogs(
            [port], "default", consul=None, native=Native(NativeServiceHealth((), 1))
        )
    assert raised.value.reason == "ConsulNotConfigured"
    assert "CONSUL_HTTP_ADDR" in raised.value.message


@pytest.mark.parametrize(
    ("error", "reason"),
    [
        (
            PermissionDenied("GET /v1/service/shop: 403 Permission denied", status=403),
            "NomadCatalogDenied",
        ),
        (TransientError("GET /v1/service/shop: 500 no leader", status=500), "NomadUnavailable"),
    ],
)
async def test_nomad_not_answering_is_a_problem_not_an_empty_catalog(
    error: Exception, reason: str
) -> None:
    with pytest.raises(CatalogProblem) as raised:
        await read_catalogs([PORT], "default", consul=None, native=Native(error))
    assert raised.value.reason == reason
    healthy, _ = consul_conditions(None, raised.value.message, reason=reason)
    assert (str(healthy.status), healthy.reason) == ("Unknown", reason)


def _check(**extra: Any) -> dict[str, Any]:
    return {"Name": "h", "Type": "tcp", "Interval": S, "Timeout": S, **extra}


def test_check_ids_are_md5_then_sha256_of_the_same_fields() -> None:
    md5, sha = nomad_check_ids(ALLOC, "web", _check())
    assert len(md5) == 32 and len(sha) == 64
    # the port label is hashed: the pinned TLS check differs from its plaintext twin
    assert nomad_check_ids(ALLOC, "web", _check(PortLabel="mesh_tls_http"))[0] != md5


def test_checks_of_finds_the_service_by_its_registration_id() -> None:
    plain_check, tls_check = _check(), _check(PortLabel="mesh_tls_http")
    alloc = {
        "TaskGroup": "web",
        "Job": {
            "TaskGroups": [
                {
                    "Name": "web",
                    "Services": [
                        {"Name": "shop", "PortLabel": "http", "Checks": [plain_check]},
                        {"Name": "shop", "PortLabel": "mesh_tls_http", "Checks": [tls_check]},
                    ],
                }
            ]
        },
    }
    tls_id = nomad_check_ids(ALLOC, "web", tls_check)[1]  # a sha256 client
    results = {tls_id: result("success")}
    tls = checks_of(registration("mesh_tls_http", ()), alloc, results)
    plain = checks_of(registration("http", ()), alloc, results)
    assert [c.status for c in tls] == ["success"]
    assert [(c.name, c.result) for c in plain] == [("h", None)]
    assert checks_of(registration("http", ()), None, results) == ()


def test_entries_keep_consul_shape() -> None:
    entry = native_entry(NativeInstance(registration("mesh_tls_http", ("mesh-tls",)), ()))
    assert isinstance(entry, HealthEntry) and entry.passing  # no checks: nothing failing
