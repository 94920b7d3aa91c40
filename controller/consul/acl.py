"""The Consul ACL rules the controller's token needs, spelled once.

Consul filters what a token may not read instead of refusing it (``agent/consul/acl.go``
``aclFilter``: an instance is kept only with ``service:read`` on its service and ``node:read``
on its node), so a missing rule shows up as an empty answer, not an error. The shipped policy
(``controller.deploy.policies.consul_policy``), the health condition's message and
``controllerctl check``'s hints all quote these, so they cannot disagree.
"""

from __future__ import annotations

from typing import Final

SERVICE_READ: Final = 'service_prefix "" { policy = "read" }'
NODE_READ: Final = 'node_prefix "" { policy = "read" }'
READ_GRANT: Final = f"{SERVICE_READ} and {NODE_READ}"
