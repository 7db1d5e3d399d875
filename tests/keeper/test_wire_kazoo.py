"""Compatibility with a real client's code: kazoo's own serializers.

Requests built and framed exactly as kazoo's connection does must decode to
the records we expect, and our encoded replies must decode with kazoo's
deserializers to the same values.
"""

import pytest
from kazoo.exceptions import BadVersionError, NoNodeError, RolledBackError
from kazoo.protocol import serialization as ks
from kazoo.protocol.states import ZnodeStat
from kazoo.security import ACL as KACL
from kazoo.security import Id as KId

from paddock.keeper import protocol as p

STAT = p.Stat(0x100000001, 0x100000002, 1700000000000, 1700000000001, 3, 4, 5, 0x77, 9, 2, 0x3)
OPEN = [KACL(31, KId("world", "anyone"))]


def kazoo_frame(request, xid=None):
    """Frame a request the way kazoo.protocol.connection.ConnectionHandler._submit does."""
    b = bytearray()
    if xid:
        b.extend(ks.int_struct.pack(xid))
    if request.type:
        b.extend(ks.int_struct.pack(request.type))
    b += request.serialize()
    return bytes(ks.int_struct.pack(len(b)) + b)


def server_decode(frames):
    server = p.ServerConnection()
    server.receive_data(kazoo_frame(ks.Connect(0, 0, 10000, 0, b"\x00" * 16, False)))
    server.next_event()
    server.receive_data(frames)
    return server.next_event()


def test_kazoo_connect_request():
    server = p.ServerConnection()
    server.receive_data(kazoo_frame(ks.Connect(0, 0x500000001, 12000, 0x42, b"\x01" * 16, True)))
    assert server.next_event() == p.ConnectRequest(0, 0x500000001, 12000, 0x42, b"\x01" * 16, True)
    assert server.client_sent_read_only


KAZOO_REQUESTS = [
    (ks.Create("/a", b"v", OPEN, 3), p.CreateRequest("/a", b"v", OPEN, 3)),
    (ks.Create2("/a2", b"", OPEN, 0), p.CreateRequest("/a2", b"", OPEN, 0)),
    (ks.Delete("/d", 4), p.DeleteRequest("/d", 4)),
    (ks.Exists("/e", lambda ev: None), p.ExistsRequest("/e", True)),
    (ks.Exists("/e", None), p.ExistsRequest("/e", False)),
    (ks.GetData("/g", None), p.GetDataRequest("/g", False)),
    (ks.SetData("/s", b"\x00data", 7), p.SetDataRequest("/s", b"\x00data", 7)),
    (ks.GetACL("/acl"), p.GetACLRequest("/acl")),
    (
        ks.SetACL("/acl", [KACL(1, KId("digest", "u:h"))], -1),
        p.SetACLRequest("/acl", [p.ACL(1, p.Id("digest", "u:h"))], -1),
    ),
    (ks.GetChildren("/c", lambda ev: None), p.GetChildrenRequest("/c", True)),
    (ks.GetChildren2("/c", None), p.GetChildren2Request("/c", False)),
    (ks.Sync("/sy"), p.SyncRequest("/sy")),
    (ks.CheckVersion("/cv", 2), p.CheckVersionRequest("/cv", 2)),
    (
        ks.Reconfig("server.4=127.0.0.1:2888:3888;2181", None, None, -1),
        p.ReconfigRequest("server.4=127.0.0.1:2888:3888;2181", None, None, -1),
    ),
    (ks.SASL(b"token"), p.GetSASLRequest(b"token")),
    (
        ks.Transaction(
            [
                ks.Create("/t1", b"1", OPEN, 0),
                ks.Delete("/t2", -1),
                ks.SetData("/t3", b"3", 1),
                ks.CheckVersion("/t4", 2),
            ]
        ),
        p.MultiRequest(
            [
                p.MultiOp(1, p.CreateRequest("/t1", b"1", OPEN, 0)),
                p.MultiOp(2, p.DeleteRequest("/t2", -1)),
                p.MultiOp(5, p.SetDataRequest("/t3", b"3", 1)),
                p.MultiOp(13, p.CheckVersionRequest("/t4", 2)),
            ]
        ),
    ),
]


@pytest.mark.parametrize(
    ("kazoo_request", "expected"), KAZOO_REQUESTS, ids=lambda r: type(r).__name__
)
def test_kazoo_request_decodes(kazoo_request, expected):
    event = server_decode(kazoo_frame(kazoo_request, xid=17))
    assert event == p.Request(17, kazoo_request.type, expected)


def test_kazoo_special_xids():
    assert server_decode(kazoo_frame(ks.PingInstance, xid=-2)) == p.Request(-2, 11, p.PingRequest())
    event = server_decode(kazoo_frame(ks.Auth(0, "digest", "super:test"), xid=-4))
    assert event == p.Request(-4, 100, p.AuthPacket(0, "digest", b"super:test"))
    assert server_decode(kazoo_frame(ks.CloseInstance, xid=9)) == p.Request(
        9, -11, p.CloseSessionRequest()
    )


