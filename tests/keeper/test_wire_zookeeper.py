"""The codec against real Apache ZooKeeper (Debian's 3.8): every request we
encode is accepted, every reply decodes, and re-encoding a decoded successful
reply reproduces Java's bytes exactly, so our server sends what ZooKeeper
sends.  Skips when Java ZooKeeper is not installed.
"""

import contextlib
import socket
import struct
import subprocess
import threading

import pytest

from paddock.keeper import protocol as p
from paddock.testing import ZooKeeperEnsemble, zookeeper_unavailable_reason
from paddock.testing.zookeeper import CLI_MT, ZKCLI

OPEN = list(p.OPEN_ACL_UNSAFE)
pytestmark = pytest.mark.timeout(120)


@pytest.fixture(scope="module")
def zookeeper():
    reason = zookeeper_unavailable_reason()
    if reason is not None:
        pytest.skip(reason)
    ensemble = ZooKeeperEnsemble(size=1, extra_config=["extendedTypesEnabled=true"])
    try:
        ensemble.start()
        yield ensemble.address(0)
    finally:
        ensemble.stop()


class RawSession:
    """A socket speaking through ClientConnection, keeping every raw reply frame."""

    def __init__(self, address, read_only=False):
        host, port = address.rsplit(":", 1)
        self.sock = socket.create_connection((host, int(port)), timeout=20)
        self.conn = p.ClientConnection()
        self.xid = 0
        self.notifications = []
        request = p.ConnectRequest(0, 0, 10000, 0, b"\x00" * 16, read_only)
        self.sock.sendall(self.conn.encode_connect_request(request))
        self.connect_raw = self.read_frame()
        self.conn.receive_data(self.connect_raw)
        self.connect_response = self.conn.next_event()

    def read_exact(self, n):
        out = b""
        while len(out) < n:
            chunk = self.sock.recv(n - len(out))
            if not chunk:
                raise ConnectionError("server closed the connection")
            out += chunk
        return out

    def read_frame(self):
        head = self.read_exact(4)
        return head + self.read_exact(struct.unpack(">i", head)[0])

    def call(self, record, opcode=None, xid=None):
        """Send one request; return (Response, raw reply frame).  Watch
        notifications that arrive first are checked and kept."""
        if xid is None:
            self.xid += 1
            xid = self.xid
        self.sock.sendall(self.conn.encode_request(xid, record, opcode))
        while True:
            raw = self.read_frame()
            self.conn.receive_data(raw)
            event = self.conn.next_event()
            if isinstance(event, p.WatchNotification):
                w = event.event
                assert p.encode_watch_event(w.type, w.state, w.path, event.zxid) == raw
                self.notifications.append(event)
                continue
            assert event.xid == xid
            if event.err == 0 and event.record is not None:
                # byte-exact: our server encoder produces Java's reply
                assert p.encode_response(event.xid, event.zxid, 0, event.record) == raw
            elif event.err == 0:
                assert len(raw) == 20, "a body-less success reply is the header alone"
            return event, raw

    def ok(self, record, opcode=None, xid=None):
        event, _ = self.call(record, opcode, xid)
        assert event.err == 0, p.ErrorCode(event.err)
        return event.record

    def close(self):
        self.sock.close()


@pytest.fixture
def session(zookeeper):
    s = RawSession(zookeeper)
    yield s
    s.close()


def test_connect_response_echoes_read_only_presence(zookeeper):
    modern = RawSession(zookeeper, read_only=False)
    old = RawSession(zookeeper, read_only=None)
    try:
        assert len(modern.connect_raw) - 4 == 37 and modern.connect_response.read_only is False
        assert len(old.connect_raw) - 4 == 36 and old.connect_response.read_only is None
        for s in (modern, old):
            r = s.connect_response
            assert r.time_out == 10000 and len(r.passwd) == 16 and r.session_id != 0
            assert p.encode_connect_response(r) == s.connect_raw
    finally:
        modern.close()
        old.close()


