"""PURE: the injection compiler — from a user's job to the meshed job and back.

Views over the raw Nomad job (``jobview``), which ports a group fronts (``fronting``), the inputs
hash (``hashing``), service rewrites (``rewrite``), the sidecar task and its templates
(``sidecar``, ``nginx``), ``inject``/``uninject``, the ``plan`` and forced re-issue (``reissue``).
No I/O and no import of ``controller``: an import-linter contract enforces it.
"""
