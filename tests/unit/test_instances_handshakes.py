"""HandshakeMemory: a health re-check handshakes again exactly when something could have changed
the served leaf, and reports a reused handshake's leaf with its time left as of now."""

from __future__ import annotations

from dataclasses import replace
from datetime import timedelta

import pytest
from prometheus_client import CollectorRegistry

from controller.consul.wire import HealthEntry
from controller.tlsprobe import CertProblem, ProbeOutcome, ProbeResult, ProbeTarget
from crds_equivalent.spec import Mode
from reconcilers.health.reconciler import HealthReconciler
from reconcilers.instances.handshakes import HandshakeMemory
from reconcilers.instances.matching import FrontedPort, Instance, consul_findings
from tests.support.health_world import (
    A1,
    A2,
    ALLOCS,
    CONFIG,
    DEFAULT,
    KEY,
    PREVIOUS,
    TRUST,
    Consul,
    Jobs,
    Probe,
    Statuses,
    Trust,
    WallClock,
    leaf,
    mesh_status,
    meshed,
    web_registration,
)

PORT = FrontedPort("web", "web", "http", Mode.STRICT, "web.service.consul")
ROOT = TRUST.anchors_pem
ISSUER = DEFAULT.key_id  # the default issuer's key; health_world's leaves carry it as their AKI
AGE = 300.0


def instances(*entries: HealthEntry) -> list[Instance]:
    allocs = [e.service_id.removeprefix("_nomad-task-")[:13] for e in entries]
    return consul_findings([PORT], {"web": allocs}, {"web": list(entries)}).instances


def setup(
    max_age: float = AGE, leaves: dict[int, object] | None = None
) -> tuple[HandshakeMemory, Probe, WallClock]:
    probe = Probe(
        leaves  # type: ignore[arg-type]
        if leaves is not None
        else {24001: leaf(serial="0a"), 24002: leaf(serial="0b")}
    )
    clock = WallClock()
    return HandshakeMemory(probe, clock, max_age=max_age), probe, clock


def later(clock: WallClock, seconds: float) -> None:
    clock.wall += timedelta(seconds=seconds)


async def every_30s(
    memory: HandshakeMemory,
    clock: WallClock,
    passes: int,
    of: list[Instance],
    issuer: str = DEFAULT.key_id,
) -> None:
    """``passes`` re-checks of ``of``, 30 s apart."""
    for _ in range(passes):
        await memory.results(KEY, 42, of, ROOT, issuer_key_id=issuer)
        later(clock, 30)


TWO = instances(web_registration(A1, 24001), web_registration(A2, 24002))


async def test_an_unchanged_passing_instance_is_not_handshaken_again_within_max_age() -> None:
    memory, probe, clock = setup()
    first = await memory.results(KEY, 42, TWO, ROOT, issuer_key_id=ISSUER)
    later(clock, AGE - 1)
    again = await memory.results(KEY, 42, TWO, ROOT, issuer_key_id=ISSUER)
    assert len(probe.targets) == 2
    assert (first.made, first.reused, again.made, again.reused) == (2, 0, 0, 2)
    assert [r.leaf for r in again.results] == [r.leaf for r in first.results]
    assert [r.target for r in again.results] == [i.target for i in TWO]


async def test_a_reused_handshake_reports_the_time_left_now() -> None:
    memory, _, clock = setup()
    await memory.results(KEY, 42, TWO, ROOT, issuer_key_id=ISSUER)
    later(clock, 120)
    again = await memory.results(KEY, 42, TWO, ROOT, issuer_key_id=ISSUER)
    served = leaf(serial="0a")
    assert again.results[0].remaining_seconds == (served.not_after - clock.now()).total_seconds()


async def test_max_age_counts_from_the_handshake_not_from_its_last_reuse() -> None:
    memory, probe, clock = setup()
    await memory.results(KEY, 42, TWO, ROOT, issuer_key_id=ISSUER)
    for _ in range(3):
        later(clock, AGE / 3)
        await memory.results(KEY, 42, TWO, ROOT, issuer_key_id=ISSUER)
    assert len(probe.targets) == 4  # the third step reaches max_age: both handshaken again


