"""Rescheduling failed allocations, as ``nomad/structs/structs.go`` and the scheduler decide it.

Pure functions over stored allocations and task groups, so the reconciler, the client's
``Node.UpdateAlloc`` and the deployment watcher ask the same questions Nomad asks:

- ``policy_errors``: ``ReschedulePolicy.Validate`` (+ ``validateDelayParams``/``viableAttempts``),
  the texts ``Job.Register`` answers with; Nomad refuses a delay under 5 s, so no reschedule
  test can be faster than that without driving the twin's delayed evaluations
  (``Scheduler.release_delayed``).
- ``eligible``: ``RescheduleTracker.RescheduleEligible`` (+ ``rescheduleInfo``).
- ``next_delay``: ``Allocation.NextDelay`` (constant / exponential / fibonacci, ``MaxDelay``
  with its reset once the allocation ran longer than the ceiling).
- ``next_reschedule_time``: ``Allocation.NextRescheduleTime`` (``LastEventTime`` + delay, and
  whether the attempt is still within the policy).
- ``new_tracker``: ``generic_sched.go`` ``updateRescheduleTracker``: the replacement carries
  the events still inside the interval (or the last ``maxPastRescheduleEvents`` when
  unlimited) plus one ``RescheduleEvent`` for this attempt.
"""

from __future__ import annotations

import math
from typing import Any

from devstack.godur import format_ns
from devstack.nomad.codec import NS, parse_rfc3339

MIN_DELAY = 5 * NS  # structs.go ReschedulePolicyMinDelay
MIN_INTERVAL = 15 * NS  # structs.go ReschedulePolicyMinInterval
DELAY_FUNCTIONS = ("constant", "exponential", "fibonacci")
MAX_PAST_EVENTS = 5  # generic_sched.go maxPastRescheduleEvents
RESCHEDULE_WINDOW = 1 * NS  # reconcile.go rescheduleWindowSize
BATCH_WINDOW = 5 * NS  # reconcile.go batchedFailedAllocWindowSize
RESCHEDULED = "alloc was rescheduled because it failed"  # generic_sched.go allocRescheduled
FOLLOWUP_DESC = "created for delayed rescheduling"  # generic_sched.go reschedulingFollowupEvalDesc


def enabled(policy: dict[str, Any] | None) -> bool:
    """``ReschedulePolicy.Enabled``."""
    if not policy:
        return False
    return int(policy.get("Attempts") or 0) > 0 or bool(policy.get("Unlimited"))


def policy_errors(policy: dict[str, Any] | None) -> list[str]:
    """``ReschedulePolicy.Validate``: the errors, in Nomad's order and words."""
    if policy is None or not enabled(policy):
        return []
    errs: list[str] = []
    attempts = int(policy.get("Attempts") or 0)
    interval = int(policy.get("Interval") or 0)
    delay = int(policy.get("Delay") or 0)
    max_delay = int(policy.get("MaxDelay") or 0)
    func = str(policy.get("DelayFunction") or "")
    unlimited = bool(policy.get("Unlimited"))
    if attempts > 0:
        if interval <= 0:
            errs.append("Interval must be a non zero value if Attempts > 0")
        if unlimited:
            errs.append(
                f"Reschedule Policy with Attempts = {attempts}, Interval = {format_ns(interval)}, "
                f"and Unlimited = {'true' if unlimited else 'false'} is ambiguous"
            )
            errs.append("If Attempts >0, Unlimited cannot also be set to true")
    pre_check = True
    if delay < MIN_DELAY:
        errs.append(f"Delay cannot be less than 5s (got {format_ns(delay)})")
        pre_check = False
    if func not in DELAY_FUNCTIONS:
        errs.append(
            f'Invalid delay function "{func}", must be one of '
            '["constant" "exponential" "fibonacci"]'
        )
        pre_check = False
    if func != "constant":
        if max_delay < MIN_DELAY:
            # Nomad prints r.Delay here, not MaxDelay: kept as the source has it.
            errs.append(f"Max Delay cannot be less than 5s (got {format_ns(delay)})")
            pre_check = False
        if max_delay < delay:
            errs.append(
                f"Max Delay cannot be less than Delay {format_ns(delay)} "
                f"(got {format_ns(max_delay)})"
            )
            pre_check = False
    if not unlimited:
        if interval < MIN_INTERVAL:
            errs.append(f"Interval cannot be less than 15s (got {format_ns(interval)})")
        if not pre_check:
            return errs
        errs.extend(_delay_params(attempts, interval, delay, max_delay, func))
    return errs


