"""Keeper transactions: what goes into the Raft log, and their compact binary form.

A client write becomes one :class:`Txn`: the caller's session id, its authenticated
ids (ACLs are checked when the entry is applied, identically on every replica), a
client-chosen ``cxid`` the accepting server uses to find the waiting request, and
one operation. The zxid and the time stamp are *not* part of the transaction: they
come from the log entry (zxid) and from the proposer's clock (``time_ms`` stored
beside the entry), and are passed to ``DataTree.apply``.

The records are plain (unfrozen, for construction speed on the apply path) slotted
dataclasses; treat them as immutable once built. They are our own records,
independent of ZooKeeper's jute wire records; the
encoding is struct-based, versioned by the leading op byte, and rejects malformed
input with :class:`TxnDecodeError` rather than crashing the applier.

Encoding (big-endian)::

    txn   := u8 format (0), i64 session_id, i32 cxid, u16 n_auth,
             n_auth x (str scheme, str id), op
    op    := u8 OpType, fields of that op in declaration order (multi: u32 count, ops)
    str   := u32 length, utf-8 bytes
    data  := i32 length (-1 = null), bytes
    acl   := u16 count, count x (i32 perms, str scheme, str id)
"""

from __future__ import annotations

import struct
from dataclasses import dataclass
from enum import IntEnum

from paddock.keeper.acl import ACL, Id

# Create modes (ZooKeeper CreateMode flags).
PERSISTENT = 0
EPHEMERAL = 1
PERSISTENT_SEQUENTIAL = 2
EPHEMERAL_SEQUENTIAL = 3
CONTAINER = 4
PERSISTENT_WITH_TTL = 5
PERSISTENT_SEQUENTIAL_WITH_TTL = 6

VALID_MODES = frozenset(range(7))
SEQUENTIAL_MODES = frozenset(
    {PERSISTENT_SEQUENTIAL, EPHEMERAL_SEQUENTIAL, PERSISTENT_SEQUENTIAL_WITH_TTL}
)
EPHEMERAL_MODES = frozenset({EPHEMERAL, EPHEMERAL_SEQUENTIAL})
TTL_MODES = frozenset({PERSISTENT_WITH_TTL, PERSISTENT_SEQUENTIAL_WITH_TTL})


class OpType(IntEnum):
    CREATE = 1
    DELETE = 2
    SET_DATA = 3
    SET_ACL = 4
    CHECK = 5
    MULTI = 6
    CREATE_SESSION = 7
    CLOSE_SESSION = 8
    DELETE_CONTAINER = 9
    SET_CONFIG = 10
    NOOP = 11


@dataclass(slots=True)
class Create:
    path: str
    data: bytes | None
    acl: tuple[ACL, ...]
    mode: int = PERSISTENT
    #: milliseconds, only for the TTL modes; -1 otherwise (as ZooKeeper's CreateRequest).
    ttl: int = -1


@dataclass(slots=True)
class Delete:
    path: str
    version: int = -1


@dataclass(slots=True)
class SetData:
    path: str
    data: bytes | None
    version: int = -1


@dataclass(slots=True)
class SetACL:
    path: str
    acl: tuple[ACL, ...]
    aversion: int = -1


@dataclass(slots=True)
class Check:
    path: str
    version: int = -1


MultiOp = Create | Delete | SetData | Check


@dataclass(slots=True)
class Multi:
    """All-or-nothing batch; ZooKeeper allows create, delete, setData and check inside."""

    ops: tuple[MultiOp, ...]


@dataclass(slots=True)
class CreateSession:
    session_id: int
    timeout_ms: int
    password: bytes = b""


@dataclass(slots=True)
class CloseSession:
    """Closing or expiring a session: its ephemerals go, with their watch events."""

    session_id: int


@dataclass(slots=True)
class DeleteContainer:
    """Leader-proposed removal of an empty container or an expired TTL node."""

    path: str


@dataclass(slots=True)
class SetConfig:
    """New ensemble configuration text for ``/zookeeper/config`` (reconfig)."""

    data: bytes


@dataclass(slots=True)
class Noop:
    """A replicated no-op (e.g. the barrier a sync or a new leader needs)."""


