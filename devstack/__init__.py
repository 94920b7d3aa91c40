"""The embedded default: Nomad and Consul API twins, a real OpenBao, and a local task executor.

Beside the product, never under it: product code does not import this package (``controller dev``
imports it lazily).
"""
