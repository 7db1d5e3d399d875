"""Which record goes with which opcode, and whole-frame encoders.

Every packet is a 4-byte big-endian length followed by the record(s).  A
request is ``RequestHeader{xid, type}`` + body; a reply is
``ReplyHeader{xid, zxid, err}`` + body, where the body is present only when
``err`` is 0 and the opcode has one (``FinalRequestProcessor``; Java clients
ignore any body on error, so sending none is what every client expects).

The getData/setData/exists reply encoders pack the length prefix, header and
fixed fields with one precompiled struct each: they are the bulk of traffic.
"""

from __future__ import annotations

import struct
from collections.abc import Callable

from paddock.keeper.codes import NOTIFICATION_XID, OpCode
from paddock.keeper.jute import INT, NULL_BUFFER, JuteReader
from paddock.keeper.multi import MultiReadRequest, MultiRequest, MultiResponse
from paddock.keeper.records import (
    AddWatchRequest,
    AuthPacket,
    CheckVersionRequest,
    CheckWatchesRequest,
    CloseSessionRequest,
    ConnectRequest,
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
    GetSASLRequest,
    PingRequest,
    ReconfigRequest,
    RemoveWatchesRequest,
    SetACLRequest,
    SetDataRequest,
    SetWatches,
    SetWatches2,
    SyncRequest,
    WhoAmIRequest,
)
from paddock.keeper.responses import (
    ConnectResponse,
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
    SetSASLResponse,
    SyncResponse,
    WatcherEvent,
    WhoAmIResponse,
)

RequestRecord = (
    CreateRequest
    | CreateTTLRequest
    | DeleteRequest
    | ExistsRequest
    | GetDataRequest
    | SetDataRequest
    | GetACLRequest
    | SetACLRequest
    | GetChildrenRequest
    | GetChildren2Request
    | SyncRequest
    | PingRequest
    | CheckVersionRequest
    | MultiRequest
    | MultiReadRequest
    | ReconfigRequest
    | CheckWatchesRequest
    | RemoveWatchesRequest
    | AuthPacket
    | SetWatches
    | SetWatches2
    | GetSASLRequest
    | GetEphemeralsRequest
    | GetAllChildrenNumberRequest
    | AddWatchRequest
    | WhoAmIRequest
    | CloseSessionRequest
)

ResponseRecord = (
    CreateResponse
    | Create2Response
    | ExistsResponse
    | GetDataResponse
    | SetDataResponse
    | GetACLResponse
    | SetACLResponse
    | GetChildrenResponse
    | GetChildren2Response
    | SyncResponse
    | ErrorResponse
    | GetAllChildrenNumberResponse
    | GetEphemeralsResponse
    | WhoAmIResponse
    | SetSASLResponse
    | MultiResponse
)

# opcode -> decoder of the request body.  Opcodes absent here (deleteContainer
# and createSession are server-internal; anything else is unknown) are handed
# to the server undecoded so it can answer Unimplemented.
REQUEST_DECODERS: dict[int, Callable[[JuteReader], RequestRecord]] = {
    OpCode.CREATE: CreateRequest.decode,
    OpCode.DELETE: DeleteRequest.decode,
    OpCode.EXISTS: ExistsRequest.decode,
    OpCode.GET_DATA: GetDataRequest.decode,
    OpCode.SET_DATA: SetDataRequest.decode,
    OpCode.GET_ACL: GetACLRequest.decode,
    OpCode.SET_ACL: SetACLRequest.decode,
    OpCode.GET_CHILDREN: GetChildrenRequest.decode,
    OpCode.SYNC: SyncRequest.decode,
    OpCode.PING: PingRequest.decode,
    OpCode.GET_CHILDREN2: GetChildren2Request.decode,
    OpCode.CHECK: CheckVersionRequest.decode,
    OpCode.MULTI: MultiRequest.decode,
    OpCode.CREATE2: CreateRequest.decode,
    OpCode.RECONFIG: ReconfigRequest.decode,
    OpCode.CHECK_WATCHES: CheckWatchesRequest.decode,
    OpCode.REMOVE_WATCHES: RemoveWatchesRequest.decode,
    OpCode.CREATE_CONTAINER: CreateRequest.decode,
    OpCode.CREATE_TTL: CreateTTLRequest.decode,
    OpCode.MULTI_READ: MultiReadRequest.decode,
    OpCode.AUTH: AuthPacket.decode,
    OpCode.SET_WATCHES: SetWatches.decode,
    OpCode.SASL: GetSASLRequest.decode,
    OpCode.GET_EPHEMERALS: GetEphemeralsRequest.decode,
    OpCode.GET_ALL_CHILDREN_NUMBER: GetAllChildrenNumberRequest.decode,
    OpCode.SET_WATCHES2: SetWatches2.decode,
    OpCode.ADD_WATCH: AddWatchRequest.decode,
    OpCode.WHO_AM_I: WhoAmIRequest.decode,
    OpCode.CLOSE_SESSION: CloseSessionRequest.decode,
}

