"""A scripted kazoo workload whose normalised transcript must be identical on
real Apache ZooKeeper and on keeper.

Each step records ``[label, "ok", value]`` or ``[label, "error", ExceptionClass]``.
Normalisation strips what legitimately differs between servers and runs
(zxids, times, session ids, the random root path) and keeps what clients can
rely on: data, versions, cversion, aversion, dataLength, numChildren, which
session owns an ephemeral, sequence suffixes, error classes, watch events in
order.
"""

from __future__ import annotations

import threading
import uuid
from collections.abc import Callable
from typing import Any

from kazoo.client import KazooClient
from kazoo.exceptions import KazooException
from kazoo.protocol.states import ZnodeStat
from kazoo.security import ACL, make_acl, make_digest_acl

Transcript = list[list[Any]]


class Recorder:
    def __init__(self, root: str, sessions: dict[int, str], clients: list[KazooClient]) -> None:
        self.root = root
        self.sessions = sessions
        self.clients = clients
        self.steps: Transcript = []

    def norm(self, value: Any) -> Any:
        if isinstance(value, ZnodeStat):
            return {
                "version": value.version,
                "cversion": value.cversion,
                "aversion": value.aversion,
                "dataLength": value.dataLength,
                "numChildren": value.numChildren,
                "ephemeralOwner": self.sessions.get(value.ephemeralOwner, "other")
                if value.ephemeralOwner
                else None,
                "modified": value.mzxid != value.czxid,
                "children_changed": value.pzxid != value.czxid,
            }
        if isinstance(value, ACL):
            return [value.perms, value.id.scheme, value.id.id]
        if isinstance(value, bytes):
            return value.decode("utf-8", errors="backslashreplace")
        if isinstance(value, str):
            return value.replace(self.root, "/R")
        if isinstance(value, KazooException):
            return type(value).__name__
        if isinstance(value, list | tuple):
            return [self.norm(v) for v in value]
        return value

    def step(self, label: str, fn: Callable[[], Any]) -> Any:
        # Clients on different servers only see each other's writes after a
        # sync (ZooKeeper is sequentially consistent per client, not
        # linearizable for reads): sync every live client so each step reads
        # the state all earlier steps produced.
        for client in self.clients:
            if client.connected:
                client.sync("/")
        try:
            value = fn()
        except KazooException as exc:
            self.steps.append([label, "error", type(exc).__name__])
            return exc
        self.steps.append([label, "ok", self.norm(value)])
        return value


