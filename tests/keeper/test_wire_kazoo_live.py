"""A real KazooClient over a loopback socket against a tiny in-test server built
on ServerConnection: handshake, pings, pipelined requests, errors, multi,
sequential nodes, watch notifications and close all go through real kazoo.

The toy tree here is test scaffolding for the codec only; the real keeper
server is elsewhere.
"""

import contextlib
import socket
import threading

import pytest
from kazoo.client import KazooClient
from kazoo.exceptions import (
    BadArgumentsError,
    BadVersionError,
    NodeExistsError,
    NoNodeError,
    RolledBackError,
    RuntimeInconsistency,
)

from paddock.keeper import protocol as p

OK = 0
NO_NODE = int(p.ErrorCode.NO_NODE)


class ToyTree:
    def __init__(self):
        self.lock = threading.Lock()
        self.zxid = 0
        self.nodes = {"/": [b"", 0, 0, 0]}  # path -> [data, version, cversion, czxid]
        self.watches = {}  # path -> list of send callbacks

    def stat(self, path):
        data, version, cversion, czxid = self.nodes[path]
        kids = len(self.children(path))
        return p.Stat(czxid, self.zxid, 0, 0, version, cversion, 0, 0, len(data), kids, czxid)

    def children(self, path):
        prefix = path.rstrip("/") + "/"
        return sorted(
            k[len(prefix) :]
            for k in self.nodes
            if k.startswith(prefix) and "/" not in k[len(prefix) :] and k != "/"
        )

    @staticmethod
    def parent(path):
        return path.rsplit("/", 1)[0] or "/"

    def create(self, path, data, flags):
        if p.validate_path(path, sequential=bool(flags & 2)) is not None:
            return int(p.ErrorCode.BAD_ARGUMENTS), None
        parent = self.parent(path)
        if parent not in self.nodes:
            return NO_NODE, None
        if flags & 2:
            path = f"{path}{self.nodes[parent][2]:010d}"
        if path in self.nodes:
            return int(p.ErrorCode.NODE_EXISTS), None
        self.zxid += 1
        self.nodes[path] = [data, 0, 0, self.zxid]
        self.nodes[parent][2] += 1
        self.fire(parent, p.EventType.NODE_CHILDREN_CHANGED)
        return OK, path

    def set_data(self, path, data, version):
        if path not in self.nodes:
            return NO_NODE
        if version not in (-1, self.nodes[path][1]):
            return int(p.ErrorCode.BAD_VERSION)
        self.zxid += 1
        self.nodes[path][0] = data
        self.nodes[path][1] += 1
        self.fire(path, p.EventType.NODE_DATA_CHANGED)
        return OK

    def delete(self, path, version):
        if path not in self.nodes:
            return NO_NODE
        if version not in (-1, self.nodes[path][1]):
            return int(p.ErrorCode.BAD_VERSION)
        if self.children(path):
            return int(p.ErrorCode.NOT_EMPTY)
        self.zxid += 1
        del self.nodes[path]
        self.nodes[self.parent(path)][2] += 1
        self.fire(path, p.EventType.NODE_DELETED)
        return OK

    def fire(self, path, event_type):
        for send in self.watches.pop(path, []):
            send(p.encode_watch_event(int(event_type), 3, path, self.zxid))

    def handle(self, req, send):
        """The reply frame for one request."""
        rec, xid = req.record, req.xid
        op = req.opcode
        with self.lock:
            if op == p.OpCode.PING:
                return p.encode_response(xid, self.zxid, OK)
            if op in (p.OpCode.CREATE, p.OpCode.CREATE2):
                err, path = self.create(rec.path, rec.data, rec.flags)
                if op == p.OpCode.CREATE:
                    return p.encode_response(xid, self.zxid, err, p.CreateResponse(path))
                stat = self.stat(path) if not err else None
                return p.encode_response(xid, self.zxid, err, p.Create2Response(path, stat))
            if op in (p.OpCode.GET_DATA, p.OpCode.EXISTS):
                if rec.path not in self.nodes:
                    return p.encode_response(xid, self.zxid, NO_NODE)
                if rec.watch:
                    self.watches.setdefault(rec.path, []).append(send)
                stat = self.stat(rec.path)
                if op == p.OpCode.EXISTS:
                    return p.encode_response(xid, self.zxid, OK, p.ExistsResponse(stat))
                body = p.GetDataResponse(self.nodes[rec.path][0], stat)
                return p.encode_response(xid, self.zxid, OK, body)
            if op == p.OpCode.SET_DATA:
                err = self.set_data(rec.path, rec.data, rec.version)
                stat = self.stat(rec.path) if not err else None
                return p.encode_response(xid, self.zxid, err, p.SetDataResponse(stat))
            if op == p.OpCode.DELETE:
                return p.encode_response(xid, self.zxid, self.delete(rec.path, rec.version))
            if op in (p.OpCode.GET_CHILDREN, p.OpCode.GET_CHILDREN2):
                if rec.path not in self.nodes:
                    return p.encode_response(xid, self.zxid, NO_NODE)
                kids = self.children(rec.path)
                if op == p.OpCode.GET_CHILDREN:
                    return p.encode_response(xid, self.zxid, OK, p.GetChildrenResponse(kids))
                body = p.GetChildren2Response(kids, self.stat(rec.path))
                return p.encode_response(xid, self.zxid, OK, body)
            if op == p.OpCode.SYNC:
                return p.encode_response(xid, self.zxid, OK, p.SyncResponse(rec.path))
            if op == p.OpCode.MULTI:
                return p.encode_response(xid, self.zxid, OK, self.multi(rec.ops))
            if op == p.OpCode.CLOSE_SESSION:
                return p.encode_response(xid, self.zxid, OK)
            return p.encode_response(xid, self.zxid, int(p.ErrorCode.UNIMPLEMENTED))

    def multi(self, ops):
        snapshot = {k: list(v) for k, v in self.nodes.items()}
        results = []
        for op in ops:
            rec = op.request
            if op.type == p.OpCode.CHECK:
                err = NO_NODE if rec.path not in self.nodes else OK
                if not err and rec.version not in (-1, self.nodes[rec.path][1]):
                    err = int(p.ErrorCode.BAD_VERSION)
                result = p.CheckResult()
            elif op.type == p.OpCode.CREATE:
                err, path = self.create(rec.path, rec.data, rec.flags)
                result = p.CreateResponse(path)
            elif op.type == p.OpCode.DELETE:
                err, result = self.delete(rec.path, rec.version), p.DeleteResult()
            else:
                err = self.set_data(rec.path, rec.data, rec.version)
                result = p.SetDataResponse(self.stat(rec.path)) if not err else None
            if err:
                self.nodes = snapshot
                failed = len(results)
                return p.MultiResponse(
                    [p.ErrorResult(0)] * failed
                    + [p.ErrorResult(err)]
                    + [p.ErrorResult(-2)] * (len(ops) - failed - 1)
                )
            results.append(result)
        return p.MultiResponse(results)