# opcode -> decoder of a successful reply's body; None = the reply is the
# header alone (delete, ping, auth, setWatches, checkWatches, removeWatches,
# closeSession).  Mirrors FinalRequestProcessor.
RESPONSE_DECODERS: dict[int, Callable[[JuteReader], ResponseRecord] | None] = {
    OpCode.CREATE: CreateResponse.decode,
    OpCode.DELETE: None,
    OpCode.EXISTS: ExistsResponse.decode,
    OpCode.GET_DATA: GetDataResponse.decode,
    OpCode.SET_DATA: SetDataResponse.decode,
    OpCode.GET_ACL: GetACLResponse.decode,
    OpCode.SET_ACL: SetACLResponse.decode,
    OpCode.GET_CHILDREN: GetChildrenResponse.decode,
    OpCode.SYNC: SyncResponse.decode,
    OpCode.PING: None,
    OpCode.GET_CHILDREN2: GetChildren2Response.decode,
    OpCode.CHECK: SetDataResponse.decode,
    OpCode.MULTI: MultiResponse.decode,
    OpCode.CREATE2: Create2Response.decode,
    OpCode.RECONFIG: GetDataResponse.decode,
    OpCode.CHECK_WATCHES: None,
    OpCode.REMOVE_WATCHES: None,
    OpCode.CREATE_CONTAINER: Create2Response.decode,
    OpCode.CREATE_TTL: Create2Response.decode,
    OpCode.MULTI_READ: MultiResponse.decode,
    OpCode.AUTH: None,
    OpCode.SET_WATCHES: None,
    OpCode.SASL: SetSASLResponse.decode,
    OpCode.GET_EPHEMERALS: GetEphemeralsResponse.decode,
    OpCode.GET_ALL_CHILDREN_NUMBER: GetAllChildrenNumberResponse.decode,
    OpCode.SET_WATCHES2: None,
    OpCode.ADD_WATCH: ErrorResponse.decode,
    OpCode.WHO_AM_I: WhoAmIResponse.decode,
    OpCode.CLOSE_SESSION: None,
}

_pack_int = INT.pack
_STAT = struct.Struct(">qqqqiiiqiiq")
# length prefix + ReplyHeader
_REPLY_FRAME = struct.Struct(">iiqi")
# length prefix + ReplyHeader + data length (GetDataResponse, then data, then Stat)
_GETDATA_FRAME = struct.Struct(">iiqii")
# length prefix + ReplyHeader + Stat (SetDataResponse / ExistsResponse / SetACLResponse)
_STAT_FRAME = struct.Struct(">iiqiqqqqiiiqiiq")
_REQUEST_FRAME = struct.Struct(">iii")
_HEADER_ONLY_LEN = 16
_STAT_ONLY_LEN = 16 + 68
_STAT_BODIES = (SetDataResponse, ExistsResponse, SetACLResponse)
_NULL_DATA_LEN = -1


def encode_frame(body: bytes) -> bytes:
    """Prefix ``body`` with its 4-byte big-endian length."""
    return _pack_int(len(body)) + body


def encode_response(xid: int, zxid: int, err: int, record: ResponseRecord | None = None) -> bytes:
    """A framed reply.  With a non-zero ``err`` the body is left out."""
    if err or record is None:
        return _REPLY_FRAME.pack(_HEADER_ONLY_LEN, xid, zxid, err)
    cls = type(record)
    if cls is GetDataResponse:
        data = record.data  # type: ignore[union-attr]
        stat = _STAT.pack(*record.stat)  # type: ignore[union-attr]
        if data is None or data is NULL_BUFFER:
            return _GETDATA_FRAME.pack(88, xid, zxid, 0, _NULL_DATA_LEN) + stat
        n = len(data)
        return b"".join((_GETDATA_FRAME.pack(88 + n, xid, zxid, 0, n), data, stat))
    if cls in _STAT_BODIES:
        return _STAT_FRAME.pack(_STAT_ONLY_LEN, xid, zxid, 0, *record.stat)  # type: ignore[union-attr]
    body = record.encode()
    return _REPLY_FRAME.pack(_HEADER_ONLY_LEN + len(body), xid, zxid, 0) + body


def encode_watch_event(event_type: int, state: int, path: str | None, zxid: int = -1) -> bytes:
    """A framed notification: ReplyHeader(-1, zxid, 0) + WatcherEvent.

    ZooKeeper before 3.9 always sent zxid -1; newer servers send the zxid of
    the change that fired the watch.  Clients accept either."""
    body = WatcherEvent(event_type, state, path).encode()
    return _REPLY_FRAME.pack(_HEADER_ONLY_LEN + len(body), NOTIFICATION_XID, zxid, 0) + body


def encode_connect_response(response: ConnectResponse) -> bytes:
    return encode_frame(response.encode())


def encode_connect_request(request: ConnectRequest) -> bytes:
    return encode_frame(request.encode())


def encode_request(xid: int, record: RequestRecord, opcode: int | None = None) -> bytes:
    """A framed request; ``opcode`` defaults to the record's own (give it for
    create2/createContainer, which reuse CreateRequest)."""
    op = record.OPCODE if opcode is None else opcode
    body = record.encode()
    return _REQUEST_FRAME.pack(8 + len(body), xid, op) + body
