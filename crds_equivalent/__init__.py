"""The contract: meta keys, cluster configuration, status records and their JSON Schemas.

Nomad has no CRDs; job meta keys plus Variables are the equivalent. This is the lowest layer and
does no I/O.
"""
