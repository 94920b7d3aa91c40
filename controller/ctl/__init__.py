"""The operator's commands: ``controllerctl status``, ``check`` and ``explain``.

They sit at the CLI level of the layering (beside ``controller.cli``): they read what the
controller wrote (status Variables, the leader lock, /status) and look at the live world
(Nomad, Consul, Vault) themselves, so an operator never has to trust a controller that may be
down. Pure modules (drift, rows, report, checks, table) are split from the I/O (gather, probes).
"""
