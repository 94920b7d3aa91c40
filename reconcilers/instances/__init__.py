"""PURE: match a meshed job's running allocations to Consul's registrations and TLS probes.

Shared by the health, certificate and rotation reconcilers (``matching`` judges, ``observe``
gathers through the ports), so none of the three depends on another.
"""
