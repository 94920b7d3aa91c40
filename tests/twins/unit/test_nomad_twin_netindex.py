"""The twin's NetworkIndex (devstack/nomad/netindex.py) against nomad/structs/network.go.

``AddAllocs`` skips client-terminal allocations and reads ``Shared.Ports`` when present, else
the group networks and each task's first network; ``AddReservedPorts`` lets an
``IgnoreCollision`` port share; ``AssignPorts``/``AssignTaskNetwork`` refuse a reserved port
in use with ``reserved port collision <label>=<value>``.
"""

from __future__ import annotations

from typing import Any

from devstack.nomad import netindex

NODE = "127.0.0.11"


def alloc(client_status: str = "running", **shared: Any) -> dict[str, Any]:
    return {"ClientStatus": client_status, "AllocatedResources": {"Shared": shared, "Tasks": {}}}


def port(value: int, label: str = "p", ignore: bool = False) -> dict[str, Any]:
    return {"Label": label, "Value": value, "HostIP": NODE, "IgnoreCollision": ignore}


def group(*ports: tuple[str, int], task_ports: tuple[tuple[str, int], ...] = ()) -> Any:
    reserved = [{"Label": label, "Value": value} for label, value in ports]
    task_net = [{"ReservedPorts": [{"Label": lb, "Value": v} for lb, v in task_ports]}]
    return {
        "Networks": [{"Mode": "host", "ReservedPorts": reserved}],
        "Tasks": [{"Name": "t", "Resources": {"Networks": task_net if task_ports else None}}],
    }


def test_terminal_allocations_hold_no_port_and_a_stopping_one_still_does() -> None:
    used, collide = netindex.used_ports(
        [alloc("complete", Ports=[port(9001)]), alloc("running", Ports=[port(9002)])]
    )
    assert (used, collide) == ({NODE: {9002}}, False)
    failed = [alloc("failed", Ports=[port(9001)])]
    assert netindex.exhausted(group(("up", 9001)), NODE, failed) == ""
    assert netindex.exhausted(group(("up", 9002)), NODE, [alloc(Ports=[port(9002)])]) == (
        "network: reserved port collision up=9002"
    )


def test_without_shared_ports_the_networks_and_task_networks_count() -> None:
    legacy = alloc(Networks=[{"IP": NODE, "ReservedPorts": [{"Value": 7000}]}])
    legacy["AllocatedResources"]["Tasks"] = {
        "t": {"Networks": [{"IP": NODE, "DynamicPorts": [{"Value": 25000}]}]}
    }
    used, _ = netindex.used_ports([legacy])
    assert used == {NODE: {7000, 25000}}


def test_ignore_collision_shares_and_a_real_double_booking_is_a_port_collision() -> None:
    shared = [alloc(Ports=[port(53, ignore=True)]), alloc(Ports=[port(53, ignore=True)])]
    assert netindex.used_ports(shared)[1] is False
    doubled = [alloc(Ports=[port(80)]), alloc(Ports=[port(80)])]
    assert netindex.exhausted(group(("x", 1)), NODE, doubled) == netindex.PORT_COLLISION


def test_a_tasks_reserved_port_collides_with_the_groups_offer_and_other_nodes_do_not_count() -> (
    None
):
    assert netindex.exhausted(group(("a", 9001), task_ports=(("b", 9001),)), NODE, []) == (
        "network: reserved port collision b=9001"
    )
    elsewhere = alloc(Ports=[{**port(9001), "HostIP": "127.0.0.12"}])
    assert netindex.exhausted(group(("up", 9001)), NODE, [elsewhere]) == ""
    ignored = {
        "Networks": [{"ReservedPorts": [{"Label": "u", "Value": 1, "IgnoreCollision": True}]}]
    }
    assert netindex.static_ports(ignored) == []
