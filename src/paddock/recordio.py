"""RecordIO framing as Mesos uses it for streaming HTTP responses.

Each record is ``<decimal length>\\n<bytes>`` (``docs/recordio.md`` in apache/mesos),
so a reader can split a chunked HTTP body into records without knowing how the
transport cut it into chunks. This module is sans-IO: :func:`encode` frames one
record, :class:`RecordIODecoder` accepts bytes in any pieces and yields whole
records. Both the master (scheduler and agent streams) and clients use it.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

__all__ = [
    "MAX_RECORD_BYTES",
    "RecordIODecoder",
    "RecordIOError",
    "encode",
    "encode_json",
]

#: Refuse records larger than this (a corrupt or hostile length prefix must not
#: make a reader buffer without bound).
MAX_RECORD_BYTES = 256 * 1024 * 1024

#: A length prefix longer than this many digits cannot be valid.
_MAX_PREFIX_DIGITS = len(str(MAX_RECORD_BYTES))


class RecordIOError(ValueError):
    """The byte stream is not valid RecordIO (bad or oversized length prefix)."""


def encode(record: bytes) -> bytes:
    """Frame one record: its decimal byte length, a newline, the bytes."""
    return b"%d\n" % len(record) + record


def encode_json(obj: Any) -> bytes:
    """Frame one JSON object (compact separators, UTF-8)."""
    return encode(json.dumps(obj, separators=(",", ":")).encode())


class RecordIODecoder:
    """Incremental decoder: feed bytes as they arrive, get complete records back.

    After an error the decoder stays failed (the stream position is lost, so
    later bytes cannot be framed reliably).
    """

    def __init__(self, max_record_bytes: int = MAX_RECORD_BYTES) -> None:
        self._buf = bytearray()
        self._need: int | None = None  # length of the record being read, once known
        self._max = max_record_bytes
        self._failed: RecordIOError | None = None

    def feed(self, data: bytes) -> list[bytes]:
        """Add bytes; return every record completed by them (possibly none)."""
        return list(self.iter_feed(data))

    def iter_feed(self, data: bytes) -> Iterator[bytes]:
        if self._failed is not None:
            raise self._failed
        self._buf += data
        while True:
            if self._need is None:
                nl = self._buf.find(b"\n", 0, _MAX_PREFIX_DIGITS + 2)
                if nl < 0:
                    if len(self._buf) > _MAX_PREFIX_DIGITS + 1:
                        self._fail("length prefix too long or missing newline")
                    return
                prefix = bytes(self._buf[:nl]).strip(b"\r ")
                if not prefix.isdigit():
                    self._fail(f"bad length prefix {prefix[:20]!r}")
                length = int(prefix)
                if length > self._max:
                    self._fail(f"record of {length} bytes exceeds limit {self._max}")
                del self._buf[: nl + 1]
                self._need = length
            if len(self._buf) < self._need:
                return
            record = bytes(self._buf[: self._need])
            del self._buf[: self._need]
            self._need = None
            yield record

    def _fail(self, why: str) -> None:
        self._failed = RecordIOError(why)
        raise self._failed

    @property
    def buffered(self) -> int:
        """Bytes held that do not yet form a whole record."""
        return len(self._buf)

    def at_boundary(self) -> bool:
        """True when no partial record is pending (a clean place for the stream to end)."""
        return not self._buf and self._need is None