def test_crud_and_watches(session):
    s = session
    assert s.ok(p.CreateRequest("/crud", b"one", OPEN, 0)) == p.CreateResponse("/crud")
    created = s.ok(p.CreateRequest("/crud/c2", b"", OPEN, 0), p.OpCode.CREATE2)
    assert created.path == "/crud/c2" and created.stat.version == 0
    seq = s.ok(p.CreateRequest("/crud/seq-", b"", OPEN, 3))
    assert seq.path.startswith("/crud/seq-") and len(seq.path) == len("/crud/seq-") + 10
    container = s.ok(p.CreateRequest("/cont", b"", OPEN, 4), p.OpCode.CREATE_CONTAINER)
    assert container.path == "/cont"
    ttl = s.ok(p.CreateTTLRequest("/ttl", b"t", OPEN, 5, 60_000))
    assert ttl.path == "/ttl" and ttl.stat.data_length == 1

    missing, raw = s.call(p.ExistsRequest("/nope", False))
    assert missing.err == p.ErrorCode.NO_NODE and len(raw) == 20
    stat = s.ok(p.ExistsRequest("/crud", True)).stat
    assert stat.num_children == 2 and stat.data_length == 3
    got = s.ok(p.GetDataRequest("/crud", True))
    assert got.data == b"one" and got.stat == stat
    assert s.ok(p.SetDataRequest("/crud", b"two", 0)).stat.version == 1
    assert s.notifications[-1].event == p.WatcherEvent(
        int(p.EventType.NODE_DATA_CHANGED), int(p.KeeperState.SYNC_CONNECTED), "/crud"
    )
    bad, raw = s.call(p.SetDataRequest("/crud", b"x", 0))
    assert bad.err == p.ErrorCode.BAD_VERSION and len(raw) == 20

    acl = s.ok(p.GetACLRequest("/crud"))
    assert acl.acl == OPEN and acl.stat.aversion == 0
    new_acl = [p.ACL(int(p.Perms.ALL & ~p.Perms.ADMIN), p.Id("world", "anyone"))]
    assert s.ok(p.SetACLRequest("/crud", new_acl, 0)).stat.aversion == 1
    assert s.ok(p.GetACLRequest("/crud")).acl == new_acl

    kids = s.ok(p.GetChildrenRequest("/crud", True)).children
    assert sorted(kids)[0] == "c2" and len(kids) == 2
    kids2 = s.ok(p.GetChildren2Request("/crud", False))
    assert sorted(kids2.children) == sorted(kids) and kids2.stat.num_children == 2
    assert s.ok(p.SyncRequest("/crud")) == p.SyncResponse("/crud")
    assert s.ok(p.PingRequest(), xid=p.PING_XID) is None
    assert s.ok(p.GetAllChildrenNumberRequest("/crud")).total_number == 2
    assert s.ok(p.GetEphemeralsRequest("/crud")).ephemerals == [seq.path]
    assert s.ok(p.DeleteRequest("/crud/c2", -1)) is None
    assert s.notifications[-1].event.type == p.EventType.NODE_CHILDREN_CHANGED
    bad_path, _ = s.call(p.GetDataRequest("/bad\x01", False))
    assert bad_path.err in (p.ErrorCode.BAD_ARGUMENTS, p.ErrorCode.NO_NODE)


def test_multi_and_multi_read(session):
    s = session
    s.ok(p.CreateRequest("/mx", b"0", OPEN, 0))
    done = s.ok(
        p.MultiRequest(
            [
                p.MultiOp(p.OpCode.CREATE, p.CreateRequest("/mx/a", b"", OPEN, 0)),
                p.MultiOp(p.OpCode.CREATE2, p.CreateRequest("/mx/b", b"", OPEN, 0)),
                p.MultiOp(p.OpCode.SET_DATA, p.SetDataRequest("/mx", b"1", 0)),
                p.MultiOp(p.OpCode.CHECK, p.CheckVersionRequest("/mx", 1)),
                p.MultiOp(p.OpCode.DELETE, p.DeleteRequest("/mx/a", 0)),
            ]
        )
    )
    kinds = [type(r) for r in done.results]
    # ZooKeeper 3.8 answers a create2 op inside a multi with a plain create
    # result (no Stat); newer servers send create2 + Stat.  Both decode.
    assert kinds[1] in (p.CreateResponse, p.Create2Response)
    assert kinds[:1] + kinds[2:] == [
        p.CreateResponse,
        p.SetDataResponse,
        p.CheckResult,
        p.DeleteResult,
    ]
    failed = s.ok(
        p.MultiRequest(
            [
                p.MultiOp(p.OpCode.CREATE, p.CreateRequest("/mx/c", b"", OPEN, 0)),
                p.MultiOp(p.OpCode.CHECK, p.CheckVersionRequest("/mx", 99)),
                p.MultiOp(p.OpCode.DELETE, p.DeleteRequest("/mx/b", -1)),
            ]
        )
    )
    assert failed.results == [p.ErrorResult(0), p.ErrorResult(-103), p.ErrorResult(-2)]
    reads = s.ok(
        p.MultiReadRequest(
            [
                p.MultiOp(p.OpCode.GET_DATA, p.GetDataRequest("/mx")),
                p.MultiOp(p.OpCode.GET_CHILDREN, p.GetChildrenRequest("/mx")),
                p.MultiOp(p.OpCode.GET_DATA, p.GetDataRequest("/nope")),
            ]
        )
    )
    assert reads.results[0].data == b"1"
    assert reads.results[1] == p.GetChildrenResponse(["b"])
    assert reads.results[2] == p.ErrorResult(int(p.ErrorCode.NO_NODE))


