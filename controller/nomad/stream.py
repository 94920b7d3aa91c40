"""The Nomad event stream reader: NDJSON frames in, de-duplicated event batches out.

Nomad's stream has sharp edges that a naive line reader trips over (see the Nomad reference):
``{}`` heartbeats; a frame split across chunks; after the 200 has been sent, an error arrives as
raw text with no newline and the body ends; resuming at ``index=N`` replays N itself, and an
index that is too new replays the newest frame. So the decoder keeps the last index, drops any
frame at or below it, skips (and counts) lines it cannot parse, and never raises on bad input.
The reader adds the I/O: one connection at a time, an inactivity watchdog (a silent TCP
connection is only noticed by missing heartbeats), and 403-before-streaming as PermissionDenied.
Reconnect policy (and the LIST that must precede every reconnect) belongs to the source.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import structlog

from controller.nomad.client import NomadClient
from controller.nomad.errors import TransientError
from controller.runtime import jsonwire
from controller.runtime.clock import Clock, SystemClock, wait_for

log = structlog.get_logger(__name__)


@dataclass(frozen=True, slots=True)
class Event:
    """One event; ``payload`` is kept raw (a Job event carries the whole job)."""

    topic: str
    type: str
    key: str
    namespace: str
    filter_keys: tuple[str, ...]
    index: int
    payload: Mapping[str, Any]


@dataclass(frozen=True, slots=True)
class EventBatch:
    """All events of one raft index that passed the subscription's filter."""

    index: int
    events: tuple[Event, ...]


def _event(raw: Any, frame_index: int) -> Event | None:
    if not isinstance(raw, dict):
        return None
    topic, key = raw.get("Topic"), raw.get("Key")
    if not isinstance(topic, str) or not isinstance(key, str):
        return None
    fkeys = raw.get("FilterKeys") or ()
    payload = raw.get("Payload")
    index = raw.get("Index")
    return Event(
        topic=topic,
        type=str(raw.get("Type") or ""),
        key=key,
        namespace=str(raw.get("Namespace") or ""),
        filter_keys=tuple(str(k) for k in fkeys) if isinstance(fkeys, list) else (),
        index=index if isinstance(index, int) else frame_index,
        payload=payload if isinstance(payload, dict) else {},
    )


@dataclass
class StreamDecoder:
    """Bytes in, new batches out. Pure: no I/O, no clock, never raises on input."""

    last_index: int = 0
    heartbeats: int = 0
    malformed: int = 0
    dropped: int = 0
    lines: int = 0
    _buf: bytearray = field(default_factory=bytearray)

    def feed(self, chunk: bytes) -> list[EventBatch]:
        """Consume a chunk; return the batches completed by it (duplicates removed)."""
        self._buf.extend(chunk)
        out: list[EventBatch] = []
        while (nl := self._buf.find(b"\n")) >= 0:
            line = bytes(self._buf[:nl])
            del self._buf[: nl + 1]
            batch = self._line(line)
            if batch is not None:
                out.append(batch)
        return out

    def finish(self) -> tuple[list[EventBatch], str | None]:
        """End of body: a complete trailing frame is still used; anything else is returned as
        the server's parting text (e.g. ``subscription closed by server, ...``)."""
        rest = bytes(self._buf).strip()
        self._buf.clear()
        if not rest:
            return [], None
        try:
            frame = jsonwire.loads(rest)
        except ValueError:
            return [], rest.decode("utf-8", "replace")
        if isinstance(frame, dict):
            batch = self._frame(frame)
            return ([batch] if batch else []), None
        return [], rest.decode("utf-8", "replace")

    def pending(self) -> int:
        """Bytes of an incomplete line held back."""
        return len(self._buf)

    def _line(self, line: bytes) -> EventBatch | None:
        line = line.strip()
        if not line:
            return None
        self.lines += 1
        try:
            frame = jsonwire.loads(line)
        except jsonwire.DecodeError:  # invalid UTF-8 included
            self.malformed += 1
            return None
        if not isinstance(frame, dict):
            self.malformed += 1
            return None
        return self._frame(frame)

    def _frame(self, frame: dict[str, Any]) -> EventBatch | None:
        if not frame:
            self.heartbeats += 1
            return None
        index, raw_events = frame.get("Index"), frame.get("Events")
        if (
            not isinstance(index, int)
            or isinstance(index, bool)
            or not isinstance(raw_events, list)
        ):
            self.malformed += 1
            return None
        if index <= self.last_index:
            self.dropped += 1
            return None
        self.last_index = index
        events = []
        for raw in raw_events:
            event = _event(raw, index)
            if event is None:
                self.malformed += 1
            else:
                events.append(event)
        return EventBatch(index=index, events=tuple(events))


