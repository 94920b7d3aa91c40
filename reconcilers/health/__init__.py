"""The health reconciler: Consul health and TLS probes on the TLS ports, as conditions."""
