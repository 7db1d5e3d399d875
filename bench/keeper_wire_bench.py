"""Micro-benchmark of the keeper wire codec: frames decoded/encoded per second.

    .venv/bin/python bench/keeper_wire_bench.py [--n 200000] [--size 1024]

Times are process CPU time (best of --runs), so a busy shared machine
inflates them less than wall-clock time would.

Server side: ``ServerConnection.receive_data`` + ``next_event`` over a stream
of pipelined getData / setData requests fed in 64 KiB chunks (as a socket read
would deliver them), and ``encode_response`` of their replies.  Client side
(the load generator's costs): request encoding and reply decoding.
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Callable

from paddock.keeper import protocol as p

CHUNK = 64 * 1024


def rate(label: str, n: int, seconds: float) -> None:
    print(f"{label:<48} {n / seconds:>12,.0f} /s   ({seconds * 1e6 / n:6.2f} us each)")


def best_of(runs: int, fn: Callable[[], float]) -> float:
    return min(fn() for _ in range(runs))


def server_decode(stream: bytes, n: int) -> float:
    server = p.ServerConnection()
    connect = p.encode_connect_request(p.ConnectRequest())
    server.receive_data(connect)
    server.next_event()
    need = p.NEED_DATA
    got = 0
    start = time.process_time()
    for i in range(0, len(stream), CHUNK):
        server.receive_data(stream[i : i + CHUNK])
        next_event = server.next_event
        while next_event() is not need:
            got += 1
    elapsed = time.process_time() - start
    assert got == n, (got, n)
    return elapsed


def client_decode(stream: bytes, n: int, opcode: int) -> float:
    client = p.ClientConnection()
    client.receive_data(p.encode_connect_response(p.ConnectResponse()))
    client.next_event()
    for xid in range(1, n + 1):
        client.encode_request(xid, p.SyncRequest("/"), opcode)
    need = p.NEED_DATA
    got = 0
    start = time.process_time()
    for i in range(0, len(stream), CHUNK):
        client.receive_data(stream[i : i + CHUNK])
        next_event = client.next_event
        while (ev := next_event()) is not need:
            got += 1
    elapsed = time.process_time() - start
    assert got == n and ev is need
    return elapsed


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--n", type=int, default=200_000)
    parser.add_argument("--size", type=int, default=1024, help="setData/getData payload bytes")
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args()
    n, runs = args.n, args.runs
    data = b"v" * args.size
    stat = p.Stat(0x100000001, 0x100000002, 1, 2, 3, 0, 0, 0, len(data), 0, 0x100000001)
    paths = [f"/bench/node{i % 1000:04d}" for i in range(n)]

    get_stream = b"".join(p.encode_request(i + 1, p.GetDataRequest(paths[i])) for i in range(n))
    set_stream = b"".join(
        p.encode_request(i + 1, p.SetDataRequest(paths[i], data, -1)) for i in range(n)
    )
    rate("server decode getData request", n, best_of(runs, lambda: server_decode(get_stream, n)))
    rate(
        f"server decode setData request ({args.size} B)",
        n,
        best_of(runs, lambda: server_decode(set_stream, n)),
    )

    encode = p.encode_response
    get_reply = p.GetDataResponse(data, stat)
    set_reply = p.SetDataResponse(stat)

    def encode_get() -> float:
        start = time.process_time()
        for xid in range(n):
            encode(xid, 5, 0, get_reply)
        return time.process_time() - start

    def encode_set() -> float:
        start = time.process_time()
        for xid in range(n):
            encode(xid, 5, 0, set_reply)
        return time.process_time() - start

    rate(f"server encode getData reply ({args.size} B)", n, best_of(runs, encode_get))
    rate("server encode setData reply", n, best_of(runs, encode_set))

    def roundtrip_get() -> float:
        # decode a request and encode its reply: the codec's share of one read
        server = p.ServerConnection()
        server.receive_data(p.encode_connect_request(p.ConnectRequest()))
        server.next_event()
        need = p.NEED_DATA
        start = time.process_time()
        replies = 0
        for i in range(0, len(get_stream), CHUNK):
            server.receive_data(get_stream[i : i + CHUNK])
            while (ev := server.next_event()) is not need:
                replies += len(encode(ev.xid, 5, 0, get_reply))  # type: ignore[union-attr]
        elapsed = time.process_time() - start
        assert replies == n * len(encode(1, 5, 0, get_reply))
        return elapsed

    rate("server decode getData + encode reply", n, best_of(runs, roundtrip_get))

    client = p.ClientConnection()
    record = p.GetDataRequest("/bench/node0001")

    def encode_requests() -> float:
        start = time.process_time()
        for xid in range(1, n + 1):
            client.encode_request(xid, record)
        return time.process_time() - start

    rate("client encode getData request", n, best_of(runs, encode_requests))
    get_replies = b"".join(encode(xid, 5, 0, get_reply) for xid in range(1, n + 1))
    set_replies = b"".join(encode(xid, 5, 0, set_reply) for xid in range(1, n + 1))
    rate(
        f"client decode getData reply ({args.size} B)",
        n,
        best_of(runs, lambda: client_decode(get_replies, n, p.OpCode.GET_DATA)),
    )
    rate(
        "client decode setData reply",
        n,
        best_of(runs, lambda: client_decode(set_replies, n, p.OpCode.SET_DATA)),
    )


if __name__ == "__main__":
    main()
