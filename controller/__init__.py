"""The long-running controller: runtime, adapters to Nomad/Vault/Consul, HTTP surface and CLI.

Business logic lives in ``reconcilers``; the contract in ``crds_equivalent``. This package is the
machinery around them, and ``controller.app`` is the only place that wires them together.
"""
