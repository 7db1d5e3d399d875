"""DataTree: single operations, their errors and the stats they leave behind."""

import pytest

from paddock.keeper import txn as t
from paddock.keeper.acl import (
    ACL,
    ALL,
    CREATE,
    DELETE,
    OPEN_ACL_UNSAFE,
    READ,
    READ_ACL_UNSAFE,
    SUPER_ID,
    WRITE,
    Id,
    digest_id,
)
from paddock.keeper.datatree import DataTree
from paddock.keeper.errors import Code, KeeperError
from paddock.keeper.znode import CONTAINER_OWNER, EventType, is_ttl_owner, ttl_of

SID = 0x1000000000000001
OTHER = 0x1000000000000002
ALICE = Id("digest", digest_id("alice", "secret"))
BOB = Id("digest", digest_id("bob", "pw"))


class Keeper:
    """A tree plus a zxid counter, so tests read like a client session."""

    def __init__(self) -> None:
        self.tree = DataTree(config=b"server.1=127.0.0.1:2888:3888:participant;2181\nversion=0")
        self.zxid = 0
        self.time = 1_000

    def apply(self, op, session=SID, auth=()):
        self.zxid += 1
        self.time += 10
        return self.tree.apply(t.Txn(session, tuple(auth), op), self.zxid, self.time)

    def session(self, sid=SID, timeout=10_000):
        return self.apply(t.CreateSession(sid, timeout, b"p" * 16), session=sid)

    def create(self, path, data=b"", acl=OPEN_ACL_UNSAFE, mode=t.PERSISTENT, **kw):
        return self.apply(t.Create(path, data, tuple(acl), mode, kw.pop("ttl", -1)), **kw)


@pytest.fixture
def zk():
    k = Keeper()
    k.session(SID)
    k.session(OTHER)
    return k


def test_initial_tree_matches_zookeeper():
    tree = DataTree(config=b"cfg")
    children, root = tree.get_children("/")
    assert children == ["zookeeper"]
    assert tree.get_children("/zookeeper")[0] == ["config", "quota"]
    data, stat = tree.get_data("/zookeeper/config")
    assert data == b"cfg"
    assert stat.aversion == -1
    assert tree.get_acl("/zookeeper/config")[0] == list(READ_ACL_UNSAFE)
    assert root.czxid == 0 and root.num_children == 1
    # clients see cversion = 2 * creations - children: the root never recorded
    # creating /zookeeper, so it shows -1 (and /zookeeper -2), as ZooKeeper does
    assert root.cversion == -1
    assert tree.stat("/zookeeper").cversion == -2


def test_create_sets_stat_and_parent(zk):
    r = zk.create("/a", b"hello")
    assert r.err == 0 and r.path == "/a"
    zxid = zk.zxid
    data, stat = zk.tree.get_data("/a")
    assert data == b"hello"
    assert (stat.czxid, stat.mzxid, stat.pzxid) == (zxid, zxid, zxid)
    assert stat.ctime == stat.mtime == zk.time
    assert (stat.version, stat.cversion, stat.aversion) == (0, 0, 0)
    assert stat.ephemeral_owner == 0 and stat.data_length == 5 and stat.num_children == 0
    root = zk.tree.stat("/")
    assert root.cversion == 0 and root.pzxid == zxid and root.num_children == 2
    assert r.stat == stat


def test_create_errors(zk):
    assert zk.create("/a/b").err == Code.NO_NODE
    zk.create("/a")
    assert zk.create("/a").err == Code.NODE_EXISTS
    assert zk.create("a").err == Code.BAD_ARGUMENTS
    assert zk.create("/a/").err == Code.BAD_ARGUMENTS
    assert zk.create("/a//b").err == Code.NO_NODE  # parent "/a/" does not exist
    assert zk.create("/a/.").err == Code.BAD_ARGUMENTS
    assert zk.create("/a/\x01").err == Code.BAD_ARGUMENTS
    assert zk.create("/a/x", mode=9).err == Code.BAD_ARGUMENTS
    assert zk.create("/a/x", acl=()).err == Code.INVALID_ACL
    # ACL validation comes before the parent lookup, as in PrepRequestProcessor.
    assert zk.create("/nope/x", acl=()).err == Code.INVALID_ACL
    assert zk.create("/", b"").err == Code.NODE_EXISTS


