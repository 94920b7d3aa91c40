"""What the tests share, and the only part of tests/ a test module may import.

Test modules never import each other (an import-linter contract in pyproject.toml enforces it):
a builder that two test files need lives here, so moving or deleting one test file cannot break
another. Nothing here is collected by pytest (no ``test_*`` files).

- ``waiting``: the one ``eventually`` poll for world state that is not pushed to the test.
- ``builders``, ``strategies``, ``x509``, ``health_world``: jobs, hypothesis strategies,
  certificates and the in-memory ports of the health reconciler.
- ``twins``: the Nomad and Consul twin factory fixtures (a pytest plugin, see tests/conftest.py).
- ``golden_jobs``, ``fuzzing``, ``runtime_fakes``, ``nomad_fixtures``, ``ctl_stack``,
  ``executor_stack``: the fixture sets of one layer each.
"""
