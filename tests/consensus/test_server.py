"""ConsensusServer: 3-node clusters in one event loop over real sockets and files."""

from __future__ import annotations

import asyncio
import subprocess
import sys
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from paddock.consensus.kv import KVClient, KVClientServer, KVStateMachine, encode_put
from paddock.consensus.proposals import Waiters
from paddock.consensus.server import ConsensusServer, OutcomeUnknown, ServerStopped, wait_for
from paddock.consensus.types import Entry, NotLeader, Role

HOST = "127.0.0.1"
TICK = 0.02


class Cluster:
    """In-process nodes. Each binds port 0 and the others are told its real port,
    so parallel test runs cannot collide on ports; a per-cluster id makes any
    stray connection from another test's cluster be refused."""

    def __init__(self, root: Path, n: int = 3, **server_kw) -> None:
        self.root = root
        self.ids = list(range(1, n + 1))
        self.peers = {i: (HOST, 0) for i in self.ids}
        self.kw = {"tick_interval": TICK, "cluster_id": f"test-{root.name}", **server_kw}
        self.servers: dict[int, ConsensusServer] = {}
        self.sms: dict[int, KVStateMachine] = {}

    async def start(self, nid: int, sm: KVStateMachine | None = None) -> ConsensusServer:
        sm = sm or KVStateMachine()
        peers = dict(self.peers)
        peers[nid] = (HOST, 0)
        srv = ConsensusServer(nid, peers, self.root / f"n{nid}", sm, **self.kw)
        self.servers[nid] = srv
        self.sms[nid] = sm
        await srv.start()
        self.peers[nid] = srv.peer_address
        for other in self.servers.values():
            if other is not srv:
                other.set_peer_address(nid, srv.peer_address)
        return srv

    async def stop(self, nid: int) -> None:
        srv = self.servers.pop(nid)
        await srv.stop()

    async def stop_all(self) -> None:
        for nid in list(self.servers):
            await self.stop(nid)

    def leaders(self) -> list[ConsensusServer]:
        return [s for s in self.servers.values() if s.is_leader]

    async def leader(self, timeout: float = 10.0, exclude: int = 0) -> ConsensusServer:
        def one() -> bool:
            ls = [s for s in self.leaders() if s.id != exclude]
            return len(ls) == 1

        await wait_for(one, timeout)
        return next(s for s in self.leaders() if s.id != exclude)


@pytest.fixture
async def cluster(tmp_path: Path) -> AsyncIterator[Cluster]:
    c = Cluster(tmp_path)
    try:
        for nid in c.ids:
            await c.start(nid)
        yield c
    finally:
        await c.stop_all()


def put(key: str, value: str) -> bytes:
    return encode_put(key.encode(), value.encode())


async def test_elects_a_leader_and_commits_proposals(cluster: Cluster) -> None:
    leader = await cluster.leader()
    index = await leader.propose(put("a", "1"))
    results = await leader.propose_many([put(f"k{i}", str(i)) for i in range(50)])
    assert results == list(range(index + 1, index + 51))
    for nid in cluster.ids:
        srv = cluster.servers[nid]
        await asyncio.wait_for(srv.wait_applied(index + 50), 5)
        assert cluster.sms[nid].data[b"a"] == b"1"
        assert cluster.sms[nid].data[b"k49"] == b"49"
    st = leader.status()
    assert st["role"] == "leader" and st["leader"] == leader.id
    assert st["fsyncs"] >= 1 and set(st["peers"]) == set(cluster.ids) - {leader.id}


async def test_follower_proposal_gets_not_leader_with_hint(cluster: Cluster) -> None:
    leader = await cluster.leader()
    await leader.propose(put("x", "1"))  # followers have heard from this leader
    follower = next(s for s in cluster.servers.values() if s.id != leader.id)
    await wait_for(lambda: follower.leader == leader.id, 5)
    with pytest.raises(NotLeader) as exc:
        await follower.propose(put("y", "2"))
    assert exc.value.leader == leader.id
    assert not isinstance(exc.value, OutcomeUnknown)
    with pytest.raises(NotLeader):
        await follower.read_index()


async def test_forward_from_a_follower_reaches_the_leader(cluster: Cluster) -> None:
    leader = await cluster.leader()
    await leader.propose(put("x", "1"))
    follower = next(s for s in cluster.servers.values() if s.id != leader.id)
    await wait_for(lambda: follower.leader == leader.id, 5)
    follower.forward([put("fwd", "1"), put("fwd2", "2")])
    await wait_for(lambda: cluster.sms[leader.id].data.get(b"fwd2") == b"2", 5)
    await wait_for(lambda: cluster.sms[follower.id].data.get(b"fwd") == b"1", 5)


