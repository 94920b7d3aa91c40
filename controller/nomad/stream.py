"""The Nomad event stream reader: NDJSON frames in, de-duplicated event batches out.

Nomad's stream has sharp edges that a naive line reader trips over (see the Nomad reference):
``{}`` heartbeats; a frame split across chunks; after the 200 has been sent, an error arrives as
raw text with no newline and the body ends; resuming at ``index=N`` replays N itself, and an
index that is too new replays the newest frame. So the decoder keeps the last index, drops any
frame at or below it, skips (and counts) lines it cannot parse, and never raises on bad input.
The reader adds the I/O: one connection at a time, an inactivity watchdog (a silent TCP
connection is only noticed by missing heartbeats), and 403-before-streaming as PermissionDenied.
Reconnect policy (and the LIST that must precede every reconnect) belongs to the source.

A Job event carries the whole job, which the cache keeps as compact JSON: the decoder parses
each job of a frame out of the line by itself and hands its text along (``Event.job_text``),
so the cache packs the bytes Nomad sent instead of encoding the parsed job again. The rest of
the frame is parsed with the jobs left out, and the texts are used only when that shows each
was exactly an event's ``Payload.Job``; otherwise the frame is parsed whole.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import structlog

from controller.nomad.client import NomadClient
from controller.nomad.errors import TransientError
from controller.runtime.clock import Clock, SystemClock, wait_for

log = structlog.get_logger(__name__)


@dataclass(frozen=True, slots=True)
class Event:
    """One event; ``payload`` is kept raw (a Job event carries the whole job, and when the
    decoder could cut it out, ``job_text`` is that job's JSON as it came)."""

    topic: str
    type: str
    key: str
    namespace: str
    filter_keys: tuple[str, ...]
    index: int
    payload: Mapping[str, Any]
    job_text: bytes | None = None


@dataclass(frozen=True, slots=True)
class EventBatch:
    """All events of one raft index that passed the subscription's filter."""

    index: int
    events: tuple[Event, ...]


# Only an event's Payload can be an object holding "Job": a job's own Payload field is a
# string, and inside a JSON string every quote is escaped, so no job text can contain this.
# Nomad writes compact JSON; a frame written otherwise is simply parsed whole.
_JOB_PAYLOAD = '"Payload":{"Job":'
_decoder = json.JSONDecoder()


def _cut_jobs(text: str) -> tuple[dict[str, Any], dict[int, bytes]] | None:
    """A frame holding Job events, parsed, with each job's own JSON text by the ``id`` of its
    event's dict; None when there is no job to cut or the cut does not add up."""
    pieces: list[str] = []
    cut: list[tuple[Any, str]] = []
    pos = 0
    while (at := text.find(_JOB_PAYLOAD, pos)) >= 0:
        start = at + len(_JOB_PAYLOAD)
        try:
            job, end = _decoder.raw_decode(text, start)
        except ValueError:
            return None
        pieces += (text[pos:start], "null")
        cut.append((job, text[start:end]))
        pos = end
    if not cut:
        return None
    pieces.append(text[pos:])
    frame = json.loads("".join(pieces))
    events = frame.get("Events") if isinstance(frame, dict) else None
    holders = [
        e
        for e in (events if isinstance(events, list) else ())
        if isinstance(e, dict)
        and isinstance(e.get("Payload"), dict)
        and "Job" in e["Payload"]
        and e["Payload"]["Job"] is None
    ]
    if len(holders) != len(cut):
        return None
    texts: dict[int, bytes] = {}
    for event, (job, job_text) in zip(holders, cut, strict=True):
        event["Payload"]["Job"] = job
        texts[id(event)] = job_text.encode()
    return frame, texts


def _event(raw: Any, frame_index: int, job_text: bytes | None = None) -> Event | None:
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
        job_text=job_text if topic == "Job" else None,
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
            frame = json.loads(rest)
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
            text = line.decode()
            cut = _cut_jobs(text)
            if cut is not None:
                return self._frame(cut[0], cut[1])
            frame = json.loads(text)
        except ValueError:  # UnicodeDecodeError included
            self.malformed += 1
            return None
        if not isinstance(frame, dict):
            self.malformed += 1
            return None
        return self._frame(frame)

    def _frame(
        self, frame: dict[str, Any], job_texts: Mapping[int, bytes] | None = None
    ) -> EventBatch | None:
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
            event = _event(raw, index, job_texts.get(id(raw)) if job_texts else None)
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
