"""One client connection of the keeper server: framing, handshake, FIFO replies.

An ``asyncio.Protocol`` (no task per request): bytes go through the sans-IO
``ServerConnection``; reads are answered synchronously from the local tree;
writes go to the server's proposer. Replies are buffered and written once per
event-loop turn.

FIFO per session: a connection keeps a queue of reply slots only while it has
writes (or held reads) in flight; a read that arrives behind a pending write is
queued and *executed* when it reaches the head, so it sees the session's own
writes.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import deque
from collections.abc import Callable
from typing import TYPE_CHECKING

from paddock.keeper.acl import Id, authenticate_digest, ip_id
from paddock.keeper.codec import encode_response
from paddock.keeper.codes import FRAME_SLACK, OpCode
from paddock.keeper.connection import FourLetterWord, Request, ServerConnection
from paddock.keeper.connection import Sentinel as _Sentinel
from paddock.keeper.errors import Code
from paddock.keeper.jute import ProtocolError
from paddock.keeper.records import AuthPacket, ConnectRequest
from paddock.keeper.request_handlers import READ_HANDLERS, WRITE_OPCODES

if TYPE_CHECKING:
    from paddock.keeper.server import KeeperServer

log = logging.getLogger(__name__)

_EXPIRED_PASSWD = bytes(16)
_UNIMPLEMENTED = int(Code.UNIMPLEMENTED)
_AUTH_FAILED = int(Code.AUTH_FAILED)
_NOT_READ_ONLY = int(Code.NOT_READ_ONLY)
#: Requests in flight on one connection before it stops being read.
MAX_OUTSTANDING = 1000


def _now_ms() -> int:
    return int(time.monotonic() * 1000)


class _Slot:
    """A reply position in a connection's FIFO queue."""

    __slots__ = ("frame", "run")

    def __init__(self, frame: bytes | None = None, run: Callable[[], bytes] | None = None):
        self.frame = frame
        self.run = run


