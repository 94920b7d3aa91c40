"""The injection marker hash and the per-job certificate TTL jitter.

The marker ``mesh.tls.injected`` is compared instead of the whole job, because Nomad
canonicalises a job on register and a full comparison would always differ. So the hash covers
the INPUTS of the injection, never its output: the injector version, the group's spec, the
cluster config fields the injection reads, the job's identity (namespace, ID, name — they pick
the TTL jitter and default service names), the effective TTL, and the user's fields the
injection reads (the networks holding fronted ports — the group's, and for a task-level port
that task's network and the group network its TLS port joins — and every service registered on
them, verbatim). Those user fields are restored byte for byte from the undo record, so a job we
wrote hashes the same after Nomad has canonicalised it; and any change a user makes to a
fronted port or service changes the hash.
"""

from __future__ import annotations

import functools
import hashlib
import json
from collections.abc import Mapping
from typing import Any, Final

from crds_equivalent import keys
from crds_equivalent.config import MeshConfig
from crds_equivalent.spec import MeshSpec
from reconcilers.injection import jobview
from reconcilers.injection.fronting import GroupInputs, group_inputs, health_routes

INJECTOR_VERSION: Final = "4"  # 4: leaves from the job's own PKI role, token file on
MAX_TTL_JITTER: Final = 0.05
# The revision of what an mTLS group with http checks gets (their open check locations);
# hashed only for such groups. Bump it when that output changes for the same inputs.
MTLS_CHECKS_LAYOUT: Final = "1"
# The revision of the upstream listeners' and the allow list's nginx layout; hashed only for
# groups that use them. Bump it when that output changes for the same inputs.
EDGES_LAYOUT: Final = "1"

# The MeshConfig fields the injected output depends on. Only these are hashed, so that a knob
# the injection does not read (the root mount, the default TTL — which reaches the hash through
# the spec) cannot make every meshed job in the cluster roll. A test fails when a new field is
# in neither tuple.
INJECTION_CONFIG_FIELDS: Final = (
    "sidecar_driver",
    "sidecar_image",
    "nginx_bin",
    "nginx_stream_module",
    "sidecar_cpu",
    "sidecar_memory_mb",
    "pki_mount",
    "pki_role",
    "domain",
    "datacenter_domain",
    "vault_role",
    "check_tls_skip_verify",
)
CONFIG_FIELDS_NOT_HASHED: Final = ("root_mount", "ttl_default")


# Bounds of the memos below: enough for every job of a large cluster's working set (each entry
# is a few hundred bytes), and for the one or two MeshConfigs a process ever holds.
JITTER_MEMO_SIZE: Final = 16_384
DOCUMENT_MEMO_SIZE: Final = 256


@functools.lru_cache(maxsize=JITTER_MEMO_SIZE)
def ttl_jitter_fraction(namespace: str, job_id: str) -> float:
    """A stable fraction in [0, MAX_TTL_JITTER) derived from the job's identity."""
    digest = hashlib.sha256(f"{namespace}\x00{job_id}".encode()).digest()
    return int.from_bytes(digest[:8], "big") / 2**64 * MAX_TTL_JITTER


def jittered_ttl(ttl_seconds: int, namespace: str, job_id: str) -> int:
    """The leaf TTL actually requested: up to 5 % shorter, never longer (the role's max_ttl)."""
    return ttl_seconds - int(ttl_seconds * ttl_jitter_fraction(namespace, job_id))


def effective_ttl(spec: MeshSpec, job: Mapping[str, Any]) -> int:
    return jittered_ttl(spec.ttl_seconds, jobview.namespace(job), jobview.job_id(job))


