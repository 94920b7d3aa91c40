"""Prometheus metrics of the runtime (queue, controller, leader), one family set per registry.

A prometheus registry refuses a metric name twice, but a process may run several queues and
controllers, and tests create many of each. So the families are created once per
``CollectorRegistry`` (cached here) and every queue/controller uses its own label values.
Names follow controller-runtime (``workqueue_*``, ``controller_reconcile_*``).
"""

from __future__ import annotations

import weakref
from dataclasses import dataclass

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

RECONCILE_RESULTS = ("success", "requeue", "requeue_after", "error", "terminal")

_DURATION_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60)


@dataclass(frozen=True)
class RuntimeMetrics:
    queue_depth: Gauge
    queue_adds: Counter
    queue_retries: Counter
    queue_latency: Histogram
    reconcile_total: Counter
    reconcile_errors: Counter
    reconcile_terminal: Counter
    reconcile_timeouts: Counter
    reconcile_time: Histogram
    active_workers: Gauge
    leader_is_leader: Gauge
    leader_lost: Counter
    leader_renew_time: Histogram


_cache: weakref.WeakKeyDictionary[CollectorRegistry, RuntimeMetrics] = weakref.WeakKeyDictionary()


def runtime_metrics(registry: CollectorRegistry) -> RuntimeMetrics:
    """The runtime's metric families on ``registry`` (created on first use)."""
    found = _cache.get(registry)
    if found is not None:
        return found
    r = registry
    m = RuntimeMetrics(
        queue_depth=Gauge("workqueue_depth", "Keys waiting in the queue.", ["name"], registry=r),
        queue_adds=Counter("workqueue_adds", "Keys added to the queue.", ["name"], registry=r),
        queue_retries=Counter(
            "workqueue_retries", "Rate-limited re-adds (retries).", ["name"], registry=r
        ),
        queue_latency=Histogram(
            "workqueue_queue_duration_seconds",
            "Time a key waits in the queue before a worker takes it.",
            ["name"],
            buckets=_DURATION_BUCKETS,
            registry=r,
        ),
        reconcile_total=Counter(
            "controller_reconcile",
            "Reconciles by result (success|requeue|requeue_after|error|terminal).",
            ["controller", "result"],
            registry=r,
        ),
        reconcile_errors=Counter(
            "controller_reconcile_errors", "Reconciles that failed.", ["controller"], registry=r
        ),
        reconcile_terminal=Counter(
            "controller_terminal_reconcile_errors",
            "Reconciles that failed with a TerminalError (not retried).",
            ["controller"],
            registry=r,
        ),
        reconcile_timeouts=Counter(
            "controller_reconcile_timeouts",
            "Reconciles cancelled by the per-reconcile timeout.",
            ["controller"],
            registry=r,
        ),
        reconcile_time=Histogram(
            "controller_reconcile_time_seconds",
            "Duration of one reconcile.",
            ["controller"],
            buckets=_DURATION_BUCKETS,
            registry=r,
        ),
        active_workers=Gauge(
            "controller_active_workers", "Workers busy reconciling.", ["controller"], registry=r
        ),
        leader_is_leader=Gauge(
            "leader_is_leader", "1 while this process holds the leader lock.", registry=r
        ),
        leader_lost=Counter(
            "leader_lost",
            "Leader leases lost (no renew within the deadline, or refused); the process exits "
            "1 right after, so a scrape sees it only in its last moments: alert on restarts.",
            registry=r,
        ),
        leader_renew_time=Histogram(
            "leader_renew_duration_seconds",
            "Duration of each leader lock renew that Nomad answered (timeouts are not observed).",
            buckets=_DURATION_BUCKETS,
            registry=r,
        ),
    )
    _cache[registry] = m
    return m
