"""PURE: when Nomad's template runner renews a ``pkiCert`` leaf, and so when it has missed it.

Nomad renders the sidecar's certificate with consul-template, and the renewal rule changed
between the versions Nomad vendors (each tag's ``go.mod``): 1.7.0–1.7.2 ship v0.35.0, 1.7.5 a
v0.36.1 pre-release, 1.8.0–1.8.1 v0.37.4, 1.8.2–1.9.x v0.39, 1.10.x v0.40–v0.41.

* v0.35–v0.37 (``dependency/vault_pki.go``, ``goodFor``): on every wake it computes
  ``gooddur = 0.9 * remaining`` (plus a jitter of ``Intn(6) - 3`` percent, so -3..+2 %, when
  ``gooddur`` exceeds 100 s) and renews only if ``gooddur <= lifespan / 10``, i.e. once less
  than a ninth of the life is left; otherwise it sleeps ``gooddur`` and looks again. From a fresh
  leaf the first wake is at 87.3–91.8 % of its life: jitter -1..+2 % renews there, but -3 % and
  -2 % (a third of all leaves) wake with more than a ninth left, sleep again and renew at about
  98.4–99.0 %. Whatever the history (a restart re-reads the file and starts over), the renewing
  wake follows a wake with more than ``lifespan / 9`` left by at most ``0.9 * 1.02`` of it, so
  it happens with more than ``(1 - 0.918) / 9`` of the life left: never after
  ``OLD_RULE_LATEST`` (99.09 %).
* v0.38 on (``goodFor``): ``rotationTime = start + lifespan * VaultLeaseRenewalThreshold +
  lifespan * (int64(r.Intn(6)-3) / 100.0)``. The jitter is an integer division, always 0, and
  Nomad leaves the threshold at consul-template's default 0.90 (``config/vault.go``
  ``DefaultLeaseRenewalThreshold``): renewal at exactly 90 % from NotBefore.

The controller cannot tell from a leaf which rule its client follows, so a leaf counts as having
missed its renewal only past ``STALE_FRACTION``, beyond the latest point of EITHER rule plus the
time the renewed file takes to reach nginx (a template splay of up to 5 s, a SIGHUP), and the
health verdict flags a leaf as ``RenewalMissed`` at the same point. A lower threshold (the former
92 %) would restart the sidecar of a third of all healthy leaves on Nomad 1.7.0–1.8.1. The price
is a shorter window for the remediation ladder: 0.5 % of the life (22 min of the default 72 h;
18 s of the 1 h minimum, where a missed renewal cannot be remedied before expiry anyway).
"""

from __future__ import annotations

from typing import Final

RENEW_FRACTION: Final = 0.90  # consul-template's DefaultLeaseRenewalThreshold (v0.38 on)
OLD_RULE_LATEST: Final = 1 - (1 - 0.9 * 1.02) / 9  # v0.35–v0.37: 0.99089
STALE_FRACTION: Final = 0.995
MIN_REMAINING_FRACTION: Final = 1 - STALE_FRACTION
