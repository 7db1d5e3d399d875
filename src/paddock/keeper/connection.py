"""Sans-IO ZooKeeper connections, server side and client side (h11 style).

Feed bytes with ``receive_data(data)`` (``b""`` means the peer closed), then
call ``next_event()`` until it returns :data:`NEED_DATA`.  Nothing here
touches a socket or a clock, so every chunking of the byte stream behaves the
same and tests are plain function calls.

Server side (:class:`ServerConnection`) yields, in order:

* :class:`FourLetterWord` -- only if the first four bytes of the connection
  are a known four-letter word (``ruok``, ``srvr``, ...); the server answers
  in text and closes, and the conversation is over.
* the :class:`~paddock.keeper.records.ConnectRequest` (first frame).
* :class:`Request` events, one per frame.

Bad input raises :class:`~paddock.keeper.jute.ProtocolError`; a declared
frame length above ``max_packet`` is refused as soon as its four bytes
arrive, so no allocation ever exceeds ``max_packet`` plus one read chunk.
"""

from __future__ import annotations

import enum
import struct
from dataclasses import dataclass

from paddock.keeper.codec import (
    REQUEST_DECODERS,
    RESPONSE_DECODERS,
    RequestRecord,
    ResponseRecord,
    encode_connect_request,
    encode_connect_response,
    encode_request,
    encode_response,
    encode_watch_event,
)
from paddock.keeper.codes import DEFAULT_MAX_PACKET, FOUR_LETTER_WORDS, NOTIFICATION_XID
from paddock.keeper.jute import INT, LONG, JuteReader, ProtocolError
from paddock.keeper.records import ConnectRequest
from paddock.keeper.responses import ConnectResponse, WatcherEvent

__all__ = [
    "CONNECTION_CLOSED",
    "NEED_DATA",
    "ClientConnection",
    "ConnectionState",
    "FourLetterWord",
    "Request",
    "Response",
    "ServerConnection",
    "WatchNotification",
]


class Sentinel(enum.Enum):
    NEED_DATA = "NEED_DATA"
    CONNECTION_CLOSED = "CONNECTION_CLOSED"

    def __repr__(self) -> str:
        return self.value


NEED_DATA = Sentinel.NEED_DATA
"""No complete event yet: feed more bytes."""
CONNECTION_CLOSED = Sentinel.CONNECTION_CLOSED
"""No event will ever come: the peer closed, or a four-letter word ended the
conversation."""


@dataclass(frozen=True, slots=True)
class FourLetterWord:
    """An admin command such as ``ruok``; ``argument`` is the trace mask of ``stmk``."""

    command: str
    argument: int | None = None


@dataclass(slots=True)
class Request:
    """One client request.  ``record`` is None for an opcode this codec does not
    know; ``payload`` then holds the raw body so the server can answer
    Unimplemented (or log it)."""

    xid: int
    opcode: int
    record: RequestRecord | None
    payload: bytes = b""


@dataclass(slots=True)
class Response:
    """One server reply, matched to the opcode the client sent with that xid.
    ``record`` is None when ``err`` is non-zero or the opcode has no body."""

    xid: int
    zxid: int
    err: int
    opcode: int
    record: ResponseRecord | None


@dataclass(slots=True)
class WatchNotification:
    zxid: int
    event: WatcherEvent


class ConnectionState(enum.Enum):
    AWAIT_FIRST_BYTES = "await-first-bytes"
    AWAIT_CONNECT = "await-connect"
    CONNECTED = "connected"
    CLOSED = "closed"


_unpack_int = INT.unpack_from
_unpack_header = struct.Struct(">ii").unpack_from
_unpack_reply = struct.Struct(">iqi").unpack_from
_FOUR_LETTER_BYTES = {w.encode("ascii"): w for w in FOUR_LETTER_WORDS}