class EventStream:
    """One subscription to ``/v1/event/stream`` at a time, resumable by index."""

    def __init__(
        self,
        client: NomadClient,
        *,
        topics: Sequence[str] = ("Job", "Allocation"),
        namespace: str = "*",
        heartbeat_timeout: float = 45.0,
        connect_timeout: float = 10.0,
        clock: Clock | None = None,
    ) -> None:
        self.client = client
        self.topics = tuple(topics)
        self.namespace = namespace
        self.heartbeat_timeout = heartbeat_timeout
        self.connect_timeout = connect_timeout
        self.clock: Clock = clock or SystemClock()
        self.decoder = StreamDecoder()
        self.last_line_time: float | None = None  # monotonic, for the watchdog and /status
        self.last_line_at: datetime | None = None  # wall time, for the silence alert
        self.end_reason = ""

    @property
    def last_index(self) -> int:
        return self.decoder.last_index

    @property
    def malformed(self) -> int:
        return self.decoder.malformed

    async def connect(
        self, after_index: int, *, opened: asyncio.Event | None = None
    ) -> AsyncIterator[EventBatch]:
        """Stream batches with Index > max(after_index, last_index) until the connection ends.

        Returns normally on EOF, server parting text, watchdog expiry or a transport error
        (``end_reason`` says which); the caller reconnects. Raises PermissionDenied/BadRequest
        (and other non-transient NomadErrors) when Nomad refuses the subscription. ``opened``
        is set once Nomad answered 200: its server subscribed (nomad/event_endpoint.go calls
        ``publisher.Subscribe`` before it writes a byte), so later events are ours to read.
        """
        self.decoder.last_index = max(self.decoder.last_index, after_index)
        self.decoder.feed(b"\n")  # discard any half line left by the previous connection
        params: list[tuple[str, str | int | bool]] = [("index", self.decoder.last_index + 1)]
        params += [("topic", t) for t in self.topics]
        self.end_reason = ""
        try:
            async with self.client.stream(
                "/v1/event/stream",
                params=params,
                namespace=self.namespace,
                connect_timeout=self.connect_timeout,
            ) as resp:
                if opened is not None:
                    opened.set()
                while True:
                    try:
                        chunk = await wait_for(
                            self.clock, resp.content.readany(), self.heartbeat_timeout
                        )
                    except TimeoutError:
                        self.end_reason = f"no data for {self.heartbeat_timeout}s (watchdog)"
                        return
                    if not chunk:
                        batches, parting = self.decoder.finish()
                        for batch in batches:
                            yield batch
                        self.end_reason = f"server closed: {parting}" if parting else "EOF"
                        return
                    lines_before = self.decoder.lines
                    batches = self.decoder.feed(chunk)
                    if self.decoder.lines != lines_before:
                        self.last_line_time = self.clock.monotonic()
                        self.last_line_at = self.clock.now()
                    for batch in batches:
                        yield batch
        except TransientError as exc:
            self.end_reason = str(exc)
        except (OSError, ConnectionError) as exc:
            self.end_reason = f"{type(exc).__name__}: {exc}"
