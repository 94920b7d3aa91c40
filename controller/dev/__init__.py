"""``controller dev``'s logic: the devstack, the mesh PKI and the controller in one process.

This is the only product package that may import ``devstack`` (lazily, in ``session``), as the
import-linter contract says: the product itself never depends on its twins.
"""
