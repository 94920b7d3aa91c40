"""Hypothesis strategies for Nomad jobs as users submit them and as Nomad stores them.

Jobs come in both Nomad shapes (request: nulls and missing keys; stored: full), with unknown
fields sprinkled in, several groups, group and task services, every check type, host and bridge
networks, static and dynamic ports, and meshed/unmeshed groups. The property tests and the fuzz
tests draw from the same strategies, so a shape one of them learns to generate covers both.
"""

from __future__ import annotations

from typing import Any

from hypothesis import assume
from hypothesis import strategies as st

from crds_equivalent.config import MeshConfig, SidecarDriver
from crds_equivalent.spec import MeshSpec, parse_job_specs
from reconcilers.injection.grant import CannotBind, job_grant
from reconcilers.injection.validate import validate

LABELS = ["http", "admin", "db", "grpc-api", "metrics"]


NAMES = st.text("abcdefghij-", min_size=1, max_size=8).filter(lambda s: s.strip("-") == s)


json_leaf = st.none() | st.booleans() | st.integers(-(2**40), 2**40) | st.text(max_size=6)


json_value = st.recursive(
    json_leaf,
    lambda inner: (
        st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=5), inner, max_size=3)
    ),
    max_leaves=6,
)


unknown_fields = st.dictionaries(
    st.sampled_from(["XNew", "XFuture", "Zeta"]), json_value, max_size=2
)


@st.composite
def check(draw: st.DrawFn, labels: list[str]) -> dict[str, Any]:
    c: dict[str, Any] = {
        "Name": draw(NAMES),
        "Type": draw(st.sampled_from(["http", "tcp", "script", "grpc", "HTTP"])),
    }
    if draw(st.booleans()):
        c["PortLabel"] = draw(st.sampled_from(["", *labels]))
    if draw(st.booleans()):
        c["Protocol"] = draw(st.sampled_from(["", "http", None]))
    if draw(st.booleans()):  # an mTLS group opens exactly these paths to Consul's agent
        c["Path"] = draw(st.sampled_from(["/health", "/ready?full=1", "/x/../y", "/a%20b"]))
    if draw(st.booleans()):
        c["Method"] = draw(st.sampled_from(["GET", "head", "POST"]))
    c.update(draw(unknown_fields))
    return c


@st.composite
def service(draw: st.DrawFn, labels: list[str]) -> dict[str, Any]:
    s: dict[str, Any] = {
        "Name": draw(st.one_of(NAMES, st.just(""), st.just("${JOB}-x"))),
        "PortLabel": draw(st.sampled_from([*labels, *labels, ""])),
    }
    if draw(st.booleans()):
        s["Tags"] = draw(st.none() | st.lists(NAMES, max_size=2))
    if draw(st.booleans()):
        s["CanaryTags"] = draw(st.none() | st.lists(NAMES, max_size=2))
    s["Checks"] = draw(st.none() | st.lists(check(labels), max_size=3))
    if draw(st.booleans()):
        s["Provider"] = draw(st.sampled_from([None, "consul"]))
    s.update(draw(unknown_fields))
    return s


# mesh.tls.sans: names outside the mesh's namespaces (granted), and names inside them that a
# generated job may or may not front (a, b, ... are NAMES), which the planner refuses unless
# the job fronts them (reconcilers.injection.grant.san_grant).
_EXTERNAL_SANS = ["a.example.com", "b.example.com", "a.internal."]
_MESH_SANS = ["a.service.consul", "b.service.dc1.consul", "other.consul"]
SANS = st.one_of(
    st.lists(st.sampled_from(_EXTERNAL_SANS), min_size=1, max_size=2),
    st.lists(st.sampled_from(_EXTERNAL_SANS + _MESH_SANS), min_size=1, max_size=3),
).map(", ".join)