def test_failed_create_changes_nothing(zk):
    before = zk.tree.digest()
    r = zk.create("/missing/child")
    assert r.err == Code.NO_NODE and r.triggers == []
    zk.tree.last_zxid = 0
    other = DataTree.deserialize(zk.tree.serialize())
    assert other.get_children("/")[0] == ["zookeeper"]
    zk.tree.last_zxid = zk.zxid - 1
    assert zk.tree.digest() == before


def test_sequential_names_use_parent_cversion(zk):
    zk.create("/q")
    names = [zk.create("/q/n-", mode=t.PERSISTENT_SEQUENTIAL).path for _ in range(3)]
    assert names == ["/q/n-0000000000", "/q/n-0000000001", "/q/n-0000000002"]
    zk.apply(t.Delete("/q/n-0000000002"))
    # deletes do not bump cversion (ZooKeeper 3.9), so the counter does not either
    zk.create("/q/plain")
    assert zk.create("/q/n-", mode=t.EPHEMERAL_SEQUENTIAL).path == "/q/n-0000000004"
    assert zk.tree.nodes["/q"].cversion == 5  # stored: creations
    assert zk.tree.stat("/q").cversion == 6  # shown: creations + deletions


def test_delete_semantics(zk):
    zk.create("/a")
    zk.create("/a/b")
    assert zk.apply(t.Delete("/a")).err == Code.NOT_EMPTY
    assert zk.apply(t.Delete("/a/b", version=3)).err == Code.BAD_VERSION
    assert zk.apply(t.Delete("/a/zz")).err == Code.NO_NODE
    assert zk.apply(t.Delete("/x/zz")).err == Code.NO_NODE
    before = zk.tree.stat("/a")
    r = zk.apply(t.Delete("/a/b", version=0))
    assert r.err == 0 and zk.tree.exists("/a/b") is None
    after = zk.tree.stat("/a")
    assert after.pzxid == zk.zxid and after.cversion == before.cversion + 1
    assert after.num_children == 0
    assert [(tr.path, tr.event_type) for tr in r.triggers] == [
        ("/a/b", EventType.NODE_DELETED),
        ("/a", EventType.NODE_CHILDREN_CHANGED),
    ]


@pytest.mark.parametrize("path", ["/", "/zookeeper", "/zookeeper/quota", "/zookeeper/config"])
def test_system_nodes_cannot_be_deleted(zk, path):
    assert zk.apply(t.Delete(path), auth=[SUPER_ID]).err == Code.BAD_ARGUMENTS


def test_set_data_versions_and_stat(zk):
    zk.create("/a", b"1")
    created = zk.tree.stat("/a")
    r = zk.apply(t.SetData("/a", b"22", 0))
    assert r.err == 0 and r.stat.version == 1 and r.stat.mzxid == zk.zxid
    assert r.stat.czxid == created.czxid and r.stat.data_length == 2
    assert r.stat.mtime == zk.time and r.stat.ctime == created.ctime
    assert zk.apply(t.SetData("/a", b"x", 0)).err == Code.BAD_VERSION
    assert zk.apply(t.SetData("/a", b"x", -1)).stat.version == 2
    assert zk.apply(t.SetData("/nope", b"x")).err == Code.NO_NODE
    assert zk.apply(t.SetData("bad", b"x")).err == Code.BAD_ARGUMENTS
    assert [(tr.path, tr.event_type) for tr in r.triggers] == [("/a", EventType.NODE_DATA_CHANGED)]