class ToyServer:
    def __init__(self):
        self.tree = ToyTree()
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port = self.listener.getsockname()[1]
        self.stopping = False
        self.threads = []
        self.sockets = []
        self.events_seen = []
        self.accept_thread = threading.Thread(target=self.accept_loop, daemon=True)
        self.accept_thread.start()

    def accept_loop(self):
        while not self.stopping:
            try:
                sock, _ = self.listener.accept()
            except OSError:
                return
            self.sockets.append(sock)
            t = threading.Thread(target=self.serve, args=(sock,), daemon=True)
            self.threads.append(t)
            t.start()

    def serve(self, sock):
        conn = p.ServerConnection()
        send_lock = threading.Lock()

        def send(frame):
            with send_lock:
                sock.sendall(frame)

        try:
            while True:
                data = sock.recv(65536)
                conn.receive_data(data)
                while True:
                    ev = conn.next_event()
                    if ev is p.NEED_DATA:
                        break
                    if ev is p.CONNECTION_CLOSED:
                        return
                    self.events_seen.append(ev)
                    if isinstance(ev, p.ConnectRequest):
                        send(conn.encode_connect_response(ev.time_out, 0x5EED, b"x" * 16))
                        continue
                    send(self.tree.handle(ev, send))
                    if ev.opcode == p.OpCode.CLOSE_SESSION:
                        return
        except OSError:
            return
        finally:
            sock.close()

    def stop(self):
        self.stopping = True
        with contextlib.suppress(OSError):
            self.listener.shutdown(socket.SHUT_RDWR)  # wakes the blocked accept()
        self.listener.close()
        for s in self.sockets:
            with contextlib.suppress(OSError):
                s.shutdown(socket.SHUT_RDWR)
        self.accept_thread.join(5)
        for t in self.threads:
            t.join(5)
        assert not self.accept_thread.is_alive()
        assert not any(t.is_alive() for t in self.threads)


