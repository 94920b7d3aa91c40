"""``controllerctl check`` against a Consul with ACLs on (audit §11): a token that may not read
services or nodes is told so, with the rule to grant, instead of "0 instances" passing; the
anonymous token (to which Consul never says it filtered) and an unknown token likewise."""

from __future__ import annotations

import pytest

from devstack.consul.acl import ConsulAcl, Token
from devstack.vault import OpenBao
from tests.support.ctl_stack import stack

pytestmark = pytest.mark.timeout(90)

SERVICE_HINT = 'hint: the Consul token needs service_prefix "" { policy = "read" }'
NODE_HINT = 'hint: the Consul token needs node_prefix "" { policy = "read" }'
BOTH_HINT = (
    'hint: the Consul token needs service_prefix "" { policy = "read" } and '
    'node_prefix "" { policy = "read" }'
)
ACL = ConsulAcl(
    tokens={
        "nomad-agent": Token("00000000-0000-0000-0000-00000000000a", management=True),
        "reader": Token(
            "aaaaaaaa-0000-0000-0000-000000000001",
            {"service_prefix": {"": "read"}, "node_prefix": {"": "read"}},
        ),
        "blind": Token("bbbbbbbb-0000-0000-0000-000000000002", {"service": {"web": "read"}}),
        "nodeless": Token("cccccccc-0000-0000-0000-000000000003", {"service_prefix": {"": "read"}}),
    }
)


def consul_section(output: str) -> list[str]:
    """The lines of the Consul section, heading and rule excluded."""
    lines = output.splitlines()
    start = lines.index("Consul") + 2
    end = lines.index("", start)
    return lines[start:end]


async def test_check_says_which_consul_reads_the_token_lacks(openbao: OpenBao) -> None:
    async with stack(openbao, consul_acl=ACL, registrar_token="nomad-agent") as s:
        reader = await s.ctl("check", "--pre", CONSUL_HTTP_TOKEN="reader")
        assert reader.exit_code == 0, reader.output
        assert consul_section(reader.output)[1:] == [
            "✔ token may read services in Consul: 1 service(s) listed",
            "✔ token may read nodes in Consul: 1 node(s) listed",
            "✔ token may read service health: 1 consul server instance(s) visible",
        ]

        blind = await s.ctl("check", "--pre", CONSUL_HTTP_TOKEN="blind")
        assert blind.exit_code == 1, blind.output
        flagged = "Consul filtered the answer (X-Consul-Results-Filtered-By-ACLs: true)"
        assert consul_section(blind.output)[1:] == [
            "× token may read services in Consul: the service list hides even the 'consul' "
            f"service: {flagged}",
            f"    {SERVICE_HINT} (policy consul-mesh-controller.hcl grants it)",
            f"× token may read nodes in Consul: the node list is empty: {flagged}",
            f"    {NODE_HINT} (policy consul-mesh-controller.hcl grants it)",
            f"× token may read service health: 0 consul server instances visible: {flagged}",
            f"    {BOTH_HINT} (policy consul-mesh-controller.hcl grants it)",
        ]
        assert "3 of " in blind.output.splitlines()[-1]

        nodeless = await s.ctl("check", "--pre", CONSUL_HTTP_TOKEN="nodeless")
        assert nodeless.exit_code == 1, nodeless.output
        marks = [line[0] for line in consul_section(nodeless.output) if line[:1] in "✔×‼"]
        assert marks == ["✔", "✔", "×", "×"], nodeless.output

        anonymous = await s.ctl("check", "--pre")
        assert anonymous.exit_code == 1, anonymous.output
        section = consul_section(anonymous.output)
        assert [line[0] for line in section if line[:1] in "✔×‼"] == ["✔", "×", "×", "×"]
        assert section[-2].endswith(
            "0 consul server instances visible: no CONSUL_HTTP_TOKEN is set, and the "
            "anonymous token is not allowed to"
        )
        assert section[-1].endswith("; set CONSUL_HTTP_TOKEN to a token with that policy")

        unknown = await s.ctl("check", "--pre", CONSUL_HTTP_TOKEN="forged")
        assert unknown.exit_code == 1, unknown.output
        assert consul_section(unknown.output)[1:] == [
            "× Consul knows the token: GET /v1/catalog/services: 403 ACL not found",
            "    hint: CONSUL_HTTP_TOKEN is not a token this Consul knows: create one with the "
            "policy consul-mesh-controller.hcl",
        ]