Op = (
    Create
    | Delete
    | SetData
    | SetACL
    | Check
    | Multi
    | CreateSession
    | CloseSession
    | DeleteContainer
    | SetConfig
    | Noop
)


@dataclass(slots=True)
class Txn:
    session_id: int
    auth: tuple[Id, ...]
    op: Op
    cxid: int = 0


class TxnDecodeError(ValueError):
    """The bytes are not a well-formed transaction."""


_HEAD = struct.Struct(">BqiH")
_U8 = struct.Struct(">B")
_U16 = struct.Struct(">H")
_U32 = struct.Struct(">I")
_I32 = struct.Struct(">i")
_I64 = struct.Struct(">q")
_CREATE_TAIL = struct.Struct(">iq")
_SESSION = struct.Struct(">qi")


def _put_str(out: list[bytes], s: str) -> None:
    b = s.encode("utf-8", "surrogatepass")
    out.append(_U32.pack(len(b)))
    out.append(b)


def _put_data(out: list[bytes], d: bytes | None) -> None:
    if d is None:
        out.append(_I32.pack(-1))
    else:
        out.append(_I32.pack(len(d)))
        out.append(bytes(d))


def _put_acl(out: list[bytes], acl: tuple[ACL, ...]) -> None:
    out.append(_U16.pack(len(acl)))
    for entry in acl:
        out.append(_I32.pack(entry.perms))
        _put_str(out, entry.id.scheme)
        _put_str(out, entry.id.id)


def _put_op(out: list[bytes], op: Op) -> None:
    if isinstance(op, SetData):
        out.append(_U8.pack(OpType.SET_DATA))
        _put_str(out, op.path)
        _put_data(out, op.data)
        out.append(_I32.pack(op.version))
    elif isinstance(op, Create):
        out.append(_U8.pack(OpType.CREATE))
        _put_str(out, op.path)
        _put_data(out, op.data)
        _put_acl(out, op.acl)
        out.append(_CREATE_TAIL.pack(op.mode, op.ttl))
    elif isinstance(op, Delete):
        out.append(_U8.pack(OpType.DELETE))
        _put_str(out, op.path)
        out.append(_I32.pack(op.version))
    elif isinstance(op, SetACL):
        out.append(_U8.pack(OpType.SET_ACL))
        _put_str(out, op.path)
        _put_acl(out, op.acl)
        out.append(_I32.pack(op.aversion))
    elif isinstance(op, Check):
        out.append(_U8.pack(OpType.CHECK))
        _put_str(out, op.path)
        out.append(_I32.pack(op.version))
    elif isinstance(op, Multi):
        out.append(_U8.pack(OpType.MULTI))
        out.append(_U32.pack(len(op.ops)))
        for sub in op.ops:
            _put_op(out, sub)
    elif isinstance(op, CreateSession):
        out.append(_U8.pack(OpType.CREATE_SESSION))
        out.append(_SESSION.pack(op.session_id, op.timeout_ms))
        _put_data(out, op.password)
    elif isinstance(op, CloseSession):
        out.append(_U8.pack(OpType.CLOSE_SESSION))
        out.append(_I64.pack(op.session_id))
    elif isinstance(op, DeleteContainer):
        out.append(_U8.pack(OpType.DELETE_CONTAINER))
        _put_str(out, op.path)
    elif isinstance(op, SetConfig):
        out.append(_U8.pack(OpType.SET_CONFIG))
        _put_data(out, op.data)
    elif isinstance(op, Noop):
        out.append(_U8.pack(OpType.NOOP))
    else:  # pragma: no cover - guarded by the type checker
        raise TypeError(f"not a keeper op: {op!r}")


def encode_txn(txn: Txn) -> bytes:
    """Binary form of ``txn`` for the replicated log."""
    auth = txn.auth
    out: list[bytes] = [_HEAD.pack(0, txn.session_id, txn.cxid, len(auth))]
    for cid in auth:
        _put_str(out, cid.scheme)
        _put_str(out, cid.id)
    _put_op(out, txn.op)
    return b"".join(out)