async def test_read_index_sees_every_committed_write(cluster: Cluster) -> None:
    leader = await cluster.leader()
    idx = await leader.propose(put("r", "v"))
    read_at = await asyncio.wait_for(leader.read_index(), 5)
    assert read_at >= idx and leader.applied >= read_at
    assert cluster.sms[leader.id].data[b"r"] == b"v"


async def test_stopping_the_leader_elects_a_new_one_with_data_intact(cluster: Cluster) -> None:
    old = await cluster.leader()
    last = (await old.propose_many([put(f"k{i}", f"v{i}") for i in range(20)]))[-1]
    old_term = old.node.term
    await cluster.stop(old.id)
    new = await cluster.leader(exclude=old.id)
    assert new.id != old.id and new.node.term > old_term
    await asyncio.wait_for(new.read_index(), 5)
    assert new.applied >= last
    assert all(cluster.sms[new.id].data[f"k{i}".encode()] == f"v{i}".encode() for i in range(20))
    assert await new.propose(put("after", "yes")) > last


async def test_garbage_on_a_peer_port_does_not_disturb_the_cluster(cluster: Cluster) -> None:
    leader = await cluster.leader()
    victim = next(s for s in cluster.servers.values() if s.id != leader.id)
    for junk in (b"\xff" * 64, b"\x10\x00\x00\x00" + b"A" * 16, b"GET / HTTP/1.0\r\n\r\n"):
        reader, writer = await asyncio.open_connection(*victim.peer_address)
        writer.write(junk)
        await writer.drain()
        assert await asyncio.wait_for(reader.read(), 5) == b""  # it hung up on us
        writer.close()
    assert victim.transport.rejected_connections == 3
    idx = await leader.propose(put("still", "fine"))
    await asyncio.wait_for(victim.wait_applied(idx), 5)
    assert cluster.sms[victim.id].data[b"still"] == b"fine"


class PickyKV(KVStateMachine):
    def apply(self, entry):
        if entry.data == b"boom":
            raise ValueError("boom refused")
        return super().apply(entry)


async def test_state_machine_error_reaches_the_proposer_only(tmp_path: Path) -> None:
    c = Cluster(tmp_path)
    try:
        for nid in c.ids:
            await c.start(nid, PickyKV())
        leader = await c.leader()
        with pytest.raises(ValueError, match="boom refused"):
            await leader.propose(b"boom")
        results = await leader.propose_many([put("a", "1"), b"boom", put("b", "2")])
        assert isinstance(results[1], ValueError) and results[0] + 2 == results[2]
        for srv in c.servers.values():
            await asyncio.wait_for(srv.wait_applied(results[2]), 5)
            assert c.sms[srv.id].data[b"b"] == b"2"
    finally:
        await c.stop_all()


async def test_storage_failure_stops_that_node_only(cluster: Cluster) -> None:
    leader = await cluster.leader()
    victim = next(s for s in cluster.servers.values() if s.id != leader.id)

    def broken_disk(rd):
        raise OSError(5, "Input/output error")

    victim.storage.save_ready = broken_disk
    idx = await leader.propose(put("k", "v"))  # the other follower makes the quorum
    await asyncio.wait_for(victim.failed_event.wait(), 5)
    assert "Input/output error" in victim.failed
    with pytest.raises(ServerStopped):
        victim.submit_many([put("x", "y")])
    # It never acknowledged what it could not persist.
    assert leader.node.progress[victim.id].match < idx
    assert await leader.propose(put("k2", "v2")) > idx


async def test_restarted_node_catches_up_from_the_log(cluster: Cluster) -> None:
    leader = await cluster.leader()
    follower_id = next(i for i in cluster.ids if i != leader.id)
    await leader.propose(put("before", "1"))
    await cluster.stop(follower_id)
    last = (await leader.propose_many([put(f"m{i}", str(i)) for i in range(30)]))[-1]
    srv = await cluster.start(follower_id)
    await asyncio.wait_for(srv.wait_applied(last), 10)
    assert cluster.sms[follower_id].data == cluster.sms[leader.id].data
    assert srv.stats.snapshots_restored == 0