class _FrameBuffer:
    """Accumulates bytes and cuts length-prefixed frames off the front.

    Frames are parsed in place in the received ``bytes`` (no per-frame copy):
    ``next_frame`` returns the buffer and the body's bounds.  Bytes that
    arrive while an incomplete frame is pending are queued and joined only
    once the frame (or its length prefix) can be completed, so a frame fed
    one byte at a time costs linear, not quadratic, copying.
    """

    __slots__ = ("_data", "_parts", "_parts_len", "_pos", "eof", "max_packet")

    def __init__(self, max_packet: int) -> None:
        if max_packet < 1:
            raise ValueError("max_packet must be positive")
        self._data = b""
        self._pos = 0
        self._parts: list[bytes] = []
        self._parts_len = 0
        self.eof = False
        self.max_packet = max_packet

    def feed(self, data: bytes) -> None:
        if not data:
            self.eof = True
            return
        if self.eof:
            return
        if type(data) is not bytes:
            data = bytes(data)  # a caller's reusable bytearray must not change under us
        if self._pos >= len(self._data) and not self._parts:
            self._data = data
            self._pos = 0
        else:
            self._parts.append(data)
            self._parts_len += len(data)

    def available(self) -> int:
        return len(self._data) - self._pos + self._parts_len

    def _gather(self, need: int) -> bool:
        """Make at least ``need`` bytes contiguous at ``_pos`` if they have arrived."""
        have = len(self._data) - self._pos
        if have >= need:
            return True
        if have + self._parts_len < need:
            return False
        self._parts.insert(0, self._data[self._pos :])
        self._data = b"".join(self._parts)
        self._pos = 0
        self._parts = []
        self._parts_len = 0
        return True

    def peek(self, n: int) -> bytes:
        self._gather(n)
        return self._data[self._pos : self._pos + n]

    def discard_all(self) -> None:
        self._data = b""
        self._pos = 0
        self._parts = []
        self._parts_len = 0

    def next_frame(self) -> tuple[bytes, int, int] | None:
        """The next complete frame as (buffer, body start, body end), or None
        if it has not all arrived.  Raises ProtocolError for a bad length."""
        data = self._data
        pos = self._pos
        if len(data) - pos < 4:
            if not self._gather(4):
                return None
            data = self._data
            pos = 0
        n = _unpack_int(data, pos)[0]
        if n < 0 or n > self.max_packet:
            raise ProtocolError(
                f"packet length {n} is negative or larger than max_packet={self.max_packet}"
            )
        stop = pos + 4 + n
        if stop > len(data):
            if not self._gather(4 + n):
                return None
            data = self._data
            pos = 0
            stop = 4 + n
        self._pos = stop
        return data, pos + 4, stop


class ServerConnection:
    """Server side of one client connection.

    ``client_sent_read_only`` records whether the client's ConnectRequest
    carried the readOnly byte; :meth:`encode_connect_response` echoes the
    field only then, as ``ProtocolManager`` does for pre-3.4 clients.
    """

    __slots__ = (
        "_error",
        "_frames",
        "allow_four_letter_words",
        "client_sent_read_only",
        "state",
    )

    def __init__(
        self, max_packet: int = DEFAULT_MAX_PACKET, allow_four_letter_words: bool = True
    ) -> None:
        self._frames = _FrameBuffer(max_packet)
        self._error: ProtocolError | None = None
        self.allow_four_letter_words = allow_four_letter_words
        self.client_sent_read_only = True
        self.state = (
            ConnectionState.AWAIT_FIRST_BYTES
            if allow_four_letter_words
            else ConnectionState.AWAIT_CONNECT
        )

    @property
    def max_packet(self) -> int:
        return self._frames.max_packet

    def receive_data(self, data: bytes) -> None:
        """Bytes read from the socket; ``b""`` when the peer closed its side."""
        self._frames.feed(data)

    def _fail(self, reason: str) -> ProtocolError:
        self.state = ConnectionState.CLOSED
        self._error = ProtocolError(reason)
        return self._error

    def next_event(
        self,
    ) -> Request | ConnectRequest | FourLetterWord | Sentinel:
        if self._error is not None:
            raise self._error
        state = self.state
        frames = self._frames
        if state is ConnectionState.CONNECTED:
            try:
                frame = frames.next_frame()
            except ProtocolError as e:
                raise self._fail(e.reason) from None
            if frame is None:
                return CONNECTION_CLOSED if frames.eof else NEED_DATA
            buf, start, stop = frame
            if stop - start < 8:
                raise self._fail(f"request of {stop - start} bytes has no room for its header")
            xid, opcode = _unpack_header(buf, start)
            decode = REQUEST_DECODERS.get(opcode)
            if decode is None:
                return Request(xid, opcode, None, buf[start + 8 : stop])
            try:
                return Request(xid, opcode, decode(JuteReader(buf, start + 8, stop)))
            except ProtocolError as e:
                raise ProtocolError(
                    f"malformed body of opcode {opcode}: {e.reason}",
                    xid=xid,
                    opcode=opcode,
                    fatal=False,
                ) from None
        if state is ConnectionState.AWAIT_FIRST_BYTES:
            if frames.available() < 4:
                return CONNECTION_CLOSED if frames.eof else NEED_DATA
            command = _FOUR_LETTER_BYTES.get(frames.peek(4))
            if command is None:
                self.state = ConnectionState.AWAIT_CONNECT
                return self.next_event()
            argument = None
            if command == "stmk":
                if frames.available() < 12:
                    return CONNECTION_CLOSED if frames.eof else NEED_DATA
                argument = int(LONG.unpack(frames.peek(12)[4:])[0])
            frames.discard_all()
            self.state = ConnectionState.CLOSED
            return FourLetterWord(command, argument)
        if state is ConnectionState.AWAIT_CONNECT:
            try:
                frame = frames.next_frame()
            except ProtocolError as e:
                raise self._fail(e.reason) from None
            if frame is None:
                return CONNECTION_CLOSED if frames.eof else NEED_DATA
            try:
                request = ConnectRequest.decode(JuteReader(*frame))
            except ProtocolError as e:
                raise self._fail(f"malformed ConnectRequest: {e.reason}") from None
            self.client_sent_read_only = request.read_only is not None
            self.state = ConnectionState.CONNECTED
            return request
        return CONNECTION_CLOSED

    # ------------------------------------------------------------------ encoding

    def encode_connect_response(
        self,
        time_out: int,
        session_id: int,
        passwd: bytes,
        read_only: bool = False,
        protocol_version: int = 0,
    ) -> bytes:
        """The framed handshake answer.  For an expired or unknown session send
        ``time_out=0, session_id=0, passwd=bytes(16)`` and close."""
        return encode_connect_response(
            ConnectResponse(
                protocol_version,
                time_out,
                session_id,
                passwd,
                read_only if self.client_sent_read_only else None,
            )
        )

    @staticmethod
    def encode_response(
        xid: int, zxid: int, err: int, record: ResponseRecord | None = None
    ) -> bytes:
        return encode_response(xid, zxid, err, record)

    @staticmethod
    def encode_watch_event(event_type: int, state: int, path: str | None, zxid: int = -1) -> bytes:
        return encode_watch_event(event_type, state, path, zxid)


