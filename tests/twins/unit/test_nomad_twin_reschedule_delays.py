"""``structs.go`` ``Allocation.NextDelay`` and ``updateRescheduleTracker`` as the twin computes
them: constant, exponential and fibonacci delays, the ``MaxDelay`` ceiling and its reset."""

from __future__ import annotations

from typing import Any

from devstack.nomad.reschedule import new_tracker, next_delay

S = 1_000_000_000


def alloc(func: str, delays: list[int], *, max_delay: int = 60 * S, ran: int = 0) -> dict[str, Any]:
    """A failed alloc whose tracker holds ``delays``; it failed ``ran`` ns after the last one."""
    policy = {"Delay": 5 * S, "DelayFunction": func, "MaxDelay": max_delay, "Unlimited": True}
    events = [
        {"RescheduleTime": 1000 * S + i, "PrevAllocID": f"a{i}", "PrevNodeID": "n", "Delay": d}
        for i, d in enumerate(delays)
    ]
    return {
        "ID": "x",
        "NodeID": "n1",
        "TaskGroup": "g",
        "Job": {"TaskGroups": [{"Name": "g", "ReschedulePolicy": policy}]},
        "RescheduleTracker": {"Events": events, "LastReschedule": "ok"} if events else None,
        "TaskStates": None,
        "ModifyTime": 1000 * S + len(delays) + ran,
    }


def test_constant_exponential_fibonacci() -> None:
    assert next_delay(alloc("constant", [])) == 5 * S
    assert next_delay(alloc("constant", [5 * S, 5 * S])) == 5 * S
    assert next_delay(alloc("exponential", [5 * S])) == 10 * S
    assert next_delay(alloc("exponential", [5 * S, 10 * S])) == 20 * S
    assert next_delay(alloc("fibonacci", [5 * S])) == 5 * S
    assert next_delay(alloc("fibonacci", [5 * S, 5 * S])) == 10 * S
    assert next_delay(alloc("fibonacci", [5 * S, 10 * S])) == 15 * S


def test_max_delay_caps_and_resets_after_a_long_run() -> None:
    assert next_delay(alloc("exponential", [40 * S])) == 60 * S
    # The alloc ran longer than the ceiling since the last reschedule: back to Delay.
    assert next_delay(alloc("exponential", [40 * S], ran=61 * S)) == 5 * S
    # fibonacci restarts its series after such a reset.
    assert next_delay(alloc("fibonacci", [60 * S, 5 * S])) == 5 * S


def test_tracker_appends_one_event_with_the_next_delay() -> None:
    prev = alloc("exponential", [5 * S])
    tracker = new_tracker(prev, 2000 * S)
    assert tracker["LastReschedule"] == "ok"
    assert tracker["Events"][-1] == {
        "RescheduleTime": 2000 * S,
        "PrevAllocID": "x",
        "PrevNodeID": "n1",
        "Delay": 10 * S,
    }
    assert len(tracker["Events"]) == 2