@pytest.fixture
def toy():
    server = ToyServer()
    client = KazooClient(hosts=f"127.0.0.1:{server.port}", timeout=5)
    client.start(timeout=5)
    try:
        yield server, client
    finally:
        client.stop()
        client.close()
        server.stop()


@pytest.mark.timeout(60)
def test_kazoo_client_end_to_end(toy):
    server, zk = toy
    assert zk.client_id[0] == 0x5EED
    assert zk.create("/a", b"one") == "/a"
    data, stat = zk.get("/a")
    assert data == b"one" and stat.version == 0 and stat.dataLength == 3
    assert zk.set("/a", b"two").version == 1
    with pytest.raises(BadVersionError):
        zk.set("/a", b"x", version=0)
    with pytest.raises(NodeExistsError):
        zk.create("/a")
    with pytest.raises(NoNodeError):
        zk.get("/missing")
    with pytest.raises(BadArgumentsError):
        zk.create("/bad\x01char")
    assert zk.exists("/missing") is None
    assert zk.exists("/a").version == 1

    path, stat = zk.create("/q", include_data=True)
    assert path == "/q" and stat.numChildren == 0
    first = zk.create("/q/item-", b"", sequence=True)
    second = zk.create("/q/item-", b"", sequence=True)
    assert (first, second) == ("/q/item-0000000000", "/q/item-0000000001")
    assert zk.get_children("/q") == ["item-0000000000", "item-0000000001"]
    kids, stat = zk.get_children("/q", include_data=True)
    assert len(kids) == 2 and stat.numChildren == 2 and stat.cversion == 2

    fired = threading.Event()
    seen = []

    def watcher(event):
        seen.append(event)
        fired.set()

    zk.get("/a", watch=watcher)
    zk.set("/a", b"three")
    assert fired.wait(5)
    assert seen[0].type == "CHANGED" and seen[0].path == "/a"

    # many requests in flight at once
    results = [zk.get_async("/a") for _ in range(200)]
    assert all(r.get(timeout=5)[0] == b"three" for r in results)

    tx = zk.transaction()
    tx.create("/t1", b"t")
    tx.set_data("/a", b"four")
    tx.check("/q", 0)
    tx.delete("/q/item-0000000000")
    created, set_stat, checked, deleted = tx.commit()
    assert created == "/t1" and set_stat.version == 3 and checked is True and deleted is True

    tx = zk.transaction()
    tx.create("/t2")
    tx.check("/a", 99)
    tx.delete("/t1")
    outcome = tx.commit()
    assert [type(r) for r in outcome] == [RolledBackError, BadVersionError, RuntimeInconsistency]
    assert zk.exists("/t2") is None

    zk.sync("/a")
    zk.delete("/t1")
    assert zk.exists("/t1") is None

    opcodes = {ev.opcode for ev in server.events_seen if isinstance(ev, p.Request)}
    assert {1, 2, 3, 4, 5, 8, 9, 12, 14, 15} <= opcodes
