"""Watch manager: which registrations each change fires, and setWatches on reconnect."""

import pytest

from paddock.keeper import txn as t
from paddock.keeper.acl import ACL, OPEN_ACL_UNSAFE, READ, SUPER_ID, Id, digest_id
from paddock.keeper.datatree import DataTree
from paddock.keeper.watches import (
    NO_ZXID,
    SYNC_CONNECTED,
    AddWatchMode,
    WatchDelivery,
    WatcherType,
    WatchManager,
)
from paddock.keeper.znode import EventType

A, B, C = 11, 12, 13
CREATED = EventType.NODE_CREATED
DELETED = EventType.NODE_DELETED
CHANGED = EventType.NODE_DATA_CHANGED
CHILD = EventType.NODE_CHILDREN_CHANGED


class World:
    def __init__(self):
        self.tree = DataTree()
        self.watches = WatchManager()
        self.zxid = 0
        self.auth = {}
        for sid in (A, B, C):
            self.write(t.CreateSession(sid, 5000, b""), sid)

    def write(self, op, sid=A):
        self.zxid += 1
        result = self.tree.apply(t.Txn(sid, self.auth.get(sid, ()), op), self.zxid, 0)
        return self.watches.trigger(result.triggers, self.zxid, lambda s: self.auth.get(s, ()))

    def create(self, path, data=b"", mode=t.PERSISTENT, acl=OPEN_ACL_UNSAFE, sid=A):
        return self.write(t.Create(path, data, acl, mode), sid)


def events(deliveries):
    return [(d.session_id, d.event_type, d.path) for d in deliveries]


@pytest.fixture
def w():
    return World()


def test_data_watch_fires_once_on_change(w):
    w.create("/a")
    w.watches.add_data_watch(B, "/a")
    out = w.write(t.SetData("/a", b"x"))
    assert out == [WatchDelivery(B, CHANGED, SYNC_CONNECTED, "/a", w.zxid)]
    assert w.write(t.SetData("/a", b"y")) == []


def test_exist_watch_on_absent_node_fires_created(w):
    w.watches.add_exist_watch(B, "/new")
    assert events(w.create("/new")) == [(B, CREATED, "/new")]
    assert w.create("/other") == []


def test_child_watch_fires_on_create_and_delete_of_children(w):
    w.create("/p")
    w.watches.add_child_watch(B, "/p")
    assert events(w.create("/p/c")) == [(B, CHILD, "/p")]
    w.watches.add_child_watch(B, "/p")
    w.watches.add_data_watch(C, "/p/c")
    assert events(w.write(t.Delete("/p/c"))) == [(C, DELETED, "/p/c"), (B, CHILD, "/p")]
    # children of the root
    w.watches.add_child_watch(B, "/")
    assert events(w.create("/top")) == [(B, CHILD, "/")]


def test_delete_notifies_data_and_child_watchers_once(w):
    w.create("/a")
    w.watches.add_data_watch(B, "/a")
    w.watches.add_child_watch(B, "/a")
    w.watches.add_child_watch(C, "/a")
    out = events(w.write(t.Delete("/a")))
    assert out == [(B, DELETED, "/a"), (C, DELETED, "/a")]
    assert w.watches.watch_count() == 0


def test_child_watch_not_fired_by_data_change(w):
    w.create("/a")
    w.watches.add_child_watch(B, "/a")
    assert w.write(t.SetData("/a", b"1")) == []
    assert w.watches.contains(B, "/a", WatcherType.CHILDREN)


def test_persistent_watch_fires_repeatedly_for_data_and_children(w):
    w.create("/a")
    w.watches.add_watch(B, "/a", AddWatchMode.PERSISTENT)
    assert events(w.write(t.SetData("/a", b"1"))) == [(B, CHANGED, "/a")]
    assert events(w.write(t.SetData("/a", b"2"))) == [(B, CHANGED, "/a")]
    assert events(w.create("/a/b")) == [(B, CHILD, "/a")]
    assert w.create("/a/b/c") == []  # not recursive
    w.write(t.Delete("/a/b/c"))
    w.write(t.Delete("/a/b"))
    assert events(w.write(t.Delete("/a"))) == [(B, DELETED, "/a")]
    assert events(w.create("/a")) == [(B, CREATED, "/a")]  # still registered


def test_persistent_recursive_watch(w):
    w.watches.add_watch(B, "/r", AddWatchMode.PERSISTENT_RECURSIVE)
    assert events(w.create("/r")) == [(B, CREATED, "/r")]
    assert events(w.create("/r/x")) == [(B, CREATED, "/r/x")]
    assert events(w.create("/r/x/y", b"")) == [(B, CREATED, "/r/x/y")]
    assert events(w.write(t.SetData("/r/x/y", b"1"))) == [(B, CHANGED, "/r/x/y")]
    assert events(w.write(t.Delete("/r/x/y"))) == [(B, DELETED, "/r/x/y")]
    assert w.create("/rr") == []  # a sibling sharing the prefix is not below /r
    # never NodeChildrenChanged
    assert all(e[1] != CHILD for e in events(w.create("/r/z")))


def test_recursive_on_root_sees_everything(w):
    w.watches.add_watch(B, "/", AddWatchMode.PERSISTENT_RECURSIVE)
    assert events(w.create("/a")) == [(B, CREATED, "/a")]
    assert events(w.create("/a/b")) == [(B, CREATED, "/a/b")]


