"""The twins' own tests: the Nomad and Consul twins, the executor, the template renderer, the
registrar and the devstack launcher against Nomad's and Consul's documented behaviour.

They import only ``devstack`` (and tests.support), never the product, so a failure here is a
twin that no longer behaves like the real thing, not a controller bug. ``make test-twins`` runs
them; ``make test-fast`` leaves them out.
"""
