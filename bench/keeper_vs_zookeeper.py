"""keeper vs Apache ZooKeeper 3.8: throughput, latency and leader failover, side by side.

    .venv/bin/python bench/keeper_vs_zookeeper.py                   # both (keeper if available)
    .venv/bin/python bench/keeper_vs_zookeeper.py --only zookeeper --duration 10
    .venv/bin/python bench/keeper_vs_zookeeper.py --ceiling         # the load generator's own limit

Each target is a 3-server ensemble on loopback, driven by the same pipelined
load generator: ``--processes`` OS processes, each running an asyncio loop
with its share of ``--connections`` sessions, each keeping ``--depth``
requests in flight, spread over all three servers, on ``--keys`` znodes of
``--value-size`` bytes. The generator speaks the wire protocol directly
(paddock.testing.zkwire), because kazoo would be the bottleneck. Workloads:
setData only, getData only, and a 70/30 mix (70 % getData, 30 % setData).
Reported: ops/s over the measured window (after ``--warmup``), p50/p99
latency from send to reply, and keeper/ZooKeeper ratios. Failover: with a
short tick (``--tick-ms``), kill -9 the leader and time until the first write
acknowledged by a surviving server (fresh session per attempt).

Caveat: this machine has 2 cores; servers and generator compete for them.
``--ceiling`` measures what the generator alone can do against a trivial
in-memory responder (which itself takes a core), to show the generator is not
what limits the figures. Every loop is bounded in time; all servers are
stopped at the end.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import multiprocessing as mp
import random
import signal
import socket
import struct
import sys
import time
from collections import deque
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from paddock.testing import (
    Ensemble,
    KeeperEnsemble,
    ZooKeeperEnsemble,
    keeper_unavailable_reason,
    zookeeper_unavailable_reason,
)
from paddock.testing import zkwire as wire

WORKLOADS = {"set": 1.0, "get": 0.0, "mixed70r30w": 0.3}  # name -> fraction of writes
_HEADER = struct.Struct(">iqi")
# What the generator itself cost in the last run (CPU per reply, cores used).
LAST_GENERATOR_COST: dict[str, float] = {}


@dataclass
class Figures:
    target: str
    workload: str
    ops_per_s: float
    p50_ms: float
    p99_ms: float
    errors: int
    generator_cpu_us_per_op: float
    generator_cores: float
    connections: int
    depth: int
    seconds: float


# --------------------------------------------------------------------------- generator
async def _read_frame(reader: asyncio.StreamReader) -> bytes:
    (n,) = struct.unpack(">i", await reader.readexactly(4))
    return await reader.readexactly(n)


async def _session(host: str, port: int) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    reader, writer = await asyncio.open_connection(host, port)
    sock = writer.get_extra_info("socket")
    if sock is not None:
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    writer.write(wire.connect_request(timeout_ms=30_000))
    session = wire.parse_connect_response(await _read_frame(reader))
    if session.timeout_ms <= 0:
        raise ConnectionError(f"{host}:{port} refused the session")
    return reader, writer


async def _drive(
    address: tuple[str, int],
    write_fraction: float,
    depth: int,
    paths: list[str],
    value: bytes,
    measure_from: float,
    stop_at: float,
    seed: int,
    latencies: list[int],
    counters: dict[str, int],
) -> None:
    rng = random.Random(seed)
    reader, writer = await _session(*address)
    inflight: deque[int] = deque()
    xid = 0
    measure_ns = int(measure_from * 1e9)
    stop_ns = int(stop_at * 1e9)

    kinds: deque[bool] = deque()  # True = setData, per request in flight
    get_reply_len = _HEADER.size + 4 + len(value) + wire.STAT.size
    set_reply_len = _HEADER.size + wire.STAT.size

    def send() -> None:
        nonlocal xid
        xid += 1
        path = paths[rng.randrange(len(paths))]
        is_set = rng.random() < write_fraction
        if is_set:
            writer.write(wire.set_data_request(xid, path, value))
        else:
            writer.write(wire.get_data_request(xid, path))
        inflight.append(time.monotonic_ns())
        kinds.append(is_set)

    for _ in range(depth):
        send()
    frames = wire.FrameReader()
    try:
        while inflight:
            data = await reader.read(1 << 16)
            if not data:
                raise ConnectionError(f"{address} closed the connection")
            now = time.monotonic_ns()
            for packet in frames.feed(data):
                reply_xid, _zxid, err = _HEADER.unpack_from(packet, 0)
                if reply_xid < 0:  # ping or notification
                    continue
                sent = inflight.popleft()
                # A reply counts only if it is well formed: the value we wrote
                # (getData) or a Stat (setData), so a server cannot win by
                # answering fast with the wrong thing.
                expected = set_reply_len if kinds.popleft() else get_reply_len
                if err or len(packet) != expected or packet[0:4] != struct.pack(">i", reply_xid):
                    counters["errors"] += 1
                counters["all_ops"] += 1
                if now >= measure_ns and now < stop_ns:
                    latencies.append(now - sent)
                    counters["ops"] += 1
                if now < stop_ns:
                    send()
        writer.write(wire.close_session_request(xid + 1))
        with contextlib.suppress(Exception):
            await asyncio.wait_for(writer.drain(), 1)
    finally:
        writer.close()


def _worker(args: dict[str, Any], out: Any) -> None:
    """One generator process: its share of the connections, on its own event loop."""
    with contextlib.suppress(ImportError):
        import uvloop

        uvloop.install()

    async def main() -> tuple[list[int], dict[str, int]]:
        latencies: list[int] = []
        counters = {"ops": 0, "errors": 0, "all_ops": 0}
        start = args["start_at"]
        await asyncio.sleep(max(0.0, start - time.monotonic()))
        tasks = [
            _drive(
                tuple(address),
                args["write_fraction"],
                args["depth"],
                args["paths"],
                args["value"],
                start + args["warmup"],
                start + args["warmup"] + args["duration"],
                args["seed"] * 1000 + i,
                latencies,
                counters,
            )
            for i, address in enumerate(args["addresses"])
        ]
        cpu0, wall0 = time.process_time(), time.monotonic()
        await asyncio.wait_for(asyncio.gather(*tasks), args["warmup"] + args["duration"] + 60)
        counters["cpu_us"] = int((time.process_time() - cpu0) * 1e6)
        counters["wall_us"] = int((time.monotonic() - wall0) * 1e6)
        return latencies, counters

    out.put(asyncio.run(main()))


def run_load(
    addresses: list[tuple[str, int]],
    write_fraction: float,
    *,
    connections: int,
    depth: int,
    processes: int,
    paths: list[str],
    value: bytes,
    warmup: float,
    duration: float,
) -> tuple[float, float, float, int]:
    """Run the generator; return (ops/s, p50 ms, p99 ms, errors)."""
    ctx = mp.get_context("spawn")
    queue = ctx.Queue()
    start_at = time.monotonic() + 2.0 + 0.5 * processes  # time for the spawned processes
    workers = []
    for p in range(processes):
        mine = [addresses[c % len(addresses)] for c in range(connections) if c % processes == p]
        args = {
            "addresses": mine,
            "write_fraction": write_fraction,
            "depth": depth,
            "paths": paths,
            "value": value,
            "start_at": start_at,
            "warmup": warmup,
            "duration": duration,
            "seed": p + 1,
        }
        proc = ctx.Process(target=_worker, args=(args, queue), daemon=True)
        proc.start()
        workers.append(proc)
    latencies: list[int] = []
    ops = errors = all_ops = cpu_us = wall_us = 0
    for _ in workers:
        lat, counters = queue.get(timeout=warmup + duration + 120)
        latencies += lat
        ops += counters["ops"]
        errors += counters["errors"]
        all_ops += counters["all_ops"]
        cpu_us += counters["cpu_us"]
        wall_us = max(wall_us, counters["wall_us"])
    for proc in workers:
        proc.join(timeout=10)
    latencies.sort()

    def pct(q: float) -> float:
        if not latencies:
            return float("nan")
        return latencies[min(len(latencies) - 1, int(q * len(latencies)))] / 1e6

    LAST_GENERATOR_COST.update(
        cpu_us_per_op=cpu_us / max(all_ops, 1), cores=cpu_us / max(wall_us, 1)
    )
    return ops / duration, pct(0.50), pct(0.99), errors


# --------------------------------------------------------------------------- setup
def populate(address: tuple[str, int], paths: list[str], value: bytes) -> None:
    """Create /bench and the key znodes (pipelined), tolerating existing ones."""

    async def main() -> None:
        reader, writer = await _session(*address)
        requests = [wire.create_request(1, "/bench", b"")]
        requests += [wire.create_request(i + 2, p, value) for i, p in enumerate(paths)]
        writer.write(b"".join(requests))
        await writer.drain()
        for _ in requests:
            packet = await _read_frame(reader)
            _xid, _zxid, err = _HEADER.unpack_from(packet, 0)
            if err not in (wire.ERR_OK, wire.ERR_NODE_EXISTS):
                raise RuntimeError(f"populate failed with error {err}")
        writer.close()

    asyncio.run(asyncio.wait_for(main(), 120))


def write_once(port: int, timeout: float) -> bool:
    """One fresh session, one setData on /bench; True if acknowledged without error."""
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=timeout) as sock:
            sock.settimeout(timeout)
            sock.sendall(wire.connect_request(timeout_ms=4000))
            frames = wire.FrameReader()
            got: list[bytes] = []
            while not got:
                chunk = sock.recv(65536)
                if not chunk:
                    return False
                got = frames.feed(chunk)
            if wire.parse_connect_response(got[0]).timeout_ms <= 0:
                return False
            sock.sendall(wire.set_data_request(1, "/bench", b"failover"))
            replies = got[1:]
            while not replies:
                chunk = sock.recv(65536)
                if not chunk:
                    return False
                replies = frames.feed(chunk)
            ok = wire.parse_reply(replies[0]).err == wire.ERR_OK
            sock.sendall(wire.close_session_request(2))
            return ok
    except OSError:
        return False


def measure_failover(ensemble: Ensemble, trials: int, budget_s: float = 60.0) -> list[float]:
    """kill -9 the leader, time to the first acknowledged write; restart it; repeat."""
    populate(("127.0.0.1", ensemble.members[0].client_port), [], b"")
    times: list[float] = []
    for _ in range(trials):
        leader = ensemble.wait_leader(timeout=60)
        survivors = [m.client_port for m in ensemble.members if m.index != leader]
        t0 = time.monotonic()
        ensemble.kill(leader, signal.SIGKILL)
        done = False
        while not done and time.monotonic() - t0 < budget_s:
            for port in survivors:
                if write_once(port, timeout=0.5):
                    done = True
                    break
        times.append(time.monotonic() - t0 if done else float("inf"))
        ensemble.start_member(leader)
        ensemble.wait_ready()
    return times


# --------------------------------------------------------------------------- ceiling
def _fake_server(port_out: Any, value_size: int) -> None:
    """A responder that answers every request at once with a canned reply."""
    with contextlib.suppress(ImportError):
        import uvloop

        uvloop.install()
    stat = bytes(wire.STAT.size)
    get_body = struct.pack(">i", value_size) + bytes(value_size) + stat

    class Proto(asyncio.Protocol):
        def connection_made(self, transport: Any) -> None:
            self.t = transport
            self.frames = wire.FrameReader()
            self.handshake = True

        def data_received(self, data: bytes) -> None:
            out = []
            for packet in self.frames.feed(data):
                if self.handshake:
                    self.handshake = False
                    body = struct.pack(">iiq", 0, 30000, 1) + struct.pack(">i", 16) + bytes(16)
                    out.append(wire.frame(body + b"\x00"))
                    continue
                xid, op = struct.unpack_from(">ii", packet, 0)
                body = get_body if op == wire.OP_GET_DATA else stat
                out.append(wire.frame(_HEADER.pack(xid, 1, 0) + body))
            self.t.write(b"".join(out))

    async def main() -> None:
        server = await asyncio.get_running_loop().create_server(Proto, "127.0.0.1", 0)
        port_out.put(server.sockets[0].getsockname()[1])
        await asyncio.sleep(600)  # the parent terminates us

    asyncio.run(main())


def measure_ceiling(args: argparse.Namespace, paths: list[str], value: bytes) -> list[Figures]:
    ctx = mp.get_context("spawn")
    port_q = ctx.Queue()
    server = ctx.Process(target=_fake_server, args=(port_q, args.value_size), daemon=True)
    server.start()
    try:
        port = port_q.get(timeout=30)
        out = []
        for name in ("get", "set"):
            ops, p50, p99, errors = run_load(
                [("127.0.0.1", port)],
                WORKLOADS[name],
                connections=args.connections,
                depth=args.depth,
                processes=args.processes,
                paths=paths,
                value=value,
                warmup=args.warmup,
                duration=args.duration,
            )
            out.append(_figures("generator-ceiling", name, ops, p50, p99, errors, args))
        return out
    finally:
        server.terminate()
        server.join(10)


# --------------------------------------------------------------------------- main
def _figures(
    target: str,
    workload: str,
    ops: float,
    p50: float,
    p99: float,
    errors: int,
    args: argparse.Namespace,
) -> Figures:
    cost = LAST_GENERATOR_COST
    return Figures(
        target,
        workload,
        ops,
        p50,
        p99,
        errors,
        cost["cpu_us_per_op"],
        cost["cores"],
        args.connections,
        args.depth,
        args.duration,
    )


def bench_target(kind: str, args: argparse.Namespace) -> tuple[list[Figures], list[float]]:
    paths = [f"/bench/k{i:05d}" for i in range(args.keys)]
    value = bytes(random.Random(7).getrandbits(8) for _ in range(args.value_size))
    figures: list[Figures] = []
    ensemble: Ensemble
    if kind == "zookeeper":
        ensemble = ZooKeeperEnsemble(3, fast_start=False, log_level="warn", heap="1g")
    else:
        ensemble = KeeperEnsemble(3)
    with ensemble:
        ensemble.start()
        addresses = [("127.0.0.1", m.client_port) for m in ensemble.members]
        populate(addresses[0], paths, value)
        for name in args.workloads:
            ops, p50, p99, errors = run_load(
                addresses,
                WORKLOADS[name],
                connections=args.connections,
                depth=args.depth,
                processes=args.processes,
                paths=paths,
                value=value,
                warmup=args.warmup,
                duration=args.duration,
            )
            f = _figures(kind, name, ops, p50, p99, errors, args)
            print(
                f"  {kind:9} {name:12} {ops:9.0f} ops/s  p50 {p50:7.2f} ms  "
                f"p99 {p99:7.2f} ms  errors {errors}  generator "
                f"{f.generator_cpu_us_per_op:.0f} us/op, {f.generator_cores:.2f} cores",
                flush=True,
            )
            figures.append(f)
    failover: list[float] = []
    if args.failover_trials:
        if kind == "zookeeper":
            short = ZooKeeperEnsemble(3, tick_ms=args.tick_ms, fast_start=False, log_level="warn")
        else:
            short = KeeperEnsemble(3, tick_ms=args.tick_ms)
        with short:
            short.start()
            failover = measure_failover(short, args.failover_trials)
        print(
            f"  {kind:9} failover (tick {args.tick_ms} ms): "
            + ", ".join(f"{t:.2f}s" for t in failover),
            flush=True,
        )
    return figures, failover


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--only", choices=["zookeeper", "keeper"], help="bench one target only")
    parser.add_argument("--connections", type=int, default=32)
    parser.add_argument("--depth", type=int, default=32, help="requests in flight per connection")
    parser.add_argument("--processes", type=int, default=2, help="load generator processes")
    parser.add_argument("--value-size", type=int, default=1024)
    parser.add_argument("--keys", type=int, default=1000)
    parser.add_argument("--duration", type=float, default=10.0, help="measured seconds per run")
    parser.add_argument("--warmup", type=float, default=3.0)
    parser.add_argument("--workloads", nargs="+", default=list(WORKLOADS), choices=list(WORKLOADS))
    parser.add_argument("--failover-trials", type=int, default=3)
    parser.add_argument("--tick-ms", type=int, default=200, help="tick for the failover runs")
    parser.add_argument("--ceiling", action="store_true", help="also measure the generator alone")
    parser.add_argument("--json", type=Path, help="write all figures to this file")
    args = parser.parse_args()

    kinds = [args.only] if args.only else ["zookeeper", "keeper"]
    results: dict[str, Any] = {"settings": vars(args) | {"json": str(args.json)}, "runs": []}
    failovers: dict[str, list[float]] = {}
    if args.ceiling:
        paths = [f"/bench/k{i:05d}" for i in range(args.keys)]
        for f in measure_ceiling(args, paths, bytes(args.value_size)):
            print(
                f"  generator ceiling {f.workload:4} {f.ops_per_s:9.0f} ops/s  "
                f"p50 {f.p50_ms:.2f} ms  p99 {f.p99_ms:.2f} ms  errors {f.errors}  "
                f"generator {f.generator_cpu_us_per_op:.0f} us/op, {f.generator_cores:.2f} cores",
                flush=True,
            )
            results["runs"].append(asdict(f))
    by_key: dict[tuple[str, str], Figures] = {}
    for kind in kinds:
        reason = (
            zookeeper_unavailable_reason() if kind == "zookeeper" else (keeper_unavailable_reason())
        )
        if reason:
            print(f"skipping {kind}: {reason}")
            continue
        print(
            f"{kind}: 3 servers, {args.connections} connections x {args.depth} in flight, "
            f"{args.value_size} B values, {args.processes} generator processes",
            flush=True,
        )
        figures, failover = bench_target(kind, args)
        failovers[kind] = failover
        for f in figures:
            by_key[(kind, f.workload)] = f
            results["runs"].append(asdict(f))
    results["failover_s"] = failovers

    print()
    print("| workload | ZooKeeper ops/s | p50 / p99 ms | keeper ops/s | p50 / p99 ms | keeper/ZK |")
    print("|---|---:|---:|---:|---:|---:|")
    for name in args.workloads:
        zk, kp = by_key.get(("zookeeper", name)), by_key.get(("keeper", name))

        def cell(f: Figures | None) -> str:
            return "-" if f is None else f"{f.ops_per_s:,.0f}"

        def lat(f: Figures | None) -> str:
            return "-" if f is None else f"{f.p50_ms:.1f} / {f.p99_ms:.1f}"

        ratio = f"{kp.ops_per_s / zk.ops_per_s:.2f}" if zk and kp and zk.ops_per_s else "-"
        print(f"| {name} | {cell(zk)} | {lat(zk)} | {cell(kp)} | {lat(kp)} | {ratio} |")
    for kind, times in failovers.items():
        if times:
            print(
                f"| failover {kind} (tick {args.tick_ms} ms) | "
                + ", ".join(f"{t:.2f} s" for t in times)
                + " |"
            )
    if args.json:
        args.json.write_text(json.dumps(results, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
