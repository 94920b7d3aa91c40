"""PURE: ``controllerctl check``'s verdict on the Vault token, from its lookup-self facts.

A token that can be renewed does not lapse at its current expiry: the controller renews a
``VAULT_TOKEN`` itself before half its TTL, and Nomad renews the token it writes to
``VAULT_TOKEN_FILE``. So a periodic token with a 30 s period is fine, and what is judged is the
*lapse* (:meth:`TokenFacts.lapse`): the expiry of a token nobody can renew, or the explicit max
TTL of one that can. Within a day of it: ‼ (exit 0, but a date to act on); past it: ×.
"""

from __future__ import annotations

from datetime import UTC, datetime

from controller.ctl.checks import CheckResult, Mark
from controller.ctl.common import human_duration
from controller.vault.token_facts import TokenFacts

NAME = "Vault token is valid and does not lapse within a day"
LAPSE_WARN_S = 86400.0
RENEW_HINT = (
    "give the controller a periodic token (`controllerctl install` makes one) or run it with "
    "the job's vault block (VAULT_TOKEN_FILE); either is renewed, so it never lapses"
)


def _when(ts: float) -> str:
    return datetime.fromtimestamp(ts, UTC).isoformat(timespec="seconds")


def token_verdict(section: str, facts: TokenFacts, now: float) -> CheckResult:
    """✔ renewable or far from lapsing, ‼ lapses within a day, × already expired."""
    policies = ", ".join(facts.policies) or "none"
    expiry = facts.expiry(now)
    if expiry is None:
        return CheckResult(section, NAME, Mark.OK, f"no expiry; policies: {policies}")
    if expiry <= now:
        return CheckResult(section, NAME, Mark.FAIL, f"EXPIRED {_when(expiry)}", RENEW_HINT)
    lapse = facts.lapse(now)
    if lapse is not None and lapse - now < LAPSE_WARN_S:
        why = "cannot be renewed" if not facts.renewable else "reaches its explicit max TTL"
        left = human_duration(lapse - now)
        return CheckResult(
            section,
            NAME,
            Mark.WARN,
            f"lapses {_when(lapse)} ({left} left): it {why} (policies: {policies})",
            RENEW_HINT,
        )
    if facts.renewable:
        kind = f"period {human_duration(facts.period)}" if facts.period else "renewable"
        until = f", at most until {_when(lapse)}" if lapse is not None else ""
        detail = f"ttl {human_duration(facts.ttl)}, {kind}{until}; policies: {policies}"
    else:
        detail = f"expires {_when(expiry)}; policies: {policies}"
    return CheckResult(section, NAME, Mark.OK, detail)


CONTROLLER_NAME = "the controller's own Vault token has not expired"
CONTROLLER_HINT = (
    'its log says why ("vault token upkeep failed" / "vault token invalid"); give it a new '
    "token: re-run `controllerctl install`, or check Nomad's Vault integration for its vault block"
)


def controller_token_verdict(
    section: str, expiry: float | None, error: str, now: float
) -> CheckResult | None:
    """The leader's ``mesh_vault_token_expiry_timestamp_seconds`` (on a cluster the operator
    does not hold the controller's token; its /metrics says how the token stands). None when
    the leader's address is unknown: the event-stream check already says so."""
    if error:
        return None
    if expiry is None:
        return CheckResult(
            section,
            CONTROLLER_NAME,
            Mark.WARN,
            "the controller has not looked its token up yet, or every lookup failed",
            CONTROLLER_HINT,
        )
    if expiry == 0:
        return CheckResult(section, CONTROLLER_NAME, Mark.OK, "no expiry")
    if expiry <= now:
        return CheckResult(
            section, CONTROLLER_NAME, Mark.FAIL, f"EXPIRED {_when(expiry)}", CONTROLLER_HINT
        )
    left = human_duration(expiry - now)
    return CheckResult(
        section, CONTROLLER_NAME, Mark.OK, f"expires {_when(expiry)} ({left}) unless renewed"
    )
