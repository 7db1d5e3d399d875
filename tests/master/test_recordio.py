import json

import pytest
from hypothesis import given
from hypothesis import strategies as st

from paddock.recordio import RecordIODecoder, RecordIOError, encode, encode_json


def test_encode_is_length_newline_bytes():
    assert encode(b"hello") == b"5\nhello"
    assert encode(b"") == b"0\n"
    assert encode_json({"type": "HEARTBEAT"}) == b'20\n{"type":"HEARTBEAT"}'


@given(st.lists(st.binary(max_size=300), max_size=20), st.data())
def test_roundtrip_any_chunking(records, data):
    stream = b"".join(encode(r) for r in records)
    cuts = sorted(data.draw(st.lists(st.integers(0, len(stream)), max_size=10)))
    dec = RecordIODecoder()
    out = []
    prev = 0
    for c in [*cuts, len(stream)]:
        out += dec.feed(stream[prev:c])
        prev = c
    assert out == records
    assert dec.at_boundary()


def test_pymesos_style_json_records():
    dec = RecordIODecoder()
    blob = encode_json({"a": "ü"}) + encode_json({"b": 1})
    assert [json.loads(r) for r in dec.feed(blob)] == [{"a": "ü"}, {"b": 1}]


@pytest.mark.parametrize("bad", [b"x\nabc", b"-1\n", b"99999999999999999999999999"])
def test_bad_prefix_is_an_error_and_sticks(bad):
    dec = RecordIODecoder()
    with pytest.raises(RecordIOError):
        dec.feed(bad)
    with pytest.raises(RecordIOError):
        dec.feed(b"1\na")


def test_oversized_record_refused():
    dec = RecordIODecoder(max_record_bytes=10)
    with pytest.raises(RecordIOError):
        dec.feed(b"11\n")
