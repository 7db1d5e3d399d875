"""multi (14) and multiRead (22): several operations in one request.

On the wire both directions are a series of ``MultiHeader{type, done, err}``
each followed by that operation's record, ended by ``MultiHeader(-1, true,
-1)`` (``MultiOperationRecord`` / ``MultiResponse``).  A multi carries only
write-side ops (create*, delete, setData, check); a multiRead only getData and
getChildren; mixing them is a marshalling error, as in Java ZooKeeper.
Results reuse the single-op response records plus :class:`DeleteResult`,
:class:`CheckResult` and :class:`ErrorResult`.
"""

from __future__ import annotations

import struct
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import ClassVar, NamedTuple

from paddock.keeper.codes import OpCode
from paddock.keeper.jute import INT, JuteReader, ProtocolError
from paddock.keeper.records import (
    CheckVersionRequest,
    CreateRequest,
    CreateTTLRequest,
    DeleteRequest,
    GetChildrenRequest,
    GetDataRequest,
    SetDataRequest,
)
from paddock.keeper.responses import (
    Create2Response,
    CreateResponse,
    GetChildrenResponse,
    GetDataResponse,
    SetDataResponse,
)

_MULTI_HEADER = struct.Struct(">i?i")
_unpack_header = _MULTI_HEADER.unpack_from
MULTI_END = _MULTI_HEADER.pack(-1, True, -1)


class MultiHeader(NamedTuple):
    type: int
    done: bool
    err: int

    @classmethod
    def decode(cls, r: JuteReader) -> MultiHeader:
        p = r.pos
        if p + 9 > r.end:
            raise ProtocolError("truncated record: not enough bytes for MultiHeader")
        r.pos = p + 9
        t, _, err = _unpack_header(r.buf, p)
        return cls(t, r.buf[p + 4] != 0, err)

    def encode(self) -> bytes:
        return _MULTI_HEADER.pack(self.type, self.done, self.err)


MultiOpRecord = (
    CreateRequest
    | CreateTTLRequest
    | DeleteRequest
    | SetDataRequest
    | CheckVersionRequest
    | GetDataRequest
    | GetChildrenRequest
)


class MultiOp(NamedTuple):
    """One operation of a multi: its opcode and request record.

    The opcode matters beyond the record type: create, create2 and
    createContainer all carry a CreateRequest."""

    type: int
    request: MultiOpRecord


_WRITE_OPS: dict[int, Callable[[JuteReader], MultiOpRecord]] = {
    OpCode.CREATE: CreateRequest.decode,
    OpCode.CREATE2: CreateRequest.decode,
    OpCode.CREATE_CONTAINER: CreateRequest.decode,
    OpCode.CREATE_TTL: CreateTTLRequest.decode,
    OpCode.DELETE: DeleteRequest.decode,
    OpCode.SET_DATA: SetDataRequest.decode,
    OpCode.CHECK: CheckVersionRequest.decode,
}
_READ_OPS: dict[int, Callable[[JuteReader], MultiOpRecord]] = {
    OpCode.GET_DATA: GetDataRequest.decode,
    OpCode.GET_CHILDREN: GetChildrenRequest.decode,
}


def _decode_ops(
    r: JuteReader, allowed: dict[int, Callable[[JuteReader], MultiOpRecord]], what: str
) -> list[MultiOp]:
    ops: list[MultiOp] = []
    header = MultiHeader.decode(r)
    while not header.done:
        decode = allowed.get(header.type)
        if decode is None:
            raise ProtocolError(f"op type {header.type} is not allowed in a {what}")
        ops.append(MultiOp(header.type, decode(r)))
        header = MultiHeader.decode(r)
    return ops


def _encode_ops(ops: list[MultiOp]) -> bytes:
    parts = []
    for op in ops:
        parts.append(_MULTI_HEADER.pack(op.type, False, -1))
        parts.append(op.request.encode())
    parts.append(MULTI_END)
    return b"".join(parts)


@dataclass(slots=True)
class MultiRequest:
    """A transaction (opcode 14): all ops succeed or none do."""

    OPCODE: ClassVar[int] = OpCode.MULTI
    ops: list[MultiOp] = field(default_factory=list)

    @classmethod
    def decode(cls, r: JuteReader) -> MultiRequest:
        return cls(_decode_ops(r, _WRITE_OPS, "multi"))

    def encode(self) -> bytes:
        return _encode_ops(self.ops)


@dataclass(slots=True)
class MultiReadRequest:
    """Several reads in one round trip (opcode 22); each may fail on its own."""

    OPCODE: ClassVar[int] = OpCode.MULTI_READ
    ops: list[MultiOp] = field(default_factory=list)

    @classmethod
    def decode(cls, r: JuteReader) -> MultiReadRequest:
        return cls(_decode_ops(r, _READ_OPS, "multiRead"))

    def encode(self) -> bytes:
        return _encode_ops(self.ops)


@dataclass(slots=True)
class DeleteResult:
    MULTI_TYPE: ClassVar[int] = OpCode.DELETE

    def encode(self) -> bytes:
        return b""


@dataclass(slots=True)
class CheckResult:
    MULTI_TYPE: ClassVar[int] = OpCode.CHECK

    def encode(self) -> bytes:
        return b""


@dataclass(slots=True)
class ErrorResult:
    """An op of a multi that did not take effect.

    In a failed transaction (``DataTree.processTxn``) the ops before the
    failing one carry Ok (0, "rolled back"), the failing op its own error, and
    the ops after it RuntimeInconsistency (-2); the ReplyHeader's err stays 0.
    In a multiRead each failed read carries its own error."""

    MULTI_TYPE: ClassVar[int] = OpCode.ERROR
    err: int

    def encode(self) -> bytes:
        return INT.pack(self.err)


MultiResult = (
    CreateResponse
    | Create2Response
    | DeleteResult
    | SetDataResponse
    | CheckResult
    | GetDataResponse
    | GetChildrenResponse
    | ErrorResult
)


def _read_error_result(r: JuteReader) -> ErrorResult:
    return ErrorResult(r.read_int())


_RESULT_DECODERS: dict[int, Callable[[JuteReader], MultiResult]] = {
    OpCode.CREATE: CreateResponse.decode,
    OpCode.CREATE2: Create2Response.decode,
    OpCode.DELETE: lambda r: DeleteResult(),
    OpCode.SET_DATA: SetDataResponse.decode,
    OpCode.CHECK: lambda r: CheckResult(),
    OpCode.GET_DATA: GetDataResponse.decode,
    OpCode.GET_CHILDREN: GetChildrenResponse.decode,
    OpCode.ERROR: _read_error_result,
}


@dataclass(slots=True)
class MultiResponse:
    """Answer to multi and multiRead: one result per op, in order."""

    results: list[MultiResult] = field(default_factory=list)

    @classmethod
    def decode(cls, r: JuteReader) -> MultiResponse:
        results: list[MultiResult] = []
        header = MultiHeader.decode(r)
        while not header.done:
            decode = _RESULT_DECODERS.get(header.type)
            if decode is None:
                raise ProtocolError(f"invalid result type {header.type} in a multi response")
            results.append(decode(r))
            header = MultiHeader.decode(r)
        return cls(results)

    def encode(self) -> bytes:
        parts = []
        for result in self.results:
            err = result.err if isinstance(result, ErrorResult) else 0
            parts.append(_MULTI_HEADER.pack(result.MULTI_TYPE, False, err))
            parts.append(result.encode())
        parts.append(MULTI_END)
        return b"".join(parts)
