"""A tiny replicated key-value store on ``ConsensusServer``: the demo/bench app.

Client protocol: one request per line over TCP, pipelining allowed (responses
come back in request order)::

    PUT <key> <value>   -> OK <index>
    GET <key>           -> VALUE <value> | NOTFOUND      (linearizable: read-index)
    STATUS              -> STATUS <json>
    errors              -> NOTLEADER <leader id> | UNKNOWN <leader id> | ERR <text>

``UNKNOWN`` means leadership changed while the PUT was in flight: it may or may
not have been applied. Keys are one word; the value is the rest of the line.

Why a text protocol: it is debuggable with ``nc``, and consecutive PUTs on a
connection are proposed as ONE batch, so it is not the bottleneck.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import struct
from collections import deque
from typing import Any

from paddock.consensus.server import ConsensusServer, OutcomeUnknown, ServerStopped
from paddock.consensus.types import Entry, NotLeader

log = logging.getLogger(__name__)

_PUT = b"P"
_KEYLEN = struct.Struct("<H")
_KV = struct.Struct("<II")
MAX_LINE = 1 << 20


def encode_put(key: bytes, value: bytes) -> bytes:
    return _PUT + _KEYLEN.pack(len(key)) + key + value


class KVStateMachine:
    """``dict[bytes, bytes]`` with PUT commands; snapshot = length-prefixed pairs."""

    def __init__(self) -> None:
        self.data: dict[bytes, bytes] = {}

    def apply(self, entry: Entry) -> Any:
        d = entry.data
        if d[:1] == _PUT and len(d) >= 3:
            (klen,) = _KEYLEN.unpack_from(d, 1)
            self.data[d[3 : 3 + klen]] = d[3 + klen :]
            return entry.index
        return None  # unknown command: ignored (a newer client's, or garbage)

    def snapshot(self) -> bytes:
        pack = _KV.pack
        parts: list[bytes] = []
        for k, v in self.data.items():
            parts += (pack(len(k), len(v)), k, v)
        return b"".join(parts)

    def restore(self, data: bytes) -> None:
        out: dict[bytes, bytes] = {}
        pos, end = 0, len(data)
        unpack = _KV.unpack_from
        while pos < end:
            klen, vlen = unpack(data, pos)
            pos += 8
            out[data[pos : pos + klen]] = data[pos + klen : pos + klen + vlen]
            pos += klen + vlen
        self.data = out


class KVClientServer:
    """Serves the line protocol for one ``ConsensusServer`` + ``KVStateMachine``."""

    def __init__(self, server: ConsensusServer, sm: KVStateMachine) -> None:
        self.server = server
        self.sm = sm
        self._srv: asyncio.Server | None = None
        self._conns: set[asyncio.Task[None]] = set()
        self.port = 0

    async def start(self, host: str, port: int) -> None:
        self._srv = await asyncio.start_server(self._serve, host, port, limit=MAX_LINE)
        self.port = self._srv.sockets[0].getsockname()[1]

    async def close(self) -> None:
        if self._srv is not None:
            self._srv.close()
        for t in list(self._conns):
            t.cancel()
        await asyncio.gather(*self._conns, return_exceptions=True)

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._conns.add(task)
        # Responses are produced in request order by this task; the reader side
        # only parses and submits, so a connection can pipeline many batches.
        pending: asyncio.Queue[Any] = asyncio.Queue(maxsize=256)
        responder = asyncio.create_task(self._respond(pending, writer))
        try:
            buf = b""
            while True:
                chunk = await reader.read(1 << 18)
                if not chunk:
                    break
                buf += chunk
                if b"\n" not in chunk:
                    if len(buf) > MAX_LINE:
                        await pending.put(b"ERR line too long\n")
                        break
                    continue
                *lines, buf = buf.split(b"\n")
                for item in self._submit(lines):
                    await pending.put(item)
                if responder.done():
                    break
        except (ConnectionError, OSError):
            pass
        finally:
            try:
                pending.put_nowait(None)
                await asyncio.wait_for(responder, 30)
            except (asyncio.QueueFull, Exception):
                pass
            finally:
                responder.cancel()
                self._conns.discard(task)
                writer.close()

    def _submit(self, lines: list[bytes]) -> list[Any]:
        """Turn request lines into response items, proposing runs of PUTs as one batch."""
        items: list[Any] = []
        puts: list[bytes] = []

        def flush_puts() -> None:
            if not puts:
                return
            try:
                items.append(("puts", len(puts), self.server.submit_many(puts)))
            except NotLeader as exc:
                items.append(f"NOTLEADER {exc.leader}\n".encode() * len(puts))
            except ServerStopped:
                items.append(b"ERR stopping\n" * len(puts))
            puts.clear()

        for raw in lines:
            line = raw.rstrip(b"\r")
            if line.startswith(b"PUT "):
                parts = line.split(b" ", 2)
                if len(parts) != 3 or not parts[1]:
                    flush_puts()
                    items.append(b"ERR usage: PUT <key> <value>\n")
                    continue
                puts.append(encode_put(parts[1], parts[2]))
                continue
            flush_puts()
            if line.startswith(b"GET "):
                items.append(("get", line[4:].strip()))
            elif line == b"STATUS":
                items.append(("status",))
            elif line:
                items.append(b"ERR unknown command\n")
        flush_puts()
        return items

    async def _respond(self, pending: asyncio.Queue[Any], writer: asyncio.StreamWriter) -> None:
        """Write responses in request order. If the client went away, keep
        consuming (and discarding) so the reading side never blocks on a full queue."""
        out: deque[bytes] = deque()
        broken = False
        while True:
            item = await pending.get()
            if item is None:
                break
            out.append(await self._render(item))
            if broken:
                out.clear()
            elif pending.empty() or len(out) >= 64:
                try:
                    writer.writelines(out)
                    await writer.drain()
                except (ConnectionError, OSError):
                    broken = True
                out.clear()
        if out and not broken:
            with contextlib.suppress(ConnectionError, OSError):
                writer.writelines(out)
                await writer.drain()

    async def _render(self, item: Any) -> bytes:
        if isinstance(item, bytes):
            return item
        if item[0] == "puts":
            return await self._put_responses(item[2])
        if item[0] == "get":
            return await self._get(item[1])
        try:
            return b"STATUS " + json.dumps(self.server.status()).encode() + b"\n"
        except ServerStopped:
            return b"ERR stopping\n"

    async def _put_responses(self, fut: asyncio.Future[list[Any]]) -> bytes:
        try:
            results = await fut
        except ServerStopped:
            return b"ERR stopping\n"
        lines = []
        for r in results:
            if isinstance(r, OutcomeUnknown):
                lines.append(b"UNKNOWN %d\n" % r.leader)
            elif isinstance(r, NotLeader):
                lines.append(b"NOTLEADER %d\n" % r.leader)
            elif isinstance(r, Exception):
                lines.append(b"ERR " + str(r).encode(errors="replace").replace(b"\n", b" ") + b"\n")
            else:
                lines.append(b"OK %d\n" % (r or 0))
        return b"".join(lines)

    async def _get(self, key: bytes) -> bytes:
        try:
            await self.server.read_index()
        except NotLeader as exc:
            return b"NOTLEADER %d\n" % exc.leader
        except ServerStopped:
            return b"ERR stopping\n"
        value = self.sm.data.get(key)
        return b"NOTFOUND\n" if value is None else b"VALUE " + value + b"\n"


class KVClient:
    """Minimal asyncio client for the line protocol (demo, bench, tests)."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader = reader
        self.writer = writer

    @classmethod
    async def connect(cls, host: str, port: int, timeout: float = 5.0) -> KVClient:
        reader, writer = await asyncio.wait_for(
            asyncio.open_connection(host, port, limit=MAX_LINE), timeout
        )
        return cls(reader, writer)

    async def request(self, line: bytes, timeout: float = 10.0) -> bytes:
        self.writer.write(line + b"\n")
        await self.writer.drain()
        resp = await asyncio.wait_for(self.reader.readline(), timeout)
        if not resp:
            raise ConnectionError("server closed the connection")
        return resp.rstrip(b"\n")

    async def put(self, key: str, value: str) -> bytes:
        return await self.request(f"PUT {key} {value}".encode())

    async def get(self, key: str) -> bytes:
        return await self.request(f"GET {key}".encode())

    async def status(self) -> dict[str, Any]:
        resp = await self.request(b"STATUS")
        if not resp.startswith(b"STATUS "):
            raise ConnectionError(resp.decode(errors="replace"))
        out: dict[str, Any] = json.loads(resp[7:])
        return out

    async def close(self) -> None:
        self.writer.close()
        with contextlib.suppress(Exception):
            await self.writer.wait_closed()


