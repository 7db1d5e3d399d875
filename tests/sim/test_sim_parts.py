"""The simulator's building blocks: loop, network, disk, KV state machine."""

from __future__ import annotations

import random

import pytest

from paddock.consensus import wal
from paddock.consensus.types import Entry, EntryKind, HardState, Message, MsgType, Snapshot
from paddock.sim.disk import SimDisk
from paddock.sim.kv import Command, KVStateMachine, decode_command, encode_command
from paddock.sim.loop import EventLoop, derive_rng
from paddock.sim.network import SimNetwork

# -- loop -------------------------------------------------------------------------


def test_loop_runs_in_time_then_schedule_order():
    loop = EventLoop()
    seen = []
    loop.call_at(2.0, seen.append, "c")
    loop.call_at(1.0, seen.append, "a")
    loop.call_at(1.0, seen.append, "b")  # same instant: scheduling order
    loop.call_at(3.0, seen.append, "late")
    loop.run_until(2.0)
    assert seen == ["a", "b", "c"]
    assert loop.now == 2.0 and loop.steps == 3 and loop.pending() == 1


def test_loop_never_goes_back_in_time_and_checks_after_each_step():
    loop = EventLoop()
    times = []
    loop.call_at(1.0, lambda: loop.call_at(0.5, lambda: times.append(loop.now)))
    checks = []
    loop.run_until(5.0, after_step=lambda: checks.append(loop.now))
    assert times == [1.0]
    assert checks == [1.0, 1.0]
    assert loop.now == 5.0


def test_derived_streams_are_reproducible_and_independent():
    a1, b1 = (derive_rng(m := random.Random(42)), derive_rng(m))
    a2, b2 = (derive_rng(m2 := random.Random(42)), derive_rng(m2))
    # drawing from one stream does not shift the other
    [a1.random() for _ in range(100)]
    assert b1.random() == b2.random()
    assert a2.random() != b2.random()


# -- network ----------------------------------------------------------------------


def _net(seed=1):
    loop = EventLoop()
    got: list[Message] = []
    net = SimNetwork(loop, random.Random(seed), (1, 2, 3), got.append)
    return loop, net, got


def _msg(src, dst):
    return Message(MsgType.HEARTBEAT, src, dst, term=1)


def test_network_delivers_with_delay_and_reorders():
    loop, net, got = _net()
    net.faults.min_delay, net.faults.max_delay = 0.001, 0.01
    for i in range(50):
        m = _msg(1, 2)
        m.context = i
        net.send(m)
    loop.run_until(0.0005)
    assert got == []
    loop.run_until(1.0)
    order = [m.context for m in got]
    assert sorted(order) == list(range(50))
    assert order != list(range(50))  # independent delays reorder


def test_network_partitions_symmetric_one_way_and_heal():
    loop, net, got = _net()
    net.split([[1], [2, 3]])
    for s, d in [(1, 2), (2, 1), (2, 3), (3, 2)]:
        net.send(_msg(s, d))
    loop.run_until(1.0)
    assert sorted((m.src, m.dst) for m in got) == [(2, 3), (3, 2)]
    got.clear()
    net.heal()
    net.block_one_way([1], [2])
    net.send(_msg(1, 2))
    net.send(_msg(2, 1))
    loop.run_until(2.0)
    assert [(m.src, m.dst) for m in got] == [(2, 1)]


def test_network_partition_formed_while_in_flight_drops():
    loop, net, got = _net()
    net.send(_msg(1, 2))
    net.split([[1], [2, 3]])
    loop.run_until(1.0)
    assert got == [] and net.dropped == 1


def test_network_bridge_node_reaches_both_sides():
    _, net, _ = _net()
    net.split([[1], [3]])  # node 2 is in no group: the bridge
    alive = lambda n: True  # noqa: E731
    assert not net.is_blocked(2, 1) and not net.is_blocked(3, 2)
    assert net.is_blocked(1, 3)
    assert net.connected_to_majority(2, alive)
    assert net.connected_to_majority(1, alive)  # 1 and 2 are a majority of 3


def test_network_drop_and_duplicate():
    loop, net, got = _net()
    net.faults.drop = 0.5
    for _ in range(400):
        net.send(_msg(1, 2))
    loop.run_until(1.0)
    assert 100 < len(got) < 300
    loop, net, got = _net()
    net.faults.duplicate = 1.0
    m = _msg(1, 2)
    m.entries = [Entry(1, 1, b"x")]
    net.send(m)
    loop.run_until(1.0)
    assert len(got) == 2 and got[0] is not got[1]
    assert got[0].entries is not got[1].entries


