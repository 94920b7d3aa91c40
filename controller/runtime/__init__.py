"""controller-runtime in miniature: work queue, workers, manager, leader election, clock.

It knows nothing about meshes, so it can be tested (and trusted) on its own.
"""

from controller.runtime.clock import Clock, FakeClock, SystemClock, WaitTimeout, wait_for
from controller.runtime.controller import Controller
from controller.runtime.leader import LeaderElector, LeaseLock
from controller.runtime.manager import Drainable, FuncRunnable, Manager, Runnable
from controller.runtime.ratelimit import (
    ItemExponential,
    MaxOf,
    RateLimiter,
    TokenBucket,
    default_limiter,
)
from controller.runtime.reconcile import Reconciler, Result, TerminalError
from controller.runtime.workqueue import QueueShutDown, WorkQueue

__all__ = [
    "Clock",
    "Controller",
    "Drainable",
    "FakeClock",
    "FuncRunnable",
    "ItemExponential",
    "LeaderElector",
    "LeaseLock",
    "Manager",
    "MaxOf",
    "QueueShutDown",
    "RateLimiter",
    "Reconciler",
    "Result",
    "Runnable",
    "SystemClock",
    "TerminalError",
    "TokenBucket",
    "WaitTimeout",
    "WorkQueue",
    "default_limiter",
    "wait_for",
]