def test_kazoo_empty_string_is_null_and_reads_as_empty():
    # kazoo writes "" as a null ustring (-1); we read it back as "".
    event = server_decode(kazoo_frame(ks.GetData("", None), xid=1))
    assert event.record.path == ""
    assert p.validate_path(event.record.path) is not None


# --------------------------------------------------------------------------- replies


def body(frame):
    """Strip the length prefix and ReplyHeader; check the header with kazoo."""
    header, offset = ks.ReplyHeader.deserialize(frame, 4)
    assert offset == 20
    return header, frame[20:]


def test_kazoo_reads_reply_header():
    header, rest = body(p.encode_response(12, 0x700000001, -101))
    assert header == ks.ReplyHeader(12, 0x700000001, -101)
    assert rest == b""


def test_kazoo_reads_connect_response():
    frame = p.ServerConnection().encode_connect_response(8000, 0x1234, b"\x09" * 16, True)
    connect, _ = ks.Connect.deserialize(frame[4:], 0)
    assert (connect.time_out, connect.session_id, connect.passwd, connect.read_only) == (
        8000,
        0x1234,
        b"\x09" * 16,
        True,
    )


def kazoo_stat():
    return ZnodeStat(*STAT)


@pytest.mark.parametrize(
    ("record", "kazoo_cls", "expected"),
    [
        (p.CreateResponse("/a0000000001"), ks.Create, "/a0000000001"),
        (p.Create2Response("/b", STAT), ks.Create2, ("/b", kazoo_stat())),
        (p.ExistsResponse(STAT), ks.Exists, kazoo_stat()),
        (p.GetDataResponse(b"val", STAT), ks.GetData, (b"val", kazoo_stat())),
        (p.GetDataResponse(None, STAT), ks.GetData, (None, kazoo_stat())),
        (p.SetDataResponse(STAT), ks.SetData, kazoo_stat()),
        (p.SetACLResponse(STAT), ks.SetACL, kazoo_stat()),
        (
            p.GetACLResponse([p.ACL(31, p.Id("world", "anyone"))], STAT),
            ks.GetACL,
            (OPEN, kazoo_stat()),
        ),
        (p.GetChildrenResponse(["x", "y"]), ks.GetChildren, ["x", "y"]),
        (p.GetChildren2Response(["x"], STAT), ks.GetChildren2, (["x"], kazoo_stat())),
        (p.SyncResponse("/s"), ks.Sync, "/s"),
        (p.GetDataResponse(b"server.1=a", STAT), ks.Reconfig, (b"server.1=a", kazoo_stat())),
    ],
    ids=lambda v: type(v).__name__,
)
def test_kazoo_reads_response_body(record, kazoo_cls, expected):
    header, rest = body(p.encode_response(3, 4, 0, record))
    assert header.err == 0
    assert kazoo_cls.deserialize(rest, 0) == expected


def test_kazoo_reads_sasl_and_watch_event():
    _, rest = body(p.encode_response(1, 1, 0, p.SetSASLResponse(b"chal")))
    assert ks.SASL.deserialize(rest, 0)[0] == b"chal"
    frame = p.encode_watch_event(4, 3, "/parent", zxid=0x55)
    header, rest = body(frame)
    assert header == ks.ReplyHeader(-1, 0x55, 0)
    watch, _ = ks.Watch.deserialize(rest, 0)
    assert watch == ks.Watch(4, 3, "/parent")


def test_kazoo_reads_multi_results():
    record = p.MultiResponse(
        [
            p.CreateResponse("/t1"),
            p.DeleteResult(),
            p.SetDataResponse(STAT),
            p.CheckResult(),
        ]
    )
    _, rest = body(p.encode_response(5, 6, 0, record))
    assert ks.Transaction.deserialize(rest, 0) == ["/t1", True, kazoo_stat(), True]


def test_kazoo_reads_failed_multi():
    record = p.MultiResponse([p.ErrorResult(0), p.ErrorResult(-103), p.ErrorResult(-2)])
    _, rest = body(p.encode_response(5, 6, 0, record))
    results = ks.Transaction.deserialize(rest, 0)
    assert [type(r) for r in results][:2] == [RolledBackError, BadVersionError]
    assert results[2].code == -2


def test_error_reply_matches_kazoo_exception_table():
    _, rest = body(p.encode_response(1, 1, int(p.ErrorCode.NO_NODE)))
    assert rest == b""
    from kazoo.exceptions import EXCEPTIONS

    assert EXCEPTIONS[int(p.ErrorCode.NO_NODE)] is NoNodeError
    # Every code we define is one kazoo knows (its table is a defaultdict, so
    # check the class's own code rather than membership).
    for code in p.ErrorCode:
        assert EXCEPTIONS[int(code)].code == int(code), code
