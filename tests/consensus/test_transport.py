"""Peer transport over real loopback sockets: delivery, reconnect, shedding, refusal."""

from __future__ import annotations

import asyncio
import struct
import time
from collections.abc import AsyncIterator, Callable

import pytest

from paddock.consensus.codec import encode_message
from paddock.consensus.transport import PeerTransport, encode_hello
from paddock.consensus.types import Entry, Message, MsgType

HOST = "127.0.0.1"


async def wait_until(cond: Callable[[], bool], timeout: float = 5.0) -> None:
    deadline = time.monotonic() + timeout
    while not cond():
        if time.monotonic() > deadline:
            raise AssertionError("condition not reached in time")
        await asyncio.sleep(0.01)


class Node:
    def __init__(self, node_id: int, peers: dict[int, tuple[str, int]], **kw) -> None:
        self.inbox: list[Message] = []
        self.t = PeerTransport(node_id, (HOST, 0), peers, self.inbox.append, **kw)


@pytest.fixture
async def pair() -> AsyncIterator[tuple[Node, Node]]:
    peers = {1: (HOST, 0), 2: (HOST, 0)}
    a = Node(1, peers)
    b = Node(2, peers)
    try:
        await a.t.start()
        await b.t.start()
        a.t.set_peer_address(2, b.t.listen_addr)
        b.t.set_peer_address(1, a.t.listen_addr)
        # Appends sent before a link is up are dropped by design; start connected.
        await wait_until(lambda: a.t.stats()[2].connected and b.t.stats()[1].connected)
        yield a, b
    finally:
        await a.t.close()
        await b.t.close()


def append(src: int, dst: int, index: int, size: int = 10) -> Message:
    return Message(MsgType.APPEND, src, dst, term=1, entries=[Entry(1, index, b"x" * size)])


async def test_two_transports_exchange_messages(pair: tuple[Node, Node]) -> None:
    a, b = pair
    for i in range(100):
        a.t.send(append(1, 2, i))
    b.t.send(Message(MsgType.APPEND_RESP, 2, 1, term=1, index=99))
    await wait_until(lambda: len(b.inbox) == 100 and len(a.inbox) == 1)
    assert [m.entries[0].index for m in b.inbox] == list(range(100))
    assert a.inbox[0] == Message(MsgType.APPEND_RESP, 2, 1, term=1, index=99)
    # Batching: 100 messages queued in one go leave in few writes, all counted.
    assert a.t.stats()[2].sent_msgs == 100


async def test_message_to_self_is_delivered_locally(pair: tuple[Node, Node]) -> None:
    a, _b = pair
    a.t.send(Message(MsgType.HEARTBEAT, 1, 1))
    assert a.inbox == [Message(MsgType.HEARTBEAT, 1, 1)]


async def test_reconnects_after_peer_restarts(pair: tuple[Node, Node]) -> None:
    a, b = pair
    a.t.send(append(1, 2, 1))
    await wait_until(lambda: len(b.inbox) == 1)
    port = b.t.listen_addr[1]
    await b.t.close()
    await wait_until(lambda: not a.t.stats()[2].connected)
    b2 = Node(2, {1: a.t.listen_addr, 2: (HOST, port)})
    b2.t.listen_addr = (HOST, port)
    try:
        await b2.t.start()
        # Keep sending until one arrives: messages sent into the dying link may be lost.
        for i in range(2, 1000):
            a.t.send(append(1, 2, i))
            if b2.inbox:
                break
            await asyncio.sleep(0.02)
        await wait_until(lambda: bool(b2.inbox))
        assert a.t.stats()[2].connects >= 2
    finally:
        await b2.t.close()


async def test_appends_to_unreachable_peer_are_dropped_votes_kept() -> None:
    # Reserve a port nobody listens on (yet).
    probe = await asyncio.start_server(lambda r, w: None, HOST, 0)
    port = probe.sockets[0].getsockname()[1]
    probe.close()
    await probe.wait_closed()
    a = Node(1, {1: (HOST, 0), 2: (HOST, port)}, backoff_max=0.05)
    b = Node(2, {1: (HOST, 0), 2: (HOST, port)})
    b.t.listen_addr = (HOST, port)
    try:
        await a.t.start()
        a.t.send(Message(MsgType.VOTE, 1, 2, term=5))
        for i in range(50):
            a.t.send(append(1, 2, i))
        st = a.t.stats()[2]
        assert st.dropped == 50
        assert st.queued_msgs == 1
        await b.t.start()
        await wait_until(lambda: len(b.inbox) == 1)
        assert b.inbox[0].type == MsgType.VOTE
        a.t.send(append(1, 2, 99))  # connected now: delivered
        await wait_until(lambda: len(b.inbox) == 2)
    finally:
        await a.t.close()
        await b.t.close()


