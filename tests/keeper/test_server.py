"""keeper server end to end, standalone, with the real kazoo client."""

from __future__ import annotations

import socket
import struct
import threading
import time

import pytest
from kazoo.client import KazooClient
from kazoo.exceptions import (
    AuthFailedError,
    BadVersionError,
    NoAuthError,
    NodeExistsError,
    NoNodeError,
    NotEmptyError,
)
from kazoo.protocol.states import EventType, KazooState
from kazoo.security import make_digest_acl
from keeper_harness import Cluster, four_letter, wait_until

from paddock.keeper.codes import EventType as EventType_
from paddock.keeper.codes import OpCode
from paddock.keeper.connection import NEED_DATA, ClientConnection
from paddock.keeper.records import (
    OPEN_ACL_UNSAFE,
    AddWatchRequest,
    ConnectRequest,
    CreateRequest,
    GetDataRequest,
    SetDataRequest,
)

pytestmark = pytest.mark.timeout(60)


@pytest.fixture(scope="module")
def standalone(tmp_path_factory):
    cluster = Cluster(tmp_path_factory.mktemp("keeper"), size=1, super_digest=None)
    cluster.start()
    yield cluster
    cluster.stop()


@pytest.fixture
def zk(standalone):
    client = KazooClient(hosts=standalone.hosts, timeout=5)
    client.start(timeout=10)
    yield client
    client.stop()
    client.close()


def test_create_get_set_delete(zk):
    assert zk.create("/t1", b"hello") == "/t1"
    data, stat = zk.get("/t1")
    assert data == b"hello" and stat.version == 0 and stat.dataLength == 5
    stat2 = zk.set("/t1", b"world")
    assert stat2.version == 1 and stat2.mzxid > stat.mzxid
    assert zk.get("/t1")[0] == b"world"
    with pytest.raises(BadVersionError):
        zk.set("/t1", b"x", version=0)
    with pytest.raises(NodeExistsError):
        zk.create("/t1")
    zk.create("/t1/child")
    with pytest.raises(NotEmptyError):
        zk.delete("/t1")
    assert zk.get_children("/t1") == ["child"]
    zk.delete("/t1", recursive=True)
    assert zk.exists("/t1") is None
    with pytest.raises(NoNodeError):
        zk.get("/t1")


def test_sequential_ephemeral_and_children(standalone, zk):
    zk.ensure_path("/seq")
    a = zk.create("/seq/n-", b"", sequence=True)
    b = zk.create("/seq/n-", b"", sequence=True, ephemeral=True)
    assert a == "/seq/n-0000000000" and b == "/seq/n-0000000001"
    assert sorted(zk.get_children("/seq")) == ["n-0000000000", "n-0000000001"]
    assert zk.exists(b).ephemeralOwner == zk.client_id[0]
    other = KazooClient(hosts=standalone.hosts, timeout=5)
    other.start(timeout=10)
    other.create("/seq/eph", ephemeral=True)
    assert zk.exists("/seq/eph") is not None
    other.stop()  # closeSession removes the session's ephemerals
    other.close()
    assert zk.exists("/seq/eph") is None


def test_watches_one_shot_and_event_before_data(zk):
    zk.create("/w", b"0")
    events = []
    got = threading.Event()

    def watcher(ev):
        events.append(ev)
        got.set()

    zk.get("/w", watch=watcher)
    zk.set("/w", b"1")
    assert got.wait(5)
    assert events[0].type == EventType.CHANGED and events[0].path == "/w"
    zk.set("/w", b"2")  # one-shot: no second event
    child_events = []
    zk.get_children("/w", watch=child_events.append)
    zk.create("/w/c")
    wait_until(lambda: child_events, 5)
    assert child_events[0].type == EventType.CHILD
    time.sleep(0.1)
    assert len(events) == 1
    exist_events = []
    zk.exists("/w/missing", watch=exist_events.append)
    zk.create("/w/missing")
    wait_until(lambda: exist_events, 5)
    assert exist_events[0].type == EventType.CREATED


