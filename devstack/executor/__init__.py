"""The devstack's local task executor: raw_exec tasks as real processes with Nomad's semantics.

`RawExecDriver` plugs into the Nomad twin (`start_nomad_twin(drivers={"raw_exec": driver})`):
task directories, the NOMAD_* environment and `${...}` interpolation, templates rendered
against OpenBao before the task starts and re-rendered with change_mode afterwards, kill
signal/timeout, restarts and signals on the real process, and no process left behind.
"""

from devstack.executor.clock import Clock, ManualClock, SystemClock
from devstack.executor.driver import ExecutorSettings, RawExecDriver, TaskNotRunning
from devstack.executor.procs import ExitResult, parse_signal
from devstack.executor.templates import RetryPolicy, TemplateFailed, TemplateManager

__all__ = [
    "Clock",
    "ExecutorSettings",
    "ExitResult",
    "ManualClock",
    "RawExecDriver",
    "RetryPolicy",
    "SystemClock",
    "TaskNotRunning",
    "TemplateFailed",
    "TemplateManager",
    "parse_signal",
]
