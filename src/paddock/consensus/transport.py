"""Peer-to-peer TCP transport for consensus messages (the network shell).

Shape: every node listens on its peer port and keeps ONE outbound connection to
each peer; messages to peer P travel on our connection to P, P's replies on
P's connection to us. A connection starts with a hello frame (sender id +
cluster id) so a misconfigured peer from another cluster, or an unknown id, is
refused before any of its messages reach the core.

Framing: ``u32 length`` + payload (little-endian), payload = ``codec`` bytes.

Why messages may be dropped: Raft tolerates loss (the leader retransmits from
its progress tracking), so a dead or slow peer must not make us buffer without
limit. Each peer's send queue is bounded by bytes and by count; past the bound
the oldest APPEND/HEARTBEAT (then the oldest of anything) is discarded and
counted in ``PeerStats.dropped``. While a peer is unreachable its APPENDs and
HEARTBEATs are dropped at once: replaying a backlog of stale appends after a
restart only delays the resync the leader's next heartbeat starts anyway.

Why one write per batch: ``send`` only enqueues; the per-peer writer task wakes,
takes everything queued, hands it to the socket with one ``writelines`` and
drains once. Under load that coalesces many messages into one syscall.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import socket
import struct
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field

from paddock.consensus.codec import CodecError, decode_message, encode_message
from paddock.consensus.types import Message, MsgType

log = logging.getLogger(__name__)

_LEN = struct.Struct("<I")
_HELLO_MAGIC = b"PDKR"
_HELLO = struct.Struct("<4sBIH")  # magic, version, sender id, cluster id length
_HELLO_VERSION = 1
_MAX_HELLO = 4096

#: Message types that are safe and cheap to lose first when a queue overflows:
#: the leader resends both on its next heartbeat/probe.
_SHEDDABLE = frozenset({MsgType.APPEND, MsgType.HEARTBEAT})

DEFAULT_MAX_FRAME = 64 << 20


class TransportError(Exception):
    """A peer connection violated the protocol (bad hello, oversized frame, bad bytes)."""


@dataclass
class PeerStats:
    """Counters for one outbound peer link (exposed through ``status()``)."""

    connected: bool = False
    queued_msgs: int = 0
    queued_bytes: int = 0
    sent_msgs: int = 0
    sent_bytes: int = 0
    dropped: int = 0
    connects: int = 0
    connect_failures: int = 0


@dataclass
class _Outbound:
    peer: int
    addr: tuple[str, int]
    queue: deque[tuple[MsgType, bytes]] = field(default_factory=deque)
    queued_bytes: int = 0
    wake: asyncio.Event = field(default_factory=asyncio.Event)
    stats: PeerStats = field(default_factory=PeerStats)
    task: asyncio.Task[None] | None = None


def encode_hello(sender: int, cluster_id: str) -> bytes:
    cid = cluster_id.encode()
    body = _HELLO.pack(_HELLO_MAGIC, _HELLO_VERSION, sender, len(cid)) + cid
    return _LEN.pack(len(body)) + body


def decode_hello(body: bytes) -> tuple[int, str]:
    if len(body) < _HELLO.size:
        raise TransportError("hello frame too short")
    magic, version, sender, cid_len = _HELLO.unpack_from(body)
    if magic != _HELLO_MAGIC or version != _HELLO_VERSION:
        raise TransportError("not a paddock consensus hello")
    if len(body) != _HELLO.size + cid_len:
        raise TransportError("hello frame length mismatch")
    try:
        cid = body[_HELLO.size :].decode()
    except UnicodeDecodeError as exc:
        raise TransportError("cluster id is not UTF-8") from exc
    return sender, cid


class PeerTransport:
    """Asyncio TCP links from node ``node_id`` to ``peers`` (which may include itself).

    ``on_message`` is called synchronously on the event loop for each decoded
    inbound message; it must not block.
    """

    def __init__(
        self,
        node_id: int,
        listen: tuple[str, int],
        peers: dict[int, tuple[str, int]],
        on_message: Callable[[Message], None],
        *,
        cluster_id: str = "paddock",
        max_frame: int = DEFAULT_MAX_FRAME,
        max_queue_bytes: int = 32 << 20,
        max_queue_msgs: int = 10_000,
        backoff_min: float = 0.02,
        backoff_max: float = 1.0,
        unacked_timeout: float = 10.0,
        rng: random.Random | None = None,
    ) -> None:
        self.node_id = node_id
        self.listen_addr = listen
        self.cluster_id = cluster_id
        self.max_frame = max_frame
        self.max_queue_bytes = max_queue_bytes
        self.max_queue_msgs = max_queue_msgs
        self.backoff_min = backoff_min
        self.backoff_max = backoff_max
        #: A peer host that drops SYNs must not stall the link for minutes.
        self.connect_timeout = 5.0
        #: TCP_USER_TIMEOUT of outbound links: give up on a connection whose sent
        #: bytes stay unacknowledged this long. Without it a link to a peer that
        #: died while cut off (its reset lost) looks connected until the
        #: kernel's retransmissions, backed off to minutes, reach the peer's new
        #: incarnation; until then the leader's appends and heartbeats go into
        #: a dead socket and the restarted peer never hears of a leader.
        self.unacked_timeout = unacked_timeout
        self._on_message = on_message
        self._rng = rng or random.Random(node_id)
        self._known = set(peers)
        self._out: dict[int, _Outbound] = {
            pid: _Outbound(pid, addr) for pid, addr in peers.items() if pid != node_id
        }
        self._server: asyncio.Server | None = None
        self._inbound: set[asyncio.Task[None]] = set()
        self._inbound_writers: set[asyncio.StreamWriter] = set()
        self._closed = False
        #: Inbound connections refused or closed for protocol violations.
        self.rejected_connections = 0
        self.received_msgs = 0

    # ------------------------------------------------------------------ lifecycle
    async def start(self) -> None:
        host, port = self.listen_addr
        self._server = await asyncio.start_server(
            self._serve_inbound, host, port, limit=1 << 20, reuse_address=True
        )
        if port == 0:
            sock = self._server.sockets[0]
            self.listen_addr = (host, sock.getsockname()[1])
        for out in self._out.values():
            out.task = asyncio.create_task(self._run_outbound(out), name=f"peer-out-{out.peer}")

    async def close(self) -> None:
        """Stop accepting, cancel every link task and close every socket."""
        if self._closed:
            return
        self._closed = True
        if self._server is not None:
            self._server.close()
        tasks = [o.task for o in self._out.values() if o.task is not None]
        tasks += list(self._inbound)
        for w in list(self._inbound_writers):
            w.close()
        for t in tasks:
            t.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        if self._server is not None:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self._server.wait_closed(), 1.0)

    def set_peer_address(self, peer: int, addr: tuple[str, int]) -> None:
        """Point the link to ``peer`` at a new address (tests bind port 0)."""
        self._out[peer].addr = addr

    # ------------------------------------------------------------------ sending
    def send(self, msg: Message) -> None:
        """Queue ``msg`` for its ``dst``; never blocks, may shed old messages."""
        out = self._out.get(msg.dst)
        if out is None:
            if msg.dst == self.node_id:
                self._on_message(msg)
            else:
                log.warning("node %d: message for unknown peer %d dropped", self.node_id, msg.dst)
            return
        if not out.stats.connected and msg.type in _SHEDDABLE:
            # The peer is unreachable: a stale append would only be resent in
            # bulk on reconnect; the leader's next heartbeat resyncs it instead.
            out.stats.dropped += 1
            return
        try:
            payload = encode_message(msg)
        except CodecError:
            log.exception("node %d: cannot encode %s to %d", self.node_id, msg.type, msg.dst)
            return
        if len(payload) > self.max_frame:
            # The peer would refuse it and close the link; say why here instead.
            log.error(
                "node %d: %s to %d is %d bytes, over the %d-byte frame limit; dropped",
                self.node_id,
                msg.type.name,
                msg.dst,
                len(payload),
                self.max_frame,
            )
            out.stats.dropped += 1
            return
        frame = _LEN.pack(len(payload)) + payload
        out.queue.append((msg.type, frame))
        out.queued_bytes += len(frame)
        if len(out.queue) > self.max_queue_msgs or out.queued_bytes > self.max_queue_bytes:
            self._shed(out)
        out.wake.set()

    def send_many(self, msgs: list[Message]) -> None:
        for m in msgs:
            self.send(m)

    def _shed(self, out: _Outbound) -> None:
        q = out.queue
        while len(q) > 1 and (
            len(q) > self.max_queue_msgs or out.queued_bytes > self.max_queue_bytes
        ):
            victim = None
            for i, (mtype, _frame) in enumerate(q):
                if mtype in _SHEDDABLE:
                    victim = i
                    break
            if victim is None:
                victim = 0
            _mtype, frame = q[victim]
            del q[victim]
            out.queued_bytes -= len(frame)
            out.stats.dropped += 1

    def _drop_sheddable(self, out: _Outbound) -> None:
        kept = deque(item for item in out.queue if item[0] not in _SHEDDABLE)
        out.stats.dropped += len(out.queue) - len(kept)
        out.queue = kept
        out.queued_bytes = sum(len(f) for _t, f in kept)

    def stats(self) -> dict[int, PeerStats]:
        for out in self._out.values():
            out.stats.queued_msgs = len(out.queue)
            out.stats.queued_bytes = out.queued_bytes
        return {pid: out.stats for pid, out in self._out.items()}

    async def _run_outbound(self, out: _Outbound) -> None:
        """The link to one peer, for the transport's whole life.

        It must never end while the transport is open: with the link gone the
        peer stays "not connected" and every APPEND and HEARTBEAT to it is
        dropped, so a follower would never hear its leader again (the chaos
        run's keeper 4, docs/reliability.md). So anything a connection attempt
        raises, not only the ``OSError`` family, is logged and retried."""
        delay = self.backoff_min
        while not self._closed:
            try:
                delay = await self._connect_and_pump(out, delay)
            except Exception:
                # E.g. uvloop's RuntimeError ("the handler is closed") from a
                # write racing a reset. Log it: a silent restart hides bugs.
                log.exception(
                    "node %d: link to peer %d failed; reconnecting", self.node_id, out.peer
                )
                out.stats.connected = False
            if not self._closed:
                await asyncio.sleep(delay * (0.5 + self._rng.random()))
                delay = min(delay * 2, self.backoff_max)

    async def _connect_and_pump(self, out: _Outbound, delay: float) -> float:
        """One connection: connect, send until it dies, close it. Returns the
        backoff delay to use before the next attempt."""
        try:
            reader, writer = await asyncio.wait_for(
                asyncio.open_connection(*out.addr), self.connect_timeout
            )
        except (OSError, TimeoutError) as exc:
            out.stats.connect_failures += 1
            log.debug(
                "node %d: connect to %d at %s failed: %s", self.node_id, out.peer, out.addr, exc
            )
            return delay
        self._limit_unacked(writer)
        out.stats.connects += 1
        out.stats.connected = True
        log.debug("node %d: connected to peer %d", self.node_id, out.peer)
        try:
            await self._pump(out, reader, writer)
            delay = self.backoff_min
        except (OSError, ConnectionError) as exc:
            log.info("node %d: link to peer %d lost: %s", self.node_id, out.peer, exc)
        finally:
            out.stats.connected = False
            self._drop_sheddable(out)
            await self._close_writer(writer)
        return delay

    def _limit_unacked(self, writer: asyncio.StreamWriter) -> None:
        opt = getattr(socket, "TCP_USER_TIMEOUT", None)  # Linux only
        sock = writer.get_extra_info("socket")
        if opt is None or sock is None or self.unacked_timeout <= 0:
            return
        with contextlib.suppress(OSError):
            sock.setsockopt(socket.IPPROTO_TCP, opt, int(self.unacked_timeout * 1000))

    async def _close_writer(self, writer: asyncio.StreamWriter) -> None:
        """Close a dead link's socket without waiting on it for ever: a
        transport still holding unsent bytes for a peer that stopped reading
        would otherwise keep ``wait_closed`` (and the link) hanging."""
        try:
            writer.close()
            await asyncio.wait_for(writer.wait_closed(), self.connect_timeout)
        except asyncio.CancelledError:
            writer.transport.abort()
            raise
        except Exception:
            writer.transport.abort()

    async def _pump(
        self, out: _Outbound, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ) -> None:
        """Send hello, then batches of queued frames until the connection dies."""
        writer.write(encode_hello(self.node_id, self.cluster_id))
        await writer.drain()
        # The peer never writes on this connection; a read returning means it
        # closed (refused hello, restart, oversized frame), so stop and reconnect.
        eof = asyncio.ensure_future(reader.read(1))
        try:
            while True:
                if not out.queue:
                    out.wake.clear()
                    wake = asyncio.ensure_future(out.wake.wait())
                    done, _ = await asyncio.wait({wake, eof}, return_when=asyncio.FIRST_COMPLETED)
                    if eof in done:
                        wake.cancel()
                        raise ConnectionError("peer closed the connection")
                    continue
                if eof.done() or writer.is_closing():
                    # is_closing: the runtime closed the socket (a reset) and the
                    # read side has not noticed yet; writing now would raise.
                    raise ConnectionError("peer closed the connection")
                frames = [f for _t, f in out.queue]
                out.queue.clear()
                nbytes = out.queued_bytes
                out.queued_bytes = 0
                writer.writelines(frames)
                out.stats.sent_msgs += len(frames)
                out.stats.sent_bytes += nbytes
                await writer.drain()
        finally:
            eof.cancel()

    # ------------------------------------------------------------------ receiving
    async def _serve_inbound(
        self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._inbound.add(task)
        self._inbound_writers.add(writer)
        peer = writer.get_extra_info("peername")
        try:
            await self._read_frames(reader, peer)
        except TransportError as exc:
            self.rejected_connections += 1
            log.warning("node %d: closing inbound connection from %s: %s", self.node_id, peer, exc)
        except (OSError, ConnectionError, asyncio.IncompleteReadError):
            pass
        except asyncio.CancelledError:
            # close() cancels us. Returning normally, rather than re-raising, keeps
            # asyncio's start_server callback (3.11) from logging the cancellation.
            pass
        finally:
            self._inbound.discard(task)
            self._inbound_writers.discard(writer)
            writer.close()

    async def _read_frames(self, reader: asyncio.StreamReader, peer: object) -> None:
        # ``need`` is how many buffered bytes the next frame requires, so a big
        # frame arriving in many chunks is joined once, not re-scanned per chunk.
        pending = bytearray()
        need = 4
        sender: int | None = None
        max_frame = self.max_frame
        on_message = self._on_message
        unpack_len = _LEN.unpack_from
        while True:
            chunk = await reader.read(1 << 18)
            if not chunk:
                return
            if pending:
                pending += chunk
                if len(pending) < need:
                    continue
                data = bytes(pending)
            else:
                if len(chunk) < need:
                    pending += chunk
                    continue
                data = chunk
            pos = 0
            end = len(data)
            need = 4
            while end - pos >= 4:
                (length,) = unpack_len(data, pos)
                limit = max_frame if sender is not None else _MAX_HELLO
                if length > limit:
                    raise TransportError(f"frame of {length} bytes exceeds limit {limit}")
                if end - pos - 4 < length:
                    need = 4 + length
                    break
                body = data[pos + 4 : pos + 4 + length]
                pos += 4 + length
                if sender is None:
                    sender, cid = decode_hello(body)
                    if cid != self.cluster_id:
                        raise TransportError(f"cluster id {cid!r} != ours {self.cluster_id!r}")
                    if sender not in self._known or sender == self.node_id:
                        raise TransportError(f"unknown sender id {sender}")
                    continue
                try:
                    msg = decode_message(body)
                except CodecError as exc:
                    raise TransportError(f"malformed message from {sender}: {exc}") from exc
                if msg.src != sender:
                    raise TransportError(f"message claims src {msg.src} on link from {sender}")
                self.received_msgs += 1
                try:
                    on_message(msg)
                except Exception:
                    log.exception("node %d: handler failed on %s", self.node_id, msg.type)
            pending = bytearray(data[pos:]) if pos < end else bytearray()