class RawClient:
    """A session over a plain socket with the sans-IO client connection."""

    def __init__(self, port: int, time_out: int = 10000) -> None:
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=5)
        self.conn = ClientConnection()
        self.sock.sendall(self.conn.encode_connect_request(ConnectRequest(time_out=time_out)))
        self.session = self.next()
        self.xid = 0

    def next(self):
        while True:
            ev = self.conn.next_event()
            if ev is not NEED_DATA:
                return ev
            self.conn.receive_data(self.sock.recv(65536))

    def send(self, record, opcode=None) -> int:
        self.xid += 1
        self.sock.sendall(self.conn.encode_request(self.xid, record, opcode))
        return self.xid

    def close(self) -> None:
        self.sock.close()


def test_persistent_recursive_watch(standalone, zk):
    zk.create("/pr")
    raw = RawClient(standalone.members[0].port)
    raw.send(AddWatchRequest("/pr", 1))  # PERSISTENT_RECURSIVE
    assert raw.next().err == 0
    zk.create("/pr/a")
    zk.create("/pr/a/b")
    zk.set("/pr/a/b", b"x")
    zk.delete("/pr/a/b")
    seen = [raw.next() for _ in range(4)]
    assert [(n.event.type, n.event.path) for n in seen] == [
        (EventType_.NODE_CREATED, "/pr/a"),
        (EventType_.NODE_CREATED, "/pr/a/b"),
        (EventType_.NODE_DATA_CHANGED, "/pr/a/b"),
        (EventType_.NODE_DELETED, "/pr/a/b"),
    ]
    raw.send(GetDataRequest("/pr/a"))
    reply = raw.next()
    assert reply.err == 0 and reply.zxid >= seen[-1].zxid
    raw.close()


def test_multi_and_sync(zk):
    t = zk.transaction()
    t.create("/m", b"a")
    t.create("/m/x", b"b")
    t.set_data("/m", b"c")
    results = t.commit()
    assert results[0] == "/m" and results[1] == "/m/x"
    assert zk.get("/m")[0] == b"c"
    t = zk.transaction()
    t.create("/m/y")
    t.check("/m", 99)
    results = t.commit()
    assert isinstance(results[1], BadVersionError)
    assert zk.exists("/m/y") is None  # all or nothing
    zk.sync("/m")
    assert zk.get("/m")[0] == b"c"


def test_acl_and_digest_auth(standalone):
    owner = KazooClient(hosts=standalone.hosts, timeout=5, auth_data=[("digest", "alice:pw")])
    owner.start(timeout=10)
    acl = make_digest_acl("alice", "pw", all=True)
    owner.create("/secret", b"s", acl=[acl])
    assert owner.get("/secret")[0] == b"s"
    stranger = KazooClient(hosts=standalone.hosts, timeout=5)
    stranger.start(timeout=10)
    with pytest.raises(NoAuthError):
        stranger.get("/secret")
    with pytest.raises(NoAuthError):
        stranger.set("/secret", b"x")
    assert owner.get_acls("/secret")[0][0].id.id.startswith("alice:")
    stranger.add_auth("digest", "alice:pw")
    assert stranger.get("/secret")[0] == b"s"
    for c in (owner, stranger):
        c.stop()
        c.close()


def test_unknown_auth_scheme_fails(standalone):
    client = KazooClient(hosts=standalone.hosts, timeout=5)
    client.start(timeout=10)
    with pytest.raises(AuthFailedError):
        client.add_auth("nosuchscheme", "x")
    client.stop()
    client.close()


def test_four_letter_words(standalone):
    port = standalone.members[0].port
    assert four_letter(port, "ruok") == "imok"
    assert "Mode: standalone" in four_letter(port, "srvr")
    assert "zk_znode_count" in four_letter(port, "mntr")
    assert "zookeeper.version=" in four_letter(port, "envi")
    assert four_letter(port, "isro") == "rw"
    assert "clientPort=" in four_letter(port, "conf")


