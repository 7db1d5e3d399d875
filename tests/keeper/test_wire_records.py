"""Round trips for every jute record, and byte-exact goldens worked out by hand
from zookeeper.jute (big-endian ints, -1 for null, bool as one byte)."""

import struct

import pytest

from paddock.keeper import protocol as p
from paddock.keeper.jute import JuteReader

STAT = p.Stat(
    czxid=0x100000001,
    mzxid=0x100000002,
    ctime=1_700_000_000_000,
    mtime=1_700_000_000_500,
    version=3,
    cversion=4,
    aversion=5,
    ephemeral_owner=0x1234567890,
    data_length=11,
    num_children=2,
    pzxid=0x100000003,
)
ACLS = [
    p.ACL(31, p.Id("world", "anyone")),
    p.ACL(1, p.Id("digest", "user:Zm9vYmFy")),
    p.ACL(int(p.Perms.READ | p.Perms.WRITE), p.Id("ip", "10.0.0.0/8")),
]

REQUESTS = [
    p.ConnectRequest(0, 0x200000005, 30000, 0x1122334455667788, b"s" * 16, True),
    p.ConnectRequest(0, 0, 4000, 0, b"\x00" * 16, False),
    p.ConnectRequest(0, 7, 4000, 9, b"", None),
    p.CreateRequest("/a/b", b"data", ACLS, int(p.CreateMode.EPHEMERAL_SEQUENTIAL)),
    p.CreateRequest("/empty", b"", [], 0),
    p.CreateTTLRequest("/ttl", b"x", ACLS[:1], int(p.CreateMode.PERSISTENT_WITH_TTL), 60_000),
    p.DeleteRequest("/a", 7),
    p.DeleteRequest("/a", -1),
    p.ExistsRequest("/e", True),
    p.GetDataRequest("/g", False),
    p.GetDataRequest("/ünïcødé/节点", True),
    p.SetDataRequest("/s", b"\x00\xff" * 100, 12),
    p.SetDataRequest("/s", b"", -1),
    p.GetACLRequest("/acl"),
    p.SetACLRequest("/acl", ACLS, 2),
    p.GetChildrenRequest("/c", True),
    p.GetChildren2Request("/c2", False),
    p.SyncRequest("/sync"),
    p.PingRequest(),
    p.CheckVersionRequest("/check", 4),
    p.MultiRequest(
        [
            p.MultiOp(p.OpCode.CREATE, p.CreateRequest("/m1", b"1", ACLS[:1], 0)),
            p.MultiOp(p.OpCode.CREATE2, p.CreateRequest("/m2", b"2", ACLS[:1], 2)),
            p.MultiOp(p.OpCode.CREATE_CONTAINER, p.CreateRequest("/m3", b"", ACLS[:1], 4)),
            p.MultiOp(p.OpCode.CREATE_TTL, p.CreateTTLRequest("/m4", b"", ACLS[:1], 5, 10)),
            p.MultiOp(p.OpCode.DELETE, p.DeleteRequest("/m5", 1)),
            p.MultiOp(p.OpCode.SET_DATA, p.SetDataRequest("/m6", b"six", 2)),
            p.MultiOp(p.OpCode.CHECK, p.CheckVersionRequest("/m7", 3)),
        ]
    ),
    p.MultiRequest([]),
    p.MultiReadRequest(
        [
            p.MultiOp(p.OpCode.GET_DATA, p.GetDataRequest("/r1", False)),
            p.MultiOp(p.OpCode.GET_CHILDREN, p.GetChildrenRequest("/r2", False)),
        ]
    ),
    p.ReconfigRequest("server.4=127.0.0.1:2888:3888:participant;2181", None, None, -1),
    p.ReconfigRequest(None, "2,3", None, 0x100000000),
    p.CheckWatchesRequest("/w", int(p.WatcherType.DATA)),
    p.RemoveWatchesRequest("/w", int(p.WatcherType.ANY)),
    p.AuthPacket(0, "digest", b"super:test"),
    p.SetWatches(0x300000001, ["/d1", "/d2"], ["/e1"], []),
    p.SetWatches2(5, ["/d"], [], ["/c"], ["/p"], ["/pr", "/pr2"]),
    p.GetSASLRequest(b"\x01\x02token"),
    p.GetEphemeralsRequest("/prefix"),
    p.GetAllChildrenNumberRequest("/n"),
    p.AddWatchRequest("/aw", int(p.AddWatchMode.PERSISTENT_RECURSIVE)),
    p.WhoAmIRequest(),
    p.CloseSessionRequest(),
]

