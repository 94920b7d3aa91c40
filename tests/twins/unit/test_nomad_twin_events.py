"""Unit tests for the event broker's index semantics and filters, and ACL rule parsing."""

from __future__ import annotations

import pytest

from devstack.nomad.acl import Authz, parse_rules
from devstack.nomad.events import EventBroker, Filter, SubscriptionClosed, make_event, parse_topics


def _ev(topic: str, key: str, index: int, ns: str = "default", fk: list[str] | None = None):
    return make_event(topic, "JobRegistered", key, ns, fk, index, {"X": 1})


async def test_start_index_inclusive_too_old_and_ahead() -> None:
    broker = EventBroker(size=3)
    for idx in (5, 7, 9, 11):
        broker.publish(idx, [_ev("Job", "a", idx)])
    first = await broker.next_frame(broker.start_seq(0), 0)
    assert first is not None and first.index == 7  # index 5 fell out of the 3-item buffer
    at_nine = await broker.next_frame(broker.start_seq(9), 0)
    assert at_nine is not None and at_nine.index == 9  # inclusive
    between = await broker.next_frame(broker.start_seq(8), 0)
    assert between is not None and between.index == 9
    ahead = await broker.next_frame(broker.start_seq(100), 0)
    assert ahead is not None and ahead.index == 11  # newest item is replayed


async def test_slow_subscriber_falling_out_of_buffer_is_closed() -> None:
    broker = EventBroker(size=2)
    broker.publish(1, [_ev("Job", "a", 1)])
    seq = broker.start_seq(0)
    for idx in (2, 3, 4):
        broker.publish(idx, [_ev("Job", "a", idx)])
    with pytest.raises(SubscriptionClosed, match="event dropped from buffer"):
        await broker.next_frame(seq, 0)


def test_topic_parsing_and_errors() -> None:
    assert parse_topics([]) == {"*": {"*"}}
    assert parse_topics(["Job", "Allocation:web", "Allocation:db"]) == {
        "Job": {"*"},
        "Allocation": {"web", "db"},
    }
    with pytest.raises(ValueError, match="Invalid key value pair for topic, topic: a:b:c"):
        parse_topics(["a:b:c"])


async def test_filter_by_key_filterkeys_and_namespace() -> None:
    broker = EventBroker()
    broker.publish(
        3,
        [
            _ev("Job", "web", 3),
            _ev("Allocation", "a1", 3, fk=["web", ""]),
            _ev("Allocation", "a2", 3, fk=["db", ""]),
            _ev("Job", "web", 3, ns="prod"),
            _ev("Node", "n1", 3, ns=""),
        ],
    )
    frame = await broker.next_frame(broker.start_seq(0), 0)
    assert frame is not None
    got = Filter(parse_topics(["Allocation:web", "Job", "Node"]), {"default"}).select(frame)
    keys = [b'"Key":"web"' in e or b'"Key":"a1"' in e or b'"Key":"n1"' in e for e in got]
    assert len(got) == 3 and all(keys)


def test_acl_rules_hcl_namespace_capabilities_and_variables() -> None:
    rules = parse_rules(
        """
        namespace "default" {
          policy = "read"
          capabilities = ["submit-job"]
          variables {
            path "mesh-controller/*" { capabilities = ["read", "write", "list"] }
          }
        }
        namespace "prod-*" { capabilities = ["list-jobs"] }
        """
    )
    authz = Authz([rules])
    assert authz.allow_ns("default", "read-job")
    assert authz.allow_ns("default", "submit-job")
    assert not authz.allow_ns("default", "alloc-lifecycle")
    assert authz.allow_ns("prod-eu", "list-jobs")
    assert not authz.allow_ns("prod-eu", "read-job")
    assert authz.allow_var("default", "mesh-controller/leader", "write")
    assert not authz.allow_var("default", "mesh-controller/leader", "destroy")
    assert not authz.allow_var("prod-eu", "x", "read")


def test_acl_rules_json_form() -> None:
    rules = parse_rules('{"namespace": {"default": {"policy": "write"}}}')
    assert Authz([rules]).allow_ns("default", "alloc-lifecycle")
