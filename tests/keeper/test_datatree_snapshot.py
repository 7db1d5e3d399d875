"""Snapshots and determinism: random transaction sequences, round trips, digests."""

import contextlib
import random

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from paddock.keeper import txn as t
from paddock.keeper.acl import ACL, ALL, OPEN_ACL_UNSAFE, READ, SUPER_ID, Id, digest_id
from paddock.keeper.datatree import DataTree
from paddock.keeper.txn import decode_txn, encode_txn
from paddock.keeper.znode import CONTAINER_OWNER, is_ephemeral_owner, is_ttl_owner

SESSIONS = (101, 102, 103)
ALICE = Id("digest", digest_id("alice", "pw"))
PATHS = ("/a", "/a/b", "/a/b/c", "/a/d", "/e", "/e/f", "/zookeeper/x")
ACLS = (OPEN_ACL_UNSAFE, (ACL(READ, Id("world", "anyone")),), (ACL(ALL, ALICE),))

paths = st.sampled_from(PATHS)
versions = st.sampled_from([-1, 0, 1, 2])
datas = st.sampled_from([b"", b"x", b"hello", None])
acls = st.sampled_from(ACLS)
create = st.builds(
    t.Create,
    st.one_of(paths, st.sampled_from(["/a/s-", "/s-"])),
    datas,
    acls,
    st.sampled_from([0, 1, 2, 3, 4, 5]),
).map(lambda c: t.Create(c.path, c.data, c.acl, c.mode, 1000 if c.mode in t.TTL_MODES else -1))
simple = st.one_of(
    create,
    st.builds(t.Delete, paths, versions),
    st.builds(t.SetData, paths, datas, versions),
    st.builds(t.Check, paths, versions),
)
ops = st.one_of(
    simple,
    simple,
    simple,
    st.builds(t.SetACL, paths, acls, versions),
    st.builds(t.Multi, st.lists(simple, max_size=4).map(tuple)),
    st.builds(t.CreateSession, st.sampled_from(SESSIONS), st.just(4000), st.just(b"pw")),
    st.builds(t.CloseSession, st.sampled_from(SESSIONS)),
    st.builds(t.DeleteContainer, paths),
)
auths = st.sampled_from([(), (ALICE,), (SUPER_ID,)])
txns = st.builds(t.Txn, st.sampled_from((0, *SESSIONS)), auths, ops)


def run(tree, sequence, start=1):
    results = []
    for i, txn in enumerate(sequence, start):
        r = tree.apply(txn, i, 1000 * i)
        results.append((r.err, r.path, r.stat, [(x.err, x.path) for x in r.results or []]))
    return results


def check_invariants(tree):
    nodes = tree.nodes
    for path, node in nodes.items():
        for name in node.children:
            assert (path.rstrip("/") + "/" + name) in nodes
        if path != "/":
            parent = nodes[path[: path.rfind("/")] or "/"]
            assert path[path.rfind("/") + 1 :] in parent.children
            assert not is_ephemeral_owner(parent.owner)
    owners = {}
    for path, node in nodes.items():
        if is_ephemeral_owner(node.owner):
            owners.setdefault(node.owner, set()).add(path)
    assert owners == tree.ephemerals
    assert tree.containers == {p for p, n in nodes.items() if n.owner == CONTAINER_OWNER}
    assert tree.ttls == {p for p, n in nodes.items() if is_ttl_owner(n.owner)}


@settings(max_examples=150, deadline=None)
@given(st.lists(txns, max_size=40), st.lists(txns, max_size=15))
def test_snapshot_round_trip_and_determinism(first, second):
    first = [t.Txn(0, (), t.CreateSession(sid, 4000, b"pw")) for sid in SESSIONS] + first
    tree = DataTree(config=b"cfg")
    run(tree, first)
    check_invariants(tree)
    image = tree.serialize()
    copy = DataTree.deserialize(image)
    assert copy.serialize() == image
    assert copy.digest() == tree.digest()
    check_invariants(copy)
    # the restored replica continues exactly like the original
    start = len(first) + 1
    assert run(copy, second, start) == run(tree, second, start)
    assert copy.digest() == tree.digest()
    # a replica that replays the whole log through the codec agrees too
    replica = DataTree(config=b"cfg")
    run(replica, [decode_txn(encode_txn(x)) for x in first + second])
    assert replica.digest() == tree.digest()


def test_digest_changes_with_state():
    a, b = DataTree(), DataTree()
    assert a.digest() == b.digest()
    a.apply(t.Txn(0, (), t.Create("/x", b"1", OPEN_ACL_UNSAFE)), 1, 5)
    b.apply(t.Txn(0, (), t.Create("/x", b"2", OPEN_ACL_UNSAFE)), 1, 5)
    assert a.digest() != b.digest()
    b.apply(t.Txn(0, (), t.SetData("/x", b"1")), 2, 5)
    a.apply(t.Txn(0, (), t.SetData("/x", b"1")), 2, 5)
    assert a.digest() == b.digest()  # different histories, same state
    a.apply(t.Txn(0, (), t.CreateSession(5, 100, b"")), 3, 5)
    b.apply(t.Txn(0, (), t.CreateSession(5, 101, b"")), 3, 5)
    assert a.digest() != b.digest()  # sessions count
    a.apply(t.Txn(0, (), t.SetACL("/x", OPEN_ACL_UNSAFE)), 4, 5)
    b.apply(t.Txn(0, (), t.CreateSession(5, 100, b"")), 4, 5)
    assert a.digest() != b.digest()  # aversion counts


def test_corrupt_snapshots_are_rejected():
    tree = DataTree()
    tree.apply(t.Txn(0, (), t.Create("/x", b"1", OPEN_ACL_UNSAFE)), 1, 5)
    image = tree.serialize()
    for cut in range(0, len(image), 7):
        with pytest.raises(ValueError):
            DataTree.deserialize(image[:cut])
    with pytest.raises(ValueError):
        DataTree.deserialize(b"XXXX" + image[4:])
    rng = random.Random(1)
    for _ in range(500):
        bad = bytearray(image)
        bad[rng.randrange(len(bad))] ^= 1 << rng.randrange(8)
        with contextlib.suppress(ValueError):
            DataTree.deserialize(bytes(bad))


def test_large_tree_round_trip():
    tree = DataTree()
    tree.apply(t.Txn(0, (), t.CreateSession(9, 1000, b"x" * 16)), 1, 0)
    zxid = 1
    for i in range(100):
        zxid += 1
        tree.apply(t.Txn(0, (), t.Create(f"/d{i}", b"", OPEN_ACL_UNSAFE)), zxid, zxid)
        for j in range(20):
            zxid += 1
            mode = t.EPHEMERAL if j % 5 == 0 else t.PERSISTENT
            tree.apply(
                t.Txn(9, (), t.Create(f"/d{i}/n{j}", b"v" * j, OPEN_ACL_UNSAFE, mode)), zxid, 0
            )
    copy = DataTree.deserialize(tree.serialize())
    assert copy.node_count() == tree.node_count() == 4 + 100 + 2000
    assert len(copy.get_ephemerals(9)) == 400
    assert copy.sessions == tree.sessions
    assert copy.last_zxid == zxid
