"""Multi: atomic application and ZooKeeper's per-op results when it fails."""

from paddock.keeper import txn as t
from paddock.keeper.acl import ACL, OPEN_ACL_UNSAFE, READ, Id
from paddock.keeper.datatree import DataTree
from paddock.keeper.errors import Code
from paddock.keeper.znode import EventType

SID = 7


def fresh():
    tree = DataTree()
    tree.apply(t.Txn(SID, (), t.CreateSession(SID, 5000, b"")), 1, 0)
    return tree


def run(tree, ops, zxid, auth=()):
    return tree.apply(t.Txn(SID, tuple(auth), t.Multi(tuple(ops))), zxid, 100 + zxid)


def test_multi_success_applies_all_with_one_zxid():
    tree = fresh()
    r = run(
        tree,
        [
            t.Create("/a", b"1", OPEN_ACL_UNSAFE),
            t.Create("/a/s-", b"", OPEN_ACL_UNSAFE, t.PERSISTENT_SEQUENTIAL),
            t.SetData("/a", b"2", 0),
            t.Check("/a", 1),
            t.Delete("/a/s-0000000000"),
        ],
        zxid=5,
    )
    assert r.err == 0
    assert [x.err for x in r.results] == [0, 0, 0, 0, 0]
    assert r.results[1].path == "/a/s-0000000000"
    assert r.results[2].stat.version == 1
    data, stat = tree.get_data("/a")
    assert data == b"2" and stat.czxid == stat.mzxid == stat.pzxid == 5
    assert stat.cversion == 2 and stat.num_children == 0  # one create + one delete
    assert [(tr.path, tr.event_type) for tr in r.triggers] == [
        ("/a", EventType.NODE_CREATED),
        ("/", EventType.NODE_CHILDREN_CHANGED),
        ("/a/s-0000000000", EventType.NODE_CREATED),
        ("/a", EventType.NODE_CHILDREN_CHANGED),
        ("/a", EventType.NODE_DATA_CHANGED),
        ("/a/s-0000000000", EventType.NODE_DELETED),
        ("/a", EventType.NODE_CHILDREN_CHANGED),
    ]


def test_failed_multi_rolls_back_and_reports_zookeeper_codes():
    tree = fresh()
    tree.apply(t.Txn(SID, (), t.Create("/x", b"orig", OPEN_ACL_UNSAFE)), 2, 0)
    tree.apply(t.Txn(SID, (), t.Create("/e", b"", OPEN_ACL_UNSAFE, t.EPHEMERAL)), 3, 0)
    before = tree.serialize()
    r = run(
        tree,
        [
            t.Create("/a", b"", OPEN_ACL_UNSAFE),
            t.Create("/a/b", b"", OPEN_ACL_UNSAFE),
            t.SetData("/x", b"changed"),
            t.Delete("/e"),
            t.SetData("/x", b"", version=99),  # fails: BadVersion
            t.Create("/c", b"", OPEN_ACL_UNSAFE),
            t.Delete("/nope"),
        ],
        zxid=4,
    )
    assert r.err == Code.BAD_VERSION
    assert [x.err for x in r.results] == [0, 0, 0, 0, Code.BAD_VERSION, -2, -2]
    assert all(x.path is None and x.stat is None for x in r.results)
    assert r.triggers == []
    tree.last_zxid = 3
    assert tree.serialize() == before
    assert tree.get_ephemerals(SID) == ["/e"]
    assert tree.get_data("/x")[0] == b"orig"


def test_multi_ops_see_earlier_ops():
    tree = fresh()
    r = run(
        tree,
        [
            t.Create("/a", b"", OPEN_ACL_UNSAFE),
            t.Delete("/a"),
            t.Create("/a", b"z", OPEN_ACL_UNSAFE),
        ],
        zxid=3,
    )
    assert r.err == 0
    assert tree.get_data("/a")[0] == b"z"
    assert tree.stat("/").cversion == 2  # two creates; the delete does not count


def test_failure_on_first_op_and_rollback_of_sequence_counter():
    tree = fresh()
    tree.apply(t.Txn(SID, (), t.Create("/q", b"", OPEN_ACL_UNSAFE)), 2, 0)
    r = run(
        tree,
        [
            t.Create("/q/n-", b"", OPEN_ACL_UNSAFE, t.PERSISTENT_SEQUENTIAL),
            t.Create("/q/n-", b"", OPEN_ACL_UNSAFE, t.PERSISTENT_SEQUENTIAL),
            t.Check("/q", 5),
        ],
        zxid=3,
    )
    assert [x.err for x in r.results] == [0, 0, Code.BAD_VERSION]
    assert tree.stat("/q").cversion == 0
    r = run(tree, [t.Check("/missing", -1), t.Create("/z", b"", OPEN_ACL_UNSAFE)], zxid=4)
    assert [x.err for x in r.results] == [Code.NO_NODE, -2]
    assert tree.exists("/z") is None
    # the counter was rolled back: the next sequential name starts again at 0
    ok = tree.apply(
        t.Txn(SID, (), t.Create("/q/n-", b"", OPEN_ACL_UNSAFE, t.PERSISTENT_SEQUENTIAL)), 5, 0
    )
    assert ok.path == "/q/n-0000000000"


def test_multi_acl_failure_and_empty_multi():
    tree = fresh()
    tree.apply(t.Txn(SID, (), t.Create("/ro", b"", (ACL(READ, Id("world", "anyone")),))), 2, 0)
    r = run(tree, [t.Check("/ro", 0), t.SetData("/ro", b"x")], zxid=3)
    assert [x.err for x in r.results] == [0, Code.NO_AUTH]
    r = run(tree, [], zxid=4)
    assert r.err == 0 and r.results == []


def test_multi_rejects_set_acl_inside():
    tree = fresh()
    r = run(tree, [t.SetACL("/", OPEN_ACL_UNSAFE)], zxid=3)  # type: ignore[list-item]
    assert [x.err for x in r.results] == [Code.BAD_ARGUMENTS]


def test_malformed_op_is_a_system_error_and_multi_still_rolls_back():
    tree = fresh()
    before = tree.serialize()
    bad = t.Create("/b", b"", (object(),))  # not an ACL: fixup_acl cannot unpack it
    r = run(tree, [t.Create("/a", b"", OPEN_ACL_UNSAFE), bad], zxid=3)
    assert [x.err for x in r.results] == [0, Code.SYSTEM_ERROR]
    tree.last_zxid = 1
    assert tree.serialize() == before
    r = tree.apply(t.Txn(SID, (), bad), 4, 0)
    assert r.err == Code.SYSTEM_ERROR
