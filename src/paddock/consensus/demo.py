"""``paddock consensus demo``: a live 3-node cluster as real OS processes.

Writes and reads through the leader, SIGKILLs the leader, shows a new leader
elected with the data intact, restarts the killed node and shows it caught up.
Every child process is stopped on the way out, also on Ctrl-C or failure.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from paddock.consensus.kv import KVClient

HOST = "127.0.0.1"


def free_ports(n: int) -> list[int]:
    """Ports the kernel just handed out (bound then released; fine on loopback)."""
    socks = []
    try:
        for _ in range(n):
            s = socket.socket()
            s.bind((HOST, 0))
            socks.append(s)
        return [s.getsockname()[1] for s in socks]
    finally:
        for s in socks:
            s.close()


class Cluster:
    """N ``paddock consensus serve`` processes on loopback."""

    def __init__(self, work_dir: Path, n: int = 3, extra_args: list[str] | None = None) -> None:
        self.work_dir = work_dir
        ports = free_ports(2 * n)
        self.ids = list(range(1, n + 1))
        self.peer_ports = dict(zip(self.ids, ports[:n], strict=True))
        self.client_ports = dict(zip(self.ids, ports[n:], strict=True))
        self.peers_arg = ",".join(f"{i}={HOST}:{p}" for i, p in self.peer_ports.items())
        self.procs: dict[int, subprocess.Popen[bytes]] = {}
        # A cluster id of its own: nodes refuse peers from any other cluster that
        # happens to reuse one of these ports (parallel demos, tests, benchmarks).
        self.cluster_id = f"demo-{os.getpid()}-{ports[0]}"
        self.extra_args = ["--cluster-id", self.cluster_id, *(extra_args or [])]

    def start(self, node_id: int) -> None:
        data = self.work_dir / f"node{node_id}"
        data.mkdir(parents=True, exist_ok=True)
        logf = open(self.work_dir / f"node{node_id}.log", "ab")  # noqa: SIM115 - owned by child
        cmd = [
            sys.executable,
            "-m",
            "paddock.cli.main",
            "consensus",
            "serve",
            "--id",
            str(node_id),
            "--peers",
            self.peers_arg,
            "--data-dir",
            str(data),
            "--client-port",
            str(self.client_ports[node_id]),
            *self.extra_args,
        ]
        try:
            self.procs[node_id] = subprocess.Popen(
                cmd, stdout=logf, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL
            )
        finally:
            logf.close()

    def kill(self, node_id: int) -> None:
        proc = self.procs.pop(node_id, None)
        if proc is not None and proc.poll() is None:
            proc.send_signal(signal.SIGKILL)
            proc.wait()

    def stop_all(self, timeout: float = 10.0) -> None:
        for proc in self.procs.values():
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
        deadline = time.monotonic() + timeout
        for proc in self.procs.values():
            try:
                proc.wait(max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        self.procs.clear()

    async def status(self, node_id: int) -> dict[str, Any] | None:
        try:
            client = await KVClient.connect(HOST, self.client_ports[node_id], timeout=1.0)
        except (TimeoutError, OSError):
            return None
        try:
            return await client.status()
        except (TimeoutError, OSError, ConnectionError, ValueError):
            return None
        finally:
            await client.close()

    async def wait_leader(
        self, among: list[int], timeout: float = 20.0, min_term: int = 0
    ) -> tuple[int, int]:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            for nid in among:
                st = await self.status(nid)
                if st and st["role"] == "leader" and st["term"] > min_term:
                    return nid, int(st["term"])
            await asyncio.sleep(0.05)
        raise TimeoutError(f"no leader among {among} within {timeout}s")

    async def wait_applied(self, node_id: int, index: int, timeout: float = 20.0) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            st = await self.status(node_id)
            if st and st["applied"] >= index:
                return
            await asyncio.sleep(0.05)
        raise TimeoutError(f"node {node_id} did not apply index {index} within {timeout}s")


async def put_many(client: KVClient, items: list[tuple[str, str]]) -> list[bytes]:
    """Pipeline PUTs on one connection (they are proposed as one batch)."""
    client.writer.write(b"".join(f"PUT {k} {v}\n".encode() for k, v in items))
    await client.writer.drain()
    out = []
    for _ in items:
        line = await asyncio.wait_for(client.reader.readline(), 10)
        out.append(line.rstrip(b"\n"))
    return out


def say(msg: str, t0: float) -> None:
    print(f"[{time.monotonic() - t0:6.2f}s] {msg}", flush=True)


async def _scenario(cluster: Cluster, t0: float) -> None:
    for nid in cluster.ids:
        cluster.start(nid)
    say(f"started nodes {cluster.ids} (peer ports {list(cluster.peer_ports.values())})", t0)

    leader, term = await cluster.wait_leader(cluster.ids)
    say(f"node {leader} is leader (term {term})", t0)

    client = await KVClient.connect(HOST, cluster.client_ports[leader])
    try:
        items = [(f"key{i}", f"value{i}") for i in range(200)]
        res = await put_many(client, items)
        if not all(r.startswith(b"OK") for r in res):
            raise RuntimeError(f"writes failed: {set(res)}")
        got = await client.get("key7")
        if got != b"VALUE value7":
            raise RuntimeError(f"read back {got!r}")
    finally:
        await client.close()
    st = await cluster.status(leader)
    assert st is not None
    commit = int(st["commit"])
    say(f"wrote 200 keys through node {leader}; GET key7 -> value7; commit index {commit}", t0)

    for nid in cluster.ids:
        await cluster.wait_applied(nid, commit)
    say("all 3 nodes applied them", t0)

    t_kill = time.monotonic()
    cluster.kill(leader)
    say(f"SIGKILLed leader node {leader}", t0)
    survivors = [n for n in cluster.ids if n != leader]
    new_leader, new_term = await cluster.wait_leader(survivors, min_term=term)
    say(
        f"node {new_leader} elected leader (term {new_term}) "
        f"{(time.monotonic() - t_kill) * 1000:.0f} ms after the kill",
        t0,
    )

    client = await KVClient.connect(HOST, cluster.client_ports[new_leader])
    try:
        for i in (0, 7, 199):
            got = await client.get(f"key{i}")
            if got != f"VALUE value{i}".encode():
                raise RuntimeError(f"key{i} lost after failover: {got!r}")
        res = await put_many(client, [(f"after{i}", f"v{i}") for i in range(100)])
        if not all(r.startswith(b"OK") for r in res):
            raise RuntimeError(f"writes after failover failed: {set(res)}")
    finally:
        await client.close()
    st = await cluster.status(new_leader)
    assert st is not None
    commit = int(st["commit"])
    say(f"data intact on node {new_leader}; 100 more writes committed (commit {commit})", t0)

    cluster.start(leader)
    say(f"restarted node {leader}", t0)
    await cluster.wait_applied(leader, commit)
    st = await cluster.status(leader)
    assert st is not None
    say(
        f"node {leader} caught up: {st['role']}, applied {st['applied']} >= {commit}, "
        f"leader is node {st['leader']}",
        t0,
    )


async def run_demo(work_dir: Path | None) -> int:
    t0 = time.monotonic()
    own_dir = work_dir is None
    wd = Path(tempfile.mkdtemp(prefix="paddock-demo-")) if work_dir is None else work_dir
    wd.mkdir(parents=True, exist_ok=True)
    cluster = Cluster(wd)
    code = 1
    try:
        await _scenario(cluster, t0)
        code = 0
    except (asyncio.CancelledError, KeyboardInterrupt):
        say("interrupted", t0)
        code = 130
    except Exception as exc:
        say(f"demo FAILED: {exc} (node logs in {wd})", t0)
        own_dir = False  # keep the logs for inspection
    finally:
        cluster.stop_all()
        say("stopped all nodes", t0)
        if own_dir:
            shutil.rmtree(wd, ignore_errors=True)
    if code == 0:
        say("demo OK", t0)
    return code
