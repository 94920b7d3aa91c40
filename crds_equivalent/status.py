"""MeshStatus and Condition: what the controller last observed about one job.

Stored as a Nomad Variable (`mesh-controller/status/<namespace>/<job>`) whose Items are strings,
so the record round-trips through `to_items()`/`from_items()`. It lives outside the job on
purpose: writing status into the job would create job versions and feed our own event loop.

Three reconcilers share one record per job, so each owns a part of it and writes only that part,
through ``StatusStore.update`` (read, derive the new record from the stored one with
``model_copy``, CAS; on a conflict re-read and derive again). A reconciler that rebuilt the
whole record would erase what the others wrote between its passes — the mesh reconciler once
erased ``last_error`` that way. Who owns what:

=====================  ==========================================================================
owner                  fields and conditions
=====================  ==========================================================================
mesh                   ``observed_index``, ``spec_hash``, ``written_index``, ``retry``;
                       conditions ``SpecValid``, ``SidecarInjected``, ``RolledOut``; the
                       lifecycle ``phase``/``message`` of a removed (``Removed``) or stopped
                       (phase kept) job
health                 conditions ``CertValid``, ``ConsulHealthy``, ``PlaintextRetired``,
                       ``UpstreamsHealthy``; ``cert_not_after``, ``issuer``, ``edges`` (one
                       record per upstream of the job), ``warnings`` (allow-list names no
                       meshed job fronts: said, never a phase change)
certs                  ``last_error``, ``last_remediation``
(derived)              ``phase``, ``message`` and ``verified_at`` otherwise:
                       ``reconcilers.conditions.restate`` computes them from the merged
                       conditions on every mesh or health write, so neither can state a phase
                       the other's conditions contradict. ``verified_at`` is stamped the first
                       time the conditions make the job Ready and kept while ``spec_hash``
                       stays; a mesh write with a new ``spec_hash`` (injection, retry, rotation
                       nonce, removal) clears it. Only a verified record can be ``Degraded`` by
                       a health fact, so it lives here, not in memory: it survives a restart
                       or a failover
store                  ``updated_at`` (stamped on write; ignored when deciding whether to write)
=====================  ==========================================================================

Health and certs act only on a record with :attr:`MeshStatus.sidecar_injected`: they never
create a record, and never write over one the mesh reconciler marked removed or invalid.
"""

import json
from collections.abc import Mapping
from enum import StrEnum
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field


class Phase(StrEnum):
    """Lifecycle of a meshed job, coarsest view first."""

    PENDING = "Pending"
    INJECTED = "Injected"
    READY = "Ready"
    DEGRADED = "Degraded"
    INVALID = "Invalid"
    REMOVED = "Removed"


class ConditionType(StrEnum):
    """Facts the controller checks; each is True, False or Unknown."""

    SPEC_VALID = "SpecValid"
    SIDECAR_INJECTED = "SidecarInjected"
    ROLLED_OUT = "RolledOut"
    CERT_VALID = "CertValid"
    CONSUL_HEALTHY = "ConsulHealthy"
    PLAINTEXT_RETIRED = "PlaintextRetired"
    UPSTREAMS_HEALTHY = "UpstreamsHealthy"


ROLLING_OUT = "RollingOut"
"""The ``RolledOut`` reason while Nomad places or judges the version (it ends by itself)."""


class ConditionStatus(StrEnum):
    """Kubernetes-style tri-state: Unknown means we could not tell, never a guess."""

    TRUE = "True"
    FALSE = "False"
    UNKNOWN = "Unknown"


class Condition(BaseModel):
    """One checked fact with the reason for its status and when it last changed."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    type: ConditionType
    status: ConditionStatus
    reason: str = Field(default="", description="CamelCase machine-readable reason.")
    message: str = Field(default="", description="Human-readable detail.")
    last_transition: str = Field(default="", description="RFC 3339 time the status changed.")


EdgeState = Literal["healthy", "empty", "not meshed", "handshake failed", "unknown"]


class EdgeRecord(BaseModel):
    """One upstream of one group as the health reconciler last found it in its catalog.

    ``empty`` and ``not meshed`` are errors (the listener answers 503 or closes: the sidecar
    never falls back to plaintext); ``unknown`` means the catalog did not answer, never empty.
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    group: str = Field(description="The calling group.")
    service: str = Field(description="The upstream service.")
    port: int = Field(ge=1, le=65535, description="The listener the app dials on 127.0.0.1.")
    protocol: str = Field(description="http | tcp.")
    provider: str = Field(description="consul | nomad: the catalog the upstream is read from.")
    state: EdgeState = Field(
        description="healthy: at least one usable mesh-tls instance; empty: none registered or "
        "none passing; not meshed: instances, none tagged mesh-tls; handshake failed: every "
        "usable instance failed the controller's verified TLS handshake; unknown: no answer."
    )
    healthy: int | None = Field(
        default=None,
        ge=0,
        description="Usable mesh-tls instances (passing in Consul, registered in Nomad) whose "
        "TLS handshake did not fail; null when unknown.",
    )
    message: str = Field(default="", description="Why the edge is not healthy, or empty.")
    handshake_error: str = Field(
        default="",
        description="The last failed handshake with an instance of the upstream, as the "
        "controller's probe saw it (chain against the mesh root, name <service>.<domain>); "
        "empty when every handshake verified or none was tried.",
    )


