"""What each client request does: local reads, and writes turned into transactions.

Reads run synchronously against this server's data tree and return the framed
reply. Writes become a :class:`~paddock.keeper.txn.Txn` (``to_txn``) that goes
through the log; ``write_reply`` frames the answer from the ``TxnResult`` once
the entry is applied. Errors a request carries on its face (bad opcode, TTL
disabled) are answered without a round through the log.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

from paddock.keeper import acl as acl_mod
from paddock.keeper import txn as t
from paddock.keeper.codec import encode_response, encode_watch_event
from paddock.keeper.codes import OpCode
from paddock.keeper.datatree import TxnResult
from paddock.keeper.errors import Code, KeeperError
from paddock.keeper.jute import NULL_BUFFER
from paddock.keeper.multi import (
    CheckResult,
    DeleteResult,
    ErrorResult,
    MultiReadRequest,
    MultiRequest,
    MultiResponse,
    MultiResult,
)
from paddock.keeper.paths import validate_path
from paddock.keeper.records import (
    ACL,
    AddWatchRequest,
    CheckVersionRequest,
    CheckWatchesRequest,
    ClientInfo,
    CreateRequest,
    CreateTTLRequest,
    DeleteRequest,
    ExistsRequest,
    GetACLRequest,
    GetAllChildrenNumberRequest,
    GetChildren2Request,
    GetChildrenRequest,
    GetDataRequest,
    GetEphemeralsRequest,
    Id,
    RemoveWatchesRequest,
    SetACLRequest,
    SetDataRequest,
    SetWatches,
    SetWatches2,
    Stat,
    SyncRequest,
)
from paddock.keeper.responses import (
    Create2Response,
    CreateResponse,
    ErrorResponse,
    ExistsResponse,
    GetACLResponse,
    GetAllChildrenNumberResponse,
    GetChildren2Response,
    GetChildrenResponse,
    GetDataResponse,
    GetEphemeralsResponse,
    SetACLResponse,
    SetDataResponse,
    SyncResponse,
    WhoAmIResponse,
)
from paddock.keeper.watches import WatchDelivery

if TYPE_CHECKING:
    from paddock.keeper.client_connection import ClientConnection
    from paddock.keeper.connection import Request

_NO_NODE = int(Code.NO_NODE)
_BAD_ARGUMENTS = int(Code.BAD_ARGUMENTS)
_NO_WATCHER = int(Code.NO_WATCHER)

ReadHandler = Callable[["ClientConnection", "Request"], bytes]


def _missing(path: str) -> int:
    """NoNode for a valid path, BadArguments for an invalid one (checked only on a
    miss: every stored path is valid)."""
    return _BAD_ARGUMENTS if validate_path(path) is not None else _NO_NODE


def _get_data(c: ClientConnection, req: Request) -> bytes:
    rec: GetDataRequest = req.record  # type: ignore[assignment]
    tree = c.server.sm.tree
    path = rec.path
    try:
        data, stat = tree.get_data(path, c.auth)
    except KeeperError as e:
        code = _missing(path) if e.code == _NO_NODE else e.code
        return encode_response(req.xid, tree.last_zxid, code)
    if rec.watch:
        c.server.watches.add_data_watch(c.session_id, path)
    return encode_response(req.xid, tree.last_zxid, 0, GetDataResponse(data, Stat(*stat)))


def _exists(c: ClientConnection, req: Request) -> bytes:
    rec: ExistsRequest = req.record  # type: ignore[assignment]
    tree = c.server.sm.tree
    path = rec.path
    try:
        stat = tree.exists(path, c.auth)
    except KeeperError as e:
        return encode_response(req.xid, tree.last_zxid, e.code)
    if stat is None:
        code = _missing(path)
        if code == _NO_NODE and rec.watch:
            c.server.watches.add_exist_watch(c.session_id, path)
        return encode_response(req.xid, tree.last_zxid, code)
    if rec.watch:
        c.server.watches.add_data_watch(c.session_id, path)
    return encode_response(req.xid, tree.last_zxid, 0, ExistsResponse(Stat(*stat)))


def _children(c: ClientConnection, req: Request) -> bytes:
    rec: GetChildrenRequest | GetChildren2Request = req.record  # type: ignore[assignment]
    tree = c.server.sm.tree
    path = rec.path
    try:
        children, stat = tree.get_children(path, c.auth)
    except KeeperError as e:
        code = _missing(path) if e.code == _NO_NODE else e.code
        return encode_response(req.xid, tree.last_zxid, code)
    if rec.watch:
        c.server.watches.add_child_watch(c.session_id, path)
    if req.opcode == OpCode.GET_CHILDREN:
        return encode_response(req.xid, tree.last_zxid, 0, GetChildrenResponse(children))
    return encode_response(req.xid, tree.last_zxid, 0, GetChildren2Response(children, Stat(*stat)))


def _get_acl(c: ClientConnection, req: Request) -> bytes:
    rec: GetACLRequest = req.record  # type: ignore[assignment]
    tree = c.server.sm.tree
    try:
        acls, stat = tree.get_acl(rec.path, c.auth)
    except KeeperError as e:
        code = _missing(rec.path) if e.code == _NO_NODE else e.code
        return encode_response(req.xid, tree.last_zxid, code)
    wire = [ACL(a.perms, Id(a.id.scheme, a.id.id)) for a in acls]
    return encode_response(req.xid, tree.last_zxid, 0, GetACLResponse(wire, Stat(*stat)))


def _all_children_number(c: ClientConnection, req: Request) -> bytes:
    rec: GetAllChildrenNumberRequest = req.record  # type: ignore[assignment]
    tree = c.server.sm.tree
    try:
        n = tree.get_all_children_number(rec.path, c.auth)
    except KeeperError as e:
        code = _missing(rec.path) if e.code == _NO_NODE else e.code
        return encode_response(req.xid, tree.last_zxid, code)
    return encode_response(req.xid, tree.last_zxid, 0, GetAllChildrenNumberResponse(n))


def _ephemerals(c: ClientConnection, req: Request) -> bytes:
    rec: GetEphemeralsRequest = req.record  # type: ignore[assignment]
    tree = c.server.sm.tree
    paths = tree.get_ephemerals(c.session_id, rec.prefix_path or None)
    return encode_response(req.xid, tree.last_zxid, 0, GetEphemeralsResponse(paths))


def _who_am_i(c: ClientConnection, req: Request) -> bytes:
    infos = []
    for ident in c.auth:
        if ident.scheme == "super":
            continue
        user = ident.id.split(":", 1)[0] if ident.scheme == "digest" else ident.id
        infos.append(ClientInfo(ident.scheme, user))
    return encode_response(req.xid, c.server.sm.last_zxid, 0, WhoAmIResponse(infos))


def _multi_read(c: ClientConnection, req: Request) -> bytes:
    rec: MultiReadRequest = req.record  # type: ignore[assignment]
    tree = c.server.sm.tree
    results: list[MultiResult] = []
    for op in rec.ops:
        sub = op.request
        path = sub.path
        try:
            if op.type == OpCode.GET_DATA:
                data, stat = tree.get_data(path, c.auth)
                if sub.watch:  # type: ignore[union-attr]
                    c.server.watches.add_data_watch(c.session_id, path)
                results.append(GetDataResponse(data, Stat(*stat)))
            else:
                children, _ = tree.get_children(path, c.auth)
                if sub.watch:  # type: ignore[union-attr]
                    c.server.watches.add_child_watch(c.session_id, path)
                results.append(GetChildrenResponse(children))
        except KeeperError as e:
            code = _missing(path) if e.code == _NO_NODE else e.code
            results.append(ErrorResult(code))
    return encode_response(req.xid, tree.last_zxid, 0, MultiResponse(results))


def _check_watches(c: ClientConnection, req: Request) -> bytes:
    rec: CheckWatchesRequest | RemoveWatchesRequest = req.record  # type: ignore[assignment]
    w = c.server.watches
    try:
        if req.opcode == OpCode.CHECK_WATCHES:
            found = w.contains(c.session_id, rec.path, rec.type)
        else:
            found = w.remove(c.session_id, rec.path, rec.type)
    except ValueError:
        return encode_response(req.xid, c.server.sm.last_zxid, _BAD_ARGUMENTS)
    return encode_response(req.xid, c.server.sm.last_zxid, 0 if found else _NO_WATCHER)


def _add_watch(c: ClientConnection, req: Request) -> bytes:
    rec: AddWatchRequest = req.record  # type: ignore[assignment]
    if validate_path(rec.path) is not None:
        return encode_response(req.xid, c.server.sm.last_zxid, _BAD_ARGUMENTS)
    try:
        c.server.watches.add_watch(c.session_id, rec.path, rec.mode)
    except ValueError:
        return encode_response(req.xid, c.server.sm.last_zxid, _BAD_ARGUMENTS)
    return encode_response(req.xid, c.server.sm.last_zxid, 0, ErrorResponse(0))


def _set_watches(c: ClientConnection, req: Request) -> bytes:
    rec: SetWatches | SetWatches2 = req.record  # type: ignore[assignment]
    persistent: list[str] = []
    recursive: list[str] = []
    if isinstance(rec, SetWatches2):
        persistent = rec.persistent_watches
        recursive = rec.persistent_recursive_watches
    tree = c.server.sm.tree
    deliveries = c.server.watches.set_watches(
        c.session_id,
        rec.relative_zxid,
        tree,
        rec.data_watches,
        rec.exist_watches,
        rec.child_watches,
        persistent,
        recursive,
    )
    events = b"".join(_event_frame(d) for d in deliveries)
    return events + encode_response(req.xid, tree.last_zxid, 0)


def _event_frame(d: WatchDelivery) -> bytes:
    return encode_watch_event(d.event_type, d.state, d.path, d.zxid)


def _ping(c: ClientConnection, req: Request) -> bytes:
    return encode_response(req.xid, c.server.sm.last_zxid, 0)


READ_HANDLERS: dict[int, ReadHandler] = {
    OpCode.GET_DATA: _get_data,
    OpCode.EXISTS: _exists,
    OpCode.GET_CHILDREN: _children,
    OpCode.GET_CHILDREN2: _children,
    OpCode.GET_ACL: _get_acl,
    OpCode.GET_ALL_CHILDREN_NUMBER: _all_children_number,
    OpCode.GET_EPHEMERALS: _ephemerals,
    OpCode.WHO_AM_I: _who_am_i,
    OpCode.MULTI_READ: _multi_read,
    OpCode.CHECK_WATCHES: _check_watches,
    OpCode.REMOVE_WATCHES: _check_watches,
    OpCode.ADD_WATCH: _add_watch,
    OpCode.SET_WATCHES: _set_watches,
    OpCode.SET_WATCHES2: _set_watches,
    OpCode.PING: _ping,
}

WRITE_OPCODES = frozenset(
    {
        OpCode.CREATE,
        OpCode.CREATE2,
        OpCode.CREATE_CONTAINER,
        OpCode.CREATE_TTL,
        OpCode.DELETE,
        OpCode.SET_DATA,
        OpCode.SET_ACL,
        OpCode.CHECK,
        OpCode.MULTI,
        OpCode.SYNC,
        OpCode.CLOSE_SESSION,
    }
)


def _data(data: bytes) -> bytes | None:
    """A null buffer from the client is stored as null (getData answers null)."""
    return None if data is NULL_BUFFER else data


def _acl(wire: list[ACL]) -> tuple[acl_mod.ACL, ...]:
    return tuple(acl_mod.ACL(a.perms, acl_mod.Id(a.id.scheme, a.id.id)) for a in wire)


def _create_op(
    opcode: int, rec: CreateRequest | CreateTTLRequest, extended_types: bool
) -> t.Create:
    if isinstance(rec, CreateTTLRequest):
        if not extended_types:
            raise KeeperError(Code.UNIMPLEMENTED, rec.path)
        return t.Create(rec.path, _data(rec.data), _acl(rec.acl), rec.flags, rec.ttl)
    flags = rec.flags
    if opcode == OpCode.CREATE_CONTAINER and flags != t.CONTAINER:
        raise KeeperError(Code.BAD_ARGUMENTS, rec.path)
    if flags in t.TTL_MODES and not extended_types:
        raise KeeperError(Code.UNIMPLEMENTED, rec.path)
    return t.Create(rec.path, _data(rec.data), _acl(rec.acl), flags, -1)


def to_op(opcode: int, record: object, session_id: int, extended_types: bool) -> t.Op:
    """The transaction operation for a write request; KeeperError for a request
    that is refused before it reaches the log."""
    if opcode in (OpCode.CREATE, OpCode.CREATE2, OpCode.CREATE_CONTAINER, OpCode.CREATE_TTL):
        return _create_op(opcode, record, extended_types)  # type: ignore[arg-type]
    if opcode == OpCode.SET_DATA:
        sd: SetDataRequest = record  # type: ignore[assignment]
        return t.SetData(sd.path, _data(sd.data), sd.version)
    if opcode == OpCode.DELETE:
        d: DeleteRequest = record  # type: ignore[assignment]
        return t.Delete(d.path, d.version)
    if opcode == OpCode.SET_ACL:
        sa: SetACLRequest = record  # type: ignore[assignment]
        return t.SetACL(sa.path, _acl(sa.acl), sa.version)
    if opcode == OpCode.CHECK:
        ck: CheckVersionRequest = record  # type: ignore[assignment]
        return t.Check(ck.path, ck.version)
    if opcode == OpCode.MULTI:
        m: MultiRequest = record  # type: ignore[assignment]
        ops: list[t.MultiOp] = []
        for op in m.ops:
            sub = to_op(op.type, op.request, session_id, extended_types)
            ops.append(sub)  # type: ignore[arg-type]
        return t.Multi(tuple(ops))
    if opcode == OpCode.SYNC:
        return t.Noop()
    if opcode == OpCode.CLOSE_SESSION:
        return t.CloseSession(session_id)
    raise KeeperError(Code.UNIMPLEMENTED)


def _multi_result(opcode: int, r: TxnResult) -> MultiResult:
    if r.err:
        return ErrorResult(r.err)
    if opcode == OpCode.CREATE:
        return CreateResponse(r.path or "")
    if opcode in (OpCode.CREATE2, OpCode.CREATE_CONTAINER, OpCode.CREATE_TTL):
        return Create2Response(r.path or "", Stat(*r.stat) if r.stat else _ZERO_STAT)
    if opcode == OpCode.DELETE:
        return DeleteResult()
    if opcode == OpCode.SET_DATA:
        return SetDataResponse(Stat(*r.stat) if r.stat else _ZERO_STAT)
    return CheckResult()


_ZERO_STAT = Stat(0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0)


def write_reply(req: Request, result: TxnResult, last_zxid: int) -> bytes:
    """The framed answer to a write whose transaction was applied."""
    op = req.opcode
    xid = req.xid
    zxid = result.zxid
    if op == OpCode.MULTI:
        rec: MultiRequest = req.record  # type: ignore[assignment]
        subs = result.results or []
        if len(subs) != len(rec.ops):
            return encode_response(xid, zxid, result.err or int(Code.SYSTEM_ERROR))
        if result.err:
            out: list[MultiResult] = [ErrorResult(r.err) for r in subs]
        else:
            out = [_multi_result(o.type, r) for o, r in zip(rec.ops, subs, strict=True)]
        return encode_response(xid, zxid, 0, MultiResponse(out))
    err = result.err
    if err:
        return encode_response(xid, zxid, err)
    if op == OpCode.SET_DATA:
        return encode_response(xid, zxid, 0, SetDataResponse(Stat(*result.stat)))  # type: ignore[misc]
    if op == OpCode.CREATE:
        return encode_response(xid, zxid, 0, CreateResponse(result.path or ""))
    if op in (OpCode.CREATE2, OpCode.CREATE_CONTAINER, OpCode.CREATE_TTL):
        stat = Stat(*result.stat) if result.stat else _ZERO_STAT
        return encode_response(xid, zxid, 0, Create2Response(result.path or "", stat))
    if op == OpCode.SET_ACL:
        stat = Stat(*result.stat) if result.stat else _ZERO_STAT
        return encode_response(xid, zxid, 0, SetACLResponse(stat))
    if op == OpCode.SYNC:
        rec_s: SyncRequest = req.record  # type: ignore[assignment]
        return encode_response(xid, zxid, 0, SyncResponse(rec_s.path))
    if op == OpCode.CHECK:
        return encode_response(xid, zxid, 0, SetDataResponse(_ZERO_STAT))
    return encode_response(xid, zxid, 0)