RESPONSES = [
    p.ConnectResponse(0, 30000, 0x1122334455667788, b"p" * 16, False),
    p.ConnectResponse(0, 30000, 1, b"p" * 16, True),
    p.ConnectResponse(0, 0, 0, b"\x00" * 16, None),
    p.CreateResponse("/a/b0000000001"),
    p.Create2Response("/c", STAT),
    p.ExistsResponse(STAT),
    p.GetDataResponse(b"hello world", STAT),
    p.GetDataResponse(None, STAT),
    p.SetDataResponse(STAT),
    p.GetACLResponse(ACLS, STAT),
    p.SetACLResponse(STAT),
    p.GetChildrenResponse(["a", "b", "ç"]),
    p.GetChildrenResponse([]),
    p.GetChildren2Response(["x"], STAT),
    p.SyncResponse("/sync"),
    p.ErrorResponse(0),
    p.GetAllChildrenNumberResponse(42),
    p.GetEphemeralsResponse(["/e1", "/e2"]),
    p.WhoAmIResponse([p.ClientInfo("ip", "127.0.0.1"), p.ClientInfo("digest", "bob")]),
    p.SetSASLResponse(b"challenge"),
    p.WatcherEvent(int(p.EventType.NODE_DATA_CHANGED), int(p.KeeperState.SYNC_CONNECTED), "/w"),
    p.WatcherEvent(int(p.EventType.NONE), int(p.KeeperState.EXPIRED), None),
    p.MultiResponse(
        [
            p.CreateResponse("/m1"),
            p.Create2Response("/m2", STAT),
            p.DeleteResult(),
            p.SetDataResponse(STAT),
            p.CheckResult(),
            p.ErrorResult(0),
            p.ErrorResult(-101),
            p.ErrorResult(-2),
        ]
    ),
    p.MultiResponse(
        [p.GetDataResponse(b"d", STAT), p.GetChildrenResponse(["k"]), p.ErrorResult(-101)]
    ),
    p.MultiResponse([]),
    p.ReplyHeader(5, 0x100000009, -101),
    p.MultiHeader(1, False, -1),
    p.Stat(*range(11)),
]


def _decode(cls, raw):
    reader = JuteReader(raw)
    record = cls.decode(reader)
    assert reader.pos == len(raw), f"{cls.__name__} left {len(raw) - reader.pos} bytes"
    return record


@pytest.mark.parametrize("record", REQUESTS + RESPONSES, ids=lambda r: type(r).__name__)
def test_round_trip(record):
    raw = record.encode()
    assert isinstance(raw, bytes)
    assert _decode(type(record), raw) == record


def test_every_opcode_with_a_record_is_covered():
    covered = {type(r) for r in REQUESTS}
    decoders = set(p.REQUEST_DECODERS.values())
    for cls in covered:
        decoders.discard(cls.decode)
    assert not decoders, f"request decoders without a round-trip sample: {decoders}"


def test_every_response_decoder_is_covered():
    covered = {type(r) for r in RESPONSES}
    for opcode, decode in p.RESPONSE_DECODERS.items():
        if decode is not None:
            assert decode.__self__ in covered, p.OpCode(opcode)


# --------------------------------------------------------------------------- goldens


def test_golden_request_header_and_get_data():
    frame = p.encode_request(7, p.GetDataRequest("/ab", True))
    assert frame == bytes.fromhex(
        "00000010"  # length 16
        "00000007"  # xid 7
        "00000004"  # type getData
        "00000003"  # ustring length 3
        "2f6162"  # "/ab"
        "01"  # watch true
    )


def test_golden_set_data_request():
    body = p.SetDataRequest("/x", b"\x00\x01", 5).encode()
    assert body == bytes.fromhex("000000022f7800000002000100000005")


