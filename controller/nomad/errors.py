"""Nomad's plain-text HTTP errors, mapped to exceptions the controller can act on.

Nomad has no JSON error envelope: the status code and a bare message are all we get, and a few
meanings hide behind a 500 (an EnforceIndex mismatch is a 500, not a 409). Mapping them in one
place lets the reconcilers distinguish "someone else wrote first" from "try again later" from
"this will never work" without parsing strings themselves.
"""

from __future__ import annotations

from typing import Any

# nomad/job_endpoint.go RegisterEnforceIndexErrPrefix. Matched anywhere in the body, not as a
# prefix: a write is forwarded to the leader (from a follower server, or from the client agent a
# controller usually talks to) through helper/pool ConnPool.RPC, which wraps every error that is
# not RPC-coded as fmt.Errorf("rpc error: %w", err), and command/agent/http.go only unwraps
# permission/token errors. Nomad's own CLI matches with strings.Contains (command/job_run.go).
ENFORCE_INDEX_PREFIX = "Enforcing job modify index"


def is_enforce_index_conflict(status: int, body: str) -> bool:
    """A 500 whose text carries the EnforceIndex fence failure, forwarded or not."""
    return status == 500 and ENFORCE_INDEX_PREFIX in body


class NomadError(Exception):
    """Any error answer from Nomad (or failure to get one)."""

    def __init__(self, message: str, *, status: int | None = None, body: str = "") -> None:
        super().__init__(message)
        self.status = status
        self.body = body


class BadRequest(NomadError):
    """400: the request itself is wrong; retrying it unchanged cannot help."""


class PermissionDenied(NomadError):
    """403: the token lacks a capability (or is unknown/expired)."""


class NotFound(NomadError):
    """404: the object (job, allocation, variable) does not exist."""


class Conflict(NomadError):
    """A write lost a race: EnforceIndex mismatch (500) or a Variables CAS/lock conflict (409).

    ``current`` holds the conflicting Variable as Nomad returned it on a CAS 409, when it did.
    """

    def __init__(
        self,
        message: str,
        *,
        status: int | None = None,
        body: str = "",
        current: dict[str, Any] | None = None,
    ) -> None:
        super().__init__(message, status=status, body=body)
        self.current = current


class TlsVerificationError(NomadError):
    """Nomad's certificate did not verify: a configuration problem, never retried."""


class TransientError(NomadError):
    """5xx, 429, connection errors and timeouts: the same call may succeed later."""


def error_for(status: int, body: str, what: str) -> NomadError:
    """The exception for a non-2xx answer; ``what`` names the call (method + path) for messages."""
    text = body.strip()
    message = f"{what}: {status} {text}" if text else f"{what}: {status}"
    if status == 400:
        return BadRequest(message, status=status, body=body)
    if status == 403:
        return PermissionDenied(message, status=status, body=body)
    if status == 404:
        return NotFound(message, status=status, body=body)
    if status == 409:
        return Conflict(message, status=status, body=body)
    if is_enforce_index_conflict(status, text):
        return Conflict(message, status=status, body=body)
    if status >= 500 or status == 429:
        return TransientError(message, status=status, body=body)
    return NomadError(message, status=status, body=body)