async def test_queue_to_slow_peer_is_bounded_and_sheds_appends_first() -> None:
    # A peer that accepts the connection but never reads: the socket buffers
    # fill, the writer blocks in drain, and the queue must stay bounded.
    conns: list[asyncio.StreamWriter] = []

    async def never_read(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        conns.append(writer)

    stuck = await asyncio.start_server(never_read, HOST, 0)
    port = stuck.sockets[0].getsockname()[1]
    a = Node(1, {1: (HOST, 0), 2: (HOST, port)}, max_queue_msgs=50)
    try:
        await a.t.start()
        await wait_until(lambda: a.t.stats()[2].connected)
        a.t.send(Message(MsgType.VOTE, 1, 2, term=5))
        for i in range(20_000):
            a.t.send(append(1, 2, i, size=4096))
            if i % 500 == 0:
                await asyncio.sleep(0)  # let the writer push into the socket
        st = a.t.stats()[2]
        assert st.queued_msgs <= 50
        assert st.dropped > 0
        assert st.sent_msgs + st.queued_msgs + st.dropped == 20_001
    finally:
        await a.t.close()
        for w in conns:
            w.close()
        stuck.close()
        await stuck.wait_closed()


async def test_shedding_prefers_appends_over_votes() -> None:
    a = Node(1, {1: (HOST, 0), 2: (HOST, 1)}, max_queue_msgs=3)
    out = a.t._out[2]
    out.stats.connected = True  # pretend: queue without a socket
    a.t.send(Message(MsgType.VOTE, 1, 2, term=1))
    for i in range(5):
        a.t.send(append(1, 2, i))
    kinds = [t for t, _f in out.queue]
    assert kinds == [MsgType.VOTE, MsgType.APPEND, MsgType.APPEND]
    assert out.stats.dropped == 3


async def test_queue_is_bounded_by_bytes() -> None:
    a = Node(1, {1: (HOST, 0), 2: (HOST, 1)}, max_queue_bytes=10_000)
    out = a.t._out[2]
    out.stats.connected = True
    for i in range(100):
        a.t.send(append(1, 2, i, size=1000))
    st = a.t.stats()[2]
    assert st.queued_bytes <= 10_000
    assert st.dropped == 100 - st.queued_msgs


async def _raw_connection_closed_by_server(port: int, payload: bytes) -> bool:
    reader, writer = await asyncio.open_connection(HOST, port)
    try:
        writer.write(payload)
        await writer.drain()
        data = await asyncio.wait_for(reader.read(1), 5.0)
        return data == b""
    finally:
        writer.close()


def _frame(body: bytes) -> bytes:
    return struct.pack("<I", len(body)) + body


@pytest.mark.parametrize(
    "payload",
    [
        pytest.param(encode_hello(1, "paddock") + struct.pack("<I", 2**31), id="oversized"),
        pytest.param(encode_hello(1, "paddock") + _frame(b"\x01garbage"), id="malformed"),
        pytest.param(encode_hello(1, "other-cluster"), id="wrong-cluster"),
        pytest.param(encode_hello(7, "paddock"), id="unknown-sender"),
        pytest.param(_frame(b"GET / HTTP/1.1"), id="no-hello"),
        pytest.param(
            encode_hello(1, "paddock") + _frame(encode_message(Message(MsgType.VOTE, 3, 2))),
            id="spoofed-src",
        ),
    ],
)
async def test_bad_connection_is_closed_and_others_carry_on(
    pair: tuple[Node, Node], payload: bytes
) -> None:
    a, b = pair
    a.t.send(append(1, 2, 1))
    await wait_until(lambda: len(b.inbox) == 1)
    assert await _raw_connection_closed_by_server(b.t.listen_addr[1], payload)
    assert b.t.rejected_connections == 1
    assert len(b.inbox) == 1  # nothing from the bad connection got through
    a.t.send(append(1, 2, 2))
    await wait_until(lambda: len(b.inbox) == 2)


async def test_large_frame_arriving_in_pieces(pair: tuple[Node, Node]) -> None:
    a, b = pair
    big = Message(
        MsgType.APPEND, 1, 2, entries=[Entry(1, i, bytes([i % 256]) * 4096) for i in range(600)]
    )
    a.t.send(big)
    a.t.send(append(1, 2, 7))
    await wait_until(lambda: len(b.inbox) == 2)
    assert b.inbox[0] == big


async def test_close_is_idempotent_and_stops_links(pair: tuple[Node, Node]) -> None:
    a, _b = pair
    await a.t.close()
    await a.t.close()
    assert all(not s.connected for s in a.t.stats().values())


async def test_oversized_outgoing_message_is_dropped_not_sent(pair: tuple[Node, Node]) -> None:
    a, b = pair
    a.t.max_frame = 10_000
    a.t.send(append(1, 2, 1, size=20_000))
    a.t.send(append(1, 2, 2, size=100))
    await wait_until(lambda: len(b.inbox) == 1)
    assert b.inbox[0].entries[0].index == 2
    assert a.t.stats()[2].dropped == 1
    assert b.t.rejected_connections == 0