class _Reader:
    __slots__ = ("buf", "pos")

    def __init__(self, buf: bytes) -> None:
        self.buf = buf
        self.pos = 0

    def take(self, st: struct.Struct) -> tuple[int, ...]:
        pos = self.pos
        end = pos + st.size
        if end > len(self.buf):
            raise TxnDecodeError("truncated transaction")
        self.pos = end
        return st.unpack_from(self.buf, pos)

    def raw(self, n: int) -> bytes:
        pos = self.pos
        end = pos + n
        if n < 0 or end > len(self.buf):
            raise TxnDecodeError("truncated transaction")
        self.pos = end
        return self.buf[pos:end]

    def str_(self) -> str:
        (n,) = self.take(_U32)
        try:
            return self.raw(n).decode("utf-8", "surrogatepass")
        except UnicodeDecodeError as exc:
            raise TxnDecodeError("bad utf-8 in transaction") from exc

    def data(self) -> bytes | None:
        (n,) = self.take(_I32)
        if n == -1:
            return None
        if n < 0:
            raise TxnDecodeError("negative data length")
        return self.raw(n)

    def acl(self) -> tuple[ACL, ...]:
        (n,) = self.take(_U16)
        out = []
        for _ in range(n):
            (perms,) = self.take(_I32)
            scheme = self.str_()
            out.append(ACL(perms, Id(scheme, self.str_())))
        return tuple(out)


def _read_op(r: _Reader, depth: int = 0) -> Op:
    (tag,) = r.take(_U8)
    if tag == OpType.SET_DATA:
        path = r.str_()
        data = r.data()
        (version,) = r.take(_I32)
        return SetData(path, data, version)
    if tag == OpType.CREATE:
        path = r.str_()
        data = r.data()
        acl = r.acl()
        mode, ttl = r.take(_CREATE_TAIL)
        return Create(path, data, acl, mode, ttl)
    if tag == OpType.DELETE:
        path = r.str_()
        (version,) = r.take(_I32)
        return Delete(path, version)
    if tag == OpType.SET_ACL:
        path = r.str_()
        acl = r.acl()
        (aversion,) = r.take(_I32)
        return SetACL(path, acl, aversion)
    if tag == OpType.CHECK:
        path = r.str_()
        (version,) = r.take(_I32)
        return Check(path, version)
    if tag == OpType.MULTI:
        if depth:
            raise TxnDecodeError("nested multi")
        (n,) = r.take(_U32)
        if n > len(r.buf):
            raise TxnDecodeError("multi count exceeds input")
        ops: list[MultiOp] = []
        for _ in range(n):
            sub = _read_op(r, depth + 1)
            if not isinstance(sub, Create | Delete | SetData | Check):
                raise TxnDecodeError(f"{type(sub).__name__} not allowed inside multi")
            ops.append(sub)
        return Multi(tuple(ops))
    if tag == OpType.CREATE_SESSION:
        session_id, timeout = r.take(_SESSION)
        password = r.data()
        return CreateSession(session_id, timeout, password or b"")
    if tag == OpType.CLOSE_SESSION:
        (session_id,) = r.take(_I64)
        return CloseSession(session_id)
    if tag == OpType.DELETE_CONTAINER:
        return DeleteContainer(r.str_())
    if tag == OpType.SET_CONFIG:
        return SetConfig(r.data() or b"")
    if tag == OpType.NOOP:
        return Noop()
    raise TxnDecodeError(f"unknown op type {tag}")


def decode_txn(buf: bytes) -> Txn:
    """Inverse of :func:`encode_txn`; raises :class:`TxnDecodeError` on malformed input."""
    r = _Reader(bytes(buf))
    fmt_version, session_id, cxid, n_auth = r.take(_HEAD)
    if fmt_version != 0:
        raise TxnDecodeError(f"unknown transaction format {fmt_version}")
    auth = []
    for _ in range(n_auth):
        scheme = r.str_()
        auth.append(Id(scheme, r.str_()))
    op = _read_op(r)
    if r.pos != len(r.buf):
        raise TxnDecodeError("trailing bytes after transaction")
    return Txn(session_id, tuple(auth), op, cxid)