def test_version_wraps_like_zookeeper(zk):
    zk.create("/a")
    zk.tree.nodes["/a"].version = 2**31 - 1
    assert zk.apply(t.SetData("/a", b"")).stat.version == -(2**31)
    zk.tree.nodes["/a"].version = -2
    # never -1: that would mean "any version" to the client
    assert zk.apply(t.SetData("/a", b"")).stat.version == 0


def test_null_data(zk):
    zk.create("/n", None)
    data, stat = zk.tree.get_data("/n")
    assert data is None and stat.data_length == 0


def test_check_op(zk):
    zk.create("/a")
    assert zk.apply(t.Check("/a", 0)).err == 0
    assert zk.apply(t.Check("/a", 1)).err == Code.BAD_VERSION
    assert zk.apply(t.Check("/b", 0)).err == Code.NO_NODE


def test_set_acl(zk):
    zk.create("/a")
    r = zk.apply(t.SetACL("/a", (ACL(READ, Id("world", "anyone")),), 0))
    assert r.err == 0 and r.stat.aversion == 1
    assert zk.apply(t.SetACL("/a", OPEN_ACL_UNSAFE, 0)).err == Code.NO_AUTH
    assert zk.apply(t.SetACL("/a", OPEN_ACL_UNSAFE, 0), auth=[SUPER_ID]).err == Code.BAD_VERSION
    assert zk.apply(t.SetACL("/a", OPEN_ACL_UNSAFE, 1), auth=[SUPER_ID]).err == 0
    assert zk.apply(t.SetACL("/a", ())).err == Code.INVALID_ACL
    assert zk.apply(t.SetACL("/zz", OPEN_ACL_UNSAFE)).err == Code.NO_NODE
    assert zk.apply(t.SetACL("/zz", ())).err == Code.INVALID_ACL


def test_acl_enforced_on_writes_and_reads(zk):
    mine = (ACL(ALL, ALICE),)
    assert zk.create("/p", acl=mine, auth=[ALICE]).err == 0
    for op in (
        t.Create("/p/c", b"", OPEN_ACL_UNSAFE),
        t.SetData("/p", b"x"),
        t.Delete("/p/c"),
        t.SetACL("/p", OPEN_ACL_UNSAFE),
        t.Check("/p", -1),
    ):
        assert zk.apply(op, auth=[BOB]).err == Code.NO_AUTH, op
    with pytest.raises(KeeperError) as exc:
        zk.tree.get_data("/p", [BOB])
    assert exc.value.code == Code.NO_AUTH
    with pytest.raises(KeeperError):
        zk.tree.get_children("/p", [BOB])
    # ZooKeeper 3.8.0 answers exists without an ACL check; newer ones need READ
    assert zk.tree.exists("/p", [BOB]) is not None
    zk.tree.exists_checks_acl = True
    with pytest.raises(KeeperError):
        zk.tree.exists("/p", [BOB])
    assert zk.tree.exists("/p", [ALICE]) is not None
    assert zk.tree.get_data("/p", [ALICE])[0] == b""
    assert zk.tree.get_data("/p", [SUPER_ID])[0] == b""
    assert zk.apply(t.SetData("/p", b"x"), auth=[BOB, SUPER_ID]).err == 0


def test_delete_needs_delete_on_parent_only(zk):
    zk.create("/p", acl=(ACL(ALL ^ DELETE, Id("world", "anyone")),))
    zk.create("/p/c", acl=(ACL(READ, Id("world", "anyone")),))
    assert zk.apply(t.Delete("/p/c")).err == Code.NO_AUTH
    zk.create("/q", acl=(ACL(DELETE | CREATE, Id("world", "anyone")),))
    zk.create("/q/c", acl=(ACL(READ, Id("world", "anyone")),))
    assert zk.apply(t.Delete("/q/c")).err == 0
    # the parent's DELETE check comes before looking at the child
    assert zk.apply(t.Delete("/p/absent")).err == Code.NO_AUTH