def _raw_session(port: int) -> socket.socket:
    s = socket.create_connection(("127.0.0.1", port), timeout=5)
    connect = struct.pack(">iqiq", 0, 0, 10000, 0) + struct.pack(">i", 16) + bytes(16) + b"\0"
    s.sendall(struct.pack(">i", len(connect)) + connect)
    head = _recv_exact(s, 4)
    _recv_exact(s, struct.unpack(">i", head)[0])
    return s


def _recv_exact(s: socket.socket, n: int) -> bytes:
    out = b""
    while len(out) < n:
        d = s.recv(n - len(out))
        if not d:
            raise ConnectionError("closed")
        out += d
    return out


def test_malformed_bytes_close_only_that_connection(standalone, zk):
    port = standalone.members[0].port
    bad = _raw_session(port)
    bad.sendall(struct.pack(">i", 0x7FFFFFF0) + b"garbage")  # absurd frame length
    bad.settimeout(5)
    assert bad.recv(100) == b""  # server closed it
    bad.close()
    bad2 = _raw_session(port)
    bad2.sendall(struct.pack(">iii", 9, 1, 1) + b"\xff")  # create with a broken body
    assert bad2.recv(100) == b""
    bad2.close()
    zk.create("/still-alive", b"yes")
    assert zk.get("/still-alive")[0] == b"yes"
    assert four_letter(port, "ruok") == "imok"


def test_unimplemented_opcode_answers(standalone):
    s = _raw_session(standalone.members[0].port)
    s.sendall(struct.pack(">iii", 8, 7, 999))  # xid 7, opcode 999
    head = _recv_exact(s, 4)
    body = _recv_exact(s, struct.unpack(">i", head)[0])
    xid, _zxid, err = struct.unpack(">iqi", body[:16])
    assert (xid, err) == (7, -6)
    s.close()


def test_expired_session_gets_expired_handshake(standalone):
    s = socket.create_connection(("127.0.0.1", standalone.members[0].port), timeout=5)
    connect = struct.pack(">iqiq", 0, 0, 10000, 0x1234) + struct.pack(">i", 16) + bytes(16) + b"\0"
    s.sendall(struct.pack(">i", len(connect)) + connect)
    head = _recv_exact(s, 4)
    body = _recv_exact(s, struct.unpack(">i", head)[0])
    _proto, timeout, sid = struct.unpack(">iiq", body[:16])
    assert timeout == 0 and sid == 0
    assert s.recv(10) == b""
    s.close()


def test_session_timeout_negotiated(standalone):
    # tickTime 200 ms in the harness: timeouts are clamped to [400, 4000] ms.
    port = standalone.members[0].port
    for asked, granted in ((60000, 4000), (10, 400), (1000, 1000)):
        raw = RawClient(port, time_out=asked)
        assert raw.session.time_out == granted
        raw.close()


def test_session_expiry_removes_ephemerals_and_fires_watches(standalone, zk):
    port = standalone.members[0].port
    victim = RawClient(port, time_out=500)
    victim.send(CreateRequest("/exp", b"", list(OPEN_ACL_UNSAFE), 1), OpCode.CREATE)
    assert victim.next().err == 0
    events = []
    assert zk.exists("/exp", watch=events.append) is not None
    # The victim goes silent (no pings): the leader expires its session.
    wait_until(lambda: zk.exists("/exp") is None, 10, what="ephemeral removed")
    wait_until(lambda: events, 5)
    assert events[0].type == EventType.DELETED
    victim.sock.settimeout(5)
    assert victim.sock.recv(100) == b""  # the server closed the expired session
    victim.close()
    # Coming back with the old id gets ZooKeeper's expired handshake.
    s = socket.create_connection(("127.0.0.1", port), timeout=5)
    conn = ClientConnection()
    sid, passwd = victim.session.session_id, victim.session.passwd
    s.sendall(
        conn.encode_connect_request(ConnectRequest(time_out=500, session_id=sid, passwd=passwd))
    )
    conn.receive_data(s.recv(1000))
    answer = conn.next_event()
    assert answer.time_out == 0 and answer.session_id == 0
    s.close()


