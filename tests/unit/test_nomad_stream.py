"""The event stream decoder: heartbeats, chunking, parting text, garbage, duplicate indexes."""

from __future__ import annotations

import itertools
import json
from pathlib import Path

from hypothesis import given
from hypothesis import strategies as st

from controller.nomad.stream import EventBatch, StreamDecoder

SAMPLE = (Path(__file__).parents[1] / "fixtures" / "nomad" / "event_stream.ndjson").read_bytes()


def frame(index: int, *keys: str, topic: str = "Job") -> bytes:
    events = [
        {
            "Topic": topic,
            "Type": "JobRegistered",
            "Key": k,
            "Namespace": "default",
            "FilterKeys": None,
            "Index": index,
            "Payload": {"Job": {"ID": k}},
        }
        for k in keys
    ]
    return json.dumps({"Index": index, "Events": events}).encode() + b"\n"


def test_sample_stream_yields_typed_batches_and_counts_heartbeats() -> None:
    dec = StreamDecoder()
    batches = dec.feed(SAMPLE)
    assert [b.index for b in batches] == [12, 14]
    job, evaluation = batches[0].events
    assert (job.topic, job.type, job.key, job.namespace) == (
        "Job",
        "JobRegistered",
        "web",
        "default",
    )
    assert job.filter_keys == ()
    assert job.payload["Job"]["Meta"] == {"mesh.tls": "true"}
    assert evaluation.filter_keys == ("web", "")
    alloc = batches[1].events[0]
    assert alloc.filter_keys[0] == "web"
    assert "Job" not in alloc.payload["Allocation"]
    assert dec.heartbeats == 2
    assert dec.malformed == 0
    assert dec.last_index == 14


def test_heartbeats_only_produce_nothing() -> None:
    dec = StreamDecoder()
    assert dec.feed(b"{}\n{}\n\n{}\n") == []
    assert dec.heartbeats == 3
    assert dec.last_index == 0


@given(st.lists(st.integers(min_value=0, max_value=len(SAMPLE)), max_size=8))
def test_any_chunking_gives_the_same_batches(cuts: list[int]) -> None:
    whole = StreamDecoder().feed(SAMPLE)
    dec = StreamDecoder()
    got: list[EventBatch] = []
    bounds = [0, *sorted(cuts), len(SAMPLE)]
    for a, b in itertools.pairwise(bounds):
        got.extend(dec.feed(SAMPLE[a:b]))
    assert got == whole
    assert dec.pending() == 0


def test_a_frame_split_mid_line_waits_for_its_newline() -> None:
    dec = StreamDecoder()
    data = frame(5, "api")
    assert dec.feed(data[:10]) == []
    assert dec.pending() == 10
    batches = dec.feed(data[10:])
    assert [b.index for b in batches] == [5]


def test_trailing_raw_error_text_without_newline_is_returned_not_raised() -> None:
    dec = StreamDecoder()
    dec.feed(b"{}\n" + frame(7, "web"))
    parting_text = b"subscription closed by server, client should resubscribe"
    assert dec.feed(parting_text) == []
    batches, parting = dec.finish()
    assert batches == []
    assert parting == parting_text.decode()
    assert dec.last_index == 7
    assert dec.malformed == 0


def test_a_complete_trailing_frame_without_newline_is_still_used() -> None:
    dec = StreamDecoder()
    assert dec.feed(frame(9, "web").rstrip(b"\n")) == []
    batches, parting = dec.finish()
    assert parting is None
    assert [b.index for b in batches] == [9]


def test_malformed_lines_are_counted_and_skipped() -> None:
    dec = StreamDecoder()
    data = (
        frame(3, "a")
        + b'{"Index":4,"Events":[{"Topic":"Job"\n'  # truncated JSON
        + b"[1,2,3]\n"  # JSON, but not a frame
        + b'{"Index":"5","Events":[]}\n'  # wrong type
        + b'{"Index":6,"Events":[42,{"Topic":"Job","Key":"b","Index":6}]}\n'  # one bad event
        + frame(7, "c")
    )
    batches = dec.feed(data)
    assert [b.index for b in batches] == [3, 6, 7]
    assert [e.key for e in batches[1].events] == ["b"]
    assert dec.malformed == 4
    assert dec.last_index == 7


def test_duplicate_and_old_indexes_are_dropped() -> None:
    dec = StreamDecoder()
    dec.feed(frame(10, "a") + frame(11, "b"))
    # A resumed subscription replays the frame at the resume index and older buffered ones.
    batches = dec.feed(frame(11, "b") + frame(9, "old") + frame(12, "c") + frame(12, "c"))
    assert [b.index for b in batches] == [12]
    assert dec.dropped == 3
    assert dec.last_index == 12


def test_resume_point_drops_frames_up_to_the_listed_index() -> None:
    dec = StreamDecoder(last_index=20)
    batches = dec.feed(frame(20, "listed") + frame(21, "new"))
    assert [b.index for b in batches] == [21]
    assert dec.last_index == 21


def test_garbage_never_raises() -> None:
    dec = StreamDecoder()
    junk = b"\x00\xff\xfe{{{\n\xc3\x28\n" + b"}" * 50 + b"\n" + b"null\n" + b'"str"\n'
    assert dec.feed(junk) == []
    assert dec.malformed == 5
    assert dec.finish() == ([], None)
