"""What the injection of one group reads: the fronted ports and the services on them.

inject, the spec hash and the planner must agree exactly on these inputs — if the hash read
one service and inject rewrote another, a changed job could look up to date — so they are
computed here, once, from the USER's group (the job after ``uninject``).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from crds_equivalent.spec import MeshSpec, TlsProtocol
from reconcilers.injection import jobview
from reconcilers.injection.jobview import PortView, ServiceView, as_list, as_str


@dataclass(frozen=True)
class FrontedService:
    """A service registered on a fronted port, with the name Consul will see."""

    view: ServiceView
    name: str


@dataclass(frozen=True)
class GroupInputs:
    """The fronted ports (in spec order) and the services registered on them."""

    ports: tuple[PortView, ...]
    services: tuple[FrontedService, ...]
    missing_labels: tuple[str, ...]  # spec labels neither the group nor its tasks declare

    @property
    def labels(self) -> tuple[str, ...]:
        return tuple(p.label for p in self.ports)


def group_inputs(job: Mapping[str, Any], group: Mapping[str, Any], spec: MeshSpec) -> GroupInputs:
    """Collect the inputs; raises jobview.UnresolvedName for a name only the client knows."""
    declared = jobview.all_ports(group)
    ports = tuple(declared[label] for label in spec.ports if label in declared)
    missing = tuple(label for label in spec.ports if label not in declared)
    labels = {p.label for p in ports}
    fronted = tuple(
        FrontedService(view, jobview.service_name(job, group, view))
        for view in jobview.services(group)
        if view.port_label in labels
    )
    return GroupInputs(ports, fronted, missing)


InputsOf = Callable[[Mapping[str, Any], Mapping[str, Any], MeshSpec], GroupInputs]
"""``group_inputs`` or an :class:`InputsMemo`: what the planner's helpers call for the inputs."""


# what an InputsMemo keeps per key: the job, group and spec asked about, and the answer (the
# UnresolvedName message when there is none)
_Held = tuple[Mapping[str, Any], Mapping[str, Any], MeshSpec, GroupInputs | str]


class InputsMemo:
    """``group_inputs`` for the length of one plan: each (job, group, spec) is read once.

    The planner asks for the same group's inputs up to six times (the rules, the grant, the
    marker hash, the injection and its hash); a profile of the controller put those repeats
    at a sixth of a plan's CPU. Keyed by identity, and the objects themselves are kept and
    checked, so an id is never reused while the memo lives; the planner never changes the
    user's job it reads (``uninject``'s result is read-only), so an answer cannot go stale.
    """

    def __init__(self) -> None:
        self._seen: dict[tuple[int, int, int], _Held] = {}

    def __call__(
        self, job: Mapping[str, Any], group: Mapping[str, Any], spec: MeshSpec
    ) -> GroupInputs:
        key = (id(job), id(group), id(spec))
        held = self._seen.get(key)
        if held is None or held[0] is not job or held[1] is not group or held[2] is not spec:
            try:
                answer: GroupInputs | str = group_inputs(job, group, spec)
            except jobview.UnresolvedName as err:
                answer = str(err)
            self._seen[key] = held = (job, group, spec, answer)
        if isinstance(held[3], str):
            raise jobview.UnresolvedName(held[3])
        return held[3]


def common_name(job: Mapping[str, Any], group: Mapping[str, Any], inputs: GroupInputs) -> str:
    """The service named in the certificate's CN: the first fronted service.

    A group without a service on its fronted ports (ports listed explicitly) uses Nomad's
    default group service name ``<job>-<group>``.
    """
    if inputs.services:
        return inputs.services[0].name
    return f"{jobview.job_name(job)}-{jobview.group_name(group)}"


def service_names(
    job: Mapping[str, Any], group: Mapping[str, Any], inputs: GroupInputs
) -> list[str]:
    """Every distinct service name the certificate must cover, CN first."""
    names = [common_name(job, group, inputs)]
    for service in inputs.services:
        if service.name not in names:
            names.append(service.name)
    return names


@dataclass(frozen=True)
class HealthRoute:
    """An http check of an mTLS group: the one request nginx lets through without a client
    certificate, because Consul's agent has none (Nomad's ``createCheckReg`` gives Consul only
    ``TLSSkipVerify``, ``TLSServerName``, ``Method``, ``Header`` and ``Body``).

    ``label`` is the fronted (app) port the check targets, ``path`` the check's ``Path`` as
    written (query included), ``method`` the check's ``Method`` (Consul's default ``GET``).
    """

    label: str
    path: str
    method: str


def health_routes(inputs: GroupInputs, spec: MeshSpec) -> tuple[HealthRoute, ...]:
    """The http checks that ``rewrite`` moves onto a TLS port of an mTLS http group, deduplicated.

    Empty for every other group, so their nginx.conf and hash stay what they were. A check
    follows the same rule as in ``rewrite._tls_check``: its own port when it names one, else
    its service's.
    """
    if not spec.mtls or spec.protocol is not TlsProtocol.HTTP:
        return ()
    fronted = set(inputs.labels)
    routes: list[HealthRoute] = []
    for service in inputs.services:
        for check in as_list(service.view.service.get("Checks")):
            if not isinstance(check, Mapping) or as_str(check.get("Type")).lower() != "http":
                continue
            label = as_str(check.get("PortLabel")) or service.view.port_label
            if label not in fronted:
                continue
            method = as_str(check.get("Method")).upper() or "GET"
            route = HealthRoute(label, as_str(check.get("Path")), method)
            if route not in routes:
                routes.append(route)
    return tuple(routes)
