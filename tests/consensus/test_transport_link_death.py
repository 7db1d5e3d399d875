"""A peer link must outlive any way its TCP connection can die.

Reduction of the chaos-run liveness finding (docs/reliability.md, "Liveness
finding"): keeper 5, the leader, never again reached keeper 4 after 4 was
``kill -9``'d at the wrong moment. The keepers run on uvloop, whose stream
transport raises ``RuntimeError("unable to perform operation on
<TCPTransport closed=True ...>; the handler is closed")`` from ``writelines``
when the connection was closed by the runtime (a reset from a dying peer)
after the link's writer woke up but before it noticed the end of the
connection. That exception was not an ``OSError``, so it ended the link task
silently (the task object is referenced, so not even asyncio's "exception
was never retrieved" was logged). With the link gone the peer stays
"not connected", and every APPEND and HEARTBEAT to it is dropped at once: the
follower never hears the leader again and stays read-only, while the other
followers keep the leader's quorum.

The test drives that exact interleaving on real loopback sockets and a real
uvloop event loop: queue a message (wakes the link), let the loop run one
step, then reset the connection under it.
"""

from __future__ import annotations

import asyncio
import socket
import time

import pytest

from paddock.consensus import transport as transport_mod
from paddock.consensus.transport import PeerTransport
from paddock.consensus.types import Message, MsgType

uvloop = pytest.importorskip("uvloop")

HOST = "127.0.0.1"

#: The connections the last ``_reset_under_a_write`` opened (peer address, writer).
_last_writers: list[tuple[tuple[str, int], asyncio.StreamWriter]] = []


async def _wait_until(cond, timeout: float = 5.0) -> None:
    deadline = time.monotonic() + timeout
    while not cond():
        if time.monotonic() > deadline:
            raise AssertionError("condition not reached in time")
        await asyncio.sleep(0.01)


async def _reset_under_a_write(
    order: str,
) -> tuple[PeerTransport, PeerTransport, list[Message]]:
    """Two transports; kill node 1's connection to node 2 following ``order``
    (s = queue a heartbeat, y = one loop step, a = reset the connection).
    Returns both transports (still running: the caller closes them) and node
    2's inbox."""
    writers = _last_writers
    writers.clear()
    real_open = asyncio.open_connection

    async def recording_open(host: str, port: int, **kw):  # a spy: the real connection
        reader, writer = await real_open(host, port, **kw)
        writers.append(((host, port), writer))
        return reader, writer

    transport_mod.asyncio.open_connection = recording_open  # type: ignore[assignment]
    try:
        peers = {1: (HOST, 0), 2: (HOST, 0)}
        inbox: list[Message] = []
        a = PeerTransport(1, (HOST, 0), peers, lambda m: None)
        b = PeerTransport(2, (HOST, 0), peers, inbox.append)
        try:
            await a.start()
            await b.start()
            a.set_peer_address(2, b.listen_addr)
            b.set_peer_address(1, a.listen_addr)
            await _wait_until(lambda: a.stats()[2].connected)
            hb = Message(MsgType.HEARTBEAT, 1, 2, term=1)
            a.send(hb)
            await _wait_until(lambda: len(inbox) == 1)
            (writer,) = [w for addr, w in writers if addr == b.listen_addr]
            for step in order:
                if step == "s":
                    a.send(hb)
                elif step == "y":
                    await asyncio.sleep(0)
                elif step == "a":
                    writer.transport.abort()  # what a reset from a dying peer does
        except BaseException:
            await a.close()
            await b.close()
            raise
        return a, b, inbox
    finally:
        transport_mod.asyncio.open_connection = real_open  # type: ignore[assignment]


@pytest.mark.parametrize("order", ["sya", "sa", "as", "syya"])
def test_link_reconnects_after_reset_under_a_write_on_uvloop(order: str) -> None:
    async def scenario() -> None:
        a, b, inbox = await _reset_under_a_write(order)
        try:
            # The link must come back by itself and carry heartbeats again.
            await _wait_until(lambda: a.stats()[2].connects >= 2)
            task = a._out[2].task
            assert task is not None and not task.done(), task
            before = len(inbox)
            for _ in range(200):
                a.send(Message(MsgType.HEARTBEAT, 1, 2, term=1, context=7))
                if any(m.context == 7 for m in inbox[before:]):
                    break
                await asyncio.sleep(0.02)
            assert any(m.context == 7 for m in inbox[before:]), "heartbeats never arrived again"
        finally:
            await a.close()
            await b.close()

    uvloop.run(scenario())


def test_unexpected_error_in_a_link_is_logged_and_the_link_restarts(caplog) -> None:
    """Whatever the stream layer raises, the link logs it and reconnects;
    it never ends while the transport is open."""

    async def scenario() -> None:
        a, b, _inbox = await _reset_under_a_write("sya")
        try:
            await _wait_until(lambda: a.stats()[2].connects >= 2)
        finally:
            await a.close()
            await b.close()

    with caplog.at_level("INFO", logger="paddock.consensus.transport"):
        uvloop.run(scenario())
    assert any("link to peer 2" in r.getMessage() for r in caplog.records), caplog.text


@pytest.mark.parametrize("loop", ["asyncio", "uvloop"])
def test_outbound_link_gives_up_on_unacknowledged_bytes(loop: str) -> None:
    """A peer that died while cut off never resets our connection to it; the
    link must not look connected for the minutes TCP's backed-off
    retransmissions take: the kernel is told to drop it after
    ``unacked_timeout`` seconds of unacknowledged data (TCP_USER_TIMEOUT)."""
    if not hasattr(socket, "TCP_USER_TIMEOUT"):
        pytest.skip("TCP_USER_TIMEOUT is Linux-only")

    async def scenario() -> int:
        a, b, _inbox = await _reset_under_a_write("")
        try:
            (writer,) = [w for addr, w in _last_writers if addr == b.listen_addr]
            sock = writer.get_extra_info("socket")
            return sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_USER_TIMEOUT)
        finally:
            await a.close()
            await b.close()

    ms = uvloop.run(scenario()) if loop == "uvloop" else asyncio.run(scenario())
    assert ms == 10_000
