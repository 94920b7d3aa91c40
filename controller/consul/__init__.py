"""The Consul adapter: catalog and health reads used to verify services on their TLS ports."""
