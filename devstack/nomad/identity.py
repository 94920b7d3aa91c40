"""Workload identities: the token a task's template runner presents to read its Variables.

Nomad signs a JWT per task when the allocation is placed and its template runner sends it as
the Nomad token. The server then grants, without any ACL policy, read and list on
`nomad/jobs`, `nomad/jobs/<job>`, `nomad/jobs/<job>/<group>` and
`nomad/jobs/<job>/<group>/<task>` in the allocation's namespace (REPORT §6), plus the rules of
ACL policies attached to that job, group or task (`JobACL`). An identity is good only while
its allocation exists and is not client-terminal.

The twin's JWT is HS256 with a key of its own (Nomad's is RS256/EdDSA from its keyring); the
claims carry Nomad's names.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import secrets
import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from devstack.nomad.acl import NamespaceRule, Rules
from devstack.nomad.wire import client_terminal

VAR_READ = {"read", "list"}


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


@dataclass(frozen=True)
class Claims:
    namespace: str
    job_id: str
    alloc_id: str
    task: str


def workload_job_id(job: Mapping[str, Any]) -> str:
    """Dispatched and periodic children act as their parent job (Nomad's identity job ID)."""
    return str(job.get("ParentID") or job.get("ID") or "")


class WorkloadIdentities:
    """Mints and verifies the twin's workload identity tokens."""

    def __init__(self, key: bytes | None = None) -> None:
        self._key = key or secrets.token_bytes(32)

    def mint(self, alloc: Mapping[str, Any], task: str) -> str:
        job = alloc.get("Job") or {}
        now = int(time.time())
        claims = {
            "nomad_namespace": str(alloc.get("Namespace") or job.get("Namespace") or "default"),
            "nomad_job_id": workload_job_id(job),
            "nomad_allocation_id": str(alloc["ID"]),
            "nomad_task": task,
            "sub": ":".join(
                [
                    "global",
                    str(alloc.get("Namespace") or "default"),
                    workload_job_id(job),
                    str(alloc.get("TaskGroup") or ""),
                    task,
                    "default",
                ]
            ),
            "aud": ["nomadproject.io"],
            "iat": now,
            "nbf": now,
        }
        head = _b64(json.dumps({"alg": "HS256", "typ": "JWT"}).encode())
        body = _b64(json.dumps(claims, separators=(",", ":")).encode())
        return f"{head}.{body}.{self._sign(f'{head}.{body}')}"

    def _sign(self, signing_input: str) -> str:
        return _b64(hmac.new(self._key, signing_input.encode(), hashlib.sha256).digest())

    def verify(self, token: str) -> Claims | None:
        """The claims of a token this twin signed; None for anything else."""
        parts = token.split(".")
        if len(parts) != 3:
            return None
        if not hmac.compare_digest(parts[2], self._sign(f"{parts[0]}.{parts[1]}")):
            return None
        try:
            raw = json.loads(_unb64(parts[1]))
        except ValueError:
            return None
        return Claims(
            namespace=str(raw.get("nomad_namespace") or "default"),
            job_id=str(raw.get("nomad_job_id") or ""),
            alloc_id=str(raw.get("nomad_allocation_id") or ""),
            task=str(raw.get("nomad_task") or ""),
        )


def implicit_rules(claims: Claims, group: str) -> Rules:
    """The policy Nomad applies to a workload identity without any ACL policy."""
    base = "nomad/jobs"
    paths = [base, f"{base}/{claims.job_id}", f"{base}/{claims.job_id}/{group}"]
    paths.append(f"{paths[-1]}/{claims.task}")
    rule = NamespaceRule(variables={p: set(VAR_READ) for p in paths})
    return Rules(namespaces={claims.namespace: rule})


def live_group(allocs: Mapping[str, dict[str, Any]], claims: Claims) -> str | None:
    """The task group of the identity's allocation while it is alive, else None."""
    alloc = allocs.get(claims.alloc_id)
    if alloc is None or client_terminal(alloc):
        return None
    return str(alloc.get("TaskGroup") or "")


def attached(policy: Mapping[str, Any], claims: Claims, group: str) -> bool:
    """Whether an ACL policy's JobACL attaches it to this workload."""
    raw = policy.get("JobACL") or {}
    job_acl = {str(k).lower(): str(v or "") for k, v in raw.items()}
    if not job_acl.get("jobid"):
        return False
    return (
        (job_acl.get("namespace") or "default") == claims.namespace
        and job_acl["jobid"] == claims.job_id
        and job_acl.get("group", "") in ("", group)
        and job_acl.get("task", "") in ("", claims.task)
    )


@dataclass
class NomadApi:
    """How a client's tasks reach the server: its HTTP address (set once it listens) and the
    identities it signs."""

    identities: WorkloadIdentities
    addr: str | None = None