def test_golden_create_request_with_open_acl():
    body = p.CreateRequest("/n", b"v", list(p.OPEN_ACL_UNSAFE), 3).encode()
    expected = (
        bytes.fromhex("00000002") + b"/n"  # path
        + bytes.fromhex("00000001") + b"v"  # data
        + bytes.fromhex("00000001")  # one ACL
        + bytes.fromhex("0000001f")  # perms ALL = 31
        + bytes.fromhex("00000005") + b"world"
        + bytes.fromhex("00000006") + b"anyone"
        + bytes.fromhex("00000003")  # flags EPHEMERAL_SEQUENTIAL
    )  # fmt: skip
    assert body == expected


def test_golden_stat_field_order():
    stat = p.Stat(1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11)
    assert stat.encode() == bytes.fromhex(
        "0000000000000001"  # czxid
        "0000000000000002"  # mzxid
        "0000000000000003"  # ctime
        "0000000000000004"  # mtime
        "00000005"  # version
        "00000006"  # cversion
        "00000007"  # aversion
        "0000000000000008"  # ephemeralOwner
        "00000009"  # dataLength
        "0000000a"  # numChildren
        "000000000000000b"  # pzxid
    )
    assert len(stat.encode()) == 68


def test_golden_get_data_response_frame():
    stat = p.Stat(1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11)
    frame = p.encode_response(3, 0x1_0000_0002, 0, p.GetDataResponse(b"hi", stat))
    assert frame == (
        bytes.fromhex("0000005a")  # 16 + 4 + 2 + 68 = 90
        + bytes.fromhex("00000003" "0000000100000002" "00000000")  # ReplyHeader
        + bytes.fromhex("00000002") + b"hi"
        + stat.encode()
    )  # fmt: skip


def test_golden_null_data_is_length_minus_one():
    frame = p.encode_response(1, 2, 0, p.GetDataResponse(None, STAT))
    assert frame[20:24] == b"\xff\xff\xff\xff"


def test_golden_error_reply_is_header_only():
    # Even when a body is offered, an error reply carries only the ReplyHeader.
    frame = p.encode_response(9, 0x20, int(p.ErrorCode.NO_NODE), p.GetDataResponse(b"x", STAT))
    assert frame == bytes.fromhex("00000010000000090000000000000020ffffff9b")


def test_golden_connect_request_with_and_without_read_only():
    with_ro = p.ConnectRequest(0, 0x10, 30000, 0, b"\x00" * 16, False).encode()
    assert with_ro == (
        bytes.fromhex("00000000000000000000001000007530000000000000000000000010")
        + b"\x00" * 16
        + b"\x00"
    )
    old = p.ConnectRequest(0, 0x10, 30000, 0, b"\x00" * 16, None).encode()
    assert old == with_ro[:-1]
    assert len(with_ro) == 45 and len(old) == 44


def test_golden_connect_response():
    raw = p.ConnectResponse(0, 4000, 0x0100000000000001, b"\xaa" * 16, True).encode()
    assert raw == (
        bytes.fromhex("0000000000000fa0010000000000000100000010") + b"\xaa" * 16 + b"\x01"
    )


def test_golden_watch_notification():
    frame = p.encode_watch_event(
        int(p.EventType.NODE_DELETED), int(p.KeeperState.SYNC_CONNECTED), "/w"
    )
    assert frame == bytes.fromhex(
        "0000001e"  # 16 + 4 + 4 + 4 + 2 = 30
        "ffffffff"  # xid -1
        "ffffffffffffffff"  # zxid -1
        "00000000"  # err 0
        "00000002"  # NodeDeleted
        "00000003"  # SyncConnected
        "00000002"
        "2f77"
    )


def test_golden_multi_request_framing():
    body = p.MultiRequest([p.MultiOp(p.OpCode.DELETE, p.DeleteRequest("/d", 1))]).encode()
    assert body == (
        bytes.fromhex("00000002" "00" "ffffffff")  # MultiHeader(delete, false, -1)
        + bytes.fromhex("00000002") + b"/d" + bytes.fromhex("00000001")
        + bytes.fromhex("ffffffff" "01" "ffffffff")  # MultiHeader(-1, true, -1)
    )  # fmt: skip


def test_golden_multi_error_result():
    body = p.MultiResponse([p.ErrorResult(-101)]).encode()
    assert body == (
        bytes.fromhex("ffffffff00ffffff9b")  # MultiHeader(error, false, -101)
        + bytes.fromhex("ffffff9b")  # ErrorResponse(-101)
        + bytes.fromhex("ffffffff01ffffffff")
    )