MESH_META = st.fixed_dictionaries(
    {"mesh.tls": st.sampled_from(["true", "true", "1", "false", "F"])},
    optional={
        "mesh.tls.mode": st.sampled_from(["strict", "permissive"]),
        "mesh.tls.protocol": st.sampled_from(["http", "tcp"]),
        "mesh.tls.mtls": st.sampled_from(["true", "false"]),
        "mesh.tls.sans": SANS,
        "mesh.tls.ttl": st.sampled_from(["24h", "90m"]),
        "mesh.tls.upstreams": st.sampled_from(["billing:19001", "a:19001, b:19002/tcp@nomad"]),
        "team": NAMES,
    },
)


def _maybe(draw: st.DrawFn, target: dict[str, Any], key: str, value: Any) -> None:
    """Set key, or null it, or leave it out: the three shapes a Nomad field comes in."""
    how = draw(st.sampled_from(["set", "set", "null", "absent"]))
    if how == "set":
        target[key] = value
    elif how == "null":
        target[key] = None


@st.composite
def group(draw: st.DrawFn, name: str) -> dict[str, Any]:
    labels = draw(st.lists(st.sampled_from(LABELS), min_size=1, max_size=3, unique=True))
    static = draw(st.lists(st.sampled_from(labels), unique=True, max_size=1))
    network: dict[str, Any] = {"Mode": draw(st.sampled_from(["", "host", "bridge"]))}
    network["ReservedPorts"] = [
        {"Label": lb, "Value": 8000 + i} for i, lb in enumerate(static)
    ] or None
    network["DynamicPorts"] = [
        {
            "Label": lb,
            "To": draw(st.sampled_from([0, -1, 8080])),
            "HostNetwork": draw(st.sampled_from(["", "default", "lan"])),
        }
        for lb in labels
        if lb not in static
    ]
    g: dict[str, Any] = {"Name": name, "Count": draw(st.integers(0, 3))}
    task_names = draw(st.lists(NAMES, min_size=1, max_size=2, unique=True))
    tasks = []
    for task_name in task_names:
        task: dict[str, Any] = {"Name": task_name, "Driver": "docker"}
        _maybe(draw, task, "Services", draw(st.lists(service(labels), max_size=2)))
        task.update(draw(unknown_fields))
        tasks.append(task)
    g["Tasks"] = tasks
    _maybe(draw, g, "Meta", draw(st.none() | MESH_META))
    g["Networks"] = [network]
    services = draw(st.lists(service(labels), max_size=2))
    if draw(st.sampled_from([True, True, True, False])):  # mostly: something to front
        services.insert(0, {**draw(service(labels)), "PortLabel": labels[0]})
    _maybe(draw, g, "Services", services)
    g.update(draw(unknown_fields))
    return g


@st.composite
def jobs(draw: st.DrawFn) -> dict[str, Any]:
    names = draw(st.lists(NAMES, min_size=1, max_size=3, unique=True))
    job: dict[str, Any] = {"ID": draw(NAMES), "Name": None}
    _maybe(draw, job, "Namespace", draw(st.sampled_from(["default", "apps"])))
    _maybe(draw, job, "Meta", draw(MESH_META))
    job["TaskGroups"] = [draw(group(n)) for n in names]
    job.update(draw(unknown_fields))
    return job


configs = st.builds(
    MeshConfig,
    sidecar_driver=st.sampled_from(list(SidecarDriver)),
    check_tls_skip_verify=st.booleans(),
)


def meshable(job: dict[str, Any], config: MeshConfig | None = None) -> dict[str, MeshSpec]:
    """The specs, when the planner would accept the job (else the example is rejected): valid,
    and its names can be granted (no foreign mesh-domain SAN, an ID Vault can hold)."""
    specs = parse_job_specs(job)
    enabled = {n: s for n, s in specs.items() if s.enabled}
    assume(validate(job, enabled) is None)
    try:
        job_grant(job, enabled, config or MeshConfig())
    except CannotBind:
        assume(False)
    return specs