def _delay_params(attempts: int, interval: int, delay: int, max_delay: int, func: str) -> list[str]:
    """``validateDelayParams`` over ``viableAttempts``."""
    possible, recommended, valid = 0, 0, True
    if func == "constant":
        recommended = attempts * delay
        if interval < recommended:
            possible, valid = interval // delay, False
    elif func == "exponential":
        for i in range(attempts):
            nxt = int(math.pow(2, i)) * delay
            if nxt > max_delay:
                recommended += max_delay
            else:
                recommended = nxt
            if recommended < interval:
                possible += 1
        valid = possible >= attempts
    else:  # fibonacci
        slots = [delay, delay]
        ceiling = False
        for i in range(2, attempts):
            if ceiling:
                nxt = slots[i - 1] + max_delay
            else:
                nxt = slots[i - 1] + slots[i - 2]
                if nxt > max_delay:
                    nxt, ceiling = max_delay, True
            slots.append(nxt)
        recommended = slots[-1]
        if interval < recommended:
            valid = False
            possible = next((i for i, s in enumerate(slots) if s > interval), 0)
    if valid:
        return []
    if func == "constant":
        first = (
            f"Nomad can only make {possible} attempts in {format_ns(interval)} with initial "
            f'delay {format_ns(delay)} and delay function "{func}"'
        )
    else:
        first = (
            f"Nomad can only make {possible} attempts in {format_ns(interval)} with initial "
            f'delay {format_ns(delay)}, delay function "{func}", and delay ceiling '
            f"{format_ns(max_delay)}"
        )
    rounded = (recommended + NS // 2) // NS * NS  # Duration.Round(time.Second)
    return [
        first,
        f"Set the interval to at least {format_ns(rounded)} to accommodate {attempts} attempts",
    ]


def group_policy(alloc: dict[str, Any]) -> dict[str, Any] | None:
    """``Allocation.ReschedulePolicy``: the policy of the alloc's own job version."""
    group = next(
        (
            g
            for g in (alloc.get("Job") or {}).get("TaskGroups") or []
            if g["Name"] == alloc["TaskGroup"]
        ),
        None,
    )
    return (group or {}).get("ReschedulePolicy")


def _events(alloc: dict[str, Any]) -> list[dict[str, Any]]:
    return list((alloc.get("RescheduleTracker") or {}).get("Events") or [])


def eligible(alloc: dict[str, Any], policy: dict[str, Any] | None, fail_time: int) -> bool:
    """``RescheduleTracker.RescheduleEligible``."""
    if not enabled(policy):
        return False
    assert policy is not None
    if policy.get("Unlimited"):
        return True
    attempts = int(policy.get("Attempts") or 0)
    events = _events(alloc)
    if not events and attempts > 0:
        return True
    return _attempted(events, policy, fail_time) < attempts


def _attempted(events: list[dict[str, Any]], policy: dict[str, Any], fail_time: int) -> int:
    """``rescheduleInfo``: attempts inside the interval before ``fail_time``."""
    if int(policy.get("Attempts") or 0) <= 0:
        return 0
    interval = int(policy.get("Interval") or 0)
    return sum(1 for e in events if fail_time - e["RescheduleTime"] < interval)


def last_event_time(alloc: dict[str, Any]) -> int:
    """``Allocation.LastEventTime``: the latest task FinishedAt, else the alloc's ModifyTime."""
    latest = 0
    for st in (alloc.get("TaskStates") or {}).values():
        latest = max(latest, parse_rfc3339(st.get("FinishedAt")))
    return latest or int(alloc.get("ModifyTime") or 0)


def next_delay(alloc: dict[str, Any]) -> int:
    """``Allocation.NextDelay``."""
    policy = group_policy(alloc)
    if policy is None:
        return 0
    delay = int(policy.get("Delay") or 0)
    events = _events(alloc)
    if not events:
        return delay
    func = policy.get("DelayFunction")
    if func == "exponential":
        delay = int(events[-1]["Delay"]) * 2
    elif func == "fibonacci":
        if len(events) >= 2:
            n1, n2 = int(events[-1]["Delay"]), int(events[-2]["Delay"])
            # A reset after the ceiling starts a new series.
            reset = n2 == policy.get("MaxDelay") and n1 == policy.get("Delay")
            delay = n1 if reset else n1 + n2
    else:
        return delay
    max_delay = int(policy.get("MaxDelay") or 0)
    if max_delay > 0 and delay > max_delay:
        delay = max_delay
        if last_event_time(alloc) - int(events[-1]["RescheduleTime"]) > delay:
            delay = int(policy.get("Delay") or 0)
    return delay


def next_reschedule_time(alloc: dict[str, Any]) -> tuple[int, bool]:
    """``Allocation.NextRescheduleTime`` (for a failed alloc, never a stopped one)."""
    policy = group_policy(alloc)
    fail_time = last_event_time(alloc)
    if not enabled(policy) or alloc.get("ClientStatus") not in ("failed", "lost"):
        return 0, False
    if alloc.get("DesiredStatus") == "stop" or not fail_time:
        return 0, False
    assert policy is not None
    delay = next_delay(alloc)
    when = fail_time + delay
    ok = bool(policy.get("Unlimited")) or (
        int(policy.get("Attempts") or 0) > 0 and alloc.get("RescheduleTracker") is None
    )
    events = _events(alloc)
    if int(policy.get("Attempts") or 0) > 0 and alloc.get("RescheduleTracker") and events:
        ok = _attempted(events, policy, fail_time) < int(policy["Attempts"]) and delay < int(
            policy.get("Interval") or 0
        )
    return when, ok


def new_tracker(prev: dict[str, Any], now: int) -> dict[str, Any]:
    """``updateRescheduleTracker``: the replacement's ``RescheduleTracker``."""
    policy = group_policy(prev) or {}
    old = _events(prev)
    if prev.get("RescheduleTracker") is None:
        kept: list[dict[str, Any]] = []
    elif int(policy.get("Attempts") or 0) > 0:
        interval = int(policy.get("Interval") or 0)
        kept = [dict(e) for e in old if interval > 0 and now - e["RescheduleTime"] <= interval]
    else:
        kept = [dict(e) for e in old[-MAX_PAST_EVENTS:]]
    event = {
        "RescheduleTime": now,
        "PrevAllocID": prev["ID"],
        "PrevNodeID": prev["NodeID"],
        "Delay": next_delay(prev),
    }
    return {"Events": [*kept, event], "LastReschedule": "ok"}