def test_session_level_requests(session):
    s = session
    s.ok(p.CreateRequest("/sw", b"", OPEN, 0))
    assert s.ok(p.AddWatchRequest("/sw", int(p.AddWatchMode.PERSISTENT_RECURSIVE))) == (
        p.ErrorResponse(0)
    )
    assert s.ok(p.CheckWatchesRequest("/sw", int(p.WatcherType.ANY))) is None
    assert s.ok(p.RemoveWatchesRequest("/sw", int(p.WatcherType.ANY))) is None
    nowatch, raw = s.call(p.CheckWatchesRequest("/sw", int(p.WatcherType.DATA)))
    assert nowatch.err == p.ErrorCode.NO_WATCHER and len(raw) == 20
    zxid = s.connect_response.session_id and 0
    assert s.ok(p.SetWatches(zxid, ["/sw"], [], []), xid=p.SET_WATCHES_XID) is None
    assert s.ok(p.SetWatches2(zxid, [], ["/sw"], [], ["/sw"], []), xid=p.SET_WATCHES_XID) is None
    assert s.ok(p.AuthPacket(0, "digest", b"alice:secret"), xid=p.AUTH_XID) is None
    who = s.ok(p.WhoAmIRequest())
    assert p.ClientInfo("digest", "alice") in who.client_info
    config = s.ok(p.GetDataRequest(p.CONFIG_NODE))
    assert isinstance(config.data, bytes)
    reconfig, _ = s.call(p.ReconfigRequest(None, None, "server.1=127.0.0.1:1:2;3", -1))
    assert reconfig.err != 0
    assert s.ok(p.CloseSessionRequest()) is None
    with pytest.raises((ConnectionError, OSError)):
        s.read_frame()


def test_error_replies_are_header_only_and_unknown_opcode_is_unimplemented(session):
    s = session
    s.ok(p.CreateRequest("/err", b"", OPEN, 0))
    for record, opcode, err in [
        (p.CreateRequest("/err", b"", OPEN, 0), None, p.ErrorCode.NODE_EXISTS),
        (p.CreateRequest("/err", b"", OPEN, 0), p.OpCode.CREATE2, p.ErrorCode.NODE_EXISTS),
        (p.SetDataRequest("/nope", b"", -1), None, p.ErrorCode.NO_NODE),
        (p.GetDataRequest("/nope"), None, p.ErrorCode.NO_NODE),
        (p.DeleteRequest("/nope", -1), None, p.ErrorCode.NO_NODE),
        (p.GetChildren2Request("/nope"), None, p.ErrorCode.NO_NODE),
    ]:
        event, raw = s.call(record, opcode)
        assert event.err == err and len(raw) == 20
    s.xid += 1
    s.sock.sendall(struct.pack(">iii", 8, s.xid, 999))
    raw = s.read_frame()
    assert struct.unpack(">iiqi", raw) == (16, s.xid, -1, int(p.ErrorCode.UNIMPLEMENTED))
    # ...and then closes the connection (UnimplementedRequestProcessor).
    with pytest.raises((ConnectionError, OSError)):
        s.read_frame()


# --------------------------------------------------------------------------- real clients


class RecordingProxy:
    """Relays one TCP connection at a time between a client and ZooKeeper,
    keeping both byte streams for decoding afterwards."""

    def __init__(self, upstream):
        host, port = upstream.rsplit(":", 1)
        self.upstream = (host, int(port))
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.address = f"127.0.0.1:{self.listener.getsockname()[1]}"
        self.streams = []  # (client->server bytearray, server->client bytearray)
        self.threads = []
        self.sockets = []
        self.acceptor = threading.Thread(target=self._accept, daemon=True)
        self.acceptor.start()

    def _accept(self):
        while True:
            try:
                client, _ = self.listener.accept()
            except OSError:
                return
            server = socket.create_connection(self.upstream)
            self.sockets += [client, server]
            up, down = bytearray(), bytearray()
            self.streams.append((up, down))
            for src, dst, log in ((client, server, up), (server, client, down)):
                t = threading.Thread(target=self._pump, args=(src, dst, log), daemon=True)
                t.start()
                self.threads.append(t)

    @staticmethod
    def _pump(src, dst, log):
        try:
            while data := src.recv(65536):
                log += data
                dst.sendall(data)
        except OSError:
            pass
        finally:
            with contextlib.suppress(OSError):
                dst.shutdown(socket.SHUT_WR)

    def stop(self):
        with contextlib.suppress(OSError):
            self.listener.shutdown(socket.SHUT_RDWR)
        self.listener.close()
        self.acceptor.join(5)
        for s in self.sockets:
            with contextlib.suppress(OSError):
                s.shutdown(socket.SHUT_RDWR)
        for t in self.threads:
            t.join(5)
        for s in self.sockets:
            s.close()
        assert not any(t.is_alive() for t in [self.acceptor, *self.threads])


