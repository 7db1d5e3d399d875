"""Micro-benchmark of the keeper state machine: applies/s and reads/s in one process.

    .venv/bin/python bench/keeper_datatree_bench.py [--nodes 100000]

Measures DataTree.apply for SetData/Create (the hot write paths, also with the
decode of the log entry), get_data/exists/get_children reads with ACL checks, the
watch manager's trigger, and snapshot serialize/deserialize of a tree of --nodes.
Times are process CPU time (best of 3 where repeatable), so that other processes
on a shared machine do not count.
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Callable

from paddock.keeper import txn as t
from paddock.keeper.acl import OPEN_ACL_UNSAFE, Id
from paddock.keeper.datatree import DataTree
from paddock.keeper.watches import WatchManager


def rate(label: str, n: int, seconds: float) -> None:
    print(f"{label:<44} {n / seconds:>12,.0f} /s   ({seconds * 1e6 / n:6.2f} us each)")


def best_of(runs: int, body: Callable[[], object]) -> float:
    """Fastest of ``runs`` timings in process CPU time: the machine is shared, and
    CPU time leaves out the time other processes held the core (noise only adds)."""
    best = float("inf")
    for _ in range(runs):
        start = time.process_time()
        body()
        best = min(best, time.process_time() - start)
    return best


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--nodes", type=int, default=100_000)
    parser.add_argument("--ops", type=int, default=200_000)
    args = parser.parse_args()
    n_nodes, n_ops = args.nodes, args.ops
    auth = (Id("ip", "127.0.0.1"),)
    sid = 0x100
    tree = DataTree()
    zxid = 1
    tree.apply(t.Txn(sid, auth, t.CreateSession(sid, 10_000, b"p" * 16)), zxid, 0)
    fanout = 1000
    parents = [f"/bench{i}" for i in range(max(1, n_nodes // fanout))]

    start = time.process_time()
    created = 0
    for parent in parents:
        zxid += 1
        tree.apply(t.Txn(sid, auth, t.Create(parent, b"", OPEN_ACL_UNSAFE)), zxid, zxid)
        for j in range(fanout):
            zxid += 1
            op = t.Create(f"{parent}/node{j:06d}", b"x" * 64, OPEN_ACL_UNSAFE)
            r = tree.apply(t.Txn(sid, auth, op), zxid, zxid)
            assert r.err == 0
            created += 1
    rate("apply Create (64 B)", created, time.process_time() - start)

    paths = [f"{parents[i % len(parents)]}/node{i % fanout:06d}" for i in range(n_ops)]
    payload = b"y" * 1024
    txns = [t.Txn(sid, auth, t.SetData(p, payload)) for p in paths]
    zxids = iter(range(zxid + 1, 1 << 62))

    def set_data() -> None:
        apply = tree.apply
        for txn in txns:
            z = next(zxids)
            apply(txn, z, z)

    rate("apply SetData (1 KiB)", n_ops, best_of(3, set_data))

    encoded = [t.encode_txn(x) for x in txns[:50_000]]

    def decode_apply() -> None:
        for raw in encoded:
            z = next(zxids)
            tree.apply(t.decode_txn(raw), z, z)

    rate("decode + apply SetData (1 KiB)", len(encoded), best_of(3, decode_apply))

    def encode() -> None:
        for txn in txns[:50_000]:
            t.encode_txn(txn)

    rate("encode SetData txn", 50_000, best_of(3, encode))

    watches = WatchManager()
    for i, p in enumerate(paths[:10_000]):
        watches.add_data_watch(i % 100, p)

    def apply_and_trigger() -> None:
        for txn in txns[:50_000]:
            z = next(zxids)
            result = tree.apply(txn, z, z)
            watches.trigger(result.triggers, z)

    rate("apply SetData + watch trigger", 50_000, best_of(3, apply_and_trigger))

    def get_data() -> None:
        read = tree.get_data
        for p in paths:
            read(p, auth)

    rate("get_data", n_ops, best_of(3, get_data))

    def exists() -> None:
        for p in paths:
            tree.exists(p, auth)

    rate("exists", n_ops, best_of(3, exists))

    def children() -> None:
        for i in range(2000):
            tree.get_children(parents[i % len(parents)], auth)

    rate(f"get_children ({fanout} children, sorted)", 2000, best_of(3, children))

    start = time.process_time()
    image = tree.serialize()
    elapsed = time.process_time() - start
    print(f"serialize {tree.node_count():,} nodes: {elapsed:.3f} s, {len(image) / 1e6:.1f} MB")
    start = time.process_time()
    copy = DataTree.deserialize(image)
    print(f"deserialize: {time.process_time() - start:.3f} s")
    start = time.process_time()
    assert copy.digest() == tree.digest()
    print(f"2 digests: {time.process_time() - start:.3f} s")


if __name__ == "__main__":
    main()
