"""HealthReconciler with the real Consul adapter against the Consul twin, the real prober against
real TLS listeners, and registrations named the way the devstack registrar (and Nomad) names
them: healthy, a plaintext leftover, a failing check, then Consul gone."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import aiohttp
import pytest
import pytest_asyncio
from prometheus_client import CollectorRegistry

from controller.consul.client import ConsulClient
from controller.tlsprobe import TlsProber
from controller.vault.trust import MeshTrust
from crds_equivalent.status import ConditionStatus, ConditionType, Phase
from devstack.consul.acl import ConsulAcl, Token
from devstack.consul.server import ConsulTwin
from devstack.registrar import service_id
from reconcilers.health.reconciler import HealthReconciler
from tests.support.health_world import (
    A1,
    A2,
    ALLOCS,
    CONFIG,
    KEY,
    Jobs,
    Statuses,
    mesh_status,
    meshed,
)
from tests.support.mesh_trust import FixedTrust, trust_for
from tests.support.twins import ConsulTwinFactory
from tests.support.x509 import issue, server_context, serving

pytestmark = pytest.mark.timeout(60)
SNI = "web.service.consul"


@pytest_asyncio.fixture
async def twin(make_consul_twin: ConsulTwinFactory) -> ConsulTwin:
    return await make_consul_twin(check_runner=False)


async def _agent(
    twin: ConsulTwin, method: str, path: str, body: object = None, token: str | None = None
) -> None:
    headers = {"X-Consul-Token": token} if token else {}
    async with aiohttp.ClientSession(headers=headers) as http:
        resp = await http.request(method, f"{twin.url}/v1/agent/{path}", json=body)
        assert resp.status == 200, await resp.text()


async def register(
    twin: ConsulTwin,
    alloc: str,
    label: str,
    port: int,
    tags: list[str],
    token: str | None = None,
    *,
    https_check: bool = False,
) -> str:
    """A registration with a TTL check passed by hand, or (``https_check``) with the https
    check the injection makes of a user's http check, registered passing (the twin runs no
    checks here)."""
    sid = service_id(alloc, "group-web", "web", label)
    check: dict[str, object] = {"Name": "alive", "TTL": "60s"}
    if https_check:
        check = {"Name": "alive", "HTTP": f"https://127.0.0.1:{port}/", "Interval": "10s",
                 "TLSSkipVerify": True, "Status": "passing"}  # fmt: skip
    body = {
        "ID": sid,
        "Name": "web",
        "Address": "127.0.0.1",
        "Port": port,
        "Tags": tags,
        "Checks": [check],
    }
    await _agent(twin, "PUT", "service/register", body, token)
    if not https_check:
        await _agent(twin, "PUT", f"check/pass/service:{sid}", token=token)
    return sid


def health_over(
    consul: ConsulClient,
    statuses: Statuses,
    registry: CollectorRegistry,
    trust: MeshTrust,
    **knobs: Any,
) -> HealthReconciler:
    """The health reconciler of the meshed ``shop`` job, its catalog the twin, its prober real."""
    return HealthReconciler(
        Jobs(meshed(), ALLOCS),
        statuses,
        consul,
        TlsProber(timeout=2),
        FixedTrust(trust),
        CONFIG,
        registry=registry,
        **knobs,
    )


def state(statuses: Statuses) -> dict[str, tuple[str, str]]:
    assert statuses.stored is not None
    return {str(c.type): (str(c.status), c.reason) for c in statuses.stored.conditions}


async def test_health_through_the_consul_twin_and_real_tls(
    twin: ConsulTwin, tmp_path: Path
) -> None:
    root = issue("Mesh Root", None, ca=True)
    inter = issue("Mesh Intermediate", root, ca=True)
    leaves = [issue(SNI, inter, ca=False, sans=(SNI,)) for _ in range(2)]
    statuses = Statuses(mesh_status())
    consul = ConsulClient.from_env({"CONSUL_HTTP_ADDR": twin.address}, retry_budget=0.2)
    registry = CollectorRegistry()
    health = health_over(consul, statuses, registry, trust_for(root, inter))
    try:
        async with (
            serving(server_context(tmp_path, leaves[0], [inter])) as p1,
            serving(server_context(tmp_path, leaves[1], [inter])) as p2,
        ):
            await register(twin, A1, "mesh_tls_http", p1, ["mesh-tls"])
            a2 = await register(twin, A2, "mesh_tls_http", p2, ["mesh-tls"])
            plain = await register(twin, A1, "http", 8080, [])
            await register(twin, "0ther000-job", "mesh_tls_http", 1, [])  # another job's

            await health.reconcile(KEY)
            assert state(statuses)["CertValid"] == ("True", "Verified")
            assert state(statuses)["ConsulHealthy"] == ("True", "AllPassing")
            assert state(statuses)["PlaintextRetired"] == ("False", "PlaintextRegistered")
            # never verified Ready: a plaintext registration left is waited for, not a fault
            assert statuses.stored is not None and statuses.stored.phase is Phase.INJECTED
            assert statuses.stored.message.startswith(
                "waiting for the plaintext registrations to be retired: "
            )
            soonest = min(leaf.cert.not_valid_after_utc for leaf in leaves)
            assert statuses.stored.cert_not_after == soonest.isoformat()
            assert (
                registry.get_sample_value(
                    "mesh_cert_expiry_timestamp_seconds",
                    {"namespace": "default", "job": "shop", "service": "web"},
                )
                == soonest.timestamp()
            )

            await _agent(twin, "PUT", f"service/deregister/{plain}")
            await _agent(twin, "PUT", f"check/fail/service:{a2}")
            await health.reconcile(KEY)
            assert state(statuses)["PlaintextRetired"] == ("True", "NoPlaintext")
            assert state(statuses)["ConsulHealthy"] == ("False", "ChecksFailing")
            assert statuses.stored is not None and statuses.stored.phase is Phase.INJECTED
            assert statuses.stored.message.startswith("waiting for Consul checks on the TLS port")

            await _agent(twin, "PUT", f"check/pass/service:{a2}")
            await health.reconcile(KEY)
            assert statuses.stored is not None and statuses.stored.phase is Phase.READY
            assert statuses.stored.verified_at != ""

            # the same failing check, now that the job was verified Ready, is a fault
            await _agent(twin, "PUT", f"check/fail/service:{a2}")
            await health.reconcile(KEY)
            assert statuses.stored is not None and statuses.stored.phase is Phase.DEGRADED
            await _agent(twin, "PUT", f"check/pass/service:{a2}")
            await health.reconcile(KEY)
            assert statuses.stored is not None and statuses.stored.phase is Phase.READY

        await health.reconcile(KEY)  # the listeners are gone: nothing to connect to
        assert state(statuses)["CertValid"] == ("Unknown", "Unreachable")

        await twin.stop()
        await health.reconcile(KEY)
        assert state(statuses)["ConsulHealthy"] == ("Unknown", "ConsulUnavailable")
        # verified Ready before: what nobody can check now is no evidence against the job
        assert statuses.stored is not None and statuses.stored.phase is Phase.READY
        assert statuses.stored.message.startswith("verified earlier; cannot tell now: ")
        cert = statuses.stored.condition(ConditionType.CERT_VALID)
        assert cert is not None and cert.status == ConditionStatus.UNKNOWN
    finally:
        await consul.close()


@pytest.mark.parametrize(
    ("https_check", "made", "reused"),
    [(True, 2.0, 2.0), (False, 4.0, 0.0)],
    ids=["an https check: reused", "only a TTL check: handshaken every pass"],
)
async def test_a_re_check_reuses_handshakes_only_behind_an_http_check(
    twin: ConsulTwin, tmp_path: Path, https_check: bool, made: float, reused: float
) -> None:
    """The reuse rule reads Consul's check ``Type`` and ``ServiceID`` off the health answer,
    as the twin renders them (Consul's ``structs.HealthCheck``)."""
    root = issue("Mesh Root", None, ca=True)
    inter = issue("Mesh Intermediate", root, ca=True)
    leaf = issue(SNI, inter, ca=False, sans=(SNI,))
    consul = ConsulClient.from_env({"CONSUL_HTTP_ADDR": twin.address}, retry_budget=0.2)
    registry, statuses = CollectorRegistry(), Statuses(mesh_status())
    trust = trust_for(root, inter)
    health = health_over(consul, statuses, registry, trust, handshake_max_age=300)
    try:
        async with (
            serving(server_context(tmp_path, leaf, [inter])) as p1,
            serving(server_context(tmp_path, leaf, [inter])) as p2,
        ):
            await register(twin, A1, "mesh_tls_http", p1, ["mesh-tls"], https_check=https_check)
            await register(twin, A2, "mesh_tls_http", p2, ["mesh-tls"], https_check=https_check)
            for _ in range(2):
                await health.reconcile(KEY)
        counted = {
            result: registry.get_sample_value("mesh_health_handshakes_total", {"result": result})
            for result in ("made", "reused")
        }
        assert counted == {"made": made, "reused": reused}
        assert state(statuses)["CertValid"] == ("True", "Verified")
    finally:
        await consul.close()


async def test_a_token_consul_filters_is_unknown_not_unregistered(
    make_consul_twin: ConsulTwinFactory, tmp_path: Path
) -> None:
    """Consul's ACLs hide the job's instances from the controller's token (audit §11): a token
    without read and the anonymous token both get ``200 []``; health says Unknown and why,
    never NotRegistered, until the token may read, when the same world is Ready."""
    acl = ConsulAcl(
        tokens={
            "nomad": Token("00000000-0000-0000-0000-00000000000a", management=True),
            "blind": Token("bbbbbbbb-0000-0000-0000-000000000002", {"service": {"db": "read"}}),
            "reader": Token(
                "aaaaaaaa-0000-0000-0000-000000000001",
                {"service_prefix": {"": "read"}, "node_prefix": {"": "read"}},
            ),
        }
    )
    twin = await make_consul_twin(check_runner=False, acl=acl)
    root = issue("Mesh Root", None, ca=True)
    inter = issue("Mesh Intermediate", root, ca=True)
    leaves = [issue(SNI, inter, ca=False, sans=(SNI,)) for _ in range(2)]

    async def judged(token: str | None) -> tuple[Statuses, str]:
        env = {"CONSUL_HTTP_ADDR": twin.address} | ({"CONSUL_HTTP_TOKEN": token} if token else {})
        consul = ConsulClient.from_env(env, retry_budget=0.2)
        statuses = Statuses(mesh_status())
        health = HealthReconciler(
            Jobs(meshed(), ALLOCS),
            statuses,
            consul,
            TlsProber(timeout=2),
            FixedTrust(trust_for(root, inter)),
            CONFIG,
        )
        try:
            await health.reconcile(KEY)
        finally:
            await consul.close()
        found = statuses.stored.condition(ConditionType.CONSUL_HEALTHY) if statuses.stored else None
        return statuses, found.message if found is not None else ""

    async with (
        serving(server_context(tmp_path, leaves[0], [inter])) as p1,
        serving(server_context(tmp_path, leaves[1], [inter])) as p2,
    ):
        await register(twin, A1, "mesh_tls_http", p1, ["mesh-tls"], token="nomad")
        await register(twin, A2, "mesh_tls_http", p2, ["mesh-tls"], token="nomad")

        for token, why in (
            ("blind", "X-Consul-Results-Filtered-By-ACLs: true"),
            (None, "no Consul token is set"),
        ):
            statuses, message = await judged(token)
            judged_by_health = ("CertValid", "ConsulHealthy", "PlaintextRetired")
            assert [state(statuses)[kind] for kind in judged_by_health] == [
                ("Unknown", "ConsulFiltered")
            ] * 3, token
            assert statuses.stored is not None and statuses.stored.phase is Phase.INJECTED
            assert message.startswith("the Consul token cannot read service web: ")
            assert why in message and "a1111111" in message and "a2222222" in message

        statuses, _ = await judged("reader")
        assert state(statuses)["ConsulHealthy"] == ("True", "AllPassing")
        assert state(statuses)["CertValid"] == ("True", "Verified")
        assert statuses.stored is not None and statuses.stored.phase is Phase.READY
