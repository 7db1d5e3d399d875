"""Jute records a ZooKeeper server sends: reply header, response bodies, events.

Same conventions as :mod:`paddock.keeper.records`.  Which body answers which
opcode (``FinalRequestProcessor``) is in :data:`RESPONSE_TYPES` in
:mod:`paddock.keeper.multi`; a reply with a non-zero ``err`` carries no body.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass, field
from typing import ClassVar, NamedTuple

from paddock.keeper.codes import OpCode
from paddock.keeper.jute import (
    INT,
    LONG,
    JuteReader,
    ProtocolError,
    pack_bool,
    pack_buffer,
    pack_ustring,
    pack_ustring_vector,
)
from paddock.keeper.wiretypes import (
    ACL,
    ClientInfo,
    Stat,
    pack_acl_list,
    read_acl_list,
    read_client_info,
)

_pack_int = INT.pack
_unpack_int = INT.unpack_from
_STAT = struct.Struct(">qqqqiiiqiiq")
_make_stat = Stat._make
_REPLY_HEADER = struct.Struct(">iqi")


class RequestHeader(NamedTuple):
    xid: int
    type: int

    def encode(self) -> bytes:
        return INT.pack(self.xid) + INT.pack(self.type)


class ReplyHeader(NamedTuple):
    xid: int
    zxid: int
    err: int

    @classmethod
    def decode(cls, r: JuteReader) -> ReplyHeader:
        p = r.pos
        if p + 16 > r.end:
            raise ProtocolError("truncated record: not enough bytes for ReplyHeader")
        r.pos = p + 16
        return cls._make(_REPLY_HEADER.unpack_from(r.buf, p))

    def encode(self) -> bytes:
        return _REPLY_HEADER.pack(self.xid, self.zxid, self.err)


@dataclass(slots=True)
class ConnectResponse:
    """Session handshake answer.  ``read_only`` None omits the trailing byte
    (for clients that did not send one).  ``time_out`` <= 0 tells the client
    its session expired."""

    protocol_version: int = 0
    time_out: int = 0
    session_id: int = 0
    passwd: bytes = b"\x00" * 16
    read_only: bool | None = False

    @classmethod
    def decode(cls, r: JuteReader) -> ConnectResponse:
        protocol_version = r.read_int()
        time_out = r.read_int()
        session_id = r.read_long()
        passwd = r.read_data()
        read_only = r.read_bool() if r.remaining > 0 else None
        return cls(protocol_version, time_out, session_id, passwd, read_only)

    def encode(self) -> bytes:
        out = (
            _pack_int(self.protocol_version)
            + _pack_int(self.time_out)
            + LONG.pack(self.session_id)
            + pack_buffer(self.passwd)
        )
        if self.read_only is not None:
            out += pack_bool(self.read_only)
        return out


@dataclass(slots=True)
class WatcherEvent:
    """A watch notification body; sent after ReplyHeader(xid=-1, zxid, err=0)."""

    type: int
    state: int
    path: str | None

    @classmethod
    def decode(cls, r: JuteReader) -> WatcherEvent:
        return cls(r.read_int(), r.read_int(), r.read_ustring())

    def encode(self) -> bytes:
        return _pack_int(self.type) + _pack_int(self.state) + pack_ustring(self.path)


@dataclass(slots=True)
class CreateResponse:
    """Answer to create (1); also the multi result of a create op."""

    MULTI_TYPE: ClassVar[int] = OpCode.CREATE
    path: str

    @classmethod
    def decode(cls, r: JuteReader) -> CreateResponse:
        return cls(r.read_path())

    def encode(self) -> bytes:
        return pack_ustring(self.path)


@dataclass(slots=True)
class Create2Response:
    """Answer to create2/createContainer/createTTL; multi result type create2."""

    MULTI_TYPE: ClassVar[int] = OpCode.CREATE2
    path: str
    stat: Stat

    @classmethod
    def decode(cls, r: JuteReader) -> Create2Response:
        return cls(r.read_path(), Stat.decode(r))

    def encode(self) -> bytes:
        return pack_ustring(self.path) + _STAT.pack(*self.stat)


@dataclass(slots=True)
class ExistsResponse:
    stat: Stat

    @classmethod
    def decode(cls, r: JuteReader) -> ExistsResponse:
        return cls(Stat.decode(r))

    def encode(self) -> bytes:
        return _STAT.pack(*self.stat)


@dataclass(slots=True)
class GetDataResponse:
    """Answer to getData and reconfig; multi-read result type getData.
    ``data`` None or :data:`~paddock.keeper.jute.NULL_BUFFER` is sent as a
    null buffer (length -1); a client decodes that as None."""

    MULTI_TYPE: ClassVar[int] = OpCode.GET_DATA
    data: bytes | None
    stat: Stat

    @classmethod
    def decode(cls, r: JuteReader) -> GetDataResponse:
        buf = r.buf
        p = r.pos
        end = r.end
        if p + 4 > end:
            raise ProtocolError("truncated record: not enough bytes for buffer length")
        n = _unpack_int(buf, p)[0]
        p += 4
        data: bytes | None
        if n >= 0:
            if n + 68 > end - p:
                raise ProtocolError(f"buffer length {n} exceeds the {end - p} bytes left")
            data = buf[p : p + n]
            p += n
        elif n == -1:
            data = None
            if p + 68 > end:
                raise ProtocolError("truncated record: not enough bytes for Stat")
        else:
            raise ProtocolError(f"negative buffer length {n}")
        r.pos = p + 68
        return cls(data, _make_stat(_STAT.unpack_from(buf, p)))

    def encode(self) -> bytes:
        return pack_buffer(self.data) + _STAT.pack(*self.stat)


@dataclass(slots=True)
class SetDataResponse:
    """Answer to setData and to a standalone check; multi result type setData."""

    MULTI_TYPE: ClassVar[int] = OpCode.SET_DATA
    stat: Stat

    @classmethod
    def decode(cls, r: JuteReader) -> SetDataResponse:
        return cls(Stat.decode(r))

    def encode(self) -> bytes:
        return _STAT.pack(*self.stat)


@dataclass(slots=True)
class GetACLResponse:
    acl: list[ACL]
    stat: Stat

    @classmethod
    def decode(cls, r: JuteReader) -> GetACLResponse:
        return cls(read_acl_list(r), Stat.decode(r))

    def encode(self) -> bytes:
        return pack_acl_list(self.acl) + _STAT.pack(*self.stat)


@dataclass(slots=True)
class SetACLResponse:
    stat: Stat

    @classmethod
    def decode(cls, r: JuteReader) -> SetACLResponse:
        return cls(Stat.decode(r))

    def encode(self) -> bytes:
        return _STAT.pack(*self.stat)


@dataclass(slots=True)
class GetChildrenResponse:
    """Answer to getChildren (8); multi-read result type getChildren."""

    MULTI_TYPE: ClassVar[int] = OpCode.GET_CHILDREN
    children: list[str] = field(default_factory=list)

    @classmethod
    def decode(cls, r: JuteReader) -> GetChildrenResponse:
        return cls(r.read_ustring_vector())

    def encode(self) -> bytes:
        return pack_ustring_vector(self.children)


@dataclass(slots=True)
class GetChildren2Response:
    children: list[str]
    stat: Stat

    @classmethod
    def decode(cls, r: JuteReader) -> GetChildren2Response:
        return cls(r.read_ustring_vector(), Stat.decode(r))

    def encode(self) -> bytes:
        return pack_ustring_vector(self.children) + _STAT.pack(*self.stat)


@dataclass(slots=True)
class SyncResponse:
    path: str

    @classmethod
    def decode(cls, r: JuteReader) -> SyncResponse:
        return cls(r.read_path())

    def encode(self) -> bytes:
        return pack_ustring(self.path)


@dataclass(slots=True)
class ErrorResponse:
    """A bare error code; addWatch answers ErrorResponse(0) on success."""

    err: int = 0

    @classmethod
    def decode(cls, r: JuteReader) -> ErrorResponse:
        return cls(r.read_int())

    def encode(self) -> bytes:
        return _pack_int(self.err)


@dataclass(slots=True)
class GetAllChildrenNumberResponse:
    total_number: int

    @classmethod
    def decode(cls, r: JuteReader) -> GetAllChildrenNumberResponse:
        return cls(r.read_int())

    def encode(self) -> bytes:
        return _pack_int(self.total_number)


@dataclass(slots=True)
class GetEphemeralsResponse:
    ephemerals: list[str] = field(default_factory=list)

    @classmethod
    def decode(cls, r: JuteReader) -> GetEphemeralsResponse:
        return cls(r.read_ustring_vector())

    def encode(self) -> bytes:
        return pack_ustring_vector(self.ephemerals)


@dataclass(slots=True)
class WhoAmIResponse:
    client_info: list[ClientInfo] = field(default_factory=list)

    @classmethod
    def decode(cls, r: JuteReader) -> WhoAmIResponse:
        return cls(r.read_vector(read_client_info, 8))

    def encode(self) -> bytes:
        parts = [_pack_int(len(self.client_info))]
        for info in self.client_info:
            parts.append(pack_ustring(info.auth_scheme))
            parts.append(pack_ustring(info.user))
        return b"".join(parts)


@dataclass(slots=True)
class SetSASLResponse:
    token: bytes

    @classmethod
    def decode(cls, r: JuteReader) -> SetSASLResponse:
        return cls(r.read_data())

    def encode(self) -> bytes:
        return pack_buffer(self.token)