async def test_a_failing_check_is_handshaken_on_every_pass_it_fails() -> None:
    memory, probe, clock = setup()
    await memory.results(KEY, 42, TWO, ROOT, issuer_key_id=ISSUER)
    failing = instances(web_registration(A1, 24001, "critical"), web_registration(A2, 24002))
    for _ in range(2):
        later(clock, 30)
        await memory.results(KEY, 42, failing, ROOT, issuer_key_id=ISSUER)
    later(clock, 30)
    recovered = await memory.results(KEY, 42, TWO, ROOT, issuer_key_id=ISSUER)
    ports = [t.port for t in probe.targets]
    assert ports == [24001, 24002, 24001, 24001]
    assert (recovered.made, recovered.reused) == (0, 2)  # the pass while critical re-verified it


@pytest.mark.parametrize(
    "check_type", ["tcp", ""], ids=["only a tcp check, which a frozen process passes", "no type"]
)
async def test_a_registration_without_an_http_check_is_handshaken_every_pass(
    check_type: str,
) -> None:
    memory, probe, clock = setup()
    await every_30s(memory, clock, 3, instances(web_registration(A1, 24001, check_type=check_type)))
    assert len(probe.targets) == 3


async def test_an_http_check_of_another_registration_does_not_count() -> None:
    memory, probe, clock = setup()
    entry = web_registration(A1, 24001)
    elsewhere = [{**c, "ServiceID": "_nomad-task-x-group-web-web-http"} for c in entry.checks]
    await every_30s(memory, clock, 2, instances(replace(entry, checks=tuple(elsewhere))))
    assert len(probe.targets) == 2


@pytest.mark.parametrize(
    ("version", "anchors"),
    [(43, ROOT), (42, "ANOTHER-ROOT")],
    ids=["a new job version", "a rotated root"],
)
async def test_a_new_job_version_or_root_handshakes_every_instance(
    version: int, anchors: str
) -> None:
    memory, probe, clock = setup()
    await memory.results(KEY, 42, TWO, ROOT, issuer_key_id=ISSUER)
    later(clock, 30)
    probe_root = probe.probe_many

    async def any_root(targets: list[ProbeTarget], anchors_pem: str) -> list[object]:
        return await probe_root(targets, ROOT)  # type: ignore[return-value]

    probe.probe_many = any_root  # type: ignore[method-assign]
    again = await memory.results(KEY, version, TWO, anchors, issuer_key_id=ISSUER)
    assert (again.made, again.reused) == (2, 0)


async def test_another_allocation_or_address_is_a_new_instance() -> None:
    memory, probe, clock = setup()
    await memory.results(KEY, 42, TWO, ROOT, issuer_key_id=ISSUER)
    later(clock, 30)
    moved = instances(web_registration(A1, 24001), web_registration("a3333333-0000", 24002))
    again = await memory.results(KEY, 42, moved, ROOT, issuer_key_id=ISSUER)
    assert (again.made, again.reused) == (1, 1)
    assert probe.targets[-1].port == 24002


@pytest.mark.parametrize(
    ("worn", "made"),
    [(0.80, (1, 0, 0)), (0.873, (1, 1, 1))],
    ids=["at 80 % of its life: reused", "past consul-template's earliest renewal: every pass"],
)
async def test_a_leaf_near_its_renewal_is_handshaken_every_pass(
    worn: float, made: tuple[int, ...]
) -> None:
    life = timedelta(hours=72)
    memory, _, clock = setup(leaves={24001: leaf(life=life, age=life * worn, serial="0a")})
    one = instances(web_registration(A1, 24001))
    seen = []
    for _ in range(3):
        seen.append((await memory.results(KEY, 42, one, ROOT, issuer_key_id=ISSUER)).made)
        later(clock, 30)
    assert tuple(seen) == made


async def test_a_rejected_certificate_is_never_reused() -> None:
    memory, probe, clock = setup()
    shown = probe.probe_many

    async def rejecting(targets: list[ProbeTarget], anchors_pem: str) -> list[ProbeResult]:
        return [
            replace(r, outcome=ProbeOutcome.BAD_CERTIFICATE, problem=CertProblem.UNKNOWN_CA)
            if r.target.port == 24002
            else r
            for r in await shown(targets, anchors_pem)
        ]

    probe.probe_many = rejecting  # type: ignore[method-assign]
    await memory.results(KEY, 42, TWO, ROOT, issuer_key_id=ISSUER)
    later(clock, 30)
    again = await memory.results(KEY, 42, TWO, ROOT, issuer_key_id=ISSUER)
    assert (again.made, again.reused) == (1, 1)
    assert again.results[1].leaf is not None and not again.results[1].ok
    assert probe.targets[-1].port == 24002