async def test_restarted_node_catches_up_via_snapshot(tmp_path: Path) -> None:
    c = Cluster(tmp_path, snapshot_every=20)
    try:
        for nid in c.ids:
            await c.start(nid)
        leader = await c.leader()
        follower_id = next(i for i in c.ids if i != leader.id)
        await leader.propose(put("before", "1"))
        await c.stop(follower_id)
        for batch in range(5):
            await leader.propose_many([put(f"s{batch}-{i}", str(i)) for i in range(20)])
        # The remaining nodes compacted past everything the stopped node has.
        await wait_for(lambda: leader.stats.snapshots_taken >= 2, 5)
        assert leader.node.log.first_index > 30
        srv = await c.start(follower_id)
        await asyncio.wait_for(srv.wait_applied(leader.applied), 10)
        assert srv.stats.snapshots_restored >= 1
        assert c.sms[follower_id].data == c.sms[leader.id].data
        # And it recovers its own snapshot on a second restart.
        await c.stop(follower_id)
        srv = await c.start(follower_id)
        assert srv.applied > 0 and c.sms[follower_id].data[b"before"] == b"1"
    finally:
        await c.stop_all()


async def test_whole_cluster_restart_keeps_committed_data(cluster: Cluster) -> None:
    leader = await cluster.leader()
    last = (await leader.propose_many([put(f"p{i}", str(i)) for i in range(10)]))[-1]
    await cluster.stop_all()
    for nid in cluster.ids:
        await cluster.start(nid)
    leader = await cluster.leader()
    await asyncio.wait_for(leader.read_index(), 5)
    assert leader.applied >= last
    assert cluster.sms[leader.id].data[b"p9"] == b"9"


async def test_pending_proposals_fail_with_outcome_unknown_on_stop(cluster: Cluster) -> None:
    leader = await cluster.leader()
    followers = [i for i in cluster.ids if i != leader.id]
    for nid in followers:
        await cluster.stop(nid)
    fut = leader.submit_many([put("lost", "?")])
    await cluster.stop(leader.id)
    (result,) = await asyncio.wait_for(fut, 5)
    assert isinstance(result, OutcomeUnknown)


async def test_external_election_waits_for_campaign(tmp_path: Path) -> None:
    c = Cluster(tmp_path, external_election=True)
    try:
        for nid in c.ids:
            await c.start(nid)
        await asyncio.sleep(TICK * 40)  # two max election timeouts: nobody campaigns alone
        assert not c.leaders()
        c.servers[2].campaign()
        leader = await c.leader()
        assert leader.id == 2 and leader.node.role == Role.LEADER
        assert await leader.propose(put("e", "1")) > 0
    finally:
        await c.stop_all()


async def test_kv_client_protocol(cluster: Cluster) -> None:
    leader = await cluster.leader()
    api = KVClientServer(leader, cluster.sms[leader.id])
    await api.start(HOST, 0)
    client = await KVClient.connect(HOST, api.port)
    try:
        assert (await client.put("k", "hello world")).startswith(b"OK ")
        assert await client.get("k") == b"VALUE hello world"
        assert await client.get("missing") == b"NOTFOUND"
        assert await client.request(b"BOGUS") == b"ERR unknown command"
        assert await client.request(b"PUT onlykey") == b"ERR usage: PUT <key> <value>"
        assert (await client.status())["role"] == "leader"
        # Pipelined: many PUTs in one write come back in order.
        client.writer.write(b"".join(b"PUT p%d %d\n" % (i, i) for i in range(100)))
        lines = [await client.reader.readline() for _ in range(100)]
        idx = [int(line.split()[1]) for line in lines]
        assert idx == sorted(idx) and len(set(idx)) == 100
    finally:
        await client.close()
        await api.close()


def test_demo_runs_end_to_end(tmp_path: Path) -> None:
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "paddock.cli.main",
            "consensus",
            "demo",
            "--work-dir",
            str(tmp_path),
        ],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    out = proc.stdout
    assert "SIGKILLed leader" in out and "caught up" in out and "demo OK" in out


