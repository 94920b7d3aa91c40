"""Shared pieces of the fuzz tests (tests/unit/test_fuzz_*.py): the example budget, and
strategies for the hostile inputs the reliability issue lists.

`make test` runs every property with a fixed number of examples (FUZZ_EXAMPLES, 100), in
derandomized order so CI is reproducible; `make chaos` runs them again with
MESH_FUZZ_EXAMPLES=2000 and fresh randomness.
"""

from __future__ import annotations

import copy
import os
from typing import Any

from hypothesis import HealthCheck, Phase, settings
from hypothesis import strategies as st

from crds_equivalent import keys

# `make test-fast` (the edit loop) scales every property's example count down, same seed order;
# `make test` and CI run the full counts.
EXAMPLES_SCALE = float(os.environ.get("MESH_EXAMPLES_SCALE") or 1.0)


def examples(full: int) -> int:
    """``full`` examples, scaled for the edit loop (never below 10)."""
    return max(10, round(full * EXAMPLES_SCALE))


FUZZ_EXAMPLES = int(os.environ.get("MESH_FUZZ_EXAMPLES") or examples(100))
FUZZ_TIMEOUT = 120 + FUZZ_EXAMPLES // 4  # seconds per property (pytest-timeout)
FUZZ = settings(
    max_examples=FUZZ_EXAMPLES,
    derandomize="MESH_FUZZ_EXAMPLES" not in os.environ,
    deadline=5000,  # ms per example: a hang or a quadratic blow-up fails the property
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
    database=None,
    # The big run reports a failing example as found: shrinking a 200 kB value takes ages.
    phases=[Phase.explicit, Phase.reuse, Phase.generate]
    if "MESH_FUZZ_EXAMPLES" in os.environ
    else list(Phase),
)

MESH_KEYS = [
    keys.MESH_TLS,
    keys.MESH_TLS_PORTS,
    keys.MESH_TLS_MODE,
    keys.MESH_TLS_PROTOCOL,
    keys.MESH_TLS_TTL,
    keys.MESH_TLS_SANS,
    keys.MESH_TLS_MTLS,
    keys.MESH_TLS_UPSTREAMS,
    keys.MESH_TLS_ALLOW,
]

HUGE = 200_000
unicode_text = st.text(
    st.characters(codec="utf-8", exclude_categories=("Cs",)), max_size=40
) | st.sampled_from(["ｔｒｕｅ", "true\u200b", "٣٠h", "1h\x00", "ÿ" * 50, "🔒,🔑", "\ud7ff"])
huge_text = st.builds(lambda c, n: c * n, st.sampled_from(["a", "1", ",", "é", "h"]), st.just(HUGE))
plausible = st.sampled_from(
    [
        "true",
        "false",
        "1",
        "0",
        "T",
        "yes",
        "strict",
        "permissive",
        "http",
        "tcp",
        "grpc",
        "72h",
        "1h",
        "59m",
        "-1h",
        "1e9h",
        "http,admin",
        "http,http",
        ",",
        "",
        " ",
        "a..b",
        "*.example.com",
        "x" * 64 + ".com",
        "billing:9001",
        "a:1/tcp@nomad, b:65535",
        "a:0",
        "frontend, reports",
    ]
)
json_scalar = st.none() | st.booleans() | st.integers() | st.floats(allow_nan=True)
meta_value = plausible | unicode_text | huge_text | json_scalar | st.lists(plausible, max_size=3)
meta_maps = st.dictionaries(
    st.sampled_from(MESH_KEYS)
    | st.sampled_from(["mesh.tls.bogus", "mesh.tlsx", "team"])
    | unicode_text,
    meta_value,
    max_size=6,
)

WRONG_TYPES = [None, "", "x", 0, -1, 1.5, True, [], [None], {}, {"": None}]


def paths(node: Any, prefix: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    """Every path into a JSON tree (dict keys and list indexes)."""
    out: list[tuple[Any, ...]] = []
    if isinstance(node, dict):
        for k, v in node.items():
            out.append((*prefix, k))
            out.extend(paths(v, (*prefix, k)))
    elif isinstance(node, list):
        for i, v in enumerate(node):
            out.append((*prefix, i))
            out.extend(paths(v, (*prefix, i)))
    return out


def nodes(node: Any) -> list[Any]:
    """Every node of a JSON tree, the root first."""
    out = [node]
    children = node.values() if isinstance(node, dict) else node if isinstance(node, list) else []
    for child in children:
        out.extend(nodes(child))
    return out


def _parent(root: Any, path: tuple[Any, ...]) -> Any:
    node = root
    for step in path[:-1]:
        node = node[step]
    return node


def _groups(job: dict[str, Any]) -> list[Any]:
    groups = job.get("TaskGroups")
    return groups if isinstance(groups, list) else []


@st.composite
def mangled(draw: st.DrawFn, job: dict[str, Any]) -> dict[str, Any]:
    """``job`` with a few hostile edits: fields removed, nulled or given the wrong type, extra
    fields, meta values from ``meta_value``, a group or task duplicated under the same name."""
    out = copy.deepcopy(job)
    for _ in range(draw(st.integers(1, 4))):
        every = paths(out)
        op = draw(st.sampled_from(["delete", "wrong", "extra", "meta", "dup-group", "dup-task"]))
        if op in ("delete", "wrong") and every:
            path = draw(st.sampled_from(every))
            parent = _parent(out, path)
            if op == "delete" and isinstance(parent, dict):
                del parent[path[-1]]
            else:
                parent[path[-1]] = copy.deepcopy(draw(st.sampled_from(WRONG_TYPES)))
        elif op == "extra":
            target = draw(st.sampled_from([n for n in nodes(out) if isinstance(n, dict)]))
            target[draw(st.sampled_from(["XNew", "Zeta", "meta", "tasks"]))] = draw(meta_value)
        elif op == "meta":
            groups = [g for g in _groups(out) if isinstance(g, dict)]
            holder = draw(st.sampled_from([out, *groups]))
            holder["Meta"] = draw(meta_maps) | {keys.MESH_TLS: draw(meta_value)}
        elif op == "dup-group" and isinstance(out.get("TaskGroups"), list) and out["TaskGroups"]:
            out["TaskGroups"].append(copy.deepcopy(out["TaskGroups"][0]))
        elif op == "dup-task":
            for g in _groups(out):
                if isinstance(g, dict) and isinstance(g.get("Tasks"), list) and g["Tasks"]:
                    g["Tasks"].append(copy.deepcopy(g["Tasks"][0]))
                    break
    return out