async def test_an_unreachable_instance_is_handshaken_every_pass() -> None:
    memory, probe, clock = setup(leaves={24001: leaf(serial="0a")})  # 24002 refuses
    await memory.results(KEY, 42, TWO, ROOT, issuer_key_id=ISSUER)
    later(clock, 30)
    again = await memory.results(KEY, 42, TWO, ROOT, issuer_key_id=ISSUER)
    assert (again.made, again.reused) == (1, 1)
    assert not again.results[1].ok and probe.targets[-1].port == 24002


@pytest.mark.parametrize(
    "issuer", [PREVIOUS.key_id, ""], ids=["a leaf of the previous issuer", "issuer unknown"]
)
async def test_a_leaf_not_from_the_issuer_of_now_is_handshaken_every_pass(issuer: str) -> None:
    memory, probe, clock = setup()
    await every_30s(memory, clock, 3, TWO, issuer)
    assert len(probe.targets) == 6


async def test_an_instance_gone_from_the_catalog_is_forgotten() -> None:
    memory, _, clock = setup()
    await memory.results(KEY, 42, TWO, ROOT, issuer_key_id=ISSUER)
    later(clock, 30)
    await memory.results(KEY, 42, TWO[:1], ROOT, issuer_key_id=ISSUER)
    later(clock, 30)
    back = await memory.results(KEY, 42, TWO, ROOT, issuer_key_id=ISSUER)
    assert (back.made, back.reused) == (1, 1)


async def test_max_age_zero_handshakes_every_pass_and_keeps_nothing() -> None:
    memory, probe, clock = setup(max_age=0)
    for _ in range(3):
        await memory.results(KEY, 42, TWO, ROOT, issuer_key_id=ISSUER)
        later(clock, 1)
    assert len(probe.targets) == 6 and len(memory) == 0


async def test_forget_drops_the_jobs_handshakes() -> None:
    memory, _, _ = setup()
    await memory.results(KEY, 42, TWO, ROOT, issuer_key_id=ISSUER)
    memory.forget(KEY)
    assert len(memory) == 0
    assert (await memory.results(KEY, 42, TWO, ROOT, issuer_key_id=ISSUER)).made == 2


def test_a_negative_max_age_is_refused() -> None:
    with pytest.raises(ValueError, match="max_age"):
        setup(max_age=-1)


# --- in the reconciler ---------------------------------------------------------------------------


def reconciler(max_age: float) -> tuple[HealthReconciler, Probe, WallClock, CollectorRegistry]:
    probe = Probe({24001: leaf(serial="0a"), 24002: leaf(serial="0b")})
    clock, registry = WallClock(), CollectorRegistry()
    consul = Consul([web_registration(A1, 24001), web_registration(A2, 24002)])
    rec = HealthReconciler(
        Jobs(meshed(), ALLOCS),
        Statuses(mesh_status()),
        consul,
        probe,
        Trust(),
        CONFIG,
        clock=clock,
        registry=registry,
        handshake_max_age=max_age,
    )
    return rec, probe, clock, registry


async def test_re_checks_reuse_handshakes_and_count_them() -> None:
    rec, probe, clock, registry = reconciler(AGE)
    for _ in range(3):
        await rec.reconcile(KEY)
        later(clock, 30)
    assert len(probe.targets) == 2
    made = registry.get_sample_value("mesh_health_handshakes_total", {"result": "made"})
    reused = registry.get_sample_value("mesh_health_handshakes_total", {"result": "reused"})
    assert (made, reused) == (2.0, 4.0)


async def test_the_default_handshakes_every_instance_on_every_pass() -> None:
    rec, probe, clock, _ = reconciler(0.0)
    for _ in range(3):
        await rec.reconcile(KEY)
        later(clock, 30)
    assert len(probe.targets) == 6


async def test_a_job_with_nothing_to_judge_forgets_its_handshakes() -> None:
    rec, _, _, _ = reconciler(AGE)
    await rec.reconcile(KEY)
    assert len(rec.handshakes) == 1
    rec.jobs.job = None  # type: ignore[attr-defined]
    await rec.reconcile(KEY)
    assert len(rec.handshakes) == 0
