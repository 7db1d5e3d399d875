"""Jute records a ZooKeeper client sends: the request bodies.

Each record is a slotted dataclass (or NamedTuple for small immutable values)
with ``decode(reader)`` and ``encode() -> bytes``; field order and types follow
``zookeeper.jute``.  Null strings/buffers/vectors in request bodies are read
as ""/b""/[] so servers get plain types; path validation then rejects "".

The getData/exists/setData decoders are written out against the reader's
buffer with precompiled structs, because they dominate real workloads.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import ClassVar

from paddock.keeper.codes import OpCode
from paddock.keeper.jute import (
    INT,
    LONG,
    NULL_BUFFER,
    JuteReader,
    ProtocolError,
    pack_bool,
    pack_buffer,
    pack_ustring,
    pack_ustring_vector,
)
from paddock.keeper.wiretypes import (
    ACL,
    pack_acl_list,
    read_acl_list,
)
from paddock.keeper.wiretypes import (
    ANYONE_ID_UNSAFE as ANYONE_ID_UNSAFE,
)
from paddock.keeper.wiretypes import (
    AUTH_IDS as AUTH_IDS,
)
from paddock.keeper.wiretypes import (
    CREATOR_ALL_ACL as CREATOR_ALL_ACL,
)
from paddock.keeper.wiretypes import (
    OPEN_ACL_UNSAFE as OPEN_ACL_UNSAFE,
)
from paddock.keeper.wiretypes import (
    READ_ACL_UNSAFE as READ_ACL_UNSAFE,
)
from paddock.keeper.wiretypes import (
    STAT_SIZE as STAT_SIZE,
)
from paddock.keeper.wiretypes import (
    ClientInfo as ClientInfo,
)
from paddock.keeper.wiretypes import (
    Id as Id,
)
from paddock.keeper.wiretypes import (
    Stat as Stat,
)
from paddock.keeper.wiretypes import (
    read_acl as read_acl,
)
from paddock.keeper.wiretypes import (
    read_client_info as read_client_info,
)

_pack_int = INT.pack
_unpack_int = INT.unpack_from


def _read_path_watch(r: JuteReader) -> tuple[str, bool]:
    """ustring path + boolean, the layout of getData/exists/getChildren requests."""
    buf = r.buf
    p = r.pos
    end = r.end
    if p + 4 > end:
        raise ProtocolError("truncated record: not enough bytes for ustring length")
    n = _unpack_int(buf, p)[0]
    p += 4
    if n > 0:
        if n >= end - p:  # also need the watch byte
            raise ProtocolError(f"ustring length {n} exceeds the {end - p} bytes left")
        path = buf[p : p + n].decode("utf-8", "replace")
        p += n
    elif n < -1:
        raise ProtocolError(f"negative ustring length {n}")
    else:
        path = ""
        if p >= end:
            raise ProtocolError("truncated record: not enough bytes for boolean")
    r.pos = p + 1
    return path, buf[p] != 0


# --------------------------------------------------------------------------- connect


@dataclass(slots=True)
class ConnectRequest:
    """The first frame of a session.  ``read_only`` is None when the client
    (ZooKeeper 3.3 or older) did not send the trailing readOnly byte; the
    server must then also omit it from its ConnectResponse."""

    protocol_version: int = 0
    last_zxid_seen: int = 0
    time_out: int = 30000
    session_id: int = 0
    passwd: bytes = b"\x00" * 16
    read_only: bool | None = False

    @classmethod
    def decode(cls, r: JuteReader) -> ConnectRequest:
        protocol_version = r.read_int()
        last_zxid_seen = r.read_long()
        time_out = r.read_int()
        session_id = r.read_long()
        passwd = r.read_data()
        read_only = r.read_bool() if r.remaining > 0 else None
        return cls(protocol_version, last_zxid_seen, time_out, session_id, passwd, read_only)

    def encode(self) -> bytes:
        out = (
            _pack_int(self.protocol_version)
            + LONG.pack(self.last_zxid_seen)
            + _pack_int(self.time_out)
            + LONG.pack(self.session_id)
            + pack_buffer(self.passwd)
        )
        if self.read_only is not None:
            out += pack_bool(self.read_only)
        return out


# --------------------------------------------------------------------------- requests


@dataclass(slots=True)
class CreateRequest:
    """Body of create (1), create2 (15) and createContainer (19)."""

    OPCODE: ClassVar[int] = OpCode.CREATE
    path: str
    data: bytes = b""
    acl: list[ACL] = field(default_factory=list)
    flags: int = 0

    @classmethod
    def decode(cls, r: JuteReader) -> CreateRequest:
        return cls(r.read_path(), r.read_data(), read_acl_list(r), r.read_int())

    def encode(self) -> bytes:
        return (
            pack_ustring(self.path)
            + pack_buffer(self.data)
            + pack_acl_list(self.acl)
            + _pack_int(self.flags)
        )


@dataclass(slots=True)
class CreateTTLRequest:
    OPCODE: ClassVar[int] = OpCode.CREATE_TTL
    path: str
    data: bytes = b""
    acl: list[ACL] = field(default_factory=list)
    flags: int = 5
    ttl: int = 0

    @classmethod
    def decode(cls, r: JuteReader) -> CreateTTLRequest:
        return cls(r.read_path(), r.read_data(), read_acl_list(r), r.read_int(), r.read_long())

    def encode(self) -> bytes:
        return (
            pack_ustring(self.path)
            + pack_buffer(self.data)
            + pack_acl_list(self.acl)
            + _pack_int(self.flags)
            + LONG.pack(self.ttl)
        )


@dataclass(slots=True)
class DeleteRequest:
    OPCODE: ClassVar[int] = OpCode.DELETE
    path: str
    version: int = -1

    @classmethod
    def decode(cls, r: JuteReader) -> DeleteRequest:
        return cls(r.read_path(), r.read_int())

    def encode(self) -> bytes:
        return pack_ustring(self.path) + _pack_int(self.version)


@dataclass(slots=True)
class CheckVersionRequest:
    OPCODE: ClassVar[int] = OpCode.CHECK
    path: str
    version: int = -1

    @classmethod
    def decode(cls, r: JuteReader) -> CheckVersionRequest:
        return cls(r.read_path(), r.read_int())

    def encode(self) -> bytes:
        return pack_ustring(self.path) + _pack_int(self.version)


@dataclass(slots=True)
class ExistsRequest:
    OPCODE: ClassVar[int] = OpCode.EXISTS
    path: str
    watch: bool = False

    @classmethod
    def decode(cls, r: JuteReader) -> ExistsRequest:
        path, watch = _read_path_watch(r)
        return cls(path, watch)

    def encode(self) -> bytes:
        return pack_ustring(self.path) + pack_bool(self.watch)


@dataclass(slots=True)
class GetDataRequest:
    OPCODE: ClassVar[int] = OpCode.GET_DATA
    path: str
    watch: bool = False

    @classmethod
    def decode(cls, r: JuteReader) -> GetDataRequest:
        path, watch = _read_path_watch(r)
        return cls(path, watch)

    def encode(self) -> bytes:
        return pack_ustring(self.path) + pack_bool(self.watch)


@dataclass(slots=True)
class SetDataRequest:
    OPCODE: ClassVar[int] = OpCode.SET_DATA
    path: str
    data: bytes = b""
    version: int = -1

    @classmethod
    def decode(cls, r: JuteReader) -> SetDataRequest:
        buf = r.buf
        p = r.pos
        end = r.end
        if p + 4 > end:
            raise ProtocolError("truncated record: not enough bytes for ustring length")
        n = _unpack_int(buf, p)[0]
        p += 4
        if n > 0:
            if n > end - p:
                raise ProtocolError(f"ustring length {n} exceeds the {end - p} bytes left")
            path = buf[p : p + n].decode("utf-8", "replace")
            p += n
        elif n < -1:
            raise ProtocolError(f"negative ustring length {n}")
        else:
            path = ""
        if p + 4 > end:
            raise ProtocolError("truncated record: not enough bytes for buffer length")
        m = _unpack_int(buf, p)[0]
        p += 4
        if m > 0:
            if m > end - p - 4:  # the version int follows
                raise ProtocolError(f"buffer length {m} exceeds the {end - p} bytes left")
            data = buf[p : p + m]
            p += m
        elif m < -1:
            raise ProtocolError(f"negative buffer length {m}")
        else:
            data = NULL_BUFFER if m else b""
        if p + 4 > end:
            raise ProtocolError("truncated record: not enough bytes for int")
        r.pos = p + 4
        return cls(path, data, _unpack_int(buf, p)[0])

    def encode(self) -> bytes:
        return pack_ustring(self.path) + pack_buffer(self.data) + _pack_int(self.version)


@dataclass(slots=True)
class GetACLRequest:
    OPCODE: ClassVar[int] = OpCode.GET_ACL
    path: str

    @classmethod
    def decode(cls, r: JuteReader) -> GetACLRequest:
        return cls(r.read_path())

    def encode(self) -> bytes:
        return pack_ustring(self.path)


@dataclass(slots=True)
class SetACLRequest:
    OPCODE: ClassVar[int] = OpCode.SET_ACL
    path: str
    acl: list[ACL] = field(default_factory=list)
    version: int = -1

    @classmethod
    def decode(cls, r: JuteReader) -> SetACLRequest:
        return cls(r.read_path(), read_acl_list(r), r.read_int())

    def encode(self) -> bytes:
        return pack_ustring(self.path) + pack_acl_list(self.acl) + _pack_int(self.version)


@dataclass(slots=True)
class GetChildrenRequest:
    OPCODE: ClassVar[int] = OpCode.GET_CHILDREN
    path: str
    watch: bool = False

    @classmethod
    def decode(cls, r: JuteReader) -> GetChildrenRequest:
        path, watch = _read_path_watch(r)
        return cls(path, watch)

    def encode(self) -> bytes:
        return pack_ustring(self.path) + pack_bool(self.watch)


@dataclass(slots=True)
class GetChildren2Request:
    OPCODE: ClassVar[int] = OpCode.GET_CHILDREN2
    path: str
    watch: bool = False

    @classmethod
    def decode(cls, r: JuteReader) -> GetChildren2Request:
        path, watch = _read_path_watch(r)
        return cls(path, watch)

    def encode(self) -> bytes:
        return pack_ustring(self.path) + pack_bool(self.watch)


@dataclass(slots=True)
class SyncRequest:
    OPCODE: ClassVar[int] = OpCode.SYNC
    path: str

    @classmethod
    def decode(cls, r: JuteReader) -> SyncRequest:
        return cls(r.read_path())

    def encode(self) -> bytes:
        return pack_ustring(self.path)


@dataclass(slots=True)
class GetAllChildrenNumberRequest:
    OPCODE: ClassVar[int] = OpCode.GET_ALL_CHILDREN_NUMBER
    path: str

    @classmethod
    def decode(cls, r: JuteReader) -> GetAllChildrenNumberRequest:
        return cls(r.read_path())

    def encode(self) -> bytes:
        return pack_ustring(self.path)


@dataclass(slots=True)
class GetEphemeralsRequest:
    OPCODE: ClassVar[int] = OpCode.GET_EPHEMERALS
    prefix_path: str

    @classmethod
    def decode(cls, r: JuteReader) -> GetEphemeralsRequest:
        return cls(r.read_path())

    def encode(self) -> bytes:
        return pack_ustring(self.prefix_path)


@dataclass(slots=True)
class CheckWatchesRequest:
    """``type`` is a :class:`~paddock.keeper.codes.WatcherType`."""

    OPCODE: ClassVar[int] = OpCode.CHECK_WATCHES
    path: str
    type: int

    @classmethod
    def decode(cls, r: JuteReader) -> CheckWatchesRequest:
        return cls(r.read_path(), r.read_int())

    def encode(self) -> bytes:
        return pack_ustring(self.path) + _pack_int(self.type)


@dataclass(slots=True)
class RemoveWatchesRequest:
    """``type`` is a :class:`~paddock.keeper.codes.WatcherType`."""

    OPCODE: ClassVar[int] = OpCode.REMOVE_WATCHES
    path: str
    type: int

    @classmethod
    def decode(cls, r: JuteReader) -> RemoveWatchesRequest:
        return cls(r.read_path(), r.read_int())

    def encode(self) -> bytes:
        return pack_ustring(self.path) + _pack_int(self.type)


@dataclass(slots=True)
class AddWatchRequest:
    """``mode`` is an :class:`~paddock.keeper.codes.AddWatchMode`."""

    OPCODE: ClassVar[int] = OpCode.ADD_WATCH
    path: str
    mode: int = 0

    @classmethod
    def decode(cls, r: JuteReader) -> AddWatchRequest:
        return cls(r.read_path(), r.read_int())

    def encode(self) -> bytes:
        return pack_ustring(self.path) + _pack_int(self.mode)


@dataclass(slots=True)
class SetWatches:
    """Watches re-registered after a reconnect (xid -8)."""

    OPCODE: ClassVar[int] = OpCode.SET_WATCHES
    relative_zxid: int
    data_watches: list[str] = field(default_factory=list)
    exist_watches: list[str] = field(default_factory=list)
    child_watches: list[str] = field(default_factory=list)

    @classmethod
    def decode(cls, r: JuteReader) -> SetWatches:
        return cls(
            r.read_long(),
            r.read_ustring_vector(),
            r.read_ustring_vector(),
            r.read_ustring_vector(),
        )

    def encode(self) -> bytes:
        return (
            LONG.pack(self.relative_zxid)
            + pack_ustring_vector(self.data_watches)
            + pack_ustring_vector(self.exist_watches)
            + pack_ustring_vector(self.child_watches)
        )


@dataclass(slots=True)
class SetWatches2:
    OPCODE: ClassVar[int] = OpCode.SET_WATCHES2
    relative_zxid: int
    data_watches: list[str] = field(default_factory=list)
    exist_watches: list[str] = field(default_factory=list)
    child_watches: list[str] = field(default_factory=list)
    persistent_watches: list[str] = field(default_factory=list)
    persistent_recursive_watches: list[str] = field(default_factory=list)

    @classmethod
    def decode(cls, r: JuteReader) -> SetWatches2:
        return cls(
            r.read_long(),
            r.read_ustring_vector(),
            r.read_ustring_vector(),
            r.read_ustring_vector(),
            r.read_ustring_vector(),
            r.read_ustring_vector(),
        )

    def encode(self) -> bytes:
        return (
            LONG.pack(self.relative_zxid)
            + pack_ustring_vector(self.data_watches)
            + pack_ustring_vector(self.exist_watches)
            + pack_ustring_vector(self.child_watches)
            + pack_ustring_vector(self.persistent_watches)
            + pack_ustring_vector(self.persistent_recursive_watches)
        )


@dataclass(slots=True)
class AuthPacket:
    """addAuthInfo (opcode 100, xid -4); ``type`` is always 0 in practice."""

    OPCODE: ClassVar[int] = OpCode.AUTH
    type: int
    scheme: str
    auth: bytes

    @classmethod
    def decode(cls, r: JuteReader) -> AuthPacket:
        return cls(r.read_int(), r.read_ustring() or "", r.read_data())

    def encode(self) -> bytes:
        return _pack_int(self.type) + pack_ustring(self.scheme) + pack_buffer(self.auth)


@dataclass(slots=True)
class GetSASLRequest:
    """A SASL token from the client (opcode 102); answered with SetSASLResponse."""

    OPCODE: ClassVar[int] = OpCode.SASL
    token: bytes

    @classmethod
    def decode(cls, r: JuteReader) -> GetSASLRequest:
        return cls(r.read_data())

    def encode(self) -> bytes:
        return pack_buffer(self.token)


@dataclass(slots=True)
class ReconfigRequest:
    """Incremental (joining/leaving) or bulk (new_members) reconfiguration;
    ``cur_config_id`` -1 means "whatever the current config is"."""

    OPCODE: ClassVar[int] = OpCode.RECONFIG
    joining_servers: str | None
    leaving_servers: str | None
    new_members: str | None
    cur_config_id: int = -1

    @classmethod
    def decode(cls, r: JuteReader) -> ReconfigRequest:
        return cls(r.read_ustring(), r.read_ustring(), r.read_ustring(), r.read_long())

    def encode(self) -> bytes:
        return (
            pack_ustring(self.joining_servers)
            + pack_ustring(self.leaving_servers)
            + pack_ustring(self.new_members)
            + LONG.pack(self.cur_config_id)
        )


class _EmptyRecord:
    """A request with no body (ping, closeSession, whoAmI)."""

    __slots__ = ()
    OPCODE: ClassVar[int]

    def encode(self) -> bytes:
        return b""

    def __eq__(self, other: object) -> bool:
        return type(other) is type(self)

    def __hash__(self) -> int:
        return hash(type(self))

    def __repr__(self) -> str:
        return f"{type(self).__name__}()"


class PingRequest(_EmptyRecord):
    __slots__ = ()
    OPCODE: ClassVar[int] = OpCode.PING

    @classmethod
    def decode(cls, r: JuteReader) -> PingRequest:
        return cls()


class CloseSessionRequest(_EmptyRecord):
    __slots__ = ()
    OPCODE: ClassVar[int] = OpCode.CLOSE_SESSION

    @classmethod
    def decode(cls, r: JuteReader) -> CloseSessionRequest:
        return cls()


class WhoAmIRequest(_EmptyRecord):
    __slots__ = ()
    OPCODE: ClassVar[int] = OpCode.WHO_AM_I

    @classmethod
    def decode(cls, r: JuteReader) -> WhoAmIRequest:
        return cls()
