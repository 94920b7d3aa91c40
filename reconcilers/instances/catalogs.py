"""Which catalog answers for a fronted service, and its answer in one shape.

A service is registered where its ``provider`` says: Consul, or Nomad's own catalog. The
matching (``matching.consul_findings``) judges registrations the same way wherever they live, so
Nomad's answer is turned into Consul's shape here (``native_entries``): one ``HealthEntry`` per
registration, its checks as Consul would list them (``success`` -> ``passing``; ``failure`` and
``pending`` -> ``critical``, as a Consul check starts critical until it first passes).

Consul is asked only for services whose provider is Consul, so a cluster without Consul runs
the mesh on native services, and a Consul service with no Consul configured is reported as
such (``ConsulNotConfigured``), never as unhealthy.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Final

from controller.consul.wire import ConsulError, HealthEntry
from controller.nomad.errors import NomadError, PermissionDenied
from controller.nomad.services import PROVIDER as NOMAD
from controller.nomad.services import SUCCESS, NativeInstance, NativeServiceHealth
from reconcilers.instances.matching import FrontedPort
from reconcilers.ports import Catalog, NativeCatalog

CONSUL_NOT_CONFIGURED: Final = "ConsulNotConfigured"
CONSUL_UNAVAILABLE: Final = "ConsulUnavailable"
NOMAD_UNAVAILABLE: Final = "NomadUnavailable"
NOMAD_CATALOG_DENIED: Final = "NomadCatalogDenied"


class CatalogProblem(Exception):
    """A catalog could not say (Unknown, never unhealthy): ``reason`` for the condition."""

    def __init__(self, reason: str, message: str) -> None:
        super().__init__(message)
        self.reason = reason
        self.message = message


@dataclass
class CatalogAnswer:
    """Registrations per service name, in Consul's shape, and which answers ACLs filtered."""

    health: dict[str, Sequence[HealthEntry]] = field(default_factory=dict)
    filtered: dict[str, str] = field(default_factory=dict)
    native: set[str] = field(default_factory=set)  # services read from Nomad's catalog


def native_entry(instance: NativeInstance) -> HealthEntry:
    """A Nomad registration as a Consul health entry: node = the Nomad node ID."""
    reg = instance.registration
    checks = tuple(
        {
            "CheckID": c.result.id if c.result is not None else "",
            "Name": c.name,
            "Status": "passing" if c.status == SUCCESS else "critical",
            "Output": c.result.output if c.result is not None else "no result from the client yet",
        }
        for c in instance.checks
    )
    return HealthEntry(
        node=reg.node_id,
        node_address="",
        service_id=reg.id,
        service=reg.service_name,
        address=reg.address,
        port=reg.port,
        tags=reg.tags,
        checks=checks,
        raw=reg.raw,
    )


def native_entries(health: NativeServiceHealth) -> tuple[HealthEntry, ...]:
    return tuple(native_entry(i) for i in health.instances)


def providers(ports: Sequence[FrontedPort]) -> dict[str, str]:
    """Service name -> provider ("consul" or "nomad")."""
    return {p.service: p.provider for p in ports}


def needs_consul(ports: Sequence[FrontedPort]) -> list[str]:
    """The fronted services registered in Consul, sorted."""
    return sorted({p.service for p in ports if p.provider != NOMAD})


async def read_catalogs(
    ports: Sequence[FrontedPort],
    namespace: str,
    *,
    consul: Catalog | None,
    native: NativeCatalog | None,
) -> CatalogAnswer:
    """Ask each fronted service's own catalog; raise :class:`CatalogProblem` when one cannot
    answer (the whole answer is then unknown: a half-read job is not judged)."""
    answer = CatalogAnswer()
    for name, provider in sorted(providers(ports).items()):
        entries, filtered = await read_service(
            provider, name, namespace, consul=consul, native=native
        )
        answer.health[name] = entries
        if provider == NOMAD:
            answer.native.add(name)
        if filtered:
            answer.filtered[name] = filtered
    return answer


async def read_service(
    provider: str,
    name: str,
    namespace: str,
    *,
    consul: Catalog | None,
    native: NativeCatalog | None,
) -> tuple[tuple[HealthEntry, ...], str]:
    """One service's registrations in ``provider``'s catalog, in Consul's shape, and why
    Consul's ACLs filtered the answer ("" when they did not); :class:`CatalogProblem` when the
    catalog cannot answer. Nomad's catalog is namespaced, Consul's (OSS) is not."""
    if provider == NOMAD:
        if native is None:
            raise CatalogProblem(
                NOMAD_UNAVAILABLE, f"no reader of Nomad's service catalog for {name}"
            )
        try:
            found = await native.service_health(name, namespace)
        except PermissionDenied as exc:
            raise CatalogProblem(
                NOMAD_CATALOG_DENIED,
                f"the Nomad token cannot read service {name} in namespace {namespace}: "
                f"{exc}. Grant the token read-job in {namespace}",
            ) from exc
        except NomadError as exc:
            raise CatalogProblem(
                NOMAD_UNAVAILABLE, f"Nomad did not answer for service {name}: {exc}"
            ) from exc
        return native_entries(found), ""
    if consul is None:
        raise CatalogProblem(
            CONSUL_NOT_CONFIGURED,
            f"service {name} is registered in Consul (provider consul), but no Consul is "
            'configured: set CONSUL_HTTP_ADDR, or give the service provider = "nomad"',
        )
    try:
        got = await consul.health_service(name)
    except ConsulError as exc:  # unavailable, 403 and friends: unknown, never unhealthy
        raise CatalogProblem(CONSUL_UNAVAILABLE, str(exc)) from exc
    return tuple(got.entries), got.filtered_why if got.filtered else ""