def test_create_with_auth_scheme_expands_ids(zk):
    ip = Id("ip", "1.2.3.4")
    r = zk.create("/mine", acl=(ACL(READ | WRITE, Id("auth", "")),), auth=[ip, ALICE, SUPER_ID])
    assert r.err == 0
    # only authenticated schemes are substituted (not ip, not super)
    assert zk.tree.get_acl("/mine", [SUPER_ID])[0] == [ACL(READ | WRITE, ALICE)]
    no_auth = zk.create("/x", acl=(ACL(ALL, Id("auth", "")),), auth=[Id("ip", "1.2.3.4")])
    assert no_auth.err == Code.INVALID_ACL


def test_get_acl_masks_digest_without_admin(zk):
    acl = (ACL(READ, ALICE), ACL(ALL, BOB))
    zk.create("/a", acl=acl)
    masked, _ = zk.tree.get_acl("/a", [ALICE])
    assert masked == [ACL(READ, Id("digest", "alice:x")), ACL(ALL, Id("digest", "bob:x"))]
    full, stat = zk.tree.get_acl("/a", [BOB])
    assert full == list(acl) and stat.aversion == 0
    with pytest.raises(KeeperError) as exc:
        zk.tree.get_acl("/a", [])
    assert exc.value.code == Code.NO_AUTH


def test_ephemerals(zk):
    r = zk.create("/e", mode=t.EPHEMERAL)
    assert r.stat.ephemeral_owner == SID
    assert zk.create("/e/child").err == Code.NO_CHILDREN_FOR_EPHEMERALS
    assert zk.create("/e/child", mode=t.EPHEMERAL).err == Code.NO_CHILDREN_FOR_EPHEMERALS
    zk.create("/d")
    zk.create("/d/e1", mode=t.EPHEMERAL)
    zk.create("/d/e2", mode=t.EPHEMERAL, session=OTHER)
    assert zk.tree.get_ephemerals(SID) == ["/d/e1", "/e"]
    assert zk.tree.get_ephemerals(SID, "/d") == ["/d/e1"]
    assert zk.tree.get_ephemerals(SID, "/") == ["/d/e1", "/e"]
    assert zk.tree.get_ephemerals(OTHER) == ["/d/e2"]
    assert zk.tree.ephemeral_count() == 3


def test_close_session_removes_ephemerals_and_reports_events(zk):
    zk.create("/d")
    zk.create("/d/e1", mode=t.EPHEMERAL)
    zk.create("/e0", mode=t.EPHEMERAL)
    zk.create("/d/keep", mode=t.EPHEMERAL, session=OTHER)
    r = zk.apply(t.CloseSession(SID), session=SID)
    assert r.err == 0
    assert SID not in zk.tree.sessions
    assert zk.tree.get_children("/d")[0] == ["keep"]
    assert zk.tree.exists("/e0") is None
    assert zk.tree.stat("/d").pzxid == zk.zxid
    assert [(tr.path, tr.event_type) for tr in r.triggers] == [
        ("/d/e1", EventType.NODE_DELETED),
        ("/d", EventType.NODE_CHILDREN_CHANGED),
        ("/e0", EventType.NODE_DELETED),
        ("/", EventType.NODE_CHILDREN_CHANGED),
    ]
    assert zk.tree.get_ephemerals(SID) == []


def test_writes_from_unknown_session_are_rejected(zk):
    zk.apply(t.CloseSession(SID))
    for op in (
        t.Create("/x", b"", OPEN_ACL_UNSAFE),
        t.Create("/x", b"", OPEN_ACL_UNSAFE, t.EPHEMERAL),
        t.SetData("/zookeeper", b""),
        t.Delete("/zookeeper/nope"),
        t.SetACL("/", OPEN_ACL_UNSAFE),
        t.Check("/", -1),
    ):
        assert zk.apply(op, session=SID).err == Code.SESSION_EXPIRED, op
    # session 0 is the system: no session needed, except to own an ephemeral
    assert zk.create("/sys", session=0).err == 0
    assert zk.create("/sys/e", session=0, mode=t.EPHEMERAL).err == Code.SESSION_EXPIRED


