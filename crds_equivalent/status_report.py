"""StatusReport: the JSON that ``controllerctl status --output json`` prints.

Monitoring consumes this document, so it is part of the contract like the meta keys: a model
here, a generated schema in ``schema/status-report.schema.json``, and a ``version`` that changes
only when a field changes meaning or disappears (adding fields is not a breaking change).
One row per meshed (job, group, fronted service); a job that cannot be split into rows (gone,
invalid, unreadable) gets one row with ``group`` and ``service`` empty. One edge per upstream
of a meshed group (``mesh.tls.upstreams``): caller -> upstream, and what the caller's listener
finds behind it.
"""

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

REPORT_VERSION = 1

Injected = Literal["current", "stale", "missing", "orphaned"]
IssuerState = Literal["current", "old", "unknown"]
LockState = Literal["held", "released", "hidden", "unknown"]
EdgeState = Literal["healthy", "empty", "not meshed", "handshake failed", "unknown"]


class _Model(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class AllocCount(_Model):
    """Allocations of the group that run with the sidecar running, against the desired count."""

    running: int = Field(ge=0, description="Running allocations whose sidecar task runs.")
    desired: int = Field(ge=0, description="Group count (system jobs: allocations placed).")


class TlsCount(_Model):
    """Consul instances of the service on the TLS port (tag ``mesh-tls``)."""

    passing: int = Field(ge=0, description="TLS registrations with every check passing.")
    registered: int = Field(ge=0, description="TLS registrations of this job's allocations.")


class CertSummary(_Model):
    """The soonest leaf expiry the controller recorded, and whose issuer signed the leaves."""

    not_after: str = Field(default="", description="RFC 3339; empty when never observed.")
    expires_in_seconds: int | None = Field(
        default=None, description="Seconds from generated_at to not_after (negative: expired)."
    )
    issuer: str = Field(default="", description="Issuer id (and name) recorded in the status.")
    issuer_state: IssuerState = Field(
        default="unknown",
        description="current: the PKI mount's default issuer; old: a previous issuer; "
        "unknown: not recorded or Vault not consulted.",
    )


class StatusRow(_Model):
    """One meshed (job, group, fronted service)."""

    namespace: str
    job: str
    group: str = Field(default="", description="Task group; empty for a job-level row.")
    service: str = Field(default="", description="Consul service name; empty if none.")
    port: str = Field(default="", description="The fronted (plaintext) port label.")
    mode: str = Field(default="", description="strict | permissive; empty when not meshed.")
    injected: Injected | None = Field(
        default=None,
        description="current: marker hash matches the spec; stale: it does not (or our "
        "objects were edited away); missing: not injected; orphaned: mesh.tls is off but "
        "the sidecar and markers are still there. null without --live.",
    )
    allocs: AllocCount | None = Field(default=None, description="null without --live.")
    tls: TlsCount | None = Field(default=None, description="null without --live.")
    plaintext: int | None = Field(
        default=None,
        description="Consul instances of the service NOT on a TLS port (any job, any tag); "
        "null without --live.",
    )
    cert: CertSummary = Field(default_factory=CertSummary)
    phase: str = Field(description="Phase from the status record, or Unknown without one.")
    message: str = Field(default="", description="First failing condition's message.")
    drift: list[str] = Field(default_factory=list, description="Why this row is not in sync.")
    in_sync: bool
    upstreams: list[str] = Field(
        default_factory=list,
        description="The group's mesh.tls.upstreams, each spelled in full "
        "(<service>:<port>/<protocol>@<provider>): the app dials 127.0.0.1:<port>.",
    )
    allow: list[str] = Field(
        default_factory=list,
        description="The group's mesh.tls.allow: the only callers its mTLS sidecar lets in "
        "(empty: any mesh certificate).",
    )
    warnings: list[str] = Field(
        default_factory=list,
        description="What the controller recorded as worth saying without being drift: a "
        "mesh.tls.allow name that no meshed job fronts. Never affects in_sync.",
    )


class EdgeRow(_Model):
    """One upstream edge: a caller group's listener 127.0.0.1:<port> -> the upstream service."""

    namespace: str
    job: str = Field(description="The calling job.")
    group: str = Field(description="The calling group.")
    service: str = Field(description="The upstream service.")
    port: int = Field(ge=1, le=65535, description="The listener the app dials on 127.0.0.1.")
    protocol: str = Field(description="http | tcp.")
    provider: str = Field(description="consul | nomad: the catalog the upstream is read from.")
    state: EdgeState = Field(
        description="healthy: usable mesh-tls instances behind it; empty: none registered or "
        "none passing (the listener answers 503 or closes); not meshed: instances, none tagged "
        "mesh-tls (never a plaintext fallback); handshake failed: the controller recorded that "
        "every usable instance failed a verified TLS handshake; unknown: the catalog did not "
        "answer."
    )
    healthy: int | None = Field(
        default=None, ge=0, description="Usable mesh-tls instances; null when unknown."
    )
    message: str = Field(default="", description="Why the edge is not healthy, or empty.")
    handshake_error: str = Field(
        default="",
        description="The last failed TLS handshake with an instance of the upstream, from the "
        "controller's record (its probe verifies the chain and <service>.<domain>).",
    )
    source: Literal["live", "record"] = Field(
        description="live: judged now from the catalog (--live); record: as the controller "
        "last recorded it in the caller's status."
    )
    in_sync: bool = Field(
        description="False when the edge is empty, not meshed or its handshakes failed."
    )


class LeaderInfo(_Model):
    """Who leads, from the lock holder's Items and, when reachable, the /status endpoint."""

    identity: str = ""
    host: str = ""
    pid: str = ""
    version: str = ""
    since: str = Field(default="", description="RFC 3339 time the holder took the lock.")
    lock: LockState = Field(
        default="unknown",
        description="held / released (no holder now) / hidden (this token may not see lock "
        "state; Nomad shows it to management tokens only) / unknown.",
    )
    status_url: str = Field(default="", description="The /status endpoint consulted, if any.")
    status_error: str = Field(default="", description="Why /status was not used.")
    last_event_index: int | None = Field(
        default=None, description="Last Nomad event index the leader processed."
    )
    last_event_age_seconds: float | None = None
    queue_depth: int | None = None


class Backend(_Model):
    """One of Nomad, Consul, Vault: was it consulted, and did it answer."""

    name: Literal["nomad", "consul", "vault"]
    address: str
    consulted: bool
    ok: bool
    error: str = ""


class RotationSummary(_Model):
    """An intermediate CA rotation as ``mesh-controller/rotation`` records it: the one in
    progress, or the last one (failed or done). Numbers are derived from the record's waves,
    so the report, /status and ``controllerctl check`` count the same way."""

    id: str = ""
    stage: str = Field(
        default="",
        description="creating | rolling | retiring | done | failed; empty when unreadable.",
    )
    active: bool = Field(default=False, description="creating, rolling or retiring.")
    old_issuer: str = Field(default="", description="The issuer being retired.")
    new_issuer: str = Field(default="", description="The new default issuer (once created).")
    wave: int = Field(
        default=0,
        ge=0,
        description="1-based number of the wave in progress (== waves once all are done; 0 "
        "before any wave is planned).",
    )
    waves: int = Field(default=0, ge=0, description="Waves planned (extra waves included).")
    jobs_done: int = Field(default=0, ge=0, description="Jobs rolled (or skipped).")
    jobs_left: int = Field(default=0, ge=0)
    skipped: int = Field(default=0, ge=0, description="Jobs left out (manual canary promotion).")
    started_at: str = Field(default="", description="RFC 3339.")
    updated_at: str = Field(default="", description="RFC 3339 time of the driver's last write.")
    finished_at: str = Field(default="", description="RFC 3339; empty while active.")
    owner: str = Field(default="", description="The driver (controller or controllerctl).")
    message: str = Field(default="", description="The driver's last step.")
    last_error: str = Field(
        default="", description="Why the rotation failed (stage failed); empty otherwise."
    )
    error: str = Field(default="", description="Why the record could not be read, if so.")


class StatusReport(_Model):
    """The whole report. Exit code: 0 in sync, 1 drift, 2 a backend could not be read."""

    version: int = Field(default=REPORT_VERSION, description="Bumped on breaking changes.")
    generated_at: str = Field(description="RFC 3339 time of the report.")
    live: bool = Field(description="The live world was checked, not only status records.")
    exit_code: Literal[0, 1, 2]
    in_sync: bool
    summary: str = Field(description="One line, as printed under the table.")
    leader: LeaderInfo | None = Field(description="null when nobody ever took the lock.")
    backends: list[Backend]
    rows: list[StatusRow]
    edges: list[EdgeRow] = Field(
        default_factory=list,
        description="One per upstream of a meshed group, sorted by (namespace, job, group, port).",
    )
    rotation: RotationSummary | None = Field(
        default=None,
        description="The CA rotation in progress or last recorded; null when none ever ran "
        "(or Nomad could not be read).",
    )