class ClientConnection(asyncio.Protocol):
    """One client TCP connection (and, once connected, its session here)."""

    def __init__(self, server: KeeperServer) -> None:
        self.server = server
        self.proto = ServerConnection(
            max_packet=server.cfg.jute_max_buffer + FRAME_SLACK, allow_four_letter_words=True
        )
        self.transport: asyncio.Transport | None = None
        self.address = "?"
        self.port = 0
        self.session_id = 0
        self.timeout_ms = 0
        self.auth: list[Id] = []
        self.connected = False
        self.read_only = False
        self.handshaking = False
        self.closed = False
        self.queue: deque[_Slot] = deque()
        #: writes submitted and not yet answered, and the term the oldest was sent in
        self.inflight_writes = 0
        self.inflight_term = 0
        self._throttled = False
        self._write_paused = False
        self.out: list[bytes] = []
        self._flush_scheduled = False
        self._loop = asyncio.get_running_loop()
        self.received = 0
        self.sent = 0

    # ------------------------------------------------------------ transport
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]
        peer = transport.get_extra_info("peername")
        if peer:
            self.address, self.port = str(peer[0]), int(peer[1])
        self.auth = [ip_id(self.address)]
        if not self.server.admit(self):
            log.warning(
                "too many connections from %s (max %d); closing",
                self.address,
                self.server.cfg.max_client_cnxns,
            )
            self.closed = True
            self.transport.abort()  # type: ignore[union-attr]
            return
        self.server.connections.add(self)

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        self.server.forget(self)

    def pause_writing(self) -> None:
        self._write_paused = True
        self._update_reading()

    def resume_writing(self) -> None:
        self._write_paused = False
        self._update_reading()

    def data_received(self, data: bytes) -> None:
        if self.closed:
            return
        self.proto.receive_data(data)
        if self.connected:
            self.server.sm.sessions.touch(self.session_id, _now_ms())
        self.process()

    def eof_received(self) -> bool | None:
        self.close()
        return None

    # ------------------------------------------------------------ events
    def process(self) -> None:
        proto = self.proto
        while not self.closed and not self.handshaking:
            try:
                ev = proto.next_event()
            except ProtocolError as exc:
                log.warning(
                    "closing connection from %s:%d (session 0x%x): %s",
                    self.address,
                    self.port,
                    self.session_id & 0xFFFFFFFFFFFFFFFF,
                    exc.reason,
                )
                self.close()
                return
            if isinstance(ev, _Sentinel):
                if ev is not _Sentinel.NEED_DATA:
                    self.close()
                return
            if isinstance(ev, Request):
                self.received += 1
                self.handle_request(ev)
            elif isinstance(ev, ConnectRequest):
                self.handshaking = True
                self.server.handle_connect(self, ev)
            elif isinstance(ev, FourLetterWord):
                text = self.server.four_letter(ev.command)
                self.write(text.encode())
                self.close()
                return

    def handle_request(self, req: Request) -> None:
        op = req.opcode
        handler = READ_HANDLERS.get(op)
        if handler is not None and req.record is not None:
            if self.queue:
                self.queue.append(_Slot(None, lambda: handler(self, req)))
                return
            barrier = self.server.read_barrier()
            if barrier:
                slot = self.begin_ordered()
                self.server.wait_applied(barrier, lambda: self.complete(slot, handler(self, req)))
            else:
                self.write(handler(self, req))
            return
        if op in WRITE_OPCODES and req.record is not None:
            if self.read_only:
                if op == OpCode.CLOSE_SESSION:
                    self.reply(encode_response(req.xid, self.server.sm.last_zxid, 0))
                    self.close_after_replies()
                else:
                    self.reply(encode_response(req.xid, self.server.sm.last_zxid, _NOT_READ_ONLY))
                return
            self.server.submit_write(self, req)
            return
        if op == OpCode.AUTH and req.record is not None:
            self._auth(req)
            return
        zxid = self.server.sm.last_zxid
        if op == OpCode.RECONFIG:
            self.reply(encode_response(req.xid, zxid, int(Code.RECONFIG_DISABLED)))
        else:
            log.info("session 0x%x: unimplemented opcode %d", self.session_id, op)
            self.reply(encode_response(req.xid, zxid, _UNIMPLEMENTED))

    def _auth(self, req: Request) -> None:
        rec: AuthPacket = req.record  # type: ignore[assignment]
        if rec.scheme == "digest":
            for ident in authenticate_digest(rec.auth, self.server.cfg.super_digest):
                if ident not in self.auth:
                    self.auth.append(ident)
            self.reply(encode_response(req.xid, 0, 0))
            return
        log.info("session 0x%x: auth scheme %r not supported", self.session_id, rec.scheme)
        self.reply(encode_response(req.xid, 0, _AUTH_FAILED))
        self.close_after_replies()

    # ------------------------------------------------------------ replies
    def reply(self, frame: bytes) -> None:
        """A reply in FIFO order (behind this session's pending writes)."""
        if self.queue:
            self.queue.append(_Slot(frame))
        else:
            self.write(frame)

    def begin_ordered(self) -> _Slot:
        slot = _Slot()
        self.queue.append(slot)
        if len(self.queue) >= MAX_OUTSTANDING and not self._throttled:
            # Too many requests in flight on one connection: stop reading from it
            # until replies drain (ZooKeeper's outstanding-requests throttle).
            self._throttled = True
            self._update_reading()
        return slot

    def complete(self, slot: _Slot, frame: bytes) -> None:
        slot.frame = frame
        queue = self.queue
        while queue:
            head = queue[0]
            if head.frame is not None:
                self.write(head.frame)
            elif head.run is not None:
                self.write(head.run())
            else:
                break
            queue.popleft()
        if self._throttled and len(queue) < MAX_OUTSTANDING // 2:
            self._throttled = False
            self._update_reading()

    def _update_reading(self) -> None:
        t = self.transport
        if t is None or self.closed:
            return
        if self._throttled or self._write_paused:
            t.pause_reading()
        else:
            t.resume_reading()

    def close_after_replies(self) -> None:
        if self.queue:
            self.queue.append(_Slot(None, self._close_now))
        else:
            self.close()

    def _close_now(self) -> bytes:
        self._loop.call_soon(self.close)
        return b""

    def write(self, frame: bytes) -> None:
        if self.closed:
            return
        self.out.append(frame)
        self.sent += 1
        if not self._flush_scheduled:
            self._flush_scheduled = True
            self._loop.call_soon(self.flush)

    def flush(self) -> None:
        self._flush_scheduled = False
        if self.out and self.transport is not None and not self.transport.is_closing():
            out, self.out = self.out, []
            self.transport.write(b"".join(out) if len(out) > 1 else out[0])

    def close(self) -> None:
        if self.transport is None:
            return
        self.flush()
        self.closed = True
        self.queue.clear()
        self.transport.close()

    # ------------------------------------------------------------ session
    def session_ready(
        self, session_id: int, timeout_ms: int, passwd: bytes, read_only: bool = False
    ) -> None:
        self.session_id = session_id
        self.timeout_ms = timeout_ms
        self.connected = True
        self.handshaking = False
        self.write(self.proto.encode_connect_response(timeout_ms, session_id, passwd, read_only))
        self.process()

    def session_refused(self, expired: bool) -> None:
        """Expired/unknown session: ZooKeeper's expired handshake, then close."""
        self.handshaking = False
        if expired:
            self.write(self.proto.encode_connect_response(0, 0, _EXPIRED_PASSWD, False))
        self.close()
