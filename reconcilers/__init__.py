"""The business logic: what a meshed job must look like, and how to get there.

Pure transforms (inject, nginx, plan) sit beside reconcilers that talk to the world only through
the Protocols in ``reconcilers.ports``.
"""
