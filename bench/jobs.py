"""Realistic meshed service jobs for the control-plane benchmark, as users submit them.

Deterministic for a seed: 1-3 task groups (counts 1-2), one or two HTTP services per group with
an http check, docker tasks the twin simulates (no processes). Every job is opted in with job
meta ``mesh.tls = "true"``; one group in five overrides a key (permissive mode, or mTLS) so the
injector's per-group paths are exercised too.
"""

from __future__ import annotations

import random
from typing import Any

SECOND = 1_000_000_000


def _group(rng: random.Random, job_id: str, index: int) -> dict[str, Any]:
    name = f"g{index}"
    labels = ["http"] if rng.random() < 0.7 else ["http", "admin"]
    services = [
        {
            "Name": f"{job_id}-{name}-{label}",
            "PortLabel": label,
            "Provider": "consul",
            "Tags": ["bench"],
            "Checks": [
                {
                    "Name": "alive",
                    "Type": "http",
                    "Path": "/health",
                    "Interval": 10 * SECOND,
                    "Timeout": 2 * SECOND,
                }
            ],
        }
        for label in labels
    ]
    meta: dict[str, str] = {}
    roll = rng.random()
    if roll < 0.1:
        meta["mesh.tls.mode"] = "permissive"
    elif roll < 0.2:
        meta["mesh.tls.mtls"] = "true"
    return {
        "Name": name,
        "Count": rng.choice((1, 1, 2)),
        # Nomad's defaults are 10 s and one at a time; 1 s and the whole group at once keep
        # rollouts (so each benchmark phase) short. The benchmark's twin runs without Consul,
        # and Nomad judges a deployment by its Consul checks unless told otherwise: by task
        # states here, as an operator would on a cluster whose checks Nomad cannot see.
        "Update": {"MinHealthyTime": SECOND, "MaxParallel": 2, "HealthCheck": "task_states"},
        "Meta": meta or None,
        "Networks": [{"Mode": "host", "DynamicPorts": [{"Label": label} for label in labels]}],
        "Services": services,
        "Tasks": [
            {
                "Name": "app",
                "Driver": "docker",
                "Config": {"image": f"registry.example/{job_id}:{rng.randint(1, 9)}"},
                "Env": {"APP_GROUP": name},
                "Resources": {"CPU": 100, "MemoryMB": 64},
            }
        ],
    }


def user_job(job_id: str, seed: int, namespace: str = "default") -> dict[str, Any]:
    """One meshed service job (Nomad API JSON) for ``job_id``; same seed, same job."""
    rng = random.Random(f"{seed}:{job_id}")
    return {
        "ID": job_id,
        "Name": job_id,
        "Namespace": namespace,
        "Type": "service",
        "Datacenters": ["dc1"],
        "Meta": {"mesh.tls": "true", "team": rng.choice(("payments", "search", "web", "data"))},
        "TaskGroups": [_group(rng, job_id, i) for i in range(rng.choice((1, 1, 2, 3)))],
    }


def job_ids(n: int, prefix: str = "svc") -> list[str]:
    return [f"{prefix}-{i:05d}" for i in range(n)]


def bump(job: dict[str, Any], revision: int) -> dict[str, Any]:
    """The user's next version of ``job`` (a CI deploy): a new image tag in every group."""
    out = dict(job)
    out["Meta"] = {**(job.get("Meta") or {}), "revision": str(revision)}
    groups = []
    for group in job["TaskGroups"]:
        tasks = [
            {**task, "Config": {**task["Config"], "image": f"registry.example/app:{revision}"}}
            for task in group["Tasks"]
        ]
        groups.append({**group, "Tasks": tasks})
    out["TaskGroups"] = groups
    return out