async def test_failed_start_releases_the_data_directory(tmp_path: Path) -> None:
    squatter = await asyncio.start_server(lambda r, w: None, HOST, 0)
    port = squatter.sockets[0].getsockname()[1]
    try:
        busy = ConsensusServer(1, {1: (HOST, port)}, tmp_path / "n1", KVStateMachine())
        with pytest.raises(OSError):
            await busy.start()
    finally:
        squatter.close()
        await squatter.wait_closed()
    ok = ConsensusServer(1, {1: (HOST, 0)}, tmp_path / "n1", KVStateMachine(), tick_interval=TICK)
    try:
        await ok.start()  # the directory lock was released by the failed start
        await wait_for(lambda: ok.is_leader, 5)  # a single node elects itself
        assert await ok.propose(put("solo", "1")) > 0
        assert ok.status()["failed"] is None
    finally:
        await ok.stop()


async def test_kv_client_vanishing_mid_pipeline_leaves_no_stuck_connection(
    cluster: Cluster,
) -> None:
    leader = await cluster.leader()
    api = KVClientServer(leader, cluster.sms[leader.id])
    await api.start(HOST, 0)
    try:
        for _ in range(3):
            _reader, writer = await asyncio.open_connection(HOST, api.port)
            writer.write(b"".join(b"PUT gone%d %d\n" % (i, i) for i in range(3000)))
            await writer.drain()
            writer.transport.abort()  # reset, responses undeliverable
        await wait_for(lambda: not api._conns, 10)
        client = await KVClient.connect(HOST, api.port)
        try:
            assert (await client.put("after", "1")).startswith(b"OK ")
        finally:
            await client.close()
    finally:
        await api.close()


@pytest.mark.slow
def test_benchmark_runs_and_reports(tmp_path: Path) -> None:
    bench = Path(__file__).resolve().parents[2] / "bench" / "consensus_bench.py"
    proc = subprocess.run(
        [
            sys.executable,
            str(bench),
            "--duration",
            "2",
            "--warmup",
            "1",
            "--connections",
            "4",
            "--pipeline",
            "16",
            "--data-dir",
            str(tmp_path),
        ],
        capture_output=True,
        text=True,
        timeout=180,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "entries per leader fsync" in proc.stdout


async def test_waiters_settle_by_index_and_term() -> None:
    w = Waiters()
    a = w.add_batch(first=5, term=2, n=3, leader=1)
    b = w.add_batch(first=8, term=2, n=1, leader=1)
    # Index 5 committed with our term, 6 with another leader's entry, 7 ours.
    w.settle_applied([Entry(2, 4), Entry(2, 5), Entry(3, 6)], [None, "r5", "x"], leader=3)
    assert not a.done()
    w.settle_applied([Entry(2, 7), Entry(2, 8)], ["r7", "r8"], leader=3)
    res = a.result()
    assert res[0] == "r5" and res[2] == "r7"
    assert type(res[1]) is NotLeader and res[1].leader == 3
    assert b.result() == ["r8"]


async def test_waiters_fail_unsettled_items_as_unknown() -> None:
    w = Waiters()
    a = w.add_batch(first=1, term=1, n=3, leader=1)
    w.settle_applied([Entry(1, 1)], ["ok"], leader=1)
    w.fail_batches(OutcomeUnknown(2))
    res = a.result()
    assert res[0] == "ok"
    assert all(isinstance(r, OutcomeUnknown) and r.leader == 2 for r in res[1:])
    # A batch appended at an index at or below a pending one means the log was
    # cut back: the older batch's fate is unknown.
    old = w.add_batch(first=10, term=1, n=2, leader=1)
    new = w.add_batch(first=10, term=3, n=1, leader=1)
    assert all(isinstance(r, OutcomeUnknown) for r in old.result())
    assert not new.done()


async def test_snapshot_write_failure_stops_the_node_not_its_ready_loop_alone(
    tmp_path: Path,
) -> None:
    """A failed snapshot write (disk full) is a storage failure like any other:
    the node reports it (``failed``) so its owner exits. It must not just end
    the Ready loop silently, leaving a node that still receives but never
    persists, sends or applies (a zombie its peers cannot tell from a slow node)."""
    c = Cluster(tmp_path, snapshot_every=5)
    try:
        for nid in c.ids:
            await c.start(nid)
        leader = await c.leader()
        victim = next(s for s in c.servers.values() if s.id != leader.id)

        def disk_full(snap):
            raise OSError(28, "No space left on device")

        victim.storage.save_snapshot = disk_full
        await leader.propose_many([put(f"k{i}", "v") for i in range(10)])
        await asyncio.wait_for(victim.failed_event.wait(), 5)
        assert "No space left on device" in victim.failed
        with pytest.raises(ServerStopped):
            victim.submit_many([put("x", "y")])
    finally:
        await c.stop_all()
