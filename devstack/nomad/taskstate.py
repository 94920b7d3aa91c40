"""TaskState and TaskEvent records, with every key Nomad sends.

Also the client-status rule (``getClientStatus``): any failed task -> failed, any
running -> running (a pending poststop task or a main task behind a running prestart sidecar
does not hold the alloc in pending), any pending -> pending, all dead -> complete.
"""

from __future__ import annotations

from typing import Any

from devstack.nomad.codec import now_ns, rfc3339

MAX_EVENTS = 10

EVENT_KEYS = [
    "Type",
    "Time",
    "Message",
    "DisplayMessage",
    "Details",
    "FailsTask",
    "RestartReason",
    "SetupError",
    "DriverError",
    "ExitCode",
    "Signal",
    "KillTimeout",
    "KillError",
    "KillReason",
    "StartDelay",
    "DownloadError",
    "ValidationError",
    "DiskLimit",
    "FailedSibling",
    "VaultError",
    "TaskSignalReason",
    "TaskSignal",
    "DriverMessage",
    "GenericSource",
]
_EVENT_ZERO: dict[str, Any] = {
    k: (0 if k in ("Time", "ExitCode", "Signal", "KillTimeout", "StartDelay", "DiskLimit") else "")
    for k in EVENT_KEYS
}
_EVENT_ZERO.update(Details={}, FailsTask=False)

DISPLAY = {
    "Received": "Task received by client",
    "Task Setup": "Building Task Directory",
    "Started": "Task started by client",
    "Killing": "Sent interrupt. Waiting {KillTimeout} before force killing",
    "Killed": "Task successfully killed",
    "Not Restarting": "{RestartReason}",
    "Restart Signaled": "{RestartReason}",
    "Sibling Task Failed": 'Task\'s sibling "{FailedSibling}" failed',  # Go's %q
    "Main Tasks Dead": "Main tasks in the group died",
}


def new_task_state() -> dict[str, Any]:
    return {
        "State": "pending",
        "Failed": False,
        "Restarts": 0,
        "LastRestart": None,
        "StartedAt": None,
        "FinishedAt": None,
        "Events": [],
        "Paused": "",
    }


def task_event(type_: str, message: str = "", **fields: Any) -> dict[str, Any]:
    event = dict(_EVENT_ZERO)
    event["Details"] = {}
    event["Type"] = type_
    event["Time"] = now_ns()
    event["Message"] = message
    for key, value in fields.items():
        if key in _EVENT_ZERO:
            event[key] = value
        else:
            event["Details"][key] = str(value)
    for key in ("ExitCode", "Signal", "KillTimeout", "FailsTask"):
        if event[key]:
            event["Details"][_detail_name(key)] = str(event[key]).lower()
    display = message or DISPLAY.get(type_, "")
    if "{" in display:
        kt = event["KillTimeout"] // 1_000_000_000
        display = display.format(
            KillTimeout=f"{kt}s",
            RestartReason=event["RestartReason"],
            FailedSibling=event["FailedSibling"],
        )
    if type_ == "Terminated":
        display = f"Exit Code: {event['ExitCode']}" + (
            f", Signal: {event['Signal']}" if event["Signal"] else ""
        )
    event["DisplayMessage"] = display
    return event


def _detail_name(key: str) -> str:
    return {
        "ExitCode": "exit_code",
        "Signal": "signal",
        "KillTimeout": "kill_timeout",
        "FailsTask": "fails_task",
    }[key]


def append_event(state: dict[str, Any], event: dict[str, Any]) -> None:
    events = [*state["Events"], event]
    state["Events"] = events[-MAX_EVENTS:]


def set_state(state: dict[str, Any], new: str, failed: bool = False) -> None:
    if new == "running" and state["State"] != "running":
        state["StartedAt"] = rfc3339(now_ns())
        state["FinishedAt"] = None
    if new == "dead" and state["State"] != "dead":
        state["FinishedAt"] = rfc3339(now_ns())
    state["State"] = new
    if failed:
        state["Failed"] = True


def client_status(states: dict[str, dict[str, Any]]) -> tuple[str, str]:
    pending = running = dead = failed = False
    for st in states.values():
        if st["State"] == "running":
            running = True
        elif st["State"] == "pending":
            pending = True
        elif st["State"] == "dead":
            if st["Failed"]:
                failed = True
            else:
                dead = True
    if failed:
        return "failed", "Failed tasks"
    if running:
        return "running", "Tasks are running"
    if pending:
        return "pending", "No tasks have started"
    if dead:
        return "complete", "All tasks have completed"
    return "pending", ""