# -- disk -------------------------------------------------------------------------


def _entries(lo, hi, term=1):
    return [Entry(term, i, f"e{i}".encode()) for i in range(lo, hi + 1)]


def test_disk_recovers_synced_state_after_crash():
    disk = SimDisk()
    disk.append(entries=_entries(1, 3), hard_state=HardState(1, 2, 2))
    disk.sync()
    disk.append(entries=_entries(4, 6), hard_state=HardState(1, 2, 5))
    rng = random.Random(0)
    for _ in range(50):
        d = SimDisk()
        d.pieces = list(disk.pieces)
        d.synced_pieces = disk.synced_pieces
        d.crash(rng)
        rec = d.recover()
        # Everything synced survives; unsynced entries survive only as a prefix.
        assert [e.index for e in rec.entries][:3] == [1, 2, 3]
        idx = [e.index for e in rec.entries]
        assert idx == list(range(1, len(idx) + 1))
        assert rec.hard_state.commit in (2, 5)
        if rec.hard_state.commit == 5:
            assert idx == [1, 2, 3, 4, 5, 6]
        # recovery truncated the damaged tail: decoding again is clean
        assert not wal.decode_stream(d.image()).torn


def test_disk_torn_and_damaged_tails_happen_and_are_cut():
    rng = random.Random(3)
    damaged = kept = 0
    for _ in range(200):
        d = SimDisk()
        d.append(entries=_entries(1, 2), hard_state=HardState(1, 1, 1))
        d.sync()
        d.append(entries=_entries(3, 8))
        rep = d.crash(rng)
        damaged += rep.damaged_tail
        kept += rep.kept_unsynced > 0
        rec = d.recover()
        assert [e.index for e in rec.entries][:2] == [1, 2]
    assert damaged > 10 and kept > 50


def test_disk_bit_rot_in_synced_region_is_detected_and_restorable():
    rng = random.Random(5)
    for _ in range(100):
        d = SimDisk()
        d.append(entries=_entries(1, 5), hard_state=HardState(2, 1, 4))
        d.sync()
        before = d.recover()
        rot = d.rot_synced_bit(rng)
        assert rot is not None
        with pytest.raises(wal.CorruptLog):
            d.recover()
        d.undo_rot(rot)
        assert d.recover() == before


def test_disk_rewrite_compacts_atomically():
    d = SimDisk()
    d.append(entries=_entries(1, 10), hard_state=HardState(1, 1, 10))
    d.sync()
    big = d.size
    snap = Snapshot(8, 1, (1, 2, 3), b"state")
    d.rewrite(snap, HardState(1, 1, 10), _entries(9, 10))
    assert d.size < big
    rec = d.recover()
    assert rec.snapshot == snap
    assert [e.index for e in rec.entries] == [9, 10]


def test_disk_ready_snapshot_replaces_log():
    d = SimDisk()
    d.append(entries=_entries(1, 5))
    d.append(snapshot=Snapshot(3, 2, (1, 2, 3), b""), entries=_entries(4, 4, term=2))
    d.sync()
    rec = d.recover()
    assert rec.snapshot is not None and rec.snapshot.index == 3
    assert [(e.index, e.term) for e in rec.entries] == [(4, 2)]


# -- KV ---------------------------------------------------------------------------


def test_kv_commands_round_trip_and_apply_once():
    cmds = [
        Command(1, "write", "a", 1),
        Command(2, "cas", "a", 2, 1),
        Command(3, "cas", "a", 3, 1),
        Command(4, "cas", "b", 4, None),
    ]
    for c in cmds:
        assert decode_command(encode_command(c)) == c
    sm = KVStateMachine()
    results = [sm.apply(i + 1, encode_command(c)) for i, c in enumerate(cmds)]
    assert [r[1] for r in results if r] == [True, True, False, True]
    assert sm.kv == {"a": 2, "b": 4}
    # a duplicated entry (a forwarded proposal delivered twice) changes nothing
    dup = sm.apply(5, encode_command(Command(1, "write", "a", 1)))
    assert dup is not None and dup[1] is False and sm.kv["a"] == 2
    assert sm.apply(6, b"") is None and sm.applied == 6
    restored = KVStateMachine.restore(sm.serialize(), sm.applied)
    assert restored.digest() == sm.digest() and restored.applied == 6


def test_entry_kinds_survive_the_disk():
    d = SimDisk()
    d.append(entries=[Entry(1, 1, b"", EntryKind.NOOP), Entry(1, 2, b"x")])
    d.sync()
    rec = d.recover()
    assert [e.kind for e in rec.entries] == [EntryKind.NOOP, EntryKind.NORMAL]
