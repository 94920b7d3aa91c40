"""Nomad's plain-text errors mapped to exceptions: the EnforceIndex fence above all.

The bodies are Nomad's texts: nomad/job_endpoint.go builds the fence failures with
``RegisterEnforceIndexErrPrefix``; helper/pool/pool.go ``ConnPool.RPC`` prefixes ``rpc error: ``
when the agent forwarded the write to the leader (the usual case for a controller that talks to
its local client agent).
"""

from __future__ import annotations

import pytest

from controller.nomad.errors import (
    BadRequest,
    Conflict,
    NomadError,
    NotFound,
    PermissionDenied,
    TransientError,
    error_for,
    is_enforce_index_conflict,
)

FENCE_TEXTS = [
    "Enforcing job modify index 17: job exists with conflicting job modify index: 19",
    "Enforcing job modify index 0: job already exists",
    "Enforcing job modify index 4: job does not exist",
]


@pytest.mark.parametrize("text", FENCE_TEXTS)
@pytest.mark.parametrize("prefix", ["", "rpc error: ", "rpc error: rpc error: "])
def test_a_fence_failure_is_a_conflict_wherever_the_text_sits(prefix: str, text: str) -> None:
    body = prefix + text + "\n"
    assert is_enforce_index_conflict(500, body)
    err = error_for(500, body, "PUT /v1/job/web")
    assert type(err) is Conflict
    assert err.status == 500
    assert str(err) == f"PUT /v1/job/web: 500 {prefix}{text}"


@pytest.mark.parametrize(
    ("status", "body", "kind"),
    [
        (500, "rpc error: No cluster leader", TransientError),
        (500, "rpc error: rpc error making call: EOF", TransientError),
        (503, "Enforcing job modify index 1: job does not exist", TransientError),
        (429, "Too many requests", TransientError),
        (400, "rpc error: 1 error occurred: Enforcing job modify index", BadRequest),
        (403, "Permission denied", PermissionDenied),
        (404, "job not found", NotFound),
        (409, "variable lock conflict", Conflict),
        (418, "teapot", NomadError),
    ],
)
def test_other_answers_keep_their_class(status: int, body: str, kind: type[NomadError]) -> None:
    err = error_for(status, body, "PUT /v1/job/web")
    assert type(err) is kind
    assert not is_enforce_index_conflict(status, body)
