"""PURE: which certificate names a meshed job may obtain, and the Vault PKI role granting them.

Leaves are bound to the job that fronts them (README "Identity-bound certificates"): every
meshed job has its own PKI role, ``<pki_role>.<namespace>.<job ID>``, whose allowed names are
exactly the names its sidecars ask for, and the one workload policy lets a task's token issue
from the role named by its own identity (the ``nomad_namespace`` and ``nomad_job_id`` alias
metadata of its JWT login). A Nomad namespace never contains a dot (``^[a-zA-Z0-9-]{1,128}$``,
nomad/structs/structs.go ``validNamespaceName``), so the first dot after the prefix separates
namespace from job ID and the name reads back unambiguously (``parse_role``).

Periodic and dispatched children log in as their parent (``nomad_job_id`` is
``Job.GetIDforWorkloadIdentity``, the parent's ID) and run the parent's sidecar, so the
parent's role covers them; they have none of their own.

``job_leaf_names`` is the one place the names are listed, so a feature that gives a group a
new name (e.g. a leaf for a pure client) extends it here and the grant follows.

``mesh.tls.sans`` (``san_grant``): a declared SAN OUTSIDE the mesh's own namespaces (not under
the mesh domain nor the datacenter domain, which hold ``<svc>.<domain>`` and Consul's
``<svc>.service.<dc>.<datacenter_domain>``; never a wildcard) is granted as an exact name:
no mesh caller verifies it, so it cannot be used to pass for another job. A SAN INSIDE them
is exactly what mesh callers verify, so only the job's own fronted names may appear there;
any other is refused at plan time with the reason, instead of Vault refusing the sidecar at
issue time in its task events. IP SANs need no grant: the role keeps ``allow_ip_sans``.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from crds_equivalent import keys
from crds_equivalent.config import MeshConfig
from crds_equivalent.spec import MeshSpec
from reconcilers.injection import fronting, identity, jobview

# Vault's framework.GenericNameRegex, which the PKI engine's roles/<name> and issue/<name>
# paths use: word characters, dots and dashes, starting and ending with a word character.
_ROLE_NAME = re.compile(r"^\w(?:[\w.-]*\w)?$", re.ASCII)
_NAMESPACE = re.compile(r"^[a-zA-Z0-9-]{1,128}$")  # Nomad's validNamespaceName


class CannotBind(ValueError):
    """The job's identity cannot name a Vault PKI role, so its leaves cannot be bound."""


@dataclass(frozen=True)
class Grant:
    """The PKI role of one meshed job and the names it may issue leaves for."""

    role: str
    names: tuple[str, ...]


def job_role(config: MeshConfig, namespace: str, job_id: str) -> str:
    """``<pki_role>.<namespace>.<job ID>``; raises CannotBind when Vault cannot hold it."""
    if not _NAMESPACE.match(namespace):
        raise CannotBind(f"namespace {namespace!r} is not a Nomad namespace name")
    role = f"{config.pki_role}.{namespace}.{job_id}"
    if not _ROLE_NAME.match(role):
        raise CannotBind(
            f"job ID {job_id!r} cannot name a Vault PKI role (allowed: letters, digits, '_', "
            "'.' and '-', ending in a letter, digit or '_'), so its certificates cannot be "
            "bound to its identity; rename the job to mesh it"
        )
    return role


def parse_role(config: MeshConfig, role: str) -> tuple[str, str] | None:
    """(namespace, job ID) of a per-job role name, or None when it is not one of ours."""
    prefix = f"{config.pki_role}."
    if not role.startswith(prefix):
        return None
    namespace, dot, job_id = role[len(prefix) :].partition(".")
    if not dot or not job_id or not _NAMESPACE.match(namespace):
        return None
    return namespace, job_id