def check_recorded_stream(up, down):
    """Decode a real client's requests with ServerConnection (re-encoding them
    must reproduce its bytes) and the server's replies with ClientConnection."""
    server_side = p.ServerConnection(allow_four_letter_words=False)
    server_side.receive_data(bytes(up))
    client_side = p.ClientConnection()
    reencoded = []
    requests = []
    while (ev := server_side.next_event()) is not p.NEED_DATA:
        if isinstance(ev, p.ConnectRequest):
            reencoded.append(p.encode_connect_request(ev))
            continue
        assert ev.record is not None, f"undecoded opcode {ev.opcode}"
        requests.append(ev)
        reencoded.append(client_side.encode_request(ev.xid, ev.record, ev.opcode))
    assert b"".join(reencoded) == bytes(up)
    replies = []
    down = bytes(down)
    pos = 0
    while pos < len(down):
        frame = down[pos : pos + 4 + struct.unpack_from(">i", down, pos)[0]]
        pos += len(frame)
        client_side.receive_data(frame)
        ev = client_side.next_event()
        replies.append(ev)
        # byte-exact: our encoders reproduce every reply ZooKeeper sent
        if isinstance(ev, p.ConnectResponse):
            assert p.encode_connect_response(ev) == frame
        elif isinstance(ev, p.WatchNotification):
            w = ev.event
            assert p.encode_watch_event(w.type, w.state, w.path, ev.zxid) == frame
        else:
            assert p.encode_response(ev.xid, ev.zxid, ev.err, ev.record) == frame
    assert client_side.next_event() is p.NEED_DATA
    return requests, replies


@pytest.fixture
def proxy(zookeeper):
    relay = RecordingProxy(zookeeper)
    yield relay
    relay.stop()


def test_java_client_zkcli_bytes_decode_and_reencode_exactly(proxy):
    if not ZKCLI.exists():
        pytest.skip(f"{ZKCLI} missing")
    script = "\n".join(
        [
            "create /jc data",
            "create -s -e /jc/seq- x",
            "create -c /jcc",
            "create -t 60000 /jct x",
            "get -s /jc",
            "get -w /jc",
            "set /jc newdata",
            "stat /jc",
            "ls -s /jc",
            "ls -R /jc",
            "getAcl /jc",
            "setAcl /jc world:anyone:cdrwa",
            "addauth digest u:p",
            "whoami",
            "getEphemerals /",
            "getAllChildrenNumber /jc",
            "addWatch -m PERSISTENT_RECURSIVE /jc",
            "removewatches /jc",
            "sync /jc",
            "config",
            "deleteall /jc",
            "quit",
        ]
    )
    proc = subprocess.run(
        [str(ZKCLI), "-server", proxy.address],
        input=script + "\n",
        capture_output=True,
        text=True,
        timeout=90,
        check=False,
    )
    assert proxy.streams, proc.stdout + proc.stderr
    opcodes = set()
    for up, down in proxy.streams:
        requests, replies = check_recorded_stream(up, down)
        opcodes |= {r.opcode for r in requests}
        assert any(isinstance(r, p.ConnectResponse) for r in replies)
    # zkCli 3.8 creates with opcode 1 and deletes recursively with multi (14).
    expected = {1, 3, 4, 5, 6, 7, 8, 9, 12, 14, 18, 19, 21, 100, 103, 104, 106, 107, -11}
    assert expected <= opcodes, (sorted(expected - opcodes), proc.stdout[-2000:])


def test_c_client_cli_mt_bytes_decode_and_reencode_exactly(proxy):
    if not CLI_MT.exists():
        pytest.skip(f"{CLI_MT} missing")
    for command in ["create /cc hello", "get /cc", "set /cc again", "ls /cc", "delete /cc"]:
        subprocess.run(
            [str(CLI_MT), proxy.address, f"cmd:{command}"],
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
    assert len(proxy.streams) == 5
    opcodes = set()
    for up, down in proxy.streams:
        requests, _ = check_recorded_stream(up, down)
        opcodes |= {r.opcode for r in requests}
    assert {1, 2, 4, 5} <= opcodes and ({8, 12} & opcodes)