def hash_inputs(
    spec: MeshSpec,
    config: MeshConfig,
    job: Mapping[str, Any],
    group: Mapping[str, Any],
    inputs: GroupInputs | None = None,
) -> dict[str, Any]:
    """Everything the injection of ``group`` depends on, as a JSON-able document.

    ``inputs``: ``group_inputs(job, group, spec)`` when the caller already has them."""
    if inputs is None:
        inputs = group_inputs(job, group, spec)
    networks = jobview.as_list(group.get("Networks"))
    used = {p.network_index for p in inputs.ports if p.task is None}
    task_ports = [p for p in inputs.ports if p.task is not None]
    if task_ports and networks:
        used.add(0)  # the TLS ports of task-level ports land in the group's first network
    used_networks = sorted(used)
    document: dict[str, Any] = {
        "injector": INJECTOR_VERSION,
        # Upstreams and allow are added below only when set, so every hash from before they
        # existed stays as it was (no roll-out of every meshed job for an unused feature).
        "spec": dict(_spec_document(spec)),
        "config": dict(_config_document(config)),
        "namespace": jobview.namespace(job),
        "job": jobview.job_id(job),
        "job_name": jobview.job_name(job),
        "group": jobview.group_name(group),
        "ttl": effective_ttl(spec, job),
        "networks": [[i, networks[i]] for i in used_networks],
        "services": [[s.view.task, s.view.service] for s in inputs.services],
    }
    if task_ports:  # only when used, so that the hash of a group-port job stays as it was
        document["task_ports"] = _task_networks(task_ports)
    if health_routes(inputs, spec):
        # The sidecar of an mTLS group with http checks answers them without a client
        # certificate (nginx layout 1). Only these groups' output changed, so only their hash
        # does: bumping INJECTOR_VERSION would roll every meshed job for nothing.
        document["mtls_checks"] = MTLS_CHECKS_LAYOUT
    if spec.upstreams:
        document["upstreams"] = [u.model_dump(mode="json") for u in spec.upstreams]
        document["upstreams_layout"] = EDGES_LAYOUT
    if spec.allow:
        document["allow"] = list(spec.allow)
        document["allow_layout"] = EDGES_LAYOUT
    nonce = rotation_nonce(group)
    if nonce:  # only when set, so that jobs never re-issued keep their hash
        document["rotation"] = nonce
    return document


# Memoised: every plan of every job hashes each meshed group (a reconcile of a job the
# controller wrote still plans it), and pydantic's dump was a visible part of that in a profile.
# Both models are frozen, so equal inputs give equal documents; callers get a shallow copy
# (the lists inside are shared: the document is only ever serialised).
@functools.lru_cache(maxsize=DOCUMENT_MEMO_SIZE)
def _spec_document(spec: MeshSpec) -> dict[str, Any]:
    """The spec as hashed: upstreams and allow are hashed apart, only when set."""
    return spec.model_dump(mode="json", exclude={"upstreams", "allow"})


@functools.lru_cache(maxsize=8)
def _config_document(config: MeshConfig) -> dict[str, Any]:
    """The cluster config fields the injection reads (INJECTION_CONFIG_FIELDS)."""
    return config.model_dump(mode="json", include=set(INJECTION_CONFIG_FIELDS))


def _task_networks(ports: list[jobview.PortView]) -> list[Any]:
    """What the injection reads of each fronted task-level port, normalised.

    Not the network verbatim: a task's ``Resources`` are the user's and never pass through our
    undo record, so Nomad's canonical form of them (``HostNetwork: "default"``, ``Mode``
    filled in) is what comes back. Hashing the raw network would make our own write look
    stale after Nomad stored it, and the job would get a second version for nothing.
    """
    return sorted(
        [p.task or "", p.label, p.static_value, task_host_network(p), p.namespaced] for p in ports
    )


def task_host_network(port: jobview.PortView) -> str:
    """The host network of a task-level port, with Nomad's "default" spelled "" (its zero value).

    The TLS port of a task-level port is written with this value, so the output does not
    change when Nomad canonicalises the task's network between two reconciles.
    """
    return "" if port.host_network in ("", "default") else port.host_network


def rotation_nonce(group: Mapping[str, Any]) -> str:
    """The group's certificate rotation nonce (``mesh.tls.rotation``), "" when unset."""
    value = jobview.group_meta(group).get(keys.ROTATION_GROUP_META)
    return value if isinstance(value, str) else ""


def spec_hash(
    spec: MeshSpec,
    config: MeshConfig,
    job: Mapping[str, Any],
    group: Mapping[str, Any],
    inputs: GroupInputs | None = None,
) -> str:
    """``<INJECTOR_VERSION>:<sha256[:16]>`` of the injection inputs of the USER's group
    (``inputs`` as for ``hash_inputs``)."""
    document = json.dumps(
        hash_inputs(spec, config, job, group, inputs),
        sort_keys=True,
        separators=(",", ":"),
        ensure_ascii=False,
        allow_nan=False,
    )
    return f"{INJECTOR_VERSION}:{hashlib.sha256(document.encode()).hexdigest()[:16]}"