def run_workload(hosts: str, timeout: float = 20.0) -> Transcript:
    """Run the workload against ``hosts`` and return its normalised transcript."""
    servers = hosts.split(",")
    root = f"/diff-{uuid.uuid4().hex[:12]}"
    # a: plain; b: digest user alice; c: no auth, another server; w: watcher.
    a = KazooClient(hosts=servers[0], timeout=10)
    b = KazooClient(hosts=servers[-1], timeout=10, auth_data=[("digest", "alice:secret")])
    c = KazooClient(hosts=servers[len(servers) // 2], timeout=10)
    w = KazooClient(hosts=servers[-1], timeout=10)
    clients = [a, b, c, w]
    for client in clients:
        client.start(timeout=timeout)
    try:
        sessions = {
            a.client_id[0]: "A",
            b.client_id[0]: "B",
            c.client_id[0]: "C",
            w.client_id[0]: "W",
        }
        r = Recorder(root, sessions, clients)
        _basic(r, a, root)
        _sequential_and_ephemeral(r, a, c, root)
        _multi(r, a, root)
        _acls(r, a, b, c, root)
        _watches(r, a, w, root, timeout)
        _session_close(r, a, c, root)
        _cleanup(r, c, root)
        return r.steps
    finally:
        for client in clients:
            client.stop()
            client.close()


def _basic(r: Recorder, a: KazooClient, root: str) -> None:
    r.step("create root", lambda: a.create(root, b"root"))
    r.step("exists missing", lambda: a.exists(f"{root}/missing"))
    r.step("get missing", lambda: a.get(f"{root}/missing"))
    r.step("set missing", lambda: a.set(f"{root}/missing", b"x"))
    r.step("delete missing", lambda: a.delete(f"{root}/missing"))
    r.step("children of missing", lambda: a.get_children(f"{root}/missing"))
    r.step("create a", lambda: a.create(f"{root}/a", b"1"))
    r.step("create a again", lambda: a.create(f"{root}/a", b"other"))
    r.step("create without parent", lambda: a.create(f"{root}/no/child", b""))
    r.step("get a", lambda: a.get(f"{root}/a"))
    r.step("set a v0", lambda: a.set(f"{root}/a", b"22", version=0))
    r.step("set a stale v0", lambda: a.set(f"{root}/a", b"333", version=0))
    r.step("set a any version empty", lambda: a.set(f"{root}/a", b"", version=-1))
    r.step("get a after sets", lambda: a.get(f"{root}/a"))
    r.step("delete a bad version", lambda: a.delete(f"{root}/a", version=1))
    r.step("create a/b", lambda: a.create(f"{root}/a/b", b"bb"))
    r.step("delete non-empty a", lambda: a.delete(f"{root}/a"))
    r.step("exists a", lambda: a.exists(f"{root}/a"))
    r.step("delete a/b", lambda: a.delete(f"{root}/a/b", version=0))
    r.step("children2 a after delete", lambda: a.get_children(f"{root}/a", include_data=True))
    r.step("delete a v2", lambda: a.delete(f"{root}/a", version=2))
    r.step("exists a after delete", lambda: a.exists(f"{root}/a"))
    r.step("create with null-ish data", lambda: a.create(f"{root}/empty"))
    r.step("get empty", lambda: a.get(f"{root}/empty"))
    r.step("create with null data", lambda: a.create(f"{root}/null", None))
    r.step("get null data", lambda: a.get(f"{root}/null"))
    r.step("set null data on empty", lambda: a.set(f"{root}/empty", None))
    r.step("get empty after null set", lambda: a.get(f"{root}/empty"))
    r.step("unicode data", lambda: a.create(f"{root}/uni", "grüße ✓".encode()))
    r.step("get unicode", lambda: a.get(f"{root}/uni"))
    r.step("sync", lambda: a.sync(f"{root}/uni"))
    r.step("children of /zookeeper", lambda: sorted(a.get_children("/zookeeper")))


def _sequential_and_ephemeral(r: Recorder, a: KazooClient, c: KazooClient, root: str) -> None:
    r.step("create seq parent", lambda: a.create(f"{root}/seq", b""))
    for i in range(3):
        r.step(f"create seq {i}", lambda: a.create(f"{root}/seq/job-", b"j", sequence=True))
    r.step("delete seq 1", lambda: a.delete(f"{root}/seq/job-0000000001"))
    r.step("create seq after delete", lambda: a.create(f"{root}/seq/job-", b"", sequence=True))
    r.step("create seq other prefix", lambda: a.create(f"{root}/seq/x", b"", sequence=True))
    r.step("seq children", lambda: sorted(a.get_children(f"{root}/seq")))
    r.step("seq children2", lambda: a.get_children(f"{root}/seq", include_data=True)[1])
    r.step("create ephemeral", lambda: a.create(f"{root}/eph", b"e", ephemeral=True))
    r.step("stat ephemeral from c", lambda: c.exists(f"{root}/eph"))
    r.step("child of ephemeral", lambda: a.create(f"{root}/eph/child", b""))
    r.step(
        "create ephemeral seq",
        lambda: a.create(f"{root}/es-", b"", ephemeral=True, sequence=True),
    )
    r.step("create c's ephemeral", lambda: c.create(f"{root}/ceph", b"", ephemeral=True))
    r.step("stat c's ephemeral from a", lambda: a.exists(f"{root}/ceph"))
    r.step("root children", lambda: sorted(a.get_children(root)))
    r.step("root children2 stat", lambda: a.get_children(root, include_data=True)[1])


def _multi(r: Recorder, a: KazooClient, root: str) -> None:
    r.step("create m", lambda: a.create(f"{root}/m", b"0"))

    def failing_in_middle() -> Any:
        t = a.transaction()
        t.create(f"{root}/m/t1", b"")
        t.set_data(f"{root}/m", b"x", version=99)
        t.create(f"{root}/m/t2", b"")
        return t.commit()

    r.step("multi failing in middle", failing_in_middle)
    r.step("multi left nothing", lambda: a.exists(f"{root}/m/t1"))

    def failing_check_first() -> Any:
        t = a.transaction()
        t.check(f"{root}/m", 5)
        t.create(f"{root}/m/t1", b"")
        return t.commit()

    r.step("multi failing check", failing_check_first)

    def failing_last() -> Any:
        t = a.transaction()
        t.create(f"{root}/m/t1", b"")
        t.delete(f"{root}/m/nothing")
        return t.commit()

    r.step("multi failing last", failing_last)

    def succeeding() -> Any:
        t = a.transaction()
        t.create(f"{root}/m/t1", b"one")
        t.check(f"{root}/m", 0)
        t.set_data(f"{root}/m", b"1", version=0)
        t.create(f"{root}/m/t2", b"", sequence=True)
        t.delete(f"{root}/m/t1")
        return t.commit()

    r.step("multi succeeding", succeeding)
    r.step("m after multi", lambda: a.get(f"{root}/m"))
    r.step("m children after multi", lambda: sorted(a.get_children(f"{root}/m")))

    def create_and_duplicate() -> Any:
        t = a.transaction()
        t.create(f"{root}/m/dup", b"")
        t.create(f"{root}/m/dup", b"")
        return t.commit()

    r.step("multi duplicate create", create_and_duplicate)


def _acls(r: Recorder, a: KazooClient, b: KazooClient, c: KazooClient, root: str) -> None:
    alice_rw = make_digest_acl("alice", "secret", read=True, write=True, admin=True)
    r.step("b creates secret", lambda: b.create(f"{root}/secret", b"s", acl=[alice_rw]))
    r.step("b gets secret", lambda: b.get(f"{root}/secret"))
    r.step("b gets acls", lambda: b.get_acls(f"{root}/secret"))
    r.step("c gets secret", lambda: c.get(f"{root}/secret"))
    r.step("c sets secret", lambda: c.set(f"{root}/secret", b"hack"))
    r.step("c exists secret", lambda: c.exists(f"{root}/secret"))
    r.step("c gets acls", lambda: c.get_acls(f"{root}/secret"))
    r.step("c children of secret", lambda: c.get_children(f"{root}/secret"))
    r.step("b creates under secret", lambda: b.create(f"{root}/secret/kid", b""))
    r.step("b sets secret", lambda: b.set(f"{root}/secret", b"s2"))
    r.step(
        "b makes secret read-only",
        lambda: b.set_acls(
            f"{root}/secret", [make_digest_acl("alice", "secret", read=True, admin=True)]
        ),
    )
    r.step("b sets read-only secret", lambda: b.set(f"{root}/secret", b"s3"))
    r.step("secret stat after acl change", lambda: b.exists(f"{root}/secret"))
    r.step(
        "c sets acls on secret",
        lambda: c.set_acls(f"{root}/secret", [make_acl("world", "anyone", all=True)]),
    )
    r.step(
        "c creates with auth scheme unauthenticated",
        lambda: c.create(f"{root}/authacl", b"", acl=[make_acl("auth", "", all=True)]),
    )
    r.step(
        "b creates with auth scheme",
        lambda: b.create(f"{root}/authacl", b"", acl=[make_acl("auth", "", all=True)]),
    )
    r.step("b gets auth-scheme acls", lambda: b.get_acls(f"{root}/authacl"))
    r.step(
        "create with invalid acl",
        lambda: b.create(f"{root}/badacl", b"", acl=[make_acl("digest", "no-colon", all=True)]),
    )
    r.step("c adds super auth", lambda: c.add_auth("digest", "super:test"))
    r.step("super gets secret", lambda: c.get(f"{root}/secret"))
    r.step("super sets secret", lambda: c.set(f"{root}/secret", b"by-super"))
    r.step(
        "super opens secret",
        lambda: c.set_acls(f"{root}/secret", [make_acl("world", "anyone", all=True)]),
    )
    r.step("a gets opened secret", lambda: a.get(f"{root}/secret"))
    r.step("a gets opened acls", lambda: a.get_acls(f"{root}/secret"))
    alice_all = make_digest_acl("alice", "secret", all=True)
    r.step("b creates locked", lambda: b.create(f"{root}/locked", b"", acl=[alice_all]))
    r.step("b creates locked/kid", lambda: b.create(f"{root}/locked/kid", b"k"))
    r.step("a deletes locked/kid", lambda: a.delete(f"{root}/locked/kid"))
    r.step("a deletes locked (non-empty)", lambda: a.delete(f"{root}/locked", recursive=False))
    r.step("b deletes locked/kid", lambda: b.delete(f"{root}/locked/kid"))
    # Deleting needs DELETE on the parent, not on the node: a may delete it.
    r.step("a deletes empty locked", lambda: a.delete(f"{root}/locked"))


def _watches(r: Recorder, a: KazooClient, w: KazooClient, root: str, timeout: float) -> None:
    events: list[list[str]] = []
    done = threading.Event()

    def watcher(label: str) -> Callable[[Any], None]:
        def record(event: Any) -> None:
            events.append([label, event.type, event.path.replace(root, "/R")])
            if label == "marker":
                done.set()

        return record

    r.step("create w1", lambda: a.create(f"{root}/w1", b""))
    r.step("create w3", lambda: a.create(f"{root}/w3", b""))
    r.step("create w4", lambda: a.create(f"{root}/w4", b""))
    r.step("create w5", lambda: a.create(f"{root}/w5", b""))
    r.step("create w6", lambda: a.create(f"{root}/w6", b""))
    w.sync(root)
    r.step("watch data w1", lambda: w.get(f"{root}/w1", watch=watcher("data w1")))
    r.step("watch exists w2", lambda: w.exists(f"{root}/w2", watch=watcher("exists w2")))
    r.step("watch children w3", lambda: w.get_children(f"{root}/w3", watch=watcher("child w3")))
    r.step("watch data w4", lambda: w.get(f"{root}/w4", watch=watcher("data w4")))
    r.step("watch exists w5", lambda: w.exists(f"{root}/w5", watch=watcher("exists w5")))
    r.step("watch children w6", lambda: w.get_children(f"{root}/w6", watch=watcher("child w6")))
    r.step("watch marker", lambda: w.exists(f"{root}/marker", watch=watcher("marker")))
    r.step("trigger set w1", lambda: a.set(f"{root}/w1", b"changed"))
    r.step("trigger create w2", lambda: a.create(f"{root}/w2", b""))
    r.step("trigger create w3/c", lambda: a.create(f"{root}/w3/c", b""))
    r.step("trigger create w3/d (watch spent)", lambda: a.create(f"{root}/w3/d", b""))
    r.step("trigger delete w4", lambda: a.delete(f"{root}/w4"))
    r.step("trigger set w5", lambda: a.set(f"{root}/w5", b"1"))
    r.step("trigger set w5 again", lambda: a.set(f"{root}/w5", b"2"))
    r.step("trigger delete w6", lambda: a.delete(f"{root}/w6"))
    r.step("trigger unwatched w1 again", lambda: a.set(f"{root}/w1", b"again"))
    r.step("trigger marker", lambda: a.create(f"{root}/marker", b""))
    fired = done.wait(timeout)
    r.steps.append(["watch events", "ok" if fired else "timeout", list(events)])
    r.step("w3 children2 stat", lambda: w.get_children(f"{root}/w3", include_data=True)[1])


def _session_close(r: Recorder, a: KazooClient, c: KazooClient, root: str) -> None:
    a.stop()  # closes A's session: its ephemerals must go
    r.step("ephemeral gone after close", lambda: c.exists(f"{root}/eph"))
    r.step("root children after close", lambda: sorted(c.get_children(root)))
    r.step("c's ephemeral still there", lambda: c.exists(f"{root}/ceph"))


def _cleanup(r: Recorder, c: KazooClient, root: str) -> None:
    r.step("recursive delete", lambda: c.delete(root, recursive=True))
    r.step("root gone", lambda: c.exists(root))