def test_standard_and_persistent_on_same_path(w):
    w.create("/a")
    w.watches.add_watch(B, "/a", AddWatchMode.PERSISTENT)
    w.watches.add_data_watch(B, "/a")
    assert events(w.write(t.SetData("/a", b"1"))) == [(B, CHANGED, "/a")]  # once
    assert not w.watches.contains(B, "/a", WatcherType.DATA)
    assert w.watches.contains(B, "/a", WatcherType.PERSISTENT)


def test_ephemeral_cleanup_fires_watches(w):
    w.create("/locks")
    w.create("/locks/l1", mode=t.EPHEMERAL, sid=C)
    w.watches.add_data_watch(B, "/locks/l1")
    w.watches.add_child_watch(A, "/locks")
    out = events(w.write(t.CloseSession(C), sid=C))
    assert out == [(B, DELETED, "/locks/l1"), (A, CHILD, "/locks")]


def test_events_filtered_by_read_acl(w):
    alice = Id("digest", digest_id("alice", "pw"))
    w.auth[A] = (alice,)
    w.auth[C] = (SUPER_ID,)
    w.create("/secret", acl=(ACL(READ, alice), ACL(31, alice)))
    w.watches.add_watch(B, "/", AddWatchMode.PERSISTENT_RECURSIVE)
    w.watches.add_watch(C, "/", AddWatchMode.PERSISTENT_RECURSIVE)
    w.watches.add_data_watch(B, "/secret")
    w.watches.add_data_watch(A, "/secret")
    out = events(w.write(t.SetData("/secret", b"x")))
    assert out == [(A, CHANGED, "/secret"), (C, CHANGED, "/secret")]
    # B's one-shot watch was consumed although the event was withheld (as ZooKeeper)
    assert not w.watches.contains(B, "/secret", WatcherType.DATA)


def test_check_and_remove_watches(w):
    w.create("/a")
    wm = w.watches
    assert not wm.contains(B, "/a", WatcherType.ANY)
    wm.add_data_watch(B, "/a")
    wm.add_child_watch(B, "/a")
    assert wm.contains(B, "/a", WatcherType.DATA)
    assert wm.contains(B, "/a", WatcherType.CHILDREN)
    assert not wm.contains(B, "/a", WatcherType.PERSISTENT)
    assert wm.remove(B, "/a", WatcherType.CHILDREN)
    assert not wm.remove(B, "/a", WatcherType.CHILDREN)
    assert wm.contains(B, "/a", WatcherType.ANY)
    assert wm.remove(B, "/a", WatcherType.ANY)
    assert not wm.remove(B, "/a", WatcherType.ANY)
    wm.add_watch(B, "/a", AddWatchMode.PERSISTENT)
    wm.add_watch(B, "/a", AddWatchMode.PERSISTENT_RECURSIVE)
    assert not wm.remove(B, "/a", WatcherType.DATA)  # only standard ones
    assert wm.remove(B, "/a", WatcherType.PERSISTENT_RECURSIVE)
    assert w.create("/a/x") == [WatchDelivery(B, CHILD, SYNC_CONNECTED, "/a", w.zxid)]
    assert wm.remove(B, "/a", WatcherType.PERSISTENT)
    assert wm.watch_count() == 0 and wm.watched_paths() == []
    with pytest.raises(ValueError):
        wm.remove(B, "/a", 9)


def test_remove_session_drops_everything(w):
    w.create("/a")
    wm = w.watches
    wm.add_data_watch(B, "/a")
    wm.add_child_watch(B, "/a")
    wm.add_watch(B, "/", AddWatchMode.PERSISTENT_RECURSIVE)
    wm.add_data_watch(C, "/a")
    assert wm.paths_of(B) == ["/", "/a"]
    assert wm.sessions_of("/a") == [B, C]
    assert wm.sessions_watching() == [B, C]
    wm.remove_session(B)
    assert wm.paths_of(B) == []
    assert events(w.write(t.SetData("/a", b"1"))) == [(C, CHANGED, "/a")]
    assert w.create("/zz") == []


def test_set_watches_after_reconnect(w):
    w.create("/same")
    w.create("/changed")
    w.create("/gone")
    w.create("/kids")
    w.create("/quiet")
    last_seen = w.zxid
    w.write(t.SetData("/changed", b"new"))
    w.write(t.Delete("/gone"))
    w.create("/kids/k")
    w.create("/appeared")
    out = w.watches.set_watches(
        B,
        last_seen,
        w.tree,
        data=["/same", "/changed", "/gone"],
        exist=["/appeared", "/still-missing"],
        child=["/kids", "/quiet", "/gone"],
        persistent=["/same"],
        persistent_recursive=["/quiet"],
    )
    assert [(d.event_type, d.path, d.zxid) for d in out] == [
        (CHANGED, "/changed", NO_ZXID),
        (DELETED, "/gone", NO_ZXID),
        (CREATED, "/appeared", NO_ZXID),
        (CHILD, "/kids", NO_ZXID),
        (DELETED, "/gone", NO_ZXID),
    ]
    wm = w.watches
    assert wm.contains(B, "/same", WatcherType.DATA)
    assert wm.contains(B, "/still-missing", WatcherType.DATA)
    assert wm.contains(B, "/quiet", WatcherType.CHILDREN)
    assert wm.contains(B, "/same", WatcherType.PERSISTENT)
    assert wm.contains(B, "/quiet", WatcherType.PERSISTENT_RECURSIVE)
    assert not wm.contains(B, "/changed", WatcherType.DATA)
    assert events(w.create("/still-missing")) == [(B, CREATED, "/still-missing")]


def test_deliveries_sorted_by_session(w):
    w.create("/a")
    for sid in (C, A, B):
        w.watches.add_data_watch(sid, "/a")
    assert [d.session_id for d in w.write(t.SetData("/a", b""))] == [A, B, C]