def test_golden_ustring_vector_and_null_string():
    assert p.GetChildrenResponse(["a", "bc"]).encode() == bytes.fromhex(
        "000000020000000161000000026263"
    )
    assert p.WatcherEvent(-1, 3, None).encode() == bytes.fromhex("ffffffff00000003ffffffff")


def test_stat_struct_matches_hand_layout():
    assert struct.calcsize(">qqqqiiiqiiq") == 68


def test_null_data_survives_decode_and_reencode():
    raw = bytes.fromhex("00000002") + b"/n" + bytes.fromhex("ffffffff0000000000000000")
    record = _decode(p.CreateRequest, raw)
    assert record.data == b"" and record.data is p.NULL_BUFFER
    assert record.encode() == raw  # byte-exact, as a Java client sent it
    raw = bytes.fromhex("00000002") + b"/n" + bytes.fromhex("ffffffff00000003")
    record = _decode(p.SetDataRequest, raw)
    assert record.data is p.NULL_BUFFER and record.encode() == raw
    assert p.CreateRequest("/n", b"").encode() != p.CreateRequest("/n", p.NULL_BUFFER).encode()
    # a tree that stores the object answers getData with a null buffer
    frame = p.encode_response(1, 2, 0, p.GetDataResponse(record.data, STAT))
    assert frame[20:24] == b"\xff\xff\xff\xff"
    client = p.ClientConnection()
    client.receive_data(p.encode_connect_response(p.ConnectResponse()))
    client.next_event()
    client.encode_request(1, p.GetDataRequest("/n"))
    client.receive_data(frame)
    assert client.next_event().record.data is None
    assert repr(p.NULL_BUFFER) == "NULL_BUFFER"


def test_null_request_fields_read_as_empty_values():
    raw = bytes.fromhex("ffffffffffffffffffffffff00000000")
    assert _decode(p.CreateRequest, raw) == p.CreateRequest("", b"", [], 0)
    raw = bytes.fromhex("0000000000000001ffffffffffffffffffffffff")
    assert _decode(p.SetWatches, raw) == p.SetWatches(1, [], [], [])


def test_invalid_utf8_is_replaced_not_raised():
    raw = bytes.fromhex("00000002c328") + b"\x00"
    record = _decode(p.GetDataRequest, raw)
    assert "\ufffd" in record.path
    assert p.validate_path(record.path) is not None


def test_bool_is_any_non_zero_byte():
    raw = bytes.fromhex("00000001") + b"/" + b"\x07"
    assert _decode(p.ExistsRequest, raw).watch is True


def test_create_mode_helpers():
    assert p.CreateMode.from_flags(3) is p.CreateMode.EPHEMERAL_SEQUENTIAL
    assert p.CreateMode.from_flags(7) is None
    assert p.CreateMode.EPHEMERAL_SEQUENTIAL.is_ephemeral
    assert p.CreateMode.EPHEMERAL_SEQUENTIAL.is_sequential
    assert p.CreateMode.PERSISTENT_SEQUENTIAL_WITH_TTL.is_ttl
    assert p.CreateMode.CONTAINER.is_container
    assert not p.CreateMode.PERSISTENT.is_ephemeral


def test_constants_match_zookeeper():
    assert [p.CreateMode(i).name for i in range(7)] == [
        "PERSISTENT",
        "EPHEMERAL",
        "PERSISTENT_SEQUENTIAL",
        "EPHEMERAL_SEQUENTIAL",
        "CONTAINER",
        "PERSISTENT_WITH_TTL",
        "PERSISTENT_SEQUENTIAL_WITH_TTL",
    ]
    assert p.OpCode.WHO_AM_I == 107 and p.OpCode.ADD_WATCH == 106 and p.OpCode.CLOSE_SESSION == -11
    assert p.ErrorCode.THROTTLED_OP == -127 and p.ErrorCode.NO_WATCHER == -121
    assert p.KeeperState.EXPIRED == -112 and p.EventType.PERSISTENT_WATCH_REMOVED == 7
    assert int(p.Perms.ALL) == 31
    assert (p.NOTIFICATION_XID, p.PING_XID, p.AUTH_XID, p.SET_WATCHES_XID) == (-1, -2, -4, -8)