def service_leaf_names(service: str, config: MeshConfig) -> tuple[str, ...]:
    """The names a sidecar's leaf carries for one fronted service: ``<svc>.<domain>`` and
    Consul's ``<svc>.service.<dc>.<datacenter_domain>`` (the datacenter is known only on the
    client, hence the one glob)."""
    return (f"{service}.{config.domain}", f"{service}.service.*.{config.datacenter_domain}")


def _matches(name: str, granted: str) -> bool:
    """``name`` is ``granted``, or fits its Consul glob with ``*`` as one label (a datacenter)."""
    if "*" not in granted:
        return name == granted
    pattern = r"[^.]+".join(re.escape(part) for part in granted.split("*"))
    return re.fullmatch(pattern, name) is not None


def in_mesh_namespace(name: str, config: MeshConfig) -> bool:
    """Whether mesh callers could verify ``name``: under the mesh or the datacenter domain."""
    bare = name.rstrip(".").lower()
    return any(
        bare == domain or bare.endswith("." + domain)
        for domain in (config.domain.lower(), config.datacenter_domain.lower())
    )


def san_grant(san: str, group: str, own: tuple[str, ...], config: MeshConfig) -> tuple[str, ...]:
    """What declaring ``san`` adds to the job's grant: ``(san,)`` outside the mesh's
    namespaces, ``()`` for one of the job's own names; raises CannotBind otherwise."""
    why = ""
    if "*" in san:
        why = "a wildcard would cover other services' names"
    elif in_mesh_namespace(san, config):
        if any(_matches(san.rstrip(".").lower(), name.lower()) for name in own):
            return ()
        why = (
            f"it is in the mesh's own namespace ({config.domain}, *.{config.datacenter_domain}), "
            "which mesh callers verify, and is not a name this job fronts, so it would let "
            "this job pass for another; front that service from this job, or use a name "
            "outside the mesh's domains"
        )
    if why:
        raise CannotBind(f'group "{group}": meta "{keys.MESH_TLS_SANS}" names "{san}": {why}')
    return (san,)


def job_leaf_names(
    job: Mapping[str, Any],
    specs: Mapping[str, MeshSpec],
    config: MeshConfig,
    inputs_of: fronting.InputsOf = fronting.group_inputs,
) -> tuple[str, ...]:
    """Every name the job's meshed groups ask leaves for, in group order, without repeats.

    ``job`` is the user's job (after ``uninject``), ``specs`` its parsed group specs; groups
    that are not enabled add nothing. A service name only the client could resolve, or a
    ``mesh.tls.sans`` name ``san_grant`` refuses, raises CannotBind with inject's wording
    (``group "<name>": …``). A SAN one group declares may be a name another group fronts."""
    names: dict[str, None] = {}
    declared: dict[tuple[str, str], None] = {}  # (SAN, group): checked once every own name is known
    for group in jobview.groups(job):
        spec = specs.get(jobview.group_name(group))
        if spec is None or not spec.enabled:
            continue
        declared.update(dict.fromkeys((san, spec.group) for san in spec.sans))
        try:
            inputs = inputs_of(job, group, spec)
            if not inputs.ports:  # a pure client: its leaf is named after its job (identity)
                names[identity.pure_client_cn(job, config.domain)] = None
                continue
            services = fronting.service_names(job, group, inputs)
        except (jobview.UnresolvedName, identity.BadClientName) as err:
            raise CannotBind(f'group "{spec.group}": {err}') from None
        for service in services:
            names.update(dict.fromkeys(service_leaf_names(service, config)))
    own = tuple(names)
    for san, group_name in declared:
        names.update(dict.fromkeys(san_grant(san, group_name, own, config)))
    return tuple(names)


def job_grant(
    job: Mapping[str, Any],
    specs: Mapping[str, MeshSpec],
    config: MeshConfig,
    inputs_of: fronting.InputsOf = fronting.group_inputs,
) -> Grant:
    """The grant a meshed job needs; raises CannotBind."""
    role = job_role(config, jobview.namespace(job), jobview.job_id(job))
    return Grant(role, job_leaf_names(job, specs, config, inputs_of))
