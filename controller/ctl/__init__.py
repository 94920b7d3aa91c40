"""The logic behind the operator's commands (``controllerctl status``, ``check``, ``explain``,
``render``, ``rotate-ca``); their click front ends are in ``controller.cmd``.

They read what the controller wrote (status Variables, the leader lock, /status) and look at the
live world (Nomad, Consul, Vault) themselves, so an operator never has to trust a controller
that may be down. Pure modules (drift, rows, report, checks, table, jobtext, explain_text) are
split from the I/O (gather, probes_*, jobfile, ca_rotation).
"""