def test_create_session_table(zk):
    assert zk.tree.sessions[SID].timeout_ms == 10_000
    assert zk.tree.sessions[SID].password == b"p" * 16
    zk.session(SID, timeout=4_000)
    assert zk.tree.sessions[SID].timeout_ms == 4_000


def test_containers(zk):
    r = zk.create("/c", mode=t.CONTAINER)
    assert zk.tree.nodes["/c"].owner == CONTAINER_OWNER
    assert r.stat.ephemeral_owner == 0  # clients see 0 for containers and TTL nodes
    assert zk.tree.containers_to_delete(now_ms=10**12) == []  # never had a child
    assert zk.tree.containers_to_delete(now_ms=10**12, max_never_used_ms=1000) == ["/c"]
    zk.create("/c/x")
    assert zk.tree.containers_to_delete() == []
    zk.apply(t.Delete("/c/x"))
    assert zk.tree.containers_to_delete() == ["/c"]
    zk.create("/c/y")
    assert zk.apply(t.DeleteContainer("/c"), session=0).err == Code.NOT_EMPTY
    zk.apply(t.Delete("/c/y"))
    r = zk.apply(t.DeleteContainer("/c"), session=0)
    assert r.err == 0 and zk.tree.exists("/c") is None
    assert zk.tree.containers == set()
    assert zk.apply(t.DeleteContainer("/c"), session=0).err == Code.NO_NODE
    zk.create("/plain")
    assert zk.apply(t.DeleteContainer("/plain"), session=0).err == Code.BAD_VERSION
    assert zk.apply(t.DeleteContainer("/zookeeper"), session=0).err == Code.BAD_ARGUMENTS


def test_ttl_nodes(zk):
    assert zk.create("/t", mode=t.PERSISTENT_WITH_TTL).err == Code.BAD_ARGUMENTS  # ttl -1
    assert zk.create("/t", mode=t.PERSISTENT, ttl=100).err == Code.BAD_ARGUMENTS
    assert zk.create("/t", mode=t.PERSISTENT_WITH_TTL, ttl=0).err == Code.BAD_ARGUMENTS
    r = zk.create("/t", mode=t.PERSISTENT_WITH_TTL, ttl=500)
    assert r.err == 0
    assert r.stat.ephemeral_owner == 0
    owner = zk.tree.nodes["/t"].owner
    assert owner < 0 and is_ttl_owner(owner) and ttl_of(owner) == 500
    assert owner == -72057594037927436  # 0xFF00000000000000 | 500 as a Java long
    seq = zk.create("/t-", mode=t.PERSISTENT_SEQUENTIAL_WITH_TTL, ttl=5_000)
    assert seq.path.startswith("/t-00000000")
    created = zk.tree.stat("/t").mtime
    assert zk.tree.expired_ttls(created + 500) == []
    assert zk.tree.expired_ttls(created + 501) == ["/t"]
    zk.create("/t/child")  # TTL nodes may have children, and then are kept
    assert zk.tree.expired_ttls(created + 10_000) == [seq.path]
    zk.apply(t.Delete("/t/child"))
    assert zk.tree.deletion_candidates(created + 10_000) == sorted(["/t", seq.path])
    assert zk.tree.deletion_candidates(created + 2_000) == ["/t"]
    # applied "too early" (the node was touched): refused
    zk.apply(t.SetData("/t", b"touch"))
    assert zk.apply(t.DeleteContainer("/t"), session=0).err == Code.BAD_VERSION
    zk.time += 1_000
    assert zk.apply(t.DeleteContainer("/t"), session=0).err == 0
    assert zk.tree.ttls == {seq.path}


def test_reads(zk):
    zk.create("/a", b"x")
    zk.create("/a/b")
    zk.create("/a/b/c")
    zk.create("/a/a")
    children, stat = zk.tree.get_children("/a")
    assert children == ["a", "b"] and stat.num_children == 2
    assert zk.tree.get_all_children_number("/a") == 3
    assert zk.tree.get_all_children_number("/") == zk.tree.node_count() - 1
    assert zk.tree.exists("/nope") is None
    with pytest.raises(KeeperError) as exc:
        zk.tree.get_data("/nope")
    assert exc.value.code == Code.NO_NODE
    with pytest.raises(KeeperError) as exc:
        zk.tree.exists("/a\0")
    assert exc.value.code == Code.BAD_ARGUMENTS


