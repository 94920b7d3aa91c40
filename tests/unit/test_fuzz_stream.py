"""Fuzzing the event-stream decoder: malformed frames, truncated NDJSON, arbitrary bytes and
arbitrary chunking.

The decoder must never raise; it yields each well-formed frame whose index is new exactly once,
in index order, whatever the chunk boundaries are; everything else is counted (malformed,
dropped, heartbeats) or, at the end of the body, handed back as the server's parting text.
"""

from __future__ import annotations

import itertools
import json
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from controller.nomad.stream import EventBatch, StreamDecoder
from tests.support.fuzzing import FUZZ, FUZZ_TIMEOUT, WRONG_TYPES

pytestmark = pytest.mark.timeout(FUZZ_TIMEOUT)


def frame(index: int, job: str) -> bytes:
    event = {
        "Topic": "Job",
        "Type": "JobRegistered",
        "Key": job,
        "Namespace": "default",
        "Index": index,
        "Payload": {"Job": {"ID": job}},
    }
    return json.dumps({"Index": index, "Events": [event]}).encode()


good = st.builds(frame, st.integers(1, 60), st.sampled_from(["web", "ünï", "x" * 300]))
bad_json = st.sampled_from(
    [
        b"{",
        b"}",
        b"[1,2]",
        b"null",
        b'"text"',
        b'{"Index": "7", "Events": []}',
        b'{"Index": 5}',
        b'{"Index": true, "Events": []}',
        b"\xff\xfe\x00",
        b"NaN",
        b"subscription closed by server, client should resubscribe",
    ]
)
odd_events = st.builds(
    lambda i, evs: json.dumps({"Index": i, "Events": evs}).encode(),
    st.integers(1, 60),
    st.lists(
        st.sampled_from(WRONG_TYPES)
        | st.fixed_dictionaries(
            {"Topic": st.sampled_from(["Job", 3, None]), "Key": st.sampled_from(["a", None, 7])},
            optional={"FilterKeys": st.sampled_from(WRONG_TYPES), "Payload": st.just([])},
        ),
        max_size=3,
    ),
)
line = good | bad_json | odd_events | st.just(b"{}") | st.just(b"") | st.binary(max_size=40)


def chunked(data: bytes, cuts: list[int]) -> list[bytes]:
    points = sorted({c % (len(data) + 1) for c in cuts})
    edges = [0, *points, len(data)]
    return [data[a:b] for a, b in itertools.pairwise(edges)]


def decode(chunks: list[bytes]) -> tuple[list[EventBatch], str | None, StreamDecoder]:
    decoder = StreamDecoder()
    batches: list[EventBatch] = []
    for chunk in chunks:
        batches.extend(decoder.feed(chunk))
    tail, parting = decoder.finish()
    return batches + tail, parting, decoder


def expected(lines: list[bytes]) -> list[int]:
    """Indexes a correct decoder yields: well-formed frames with a new, higher index."""
    out: list[int] = []
    last = 0
    for raw in lines:
        try:
            value: Any = json.loads(raw)
        except ValueError:
            continue
        if not isinstance(value, dict) or not value:
            continue
        index = value.get("Index")
        if type(index) is not int or not isinstance(value.get("Events"), list):
            continue
        if index > last:
            out.append(index)
            last = index
    return out


@FUZZ
@given(st.lists(line, max_size=30), st.lists(st.integers(0, 10**6), max_size=12))
def test_frames_survive_any_chunking_exactly_once_in_order(
    lines: list[bytes], cuts: list[int]
) -> None:
    lines = [ln.replace(b"\n", b" ") for ln in lines]
    body = b"".join(ln + b"\n" for ln in lines)
    batches, parting, decoder = decode(chunked(body, cuts))
    assert [b.index for b in batches] == expected(lines)
    assert parting is None  # every line was complete
    assert decoder.pending() == 0
    for batch in batches:
        assert all(isinstance(e.key, str) and isinstance(e.topic, str) for e in batch.events)


@FUZZ
@given(st.lists(good, min_size=1, max_size=10), st.integers(1, 10**6), st.lists(st.integers()))
def test_a_truncated_last_line_is_never_a_frame_unless_complete(
    lines: list[bytes], cut: int, cuts: list[int]
) -> None:
    body = b"\n".join(lines)  # the last line has no newline: the body ended early
    body = body[: max(1, cut % (len(body) + 1))]
    batches, parting, _ = decode(chunked(body, cuts))
    complete = body.split(b"\n")
    assert [b.index for b in batches] == expected(complete)
    last = complete[-1].strip()
    try:
        whole = isinstance(json.loads(last), dict) if last else True
    except ValueError:
        whole = False
    # A cut-off frame is the server's parting text, never a frame; a complete one is used.
    assert parting == (None if whole else last.decode("utf-8", "replace"))


@FUZZ
@given(st.binary(max_size=2000), st.lists(st.integers(0, 10**6), max_size=8))
def test_arbitrary_bytes_never_raise(data: bytes, cuts: list[int]) -> None:
    batches, _, decoder = decode(chunked(data, cuts))
    indexes = [b.index for b in batches]
    assert indexes == sorted(set(indexes))
    assert decoder.last_index == (indexes[-1] if indexes else 0)


def test_a_huge_line_is_decoded_once_it_is_complete() -> None:
    big = frame(9, "h" * 2_000_000)
    decoder = StreamDecoder()
    assert decoder.feed(big[:1_000_000]) == []
    assert decoder.pending() == 1_000_000
    [batch] = decoder.feed(big[1_000_000:] + b"\n")
    assert batch.index == 9 and decoder.pending() == 0