class ClientConnection:
    """Client side of one connection: for tests and the load generator.

    Remembers the opcode of every request it encoded, by xid, to know how to
    decode the reply.  Special negative xids (ping -2, auth -4, setWatches -8)
    keep their opcode for the whole connection since several may be in flight.
    """

    __slots__ = ("_error", "_frames", "_pending", "state")

    def __init__(self, max_packet: int = DEFAULT_MAX_PACKET) -> None:
        self._frames = _FrameBuffer(max_packet)
        self._pending: dict[int, int] = {}
        self._error: ProtocolError | None = None
        self.state = ConnectionState.AWAIT_CONNECT

    def encode_connect_request(self, request: ConnectRequest) -> bytes:
        return encode_connect_request(request)

    def encode_request(self, xid: int, record: RequestRecord, opcode: int | None = None) -> bytes:
        op = record.OPCODE if opcode is None else opcode
        self._pending[xid] = op
        return encode_request(xid, record, op)

    @property
    def pending(self) -> int:
        """Requests with a non-negative xid still awaiting their reply."""
        return sum(1 for xid in self._pending if xid >= 0)

    def receive_data(self, data: bytes) -> None:
        self._frames.feed(data)

    def _fail(self, reason: str) -> ProtocolError:
        self.state = ConnectionState.CLOSED
        self._error = ProtocolError(reason)
        return self._error

    def next_event(
        self,
    ) -> Response | WatchNotification | ConnectResponse | Sentinel:
        if self._error is not None:
            raise self._error
        frames = self._frames
        try:
            frame = frames.next_frame()
        except ProtocolError as e:
            raise self._fail(e.reason) from None
        if frame is None:
            return CONNECTION_CLOSED if frames.eof else NEED_DATA
        buf, start, stop = frame
        if self.state is ConnectionState.AWAIT_CONNECT:
            try:
                response = ConnectResponse.decode(JuteReader(buf, start, stop))
            except ProtocolError as e:
                raise self._fail(f"malformed ConnectResponse: {e.reason}") from None
            self.state = ConnectionState.CONNECTED
            return response
        if stop - start < 16:
            raise self._fail(f"reply of {stop - start} bytes has no room for its header")
        xid, zxid, err = _unpack_reply(buf, start)
        reader = JuteReader(buf, start + 16, stop)
        try:
            if xid == NOTIFICATION_XID:
                return WatchNotification(zxid, WatcherEvent.decode(reader))
            opcode = self._pending.pop(xid, None) if xid >= 0 else self._pending.get(xid)
            if opcode is None:
                raise ProtocolError(f"reply for xid {xid}, which has no request outstanding")
            record = None
            if err == 0:
                decode = RESPONSE_DECODERS.get(opcode)
                if decode is not None:
                    record = decode(reader)
        except ProtocolError as e:
            raise self._fail(e.reason) from None
        return Response(xid, zxid, err, opcode, record)
