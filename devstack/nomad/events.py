"""The event broker: a ring of raft-indexed frames and the subscriptions that read it.

Nomad keeps the last ``event_buffer_size`` raft indexes that produced events; a
subscriber starts at the requested index (inclusive), at the oldest buffered item when
the index is too old, or at the newest item when it is ahead. A subscriber that falls
out of the buffer is closed. Filtering is by topic key (Key or FilterKeys) and by
namespace; events with an empty namespace always pass.
"""

from __future__ import annotations

import asyncio
import collections
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from devstack.nomad.codec import dumps
from devstack.nomad.notify import Notifier


@dataclass(frozen=True)
class Event:
    topic: str
    type: str
    key: str
    namespace: str
    filter_keys: list[str] | None
    index: int
    payload: bytes  # the encoded Payload object

    def encode(self) -> bytes:
        head = dumps(
            {
                "Topic": self.topic,
                "Type": self.type,
                "Key": self.key,
                "Namespace": self.namespace,
                "FilterKeys": self.filter_keys,
                "Index": self.index,
            }
        )
        return head[:-1] + b',"Payload":' + self.payload + b"}"


@dataclass
class Frame:
    seq: int
    index: int
    events: list[Event]
    encoded: list[bytes] = field(default_factory=list)


class SubscriptionClosed(Exception):
    """The server ended the subscription; the message is Nomad's text."""


class EventBroker:
    def __init__(self, size: int = 100) -> None:
        self._buf: collections.deque[Frame] = collections.deque(maxlen=max(1, size))
        self._seq = 0
        self._notifier = Notifier()
        self._closed = False

    @property
    def size(self) -> int:
        return self._buf.maxlen or 1

    def resize(self, size: int) -> None:
        self._buf = collections.deque(self._buf, maxlen=max(1, size))

    def publish(self, index: int, events: list[Event]) -> None:
        if not events:
            return
        self._seq += 1
        self._buf.append(Frame(self._seq, index, events, [e.encode() for e in events]))
        self._notifier.fire()

    def close(self) -> None:
        self._closed = True
        self._notifier.fire()

    def start_seq(self, index: int) -> int:
        """The first frame a subscription at ``index`` reads (Nomad's StartAtClosest)."""
        if not self._buf:
            return self._seq + 1
        for frame in self._buf:
            if frame.index >= index:
                return frame.seq
        return self._buf[-1].seq

    async def next_frame(self, seq: int, wait: float) -> Frame | None:
        """The frame with sequence ``seq``, waiting up to ``timeout``; None on timeout."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + wait
        while True:
            if self._closed:
                raise SubscriptionClosed("subscription closed by server, client should resubscribe")
            if self._buf and seq < self._buf[0].seq:
                raise SubscriptionClosed("event dropped from buffer")
            if seq <= self._seq:
                return self._buf[seq - self._buf[0].seq]
            if not await self._notifier.wait(deadline - loop.time()):
                return None


@dataclass
class Filter:
    """Topic keys per topic plus the namespaces a subscription may see."""

    topics: dict[str, set[str]]
    namespaces: set[str] | None  # None: the wildcard resolved later is not used

    def select(self, frame: Frame) -> list[bytes]:
        out: list[bytes] = []
        for event, enc in zip(frame.events, frame.encoded, strict=True):
            if (
                event.namespace
                and self.namespaces is not None
                and (event.namespace not in self.namespaces)
            ):
                continue
            if self._topic_match(event):
                out.append(enc)
        return out

    def _topic_match(self, event: Event) -> bool:
        for topic in (event.topic, "*"):
            keys = self.topics.get(topic)
            if not keys:
                continue
            if "*" in keys or event.key in keys:
                return True
            if event.filter_keys and any(k in keys for k in event.filter_keys):
                return True
        return False


def parse_topics(values: list[str]) -> dict[str, set[str]]:
    """``Job:web`` / ``Job`` / none -> {topic: {keys}}; ValueError with Nomad's text."""
    if not values:
        return {"*": {"*"}}
    out: dict[str, set[str]] = {}
    for raw in values:
        parts = raw.split(":")
        if len(parts) > 2:
            raise ValueError(
                "Invalid topic query: error parsing topics: "
                f"Invalid key value pair for topic, topic: {raw}"
            )
        topic = parts[0]
        key = parts[1] if len(parts) == 2 else "*"
        out.setdefault(topic, set()).add(key)
    return out


def make_event(
    topic: str,
    type_: str,
    key: str,
    namespace: str,
    filter_keys: list[str] | None,
    index: int,
    payload: dict[str, Any],
    encode: Callable[[Any], bytes] = dumps,
) -> Event:
    return Event(topic, type_, key, namespace, filter_keys, index, encode(payload))