def test_max_client_connections(tmp_path):
    with Cluster(tmp_path, size=1, max_client_cnxns=2) as cluster:
        port = cluster.members[0].port
        a = _raw_session(port)
        b = _raw_session(port)
        c = socket.create_connection(("127.0.0.1", port), timeout=5)
        assert c.recv(10) == b""
        for s in (a, b, c):
            s.close()


def test_restart_keeps_data(tmp_path):
    cluster = Cluster(tmp_path, size=1)
    with cluster:
        client = KazooClient(hosts=cluster.hosts, timeout=5)
        client.start(timeout=10)
        client.create("/durable", b"42")
        client.stop()
        client.close()
    with cluster:
        client = KazooClient(hosts=cluster.hosts, timeout=5)
        client.start(timeout=10)
        assert client.get("/durable")[0] == b"42"
        client.stop()
        client.close()
    assert KazooState.LOST  # kazoo imported states are usable


def test_null_data_stays_null(zk):
    zk.create("/null", None)
    assert zk.get("/null")[0] is None
    zk.set("/null", b"x")
    zk.set("/null", None)
    assert zk.get("/null")[0] is None


def test_packet_larger_than_jute_maxbuffer_closes_connection(tmp_path):
    with Cluster(tmp_path, size=1, jute_max_buffer=4096) as cluster:
        port = cluster.members[0].port
        raw = RawClient(port)
        raw.send(CreateRequest("/big", b"x" * 10_000, list(OPEN_ACL_UNSAFE), 0), OpCode.CREATE)
        raw.sock.settimeout(5)
        assert raw.sock.recv(100) == b""
        raw.close()
        small = RawClient(port)
        small.send(CreateRequest("/small", b"x" * 1000, list(OPEN_ACL_UNSAFE), 0), OpCode.CREATE)
        assert small.next().err == 0
        small.close()


def test_cli_rejects_bad_config_with_line(tmp_path):
    import subprocess
    import sys

    cfg = tmp_path / "zoo.cfg"
    cfg.write_text(f"dataDir={tmp_path}\nclientPort=2181\ntickTme=2000\n")
    result = subprocess.run(
        [sys.executable, "-m", "paddock.cli.main", "keeper", "--config", str(cfg)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 2
    assert "line 3: unknown setting 'tickTme'" in result.stderr


def test_persistent_watch_fires_every_time(standalone, zk):
    zk.create("/pw", b"0")
    raw = RawClient(standalone.members[0].port)
    raw.send(AddWatchRequest("/pw", 0))  # PERSISTENT
    assert raw.next().err == 0
    zk.set("/pw", b"1")
    zk.set("/pw", b"2")
    zk.create("/pw/kid")
    zk.create("/pw/kid/grandkid")  # not the watched node nor its child list: no event
    zk.delete("/pw/kid/grandkid")
    zk.delete("/pw/kid")
    seen = [raw.next() for _ in range(4)]
    assert [(n.event.type, n.event.path) for n in seen] == [
        (EventType_.NODE_DATA_CHANGED, "/pw"),
        (EventType_.NODE_DATA_CHANGED, "/pw"),
        (EventType_.NODE_CHILDREN_CHANGED, "/pw"),
        (EventType_.NODE_CHILDREN_CHANGED, "/pw"),
    ]
    raw.close()


def test_deep_pipeline_is_throttled_not_dropped(standalone, zk):
    zk.create("/pipe", b"")
    raw = RawClient(standalone.members[0].port)
    n = 3000  # more than the per-connection outstanding limit
    frames = b"".join(
        raw.conn.encode_request(i + 1, SetDataRequest("/pipe", str(i).encode(), -1))
        for i in range(n)
    )
    sender = threading.Thread(target=raw.sock.sendall, args=(frames,))
    sender.start()
    replies = [raw.next() for _ in range(n)]
    sender.join(10)
    assert [r.xid for r in replies] == list(range(1, n + 1))
    assert all(r.err == 0 for r in replies)
    assert replies[-1].record.stat.version == n
    raw.close()
