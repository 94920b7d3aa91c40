"""PURE: from the matched instances, Consul's answer and the TLS probes to three conditions.

The health reconciler gathers facts (I/O) and ``reconcilers.instances`` matches them; this module
judges them, so the whole judgement is a table test.

* ConsulHealthy: every running allocation of a meshed group has, for every fronted service, a
  registration on the TLS port, tagged ``mesh-tls``, with every check passing.
* PlaintextRetired: strict mode — no plaintext registration is left; permissive — each one is
  tagged ``mesh-plaintext`` so callers can tell.
* CertValid: each TLS registration serves a chain that verifies against the mesh root for
  ``<service>.<domain>``, signed by the default issuer or a previous one still in the mount,
  with more than ``min_remaining_fraction`` of its lifetime left (0.5 %: Nomad renews at 90 %,
  or on 1.7.0–1.8.1 as late as 99.1 %, see ``reconcilers.renewal``; a leaf below 0.5 % has
  missed its renewal under either rule).

"Could not tell" is Unknown, never False: Consul not answering, an instance that could not be
reached, Vault not saying what the CA is, and Consul's ACLs hiding instances from the
controller's token (``ConsulFiltered``: a filtered answer is ``200 []``, which would otherwise
read as "not registered").
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime

from controller.consul.acl import READ_GRANT
from controller.tlsprobe import CertProblem, ProbeOutcome, ProbeResult
from controller.vault.trust import MeshTrust
from crds_equivalent import keys
from crds_equivalent.status import Condition, ConditionType
from reconcilers import renewal
from reconcilers.conditions import condition
from reconcilers.instances.matching import MAX_LISTED, ConsulFindings, Instance


def _listing(texts: Sequence[str]) -> str:
    shown = "; ".join(texts[:MAX_LISTED])
    more = len(texts) - MAX_LISTED
    return shown + (f" (+{more} more)" if more > 0 else "")


def filtered_message(found: ConsulFindings) -> str:
    """Says which service the token cannot read, how we know, which instances it hides, and
    what to grant."""
    services = ", ".join(sorted(found.filtered))
    why = "; ".join(sorted(set(found.filtered.values())))
    return (
        f"the Consul token cannot read service {services}: {why}. "
        f"Hidden: {_listing(found.hidden)}. Grant the token {READ_GRANT}"
    )


def consul_conditions(
    found: ConsulFindings | None, unavailable: str = "", *, reason: str = "ConsulUnavailable"
) -> tuple[Condition, Condition]:
    """ConsulHealthy and PlaintextRetired; ``found`` is None when a catalog did not answer.

    ``reason`` says which (``ConsulUnavailable``, ``ConsulNotConfigured``, ``NomadUnavailable``,
    ``NomadCatalogDenied``); for any but the first, ``unavailable`` is the whole message. The
    condition type stays ``ConsulHealthy`` for native services too: the type names are the
    status contract, and the reason and message say which catalog was read."""
    if found is None:
        if reason != "ConsulUnavailable":
            msg = unavailable or reason
        elif unavailable:
            msg = f"Consul did not answer: {unavailable}"
        else:
            msg = "Consul did not answer"
        return (
            condition(ConditionType.CONSUL_HEALTHY, None, reason, msg),
            condition(ConditionType.PLAINTEXT_RETIRED, None, reason, msg),
        )
    if found.allocations == 0:
        msg = "no running allocation of a meshed group to check"
        return (
            condition(ConditionType.CONSUL_HEALTHY, None, "NoRunningAllocations", msg),
            condition(ConditionType.PLAINTEXT_RETIRED, None, "NoRunningAllocations", msg),
        )
    hidden = filtered_message(found) if found.hidden else ""
    return _healthy(found, hidden), _retired(found, hidden)


def _healthy(found: ConsulFindings, hidden: str) -> Condition:
    if found.unhealthy:  # what the token does see is wrong: that is known, whatever is hidden
        return condition(
            ConditionType.CONSUL_HEALTHY,
            False,
            found.unhealthy[0][0],
            _listing([text for _, text in found.unhealthy]),
        )
    if hidden:
        return condition(ConditionType.CONSUL_HEALTHY, None, "ConsulFiltered", hidden)
    return condition(
        ConditionType.CONSUL_HEALTHY,
        True,
        "AllPassing",
        f"{len(found.instances)} TLS registration(s) tagged {keys.TLS_SERVICE_TAG}, passing",
    )


def _retired(found: ConsulFindings, hidden: str) -> Condition:
    if found.plaintext:
        return condition(
            ConditionType.PLAINTEXT_RETIRED, False, "PlaintextRegistered", _listing(found.plaintext)
        )
    if hidden:  # a hidden allocation's plaintext registration is hidden with it
        return condition(ConditionType.PLAINTEXT_RETIRED, None, "ConsulFiltered", hidden)
    if found.plaintext_kept:
        return condition(
            ConditionType.PLAINTEXT_RETIRED,
            True,
            "PermissiveTagged",
            f"permissive: {found.plaintext_kept} plaintext registration(s) kept, "
            f"tagged {keys.PLAINTEXT_SERVICE_TAG}",
        )
    return condition(
        ConditionType.PLAINTEXT_RETIRED, True, "NoPlaintext", "no plaintext registration left"
    )


_BAD_REASON = {
    CertProblem.EXPIRED: "Expired",
    CertProblem.UNKNOWN_CA: "UntrustedChain",
    CertProblem.HOSTNAME_MISMATCH: "NameMismatch",
    CertProblem.NOT_YET_VALID: "NotYetValid",
    CertProblem.OTHER: "VerificationFailed",
}


@dataclass(frozen=True)
class CertVerdict:
    """CertValid, plus what the status and the metrics record about the leaves seen."""

    condition: Condition
    not_after: datetime | None = None  # soonest leaf expiry seen
    issuer: str = ""  # issuer of the newest verified leaf
    per_service: Mapping[str, datetime] = field(default_factory=dict)  # soonest expiry


def _hours(seconds: float) -> str:
    return f"{seconds / 3600:.1f}h"


def _judge(
    result: ProbeResult, trust: MeshTrust, now: datetime, min_fraction: float
) -> tuple[str, str] | None:
    """(reason, text) when this instance's certificate is not acceptable; None when it is."""
    where = f"{result.target}"
    if result.outcome is ProbeOutcome.HANDSHAKE_FAILED:
        return "NoTls", f"{where}: {result.detail}"
    if result.outcome is ProbeOutcome.BAD_CERTIFICATE:
        reason = _BAD_REASON[result.problem or CertProblem.OTHER]
        extra = ""
        if result.leaf is not None:
            extra = f" (serial {result.leaf.serial}, not after {result.leaf.not_after.isoformat()})"
        return reason, f"{where}: {result.detail}{extra}"
    leaf = result.leaf
    if leaf is None:
        return None
    issuer = trust.issuer_of(leaf)
    if issuer is None:
        return (
            "UnknownIssuer",
            f"{where}: signed by {leaf.issuer_common_name} "
            f"(key id {leaf.authority_key_id or '?'}), not a current or kept issuer",
        )
    remaining = leaf.remaining_seconds(now)
    if remaining < leaf.lifetime_seconds * min_fraction:
        return (
            "RenewalMissed",
            f"{where}: {_hours(remaining)} left of {_hours(leaf.lifetime_seconds)} "
            f"(renewal was due by {renewal.OLD_RULE_LATEST:.1%} at the latest; "
            f"serial {leaf.serial})",
        )
    return None


