"""Records of zookeeper.jute's ``data`` module: Id, ACL, Stat, ClientInfo.

They are NamedTuples: immutable, hashable, cheap to build, and ``Stat`` packs
with a single precompiled struct (``_STAT.pack(*stat)``).  Any 11-tuple in
wire order encodes as a Stat, so a data tree may hand in its own NamedTuple.
"""

from __future__ import annotations

import struct
from typing import NamedTuple

from paddock.keeper.codes import Perms
from paddock.keeper.jute import INT, JuteReader, ProtocolError, pack_ustring

_pack_int = INT.pack
_STAT = struct.Struct(">qqqqiiiqiiq")
STAT_SIZE = _STAT.size  # 68


class Id(NamedTuple):
    scheme: str
    id: str


class ACL(NamedTuple):
    perms: int
    id: Id


class ClientInfo(NamedTuple):
    """One authenticated identity of a session (``whoAmI``)."""

    auth_scheme: str
    user: str


class Stat(NamedTuple):
    """Znode metadata in wire order (czxid ... pzxid)."""

    czxid: int
    mzxid: int
    ctime: int
    mtime: int
    version: int
    cversion: int
    aversion: int
    ephemeral_owner: int
    data_length: int
    num_children: int
    pzxid: int

    @classmethod
    def decode(cls, r: JuteReader) -> Stat:
        p = r.pos
        if p + 68 > r.end:
            raise ProtocolError("truncated record: not enough bytes for Stat")
        r.pos = p + 68
        return cls._make(_STAT.unpack_from(r.buf, p))

    def encode(self) -> bytes:
        return _STAT.pack(*self)


ANYONE_ID_UNSAFE = Id("world", "anyone")
AUTH_IDS = Id("auth", "")
OPEN_ACL_UNSAFE = (ACL(int(Perms.ALL), ANYONE_ID_UNSAFE),)
CREATOR_ALL_ACL = (ACL(int(Perms.ALL), AUTH_IDS),)
READ_ACL_UNSAFE = (ACL(int(Perms.READ), ANYONE_ID_UNSAFE),)


def read_acl(r: JuteReader) -> ACL:
    perms = r.read_int()
    scheme = r.read_ustring() or ""
    ident = r.read_ustring() or ""
    return ACL(perms, Id(scheme, ident))


def read_acl_list(r: JuteReader) -> list[ACL]:
    return r.read_vector(read_acl, 12)


def pack_acl_list(acl: list[ACL] | tuple[ACL, ...]) -> bytes:
    parts = [_pack_int(len(acl))]
    for a in acl:
        parts.append(_pack_int(a.perms))
        parts.append(pack_ustring(a.id.scheme))
        parts.append(pack_ustring(a.id.id))
    return b"".join(parts)


def read_client_info(r: JuteReader) -> ClientInfo:
    return ClientInfo(r.read_ustring() or "", r.read_ustring() or "")
