"""Bad input for the RecordIO decoder (the framing of every scheduler, agent and operator
event stream): arbitrary bytes in arbitrary chunks either decode or raise
``RecordIOError`` — nothing else, no hang — and the decoder never holds more than one
record plus a length prefix.

Larger runs: ``PADDOCK_FUZZ_EXAMPLES=20000 .venv/bin/python -m pytest
tests/master/test_fuzz_recordio.py --hypothesis-show-statistics``.
"""

from __future__ import annotations

import os

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from paddock.recordio import MAX_RECORD_BYTES, RecordIODecoder, RecordIOError, encode

EXAMPLES = int(os.environ.get("PADDOCK_FUZZ_EXAMPLES", "400"))
FUZZ = settings(max_examples=EXAMPLES, deadline=None, suppress_health_check=[HealthCheck.too_slow])
LIMIT = 64


def feed_all(raw: bytes, cuts: list[int]) -> tuple[list[bytes], RecordIOError | None]:
    """Feeds ``raw`` cut at ``cuts``; the records and the error that ended decoding."""
    dec = RecordIODecoder(max_record_bytes=LIMIT)
    out: list[bytes] = []
    prev = 0
    for c in [*sorted(cuts), len(raw)]:
        try:
            out += dec.feed(raw[prev:c])
        except RecordIOError as exc:
            # Failed for good: later bytes get the same error.
            try:
                dec.feed(b"1\nx")
            except RecordIOError as again:
                assert again is exc
            else:
                raise AssertionError("decoder recovered after an error") from None
            return out, exc
        prev = c
        assert dec.buffered <= LIMIT + len(str(MAX_RECORD_BYTES)) + 2
    return out, None


@FUZZ
@given(st.binary(max_size=300), st.lists(st.integers(0, 300), max_size=8))
def test_random_bytes(raw: bytes, cuts: list[int]) -> None:
    records, _ = feed_all(raw, [c for c in cuts if c <= len(raw)])
    assert all(len(r) <= LIMIT for r in records)
    # Whatever was decoded is a prefix of the input, framed.
    framed = b"".join(encode(r) for r in records)
    assert len(framed) <= len(raw)


@FUZZ
@given(st.lists(st.binary(max_size=LIMIT), max_size=6), st.data())
def test_mutated_streams(records: list[bytes], data: st.DataObject) -> None:
    raw = bytearray(b"".join(encode(r) for r in records))
    if raw:
        for _ in range(data.draw(st.integers(1, 3))):
            pos = data.draw(st.integers(0, len(raw) - 1))
            raw[pos] = data.draw(st.sampled_from(b"0123456789\n\r -x\x00\xff"))
    cuts = data.draw(st.lists(st.integers(0, len(raw)), max_size=6))
    out, _ = feed_all(bytes(raw), cuts)
    assert all(len(r) <= LIMIT for r in out)


@FUZZ
@given(st.integers(LIMIT + 1, 10**40), st.lists(st.integers(0, 50), max_size=4))
def test_oversized_length_prefix_is_refused_before_buffering(length: int, cuts: list[int]) -> None:
    raw = b"%d\n" % length + b"x" * 50
    out, err = feed_all(raw, cuts)
    assert out == [] and err is not None
