"""The certificate expiry gauges and the handshake counter the health check exports, one family
set per registry.

Named after cert-manager's ``certmanager_certificate_expiration_timestamp_seconds`` so existing
alert rules translate: alert on ``mesh_cert_expiry_timestamp_seconds - time() < 86400``. A
series disappears when its job or service does (a gauge left behind would alert forever).
"""

from __future__ import annotations

import weakref
from collections.abc import Mapping
from datetime import datetime

from prometheus_client import CollectorRegistry, Counter, Gauge

CERT_EXPIRY = "mesh_cert_expiry_timestamp_seconds"
CA_EXPIRY = "mesh_ca_expiry_timestamp_seconds"
HANDSHAKES = "mesh_health_handshakes"  # exported with the counter suffix: ..._total

_families: weakref.WeakKeyDictionary[CollectorRegistry, tuple[Gauge, Gauge, Counter]] = (
    weakref.WeakKeyDictionary()
)


def _on(registry: CollectorRegistry) -> tuple[Gauge, Gauge, Counter]:
    found = _families.get(registry)
    if found is None:
        found = (
            Gauge(
                CERT_EXPIRY,
                "NotAfter (unix seconds) of the soonest-expiring leaf served for a meshed service.",
                ["namespace", "job", "service"],
                registry=registry,
            ),
            Gauge(
                CA_EXPIRY,
                "NotAfter (unix seconds) of the mesh's signing chain: the default issuer or the "
                "root, whichever expires first.",
                registry=registry,
            ),
            Counter(
                HANDSHAKES,
                "TLS handshakes behind the health verdicts of served instances: made, or reused "
                "(an unchanged, passing instance verified within MESH_HEALTH_HANDSHAKE_MAX_AGE).",
                ["result"],
                registry=registry,
            ),
        )
        _families[registry] = found
    return found


class HealthMetrics:
    """Sets and retires the per-service leaf gauges and the CA gauge."""

    def __init__(self, registry: CollectorRegistry) -> None:
        self.registry = registry
        self.cert_expiry, self.ca_expiry, handshakes = _on(registry)
        self._made, self._reused = handshakes.labels("made"), handshakes.labels("reused")
        self._services: dict[tuple[str, str], set[str]] = {}

    def set_leaves(self, namespace: str, job: str, soonest: Mapping[str, datetime]) -> None:
        """Publish ``soonest`` (service -> NotAfter); services not in it lose their series."""
        key = (namespace, job)
        for gone in self._services.get(key, set()) - set(soonest):
            self.cert_expiry.remove(namespace, job, gone)
        for service, not_after in soonest.items():
            self.cert_expiry.labels(namespace, job, service).set(not_after.timestamp())
        if soonest:
            self._services[key] = set(soonest)
        else:
            self._services.pop(key, None)

    def forget(self, namespace: str, job: str) -> None:
        self.set_leaves(namespace, job, {})

    def count_handshakes(self, made: int, reused: int) -> None:
        self._made.inc(made)
        self._reused.inc(reused)

    def set_ca(self, not_after: datetime) -> None:
        self.ca_expiry.set(not_after.timestamp())
