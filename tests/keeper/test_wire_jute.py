"""Jute primitives: encodings and bounds checks."""

import struct

import pytest

from paddock.keeper import jute
from paddock.keeper.jute import JuteReader, ProtocolError


def test_pack_primitives():
    assert jute.pack_int(-2) == b"\xff\xff\xff\xfe"
    assert jute.pack_long(1) == b"\x00" * 7 + b"\x01"
    assert jute.pack_bool(True) == b"\x01" and jute.pack_bool(False) == b"\x00"
    assert jute.pack_buffer(None) == b"\xff\xff\xff\xff"
    assert jute.pack_buffer(b"") == b"\x00\x00\x00\x00"
    assert jute.pack_ustring("é") == b"\x00\x00\x00\x02\xc3\xa9"
    assert jute.pack_ustring(None) == b"\xff\xff\xff\xff"
    assert jute.pack_ustring_vector(None) == b"\xff\xff\xff\xff"
    assert jute.pack_ustring_vector(["a"]) == b"\x00\x00\x00\x01\x00\x00\x00\x01a"


def test_lone_surrogate_encodes_as_question_mark_like_java():
    assert jute.pack_ustring("a\ud800") == b"\x00\x00\x00\x02a?"


def test_reader_reads_in_order():
    raw = (
        jute.pack_int(7)
        + jute.pack_long(-9)
        + jute.pack_bool(True)
        + jute.pack_buffer(b"xy")
        + jute.pack_buffer(None)
        + jute.pack_ustring("s")
        + jute.pack_ustring(None)
        + jute.pack_ustring_vector(["p", "q"])
    )
    r = JuteReader(raw)
    assert r.read_int() == 7
    assert r.read_long() == -9
    assert r.read_bool() is True
    assert r.read_buffer() == b"xy"
    assert r.read_buffer() is None
    assert r.read_ustring() == "s"
    assert r.read_ustring() is None
    assert r.read_ustring_vector() == ["p", "q"]
    assert r.remaining == 0


@pytest.mark.parametrize(
    ("raw", "method"),
    [
        (b"\x00\x00\x00", "read_int"),
        (b"\x00" * 7, "read_long"),
        (b"", "read_bool"),
        (struct.pack(">i", 5) + b"abcd", "read_buffer"),
        (struct.pack(">i", 5) + b"abcd", "read_ustring"),
        (struct.pack(">i", 5) + b"abcd", "read_path"),
        (struct.pack(">i", 5) + b"abcd", "read_data"),
        (struct.pack(">i", -2), "read_buffer"),
        (struct.pack(">i", -7), "read_ustring"),
        (struct.pack(">i", 2) + struct.pack(">i", 1) + b"a", "read_ustring_vector"),
        (struct.pack(">i", 1) + struct.pack(">i", -3), "read_ustring_vector"),
        (struct.pack(">i", 1) + struct.pack(">i", 9) + b"a", "read_ustring_vector"),
        (struct.pack(">i", -5), "read_ustring_vector"),
        (struct.pack(">i", 0x7FFFFFFF), "read_ustring_vector"),
    ],
)
def test_reader_bounds(raw, method):
    with pytest.raises(ProtocolError):
        getattr(JuteReader(raw), method)()


def test_reader_respects_end_not_buffer_length():
    raw = jute.pack_int(1) + jute.pack_int(2)
    r = JuteReader(raw, 0, 4)
    assert r.read_int() == 1
    with pytest.raises(ProtocolError):
        r.read_int()


def test_null_vector_reads_as_empty():
    assert JuteReader(jute.pack_int(-1)).read_ustring_vector() == []


def test_protocol_error_fields():
    e = ProtocolError("bad", xid=3, opcode=4, fatal=False)
    assert (e.reason, e.xid, e.opcode, e.fatal) == ("bad", 3, 4, False)
    assert "bad" in repr(e) and str(e) == "bad"