class MeshStatus(BaseModel):
    """The status record of one job."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    phase: Phase = Phase.PENDING
    observed_index: int = Field(default=0, description="JobModifyIndex last reconciled.")
    spec_hash: str = Field(default="", description="Hash marker the job should carry.")
    conditions: tuple[Condition, ...] = ()
    message: str = ""
    updated_at: str = Field(default="", description="RFC 3339 time of the last write.")
    cert_not_after: str = Field(default="", description="Soonest leaf expiry (RFC 3339).")
    issuer: str = Field(default="", description="Issuer of the newest leaves seen.")
    last_error: str = ""
    verified_at: str = Field(
        default="",
        description="RFC 3339 time the job was first Ready (injected, rolled out, healthy on the "
        "TLS port, chain verified) for the current spec_hash; empty until then. A health fact "
        "failing makes a verified job Degraded, an unverified one stays Injected (warming up).",
    )
    written_index: int = Field(
        default=0,
        description="JobModifyIndex of the mesh reconciler's last job write: the deployment "
        "whose JobSpecModifyIndex equals it is the controller's own.",
    )
    retry: str = Field(
        default="",
        description="JSON of the retry after a failed or reverted deployment of the controller's "
        "version: attempts, next_attempt (RFC 3339), deployment, reason (DeploymentFailed|"
        "Reverted), description (Nomad's). Kept here so a failover does not reset the backoff.",
    )
    last_remediation: str = Field(
        default="",
        description="JSON of the last certificate remediation (kind restart|reissue, at, "
        "allocations or nonce, serials, reason).",
    )
    edges: tuple[EdgeRecord, ...] = Field(
        default=(), description="Each upstream of the job's meshed groups (mesh.tls.upstreams)."
    )
    warnings: tuple[str, ...] = Field(
        default=(),
        description="What is worth saying but changes no phase: a mesh.tls.allow name that no "
        "meshed job fronts (nor names a pure client).",
    )

    def condition(self, kind: ConditionType) -> Condition | None:
        """The condition of that type, if recorded."""
        return next((c for c in self.conditions if c.type == kind), None)

    @property
    def sidecar_injected(self) -> bool:
        """The mesh reconciler registered the sidecar and the job is still meshed and valid: the
        gate before the health and certificate reconcilers look at (or write about) a job, so
        they never judge a job the mesh reconciler has not finished or has given up on."""
        if self.phase in (Phase.REMOVED, Phase.INVALID):
            return False
        injected = self.condition(ConditionType.SIDECAR_INJECTED)
        return injected is not None and injected.status == ConditionStatus.TRUE

    @property
    def rolling_out(self) -> bool:
        """The mesh reconciler's last word is that Nomad is still rolling the job's version
        out (placing or judging it): a state that ends by itself, soon, in an outcome."""
        rolled = self.condition(ConditionType.ROLLED_OUT)
        return (
            rolled is not None
            and rolled.status == ConditionStatus.FALSE
            and rolled.reason == ROLLING_OUT
        )

    def to_items(self) -> dict[str, str]:
        """Flatten to Nomad Variable Items (every value a string)."""
        items = {
            "phase": str(self.phase),
            "observed_index": str(self.observed_index),
            "spec_hash": self.spec_hash,
            "conditions": json.dumps([_fields(c) for c in self.conditions], separators=(",", ":")),
            "message": self.message,
            "updated_at": self.updated_at,
        }
        for optional in (
            "cert_not_after",
            "issuer",
            "last_error",
            "last_remediation",
            "retry",
            "verified_at",
        ):
            value = getattr(self, optional)
            if value:
                items[optional] = value
        if self.written_index:
            items["written_index"] = str(self.written_index)
        if self.edges:
            items["edges"] = json.dumps(
                [e.model_dump(mode="json") for e in self.edges], separators=(",", ":")
            )
        if self.warnings:
            items["warnings"] = json.dumps(list(self.warnings), separators=(",", ":"))
        return items

    @classmethod
    def from_items(cls, items: Mapping[str, str]) -> "MeshStatus":
        """Rebuild from Variable Items; raises pydantic.ValidationError on a corrupt record."""
        conditions = json.loads(items.get("conditions") or "[]")
        return cls.model_validate(
            {
                "phase": items.get("phase", Phase.PENDING),
                "observed_index": int(items.get("observed_index") or 0),
                "spec_hash": items.get("spec_hash", ""),
                "conditions": conditions,
                "message": items.get("message", ""),
                "updated_at": items.get("updated_at", ""),
                "cert_not_after": items.get("cert_not_after", ""),
                "issuer": items.get("issuer", ""),
                "last_error": items.get("last_error", ""),
                "last_remediation": items.get("last_remediation", ""),
                "written_index": int(items.get("written_index") or 0),
                "retry": items.get("retry", ""),
                "verified_at": items.get("verified_at", ""),
                "edges": json.loads(items.get("edges") or "[]"),
                "warnings": json.loads(items.get("warnings") or "[]"),
            }
        )

    def same_content(self, other: "MeshStatus") -> bool:
        """Equal ignoring `updated_at` and condition transition times: decides whether to write.

        Field by field rather than by comparing two dumps: every status update of every
        reconcile asks, and the dumps were most of an update's CPU in a profile."""
        mine, theirs = self.__dict__, other.__dict__
        for name, value in mine.items():
            if name == "updated_at":
                continue
            if name == "conditions":
                if _bare(value) != _bare(theirs[name]):
                    return False
            elif value != theirs[name]:
                return False
        return True


def _fields(condition: Condition) -> dict[str, Any]:
    """A condition's fields, as its JSON dump has them: every field is a string or a StrEnum,
    which ``json`` writes as its value (so the items are what ``model_dump`` would give, for
    a fraction of its cost)."""
    return condition.__dict__


def _bare(conditions: tuple[Condition, ...]) -> list[dict[str, Any]]:
    return [{k: v for k, v in c.__dict__.items() if k != "last_transition"} for c in conditions]