def test_set_config(zk):
    assert zk.apply(t.SetConfig(b"new")).err == Code.NO_AUTH
    r = zk.apply(t.SetConfig(b"new"), auth=[SUPER_ID])
    assert r.err == 0 and r.stat.version == -1 and r.stat.mzxid == zk.zxid
    assert zk.tree.get_data("/zookeeper/config")[0] == b"new"
    assert r.triggers[0].path == "/zookeeper/config"
    zk.tree.set_config_local(b"local")
    assert zk.tree.get_data("/zookeeper/config")[0] == b"local"


def test_noop_and_last_zxid(zk):
    r = zk.apply(t.Noop())
    assert r.err == 0 and r.triggers == []
    assert zk.tree.last_zxid == zk.zxid


def test_stats_match_zookeeper_golden_transcript():
    """Steps of tests/compat/golden/differential.json (real ZooKeeper 3.8)."""
    zk = Keeper()
    zk.session(SID)
    zk.create("/R", b"root")
    zk.create("/R/a", b"1")
    zk.create("/R/a/b", b"bb")
    zk.apply(t.Delete("/R/a/b", 0))
    assert zk.tree.get_children("/R/a")[1].cversion == 2  # "children2 a after delete"
    zk.apply(t.Delete("/R/a", -1))
    for name in ("empty", "uni", "seq"):
        zk.create(f"/R/{name}")
    names = [zk.create("/R/seq/job-", b"j", mode=t.PERSISTENT_SEQUENTIAL).path for _ in range(3)]
    assert names[-1] == "/R/seq/job-0000000002"
    zk.apply(t.Delete("/R/seq/job-0000000001"))
    after = zk.create("/R/seq/job-", mode=t.PERSISTENT_SEQUENTIAL).path
    assert after == "/R/seq/job-0000000003"
    assert zk.create("/R/seq/x", mode=t.PERSISTENT_SEQUENTIAL).path == "/R/seq/x0000000004"
    stat = zk.tree.get_children("/R/seq")[1]
    assert (stat.cversion, stat.num_children) == (6, 4)
    zk.create("/R/eph", b"e", mode=t.EPHEMERAL)
    assert zk.create("/R/es-", mode=t.EPHEMERAL_SEQUENTIAL).path == "/R/es-0000000005"
    zk.session(OTHER)
    zk.create("/R/ceph", mode=t.EPHEMERAL, session=OTHER)
    children, stat = zk.tree.get_children("/R")
    assert children == ["ceph", "empty", "eph", "es-0000000005", "seq", "uni"]
    assert (stat.cversion, stat.num_children, stat.data_length) == (8, 6, 4)


def test_children_listing_follows_every_change(zk):
    zk.create("/l")
    zk.create("/l/b")
    first, _ = zk.tree.get_children("/l")
    first.append("garbage")  # callers get a copy
    assert zk.tree.get_children("/l")[0] == ["b"]
    zk.create("/l/a")
    assert zk.tree.get_children("/l")[0] == ["a", "b"]
    zk.apply(t.Delete("/l/b"))
    assert zk.tree.get_children("/l")[0] == ["a"]
    failed = zk.apply(t.Multi((t.Create("/l/c", b"", OPEN_ACL_UNSAFE), t.Check("/l", 99))))
    assert failed.err == Code.BAD_VERSION
    assert zk.tree.get_children("/l")[0] == ["a"]
    zk.create("/l/e", mode=t.EPHEMERAL)
    assert zk.tree.get_children("/l")[0] == ["a", "e"]
    zk.apply(t.CloseSession(SID))
    assert zk.tree.get_children("/l")[0] == ["a"]
