"""Wire codec: exact round-trips, refusal of malformed bytes, and hot-path speed."""

from __future__ import annotations

import contextlib
import struct
import time

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from paddock.consensus.codec import (
    HEADER_SIZE,
    CodecError,
    decode_message,
    encode_message,
)
from paddock.consensus.types import Entry, EntryKind, Message, MsgType, Snapshot

U64 = st.integers(min_value=0, max_value=2**64 - 1)
U32 = st.integers(min_value=0, max_value=2**32 - 1)

entries_st = st.lists(
    st.builds(
        Entry,
        term=U64,
        index=U64,
        data=st.binary(max_size=64),
        kind=st.sampled_from(list(EntryKind)),
    ),
    max_size=8,
)
snapshot_st = st.none() | st.builds(
    Snapshot,
    index=U64,
    term=U64,
    members=st.lists(U32, max_size=5).map(tuple),
    data=st.binary(max_size=64),
)
message_st = st.builds(
    Message,
    type=st.sampled_from(list(MsgType)),
    src=U32,
    dst=U32,
    term=U64,
    index=U64,
    log_term=U64,
    commit=U64,
    reject=st.booleans(),
    hint=U64,
    entries=entries_st,
    snapshot=snapshot_st,
    context=U64,
)


@given(message_st)
def test_round_trip_is_exact(msg: Message) -> None:
    assert decode_message(encode_message(msg)) == msg


@given(message_st)
def test_round_trip_from_memoryview_and_bytearray(msg: Message) -> None:
    raw = encode_message(msg)
    assert decode_message(memoryview(raw)) == msg
    assert decode_message(bytearray(raw)) == msg


def test_heartbeat_is_just_a_header() -> None:
    msg = Message(MsgType.HEARTBEAT, 1, 2, term=7, commit=42, context=3)
    assert len(encode_message(msg)) == HEADER_SIZE


def test_decoded_types_are_enums_and_bytes() -> None:
    msg = Message(
        MsgType.APPEND,
        1,
        2,
        entries=[Entry(1, 1, b"x", EntryKind.NOOP)],
        snapshot=Snapshot(5, 2, (1, 2, 3), b"img"),
    )
    out = decode_message(bytearray(encode_message(msg)))
    assert out.type is MsgType.APPEND
    assert out.entries[0].kind is EntryKind.NOOP
    assert type(out.entries[0].data) is bytes
    assert out.snapshot is not None and type(out.snapshot.data) is bytes


@pytest.mark.parametrize(
    "bad",
    [
        Message(MsgType.APPEND, -1, 2),
        Message(MsgType.APPEND, 1, 2, term=2**64),
        Message(MsgType.APPEND, 1, 2, entries=[Entry(-1, 1)]),
    ],
)
def test_unencodable_values_raise_codec_error(bad: Message) -> None:
    with pytest.raises(CodecError):
        encode_message(bad)


def _valid() -> bytes:
    return encode_message(
        Message(
            MsgType.APPEND,
            1,
            2,
            term=3,
            entries=[Entry(3, 10, b"abc"), Entry(3, 11, b"")],
            snapshot=Snapshot(9, 3, (1, 2), b"s"),
        )
    )


def test_every_truncation_is_refused() -> None:
    raw = _valid()
    for cut in range(len(raw)):
        with pytest.raises(CodecError):
            decode_message(raw[:cut])


def test_trailing_bytes_unknown_type_kind_version_are_refused() -> None:
    raw = _valid()
    with pytest.raises(CodecError, match="trailing"):
        decode_message(raw + b"\0")
    with pytest.raises(CodecError, match="version"):
        decode_message(b"\x09" + raw[1:])
    with pytest.raises(CodecError, match="type"):
        decode_message(raw[:1] + b"\xff" + raw[2:])
    kind_at = HEADER_SIZE + 16
    with pytest.raises(CodecError, match="kind"):
        decode_message(raw[:kind_at] + b"\x07" + raw[kind_at + 1 :])


def test_absurd_entry_count_is_refused_without_allocating() -> None:
    head = bytearray(encode_message(Message(MsgType.APPEND, 1, 2)))
    struct.pack_into("<I", head, HEADER_SIZE - 4, 2**32 - 1)
    with pytest.raises(CodecError, match="entry count"):
        decode_message(bytes(head))


@settings(max_examples=500)
@given(st.binary(max_size=300))
def test_fuzz_random_bytes_only_raise_codec_error(raw: bytes) -> None:
    with contextlib.suppress(CodecError):
        decode_message(raw)


@settings(max_examples=500)
@given(message_st, st.data())
def test_fuzz_mutated_messages_only_raise_codec_error(msg: Message, data: st.DataObject) -> None:
    raw = bytearray(encode_message(msg))
    for _ in range(data.draw(st.integers(1, 4))):
        pos = data.draw(st.integers(0, len(raw) - 1))
        raw[pos] = data.draw(st.integers(0, 255))
    try:
        out = decode_message(bytes(raw))
    except CodecError:
        return
    assert isinstance(out, Message)


def test_append_of_500_kib_entries_is_fast() -> None:
    payload = bytes(range(256)) * 4
    msg = Message(
        MsgType.APPEND,
        1,
        2,
        term=5,
        index=999,
        log_term=5,
        commit=990,
        entries=[Entry(5, 1000 + i, payload) for i in range(500)],
    )
    raw = encode_message(msg)
    assert decode_message(raw) == msg
    rounds = 20
    start = time.perf_counter()
    for _ in range(rounds):
        decode_message(encode_message(msg))
    per_100 = (time.perf_counter() - start) / rounds / 5
    # Typically ~0.1 ms per 100 entries; the bound leaves room for a loaded CI box.
    assert per_100 < 1e-3, f"{per_100 * 1e3:.3f} ms per 100 entries"