_SEVERITY = (
    "Expired",
    "UntrustedChain",
    "NameMismatch",
    "NoTls",
    "UnknownIssuer",
    "NotYetValid",
    "VerificationFailed",
    "RenewalMissed",
)


def cert_verdict(
    probed: Sequence[tuple[Instance, ProbeResult]],
    trust: MeshTrust | None,
    now: datetime,
    *,
    min_remaining_fraction: float = renewal.MIN_REMAINING_FRACTION,
    unknown_reason: str = "",
    unknown_message: str = "",
) -> CertVerdict:
    """CertValid from the probe results (``trust`` None: Vault did not say what the CA is)."""
    if trust is None or unknown_reason:
        return CertVerdict(
            condition(
                ConditionType.CERT_VALID,
                None,
                unknown_reason or "VaultUnavailable",
                unknown_message or "the mesh CA could not be read from Vault",
            )
        )
    tally = _Tally()
    for instance, result in probed:
        tally.add(instance, result, trust, now, min_remaining_fraction)
    soonest = min(tally.per_service.values(), default=None)
    issuer_label = tally.newest[1] if tally.newest else ""
    return CertVerdict(_cert_condition(tally, soonest), soonest, issuer_label, tally.per_service)


@dataclass
class _Tally:
    """What the probes of one job said, instance by instance."""

    per_service: dict[str, datetime] = field(default_factory=dict)
    problems: list[tuple[str, str]] = field(default_factory=list)
    unreachable: list[str] = field(default_factory=list)
    verified: int = 0
    previous: int = 0  # verified, but on an issuer that is no longer the default
    newest: tuple[datetime, str] | None = None  # (not_before, issuer label) of the newest leaf

    def add(
        self,
        instance: Instance,
        result: ProbeResult,
        trust: MeshTrust,
        now: datetime,
        min_fraction: float,
    ) -> None:
        leaf = result.leaf
        if leaf is not None:
            name = instance.port.service
            self.per_service[name] = min(self.per_service.get(name, leaf.not_after), leaf.not_after)
        if result.outcome is ProbeOutcome.UNREACHABLE:
            self.unreachable.append(f"{result.target}: {result.detail}")
            return
        problem = _judge(result, trust, now, min_fraction)
        if problem is not None:
            self.problems.append(problem)
            return
        if leaf is None:
            return
        self.verified += 1
        issuer = trust.issuer_of(leaf)
        if issuer is not None and not issuer.is_default:
            self.previous += 1
        if issuer is not None and (self.newest is None or leaf.not_before > self.newest[0]):
            self.newest = (leaf.not_before, issuer.label)


def _cert_condition(tally: _Tally, soonest: datetime | None) -> Condition:
    if tally.problems:
        problems = sorted(tally.problems, key=lambda p: _SEVERITY.index(p[0]))
        return condition(
            ConditionType.CERT_VALID, False, problems[0][0], _listing([t for _, t in problems])
        )
    if tally.unreachable:
        return condition(
            ConditionType.CERT_VALID,
            None,
            "Unreachable",
            "could not connect: " + _listing(tally.unreachable),
        )
    if not tally.verified:
        return condition(
            ConditionType.CERT_VALID, None, "NoInstances", "no TLS registration to probe"
        )
    when = f"; soonest expiry {soonest.isoformat()}" if soonest else ""
    if tally.previous:
        return condition(
            ConditionType.CERT_VALID,
            True,
            "VerifiedPreviousIssuer",
            f"{tally.verified} instance(s) verified, {tally.previous} still on a previous "
            f"issuer{when}",
        )
    return condition(
        ConditionType.CERT_VALID, True, "Verified", f"{tally.verified} instance(s) verified{when}"
    )
