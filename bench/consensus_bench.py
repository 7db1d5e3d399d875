"""Throughput and latency of paddock's consensus: 3 node processes, loopback TCP, real fsync.

    .venv/bin/python bench/consensus_bench.py [--duration 10] [--connections 8] [--pipeline 64]

What it does, in one run:

1. measures the disk itself in the directory the nodes will use: serial
   1 KiB write + fsync rate, and 1 MiB write + fsync bandwidth;
2. starts 3 ``paddock consensus serve`` processes (KV state machine) with
   their data directories on that disk;
3. drives the leader's client port from this process: ``--connections``
   connections, each keeping ``--pipeline`` PUTs of ``--value-size`` bytes in
   flight (the leader proposes each connection's run of PUTs as one batch and
   group-commits everything that arrives during an fsync);
4. after ``--warmup`` seconds, counts acknowledged PUTs and their latency
   (request written -> ``OK`` read) for ``--duration`` seconds, and reads the
   leader's fsync counter to report entries per fsync.

Why 8 x 64 in flight by default: on this kind of shared disk a write + fsync
grows faster than its size, so bigger batches (more requests in flight) did
not raise throughput but did raise latency (see docs/benchmarks.md).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import shutil
import sys
import tempfile
import time
from collections import deque
from pathlib import Path
from typing import Any

from paddock.consensus.demo import HOST, Cluster


def fs_type(path: Path) -> str:
    """Filesystem type holding ``path`` (from /proc/mounts; 'unknown' elsewhere)."""
    best, kind = "", "unknown"
    try:
        with open("/proc/mounts") as f:
            for line in f:
                parts = line.split()
                mnt = parts[1]
                if str(path).startswith(mnt) and len(mnt) > len(best):
                    best, kind = mnt, parts[2]
    except OSError:
        pass
    return kind


def disk_fsync_rate(directory: Path, seconds: float = 2.0) -> float:
    """Serial 1 KiB write + fsync operations per second in ``directory``."""
    path = directory / "fsync-probe"
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
    block = b"x" * 1024
    n = 0
    try:
        start = time.perf_counter()
        while time.perf_counter() - start < seconds:
            os.write(fd, block)
            os.fsync(fd)
            n += 1
        return n / (time.perf_counter() - start)
    finally:
        os.close(fd)
        path.unlink()


def disk_write_bandwidth(directory: Path, seconds: float = 2.0, block: int = 1 << 20) -> float:
    """Bytes per second of sequential ``block``-sized appends, each followed by fsync."""
    path = directory / "bandwidth-probe"
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
    data = os.urandom(block)
    n = 0
    try:
        start = time.perf_counter()
        while time.perf_counter() - start < seconds:
            os.write(fd, data)
            os.fsync(fd)
            n += 1
        return n * block / (time.perf_counter() - start)
    finally:
        os.close(fd)
        path.unlink()


class Load:
    """Pipelined PUT load on several connections; latency recorded inside a window."""

    def __init__(self, port: int, connections: int, pipeline: int, value_size: int, keys: int):
        self.port = port
        self.connections = connections
        self.pipeline = pipeline
        self.keys = keys
        self.values = [
            os.urandom(value_size // 2 + 1).hex()[:value_size].encode() for _ in range(16)
        ]
        self.recording = False
        self.stopping = False
        self.ok = 0
        self.errors = 0
        self.latencies: list[float] = []
        self.error_samples: set[bytes] = set()
        self._next = 0

    def _request(self) -> bytes:
        self._next += 1
        i = self._next
        return b"PUT k%d %s\n" % (i % self.keys, self.values[i & 15])

    async def run_connection(self) -> None:
        reader, writer = await asyncio.open_connection(HOST, self.port, limit=1 << 20)
        sent: deque[float] = deque()
        now = time.perf_counter
        try:
            writer.write(b"".join(self._request() for _ in range(self.pipeline)))
            t = now()
            sent.extend([t] * self.pipeline)
            buf = b""
            while not self.stopping:
                chunk = await reader.read(1 << 16)
                if not chunk:
                    raise ConnectionError("server closed the connection")
                buf += chunk
                *lines, buf = buf.split(b"\n")
                if not lines:
                    continue
                t = now()
                for line in lines:
                    t0 = sent.popleft()
                    if line.startswith(b"OK"):
                        if self.recording:
                            self.ok += 1
                            self.latencies.append(t - t0)
                    else:
                        self.errors += 1
                        if len(self.error_samples) < 5:
                            self.error_samples.add(line[:60])
                n = len(lines)
                writer.write(b"".join(self._request() for _ in range(n)))
                sent.extend([now()] * n)
        finally:
            writer.close()


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of process ``pid`` (Linux /proc), 0.0 if unavailable."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    except (OSError, IndexError, ValueError):
        return 0.0


def percentile(sorted_values: list[float], q: float) -> float:
    if not sorted_values:
        return float("nan")
    k = min(len(sorted_values) - 1, max(0, round(q * (len(sorted_values) - 1))))
    return sorted_values[k]


async def bench(args: argparse.Namespace) -> dict[str, Any]:
    if args.data_dir:
        base = Path(args.data_dir)
    else:
        # The system temp dir unless it lives in RAM; then the repo's disk.
        base = Path(tempfile.gettempdir())
        if fs_type(base.resolve()) in ("tmpfs", "ramfs"):
            base = Path(__file__).resolve().parent.parent
    base.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix="consensus-bench-", dir=base))
    kind = fs_type(work)
    print(f"data directories under {work} ({kind})", flush=True)
    if kind in ("tmpfs", "ramfs"):
        print("WARNING: data directory is in memory; fsync figures are meaningless", flush=True)
    fsync_rate = disk_fsync_rate(work)
    print(f"disk: {fsync_rate:,.0f} serial 1 KiB write+fsync per second", flush=True)
    bandwidth = disk_write_bandwidth(work)
    print(f"disk: {bandwidth / 1e6:,.0f} MB/s in 1 MiB write+fsync steps", flush=True)

    cluster = Cluster(
        work,
        extra_args=[
            "--log-level",
            "WARNING",
            "--snapshot-every",
            str(args.snapshot_every),
            *([] if args.overlap else ["--no-overlap-persist"]),
        ],
    )
    try:
        for nid in cluster.ids:
            cluster.start(nid)
        leader, term = await cluster.wait_leader(cluster.ids, timeout=30)
        print(f"node {leader} is leader (term {term}); loading...", flush=True)
        load = Load(
            cluster.client_ports[leader],
            args.connections,
            args.pipeline,
            args.value_size,
            args.keys,
        )
        tasks = [asyncio.create_task(load.run_connection()) for _ in range(args.connections)]
        await asyncio.sleep(args.warmup)
        pids = {nid: proc.pid for nid, proc in cluster.procs.items()}
        pids[0] = os.getpid()  # the load generator (this process)
        st0 = await cluster.status(leader)
        cpu0 = {nid: cpu_seconds(pid) for nid, pid in pids.items()}
        load.recording = True
        t0 = time.perf_counter()
        await asyncio.sleep(args.duration)
        load.recording = False
        elapsed = time.perf_counter() - t0
        cpu1 = {nid: cpu_seconds(pid) for nid, pid in pids.items()}
        st1 = await cluster.status(leader)
        load.stopping = True
        for t in tasks:
            t.cancel()
        results = await asyncio.gather(*tasks, return_exceptions=True)
        failures = [r for r in results if isinstance(r, Exception)]
        if failures:
            print(f"load connections failed: {failures[:3]}", flush=True)
        followers = {}
        for nid in cluster.ids:
            if nid != leader:
                followers[nid] = await cluster.status(nid)
    finally:
        cluster.stop_all()
        shutil.rmtree(work, ignore_errors=True)
    assert st0 is not None and st1 is not None
    lat = sorted(load.latencies)
    commits = st1["commit"] - st0["commit"]
    fsyncs = st1["fsyncs"] - st0["fsyncs"]
    follower_fsyncs = [s["fsyncs"] for s in followers.values() if s is not None and "fsyncs" in s]
    if args.verbose:
        print(f"leader status at the end: {st1}")
        for nid, st in followers.items():
            print(f"follower {nid} status at the end: {st}")
    return {
        "disk_fsync_per_s": fsync_rate,
        "disk_bandwidth": bandwidth,
        "acks_per_s": load.ok / elapsed,
        "commits_per_s": commits / elapsed,
        "p50_ms": percentile(lat, 0.50) * 1000,
        "p99_ms": percentile(lat, 0.99) * 1000,
        "leader_fsyncs_per_s": fsyncs / elapsed,
        "entries_per_fsync": commits / fsyncs if fsyncs else float("nan"),
        "leader_fsync_ms": (st1["fsync_seconds"] - st0["fsync_seconds"]) / fsyncs * 1000
        if fsyncs
        else float("nan"),
        "leader_write_ms": (st1["write_seconds"] - st0["write_seconds"]) / fsyncs * 1000
        if fsyncs
        else float("nan"),
        "errors": load.errors,
        "error_samples": sorted(load.error_samples),
        "window_s": elapsed,
        "follower_fsyncs_total": follower_fsyncs,
        "leader": leader,
        "cpu_percent": {nid: (cpu1[nid] - cpu0[nid]) / elapsed * 100 for nid in pids},
    }


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--duration", type=float, default=10.0, help="measured window, seconds")
    p.add_argument("--warmup", type=float, default=3.0, help="seconds of load before measuring")
    p.add_argument("--connections", type=int, default=8)
    p.add_argument("--pipeline", type=int, default=64, help="PUTs in flight per connection")
    p.add_argument("--value-size", type=int, default=1024)
    p.add_argument("--keys", type=int, default=10_000, help="distinct keys written")
    p.add_argument("--snapshot-every", type=int, default=100_000)
    p.add_argument("--verbose", action="store_true", help="print the nodes' final status")
    p.add_argument(
        "--no-overlap",
        dest="overlap",
        action="store_false",
        help="run the nodes with --no-overlap-persist (strict persist-then-send/apply)",
    )
    p.add_argument(
        "--data-dir",
        default="",
        help="parent of the node data dirs (default: the temp dir unless tmpfs, else the repo)",
    )
    args = p.parse_args()

    try:
        import uvloop

        res = uvloop.run(bench(args))
    except ImportError:  # pragma: no cover
        res = asyncio.run(bench(args))

    rows = [
        ("disk: serial 1 KiB write+fsync", f"{res['disk_fsync_per_s']:,.0f} /s"),
        ("disk: 1 MiB write+fsync bandwidth", f"{res['disk_bandwidth'] / 1e6:,.0f} MB/s"),
        (
            "  => ceiling, 3 replicas on this disk",
            # Each entry is written by all 3 nodes (plus ~40 B of log framing).
            f"{res['disk_bandwidth'] / (3 * (args.value_size + 40)):,.0f} /s",
        ),
        ("commits (leader commit index)", f"{res['commits_per_s']:,.0f} /s"),
        ("acknowledged PUTs", f"{res['acks_per_s']:,.0f} /s"),
        ("commit latency p50", f"{res['p50_ms']:.1f} ms"),
        ("commit latency p99", f"{res['p99_ms']:.1f} ms"),
        ("leader fsyncs", f"{res['leader_fsyncs_per_s']:,.0f} /s"),
        ("entries per leader fsync", f"{res['entries_per_fsync']:.1f}"),
        ("leader persist wait per Ready, mean", f"{res['leader_fsync_ms']:.1f} ms"),
        ("  of which in DiskStorage.save_ready", f"{res['leader_write_ms']:.1f} ms"),
        ("errors", str(res["errors"])),
    ]
    for nid, pct in sorted(res["cpu_percent"].items()):
        who = "load generator" if nid == 0 else f"node {nid}"
        if nid == res["leader"]:
            who += " (leader)"
        rows.append((f"CPU {who}", f"{pct:.0f} %"))
    width = max(len(r[0]) for r in rows)
    print()
    print(
        f"3 nodes, {args.value_size} B values, {args.connections} connections x "
        f"{args.pipeline} in flight, {res['window_s']:.1f} s window, {os.cpu_count()} CPUs, "
        f"overlap_persist={'on' if args.overlap else 'off'}"
    )
    for name, value in rows:
        print(f"  {name:<{width}}  {value:>14}")
    if res["error_samples"]:
        print(f"  error samples: {res['error_samples']}")
    sys.exit(0 if res["errors"] == 0 else 1)


if __name__ == "__main__":
    main()
