"""A tiny hand-written subset of the ZooKeeper wire protocol (jute encoding).

Enough for readiness probes and the load generator of the keeper-vs-ZooKeeper
benchmark: session handshake, create, getData, setData, exists, ping,
closeSession, and four-letter words. Written from the record definitions in
zookeeper.jute; the full codec lives in ``paddock.keeper``. Pure functions over
bytes, plus two blocking socket helpers for probes.
"""

from __future__ import annotations

import socket
import struct
from dataclasses import dataclass

OP_CREATE = 1
OP_DELETE = 2
OP_EXISTS = 3
OP_GET_DATA = 4
OP_SET_DATA = 5
OP_PING = 11
OP_CLOSE_SESSION = -11

XID_NOTIFICATION = -1
XID_PING = -2

ERR_OK = 0
ERR_NO_NODE = -101
ERR_NODE_EXISTS = -110

OPEN_ACL_UNSAFE = ((31, "world", "anyone"),)

_INT = struct.Struct(">i")
_LONG = struct.Struct(">q")
_REPLY_HEADER = struct.Struct(">iqi")
STAT = struct.Struct(">qqqqiiiqiiq")
STAT_FIELDS = (
    "czxid",
    "mzxid",
    "ctime",
    "mtime",
    "version",
    "cversion",
    "aversion",
    "ephemeralOwner",
    "dataLength",
    "numChildren",
    "pzxid",
)


@dataclass(frozen=True)
class Reply:
    """A decoded reply header plus the undecoded body that follows it."""

    xid: int
    zxid: int
    err: int
    body: bytes


@dataclass(frozen=True)
class Session:
    """What a ConnectResponse carries."""

    protocol_version: int
    timeout_ms: int
    session_id: int
    password: bytes


def _buffer(data: bytes | None) -> bytes:
    if data is None:
        return _INT.pack(-1)
    return _INT.pack(len(data)) + data


def _string(text: str) -> bytes:
    return _buffer(text.encode())


def frame(payload: bytes) -> bytes:
    """Prefix ``payload`` with its 4-byte big-endian length."""
    return _INT.pack(len(payload)) + payload


def connect_request(timeout_ms: int = 10_000, session_id: int = 0, password: bytes = b"") -> bytes:
    """A framed ConnectRequest for a new (or resumed) session."""
    body = (
        _INT.pack(0)
        + _LONG.pack(0)
        + _INT.pack(timeout_ms)
        + _LONG.pack(session_id)
        + _buffer(password or bytes(16))
        + b"\x00"
    )
    return frame(body)


def parse_connect_response(payload: bytes) -> Session:
    """Decode a ConnectResponse (the readOnly flag, if present, is ignored)."""
    version, timeout = struct.unpack_from(">ii", payload, 0)
    (session_id,) = _LONG.unpack_from(payload, 8)
    (plen,) = _INT.unpack_from(payload, 16)
    password = payload[20 : 20 + max(plen, 0)]
    return Session(version, timeout, session_id, password)


def get_data_request(xid: int, path: str, watch: bool = False) -> bytes:
    return frame(_INT.pack(xid) + _INT.pack(OP_GET_DATA) + _string(path) + bytes([watch]))


def exists_request(xid: int, path: str, watch: bool = False) -> bytes:
    return frame(_INT.pack(xid) + _INT.pack(OP_EXISTS) + _string(path) + bytes([watch]))


def set_data_request(xid: int, path: str, data: bytes, version: int = -1) -> bytes:
    body = _INT.pack(xid) + _INT.pack(OP_SET_DATA) + _string(path) + _buffer(data)
    return frame(body + _INT.pack(version))


def create_request(xid: int, path: str, data: bytes, flags: int = 0) -> bytes:
    acl = _INT.pack(len(OPEN_ACL_UNSAFE)) + b"".join(
        _INT.pack(perms) + _string(scheme) + _string(ident)
        for perms, scheme, ident in OPEN_ACL_UNSAFE
    )
    body = _INT.pack(xid) + _INT.pack(OP_CREATE) + _string(path) + _buffer(data) + acl
    return frame(body + _INT.pack(flags))


def delete_request(xid: int, path: str, version: int = -1) -> bytes:
    return frame(_INT.pack(xid) + _INT.pack(OP_DELETE) + _string(path) + _INT.pack(version))


def ping_request() -> bytes:
    return frame(_INT.pack(XID_PING) + _INT.pack(OP_PING))


def close_session_request(xid: int) -> bytes:
    return frame(_INT.pack(xid) + _INT.pack(OP_CLOSE_SESSION))


def parse_reply(payload: bytes) -> Reply:
    """Split a reply packet (without its length prefix) into header and body."""
    xid, zxid, err = _REPLY_HEADER.unpack_from(payload, 0)
    return Reply(xid, zxid, err, payload[_REPLY_HEADER.size :])


def parse_stat(body: bytes, offset: int = 0) -> dict[str, int]:
    """Decode a Stat record at ``offset``."""
    fields = STAT.unpack_from(body, offset)
    return dict(zip(STAT_FIELDS, fields, strict=True))


class FrameReader:
    """Incremental splitter of a byte stream into length-prefixed packets."""

    def __init__(self, max_packet: int = 16 * 1024 * 1024) -> None:
        self._buf = bytearray()
        self._max = max_packet

    def feed(self, data: bytes) -> list[bytes]:
        self._buf += data
        out: list[bytes] = []
        while len(self._buf) >= 4:
            (n,) = _INT.unpack_from(self._buf, 0)
            if n < 0 or n > self._max:
                raise ValueError(f"bad packet length {n}")
            if len(self._buf) < 4 + n:
                break
            out.append(bytes(self._buf[4 : 4 + n]))
            del self._buf[: 4 + n]
        return out


def four_letter_word(host: str, port: int, word: str, timeout: float = 2.0) -> str:
    """Send a four-letter word and return the whole text reply ("" if refused)."""
    with socket.create_connection((host, port), timeout=timeout) as sock:
        sock.sendall(word.encode())
        chunks: list[bytes] = []
        while True:
            try:
                chunk = sock.recv(65536)
            except ConnectionResetError:
                break
            if not chunk:
                break
            chunks.append(chunk)
    return b"".join(chunks).decode(errors="replace")


def probe_session(host: str, port: int, timeout: float = 2.0) -> bool:
    """True if the server at host:port grants a session (then closes it)."""
    with socket.create_connection((host, port), timeout=timeout) as sock:
        sock.sendall(connect_request(timeout_ms=4000))
        reader = FrameReader()
        while True:
            chunk = sock.recv(65536)
            if not chunk:
                return False
            packets = reader.feed(chunk)
            if packets:
                session = parse_connect_response(packets[0])
                if session.timeout_ms <= 0:
                    return False
                sock.sendall(close_session_request(1))
                return True