async def serve_kv_node(
    node_id: int,
    peers: dict[int, tuple[str, int]],
    data_dir: str,
    client_host: str,
    client_port: int,
    *,
    stop: asyncio.Event,
    tick_interval: float = 0.05,
    snapshot_every: int = 50_000,
    cluster_id: str = "paddock",
    external_election: bool = False,
    overlap_persist: bool = True,
) -> None:
    """Run one KV node until ``stop`` is set (the body of ``paddock consensus serve``).

    Raises ``RuntimeError`` if the node failed (a storage error), so the process
    exits non-zero and a supervisor restarts it from what is on disk.
    """
    sm = KVStateMachine()
    server = ConsensusServer(
        node_id,
        peers,
        data_dir,
        sm,
        tick_interval=tick_interval,
        snapshot_every=snapshot_every,
        cluster_id=cluster_id,
        external_election=external_election,
        overlap_persist=overlap_persist,
    )
    await server.start()
    api = KVClientServer(server, sm)
    try:
        await api.start(client_host, client_port)
        log.info("node %d: client API on %s:%d", node_id, client_host, api.port)
        waits = [
            asyncio.ensure_future(stop.wait()),
            asyncio.ensure_future(server.failed_event.wait()),
        ]
        await asyncio.wait(waits, return_when=asyncio.FIRST_COMPLETED)
        for w in waits:
            w.cancel()
    finally:
        await api.close()
        await server.stop()
    if server.failed:
        raise RuntimeError(f"node {node_id} failed: {server.failed}")
