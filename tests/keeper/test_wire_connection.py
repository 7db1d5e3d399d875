"""The sans-IO server and client connections: framing, handshake, four-letter
words, partial reads, size limits and error behaviour."""

import struct

import pytest

from paddock.keeper import protocol as p

STAT = p.Stat(1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11)
CONNECT = p.ConnectRequest(0, 0, 30000, 0, b"\x00" * 16, False)


def drain(conn):
    events = []
    while True:
        ev = conn.next_event()
        if ev is p.NEED_DATA or ev is p.CONNECTION_CLOSED:
            return events, ev
        events.append(ev)


def connected_server(**kwargs):
    server = p.ServerConnection(**kwargs)
    server.receive_data(p.encode_connect_request(CONNECT))
    assert server.next_event() == CONNECT
    return server


def test_handshake_then_requests_in_order():
    server = p.ServerConnection()
    assert server.next_event() is p.NEED_DATA
    stream = (
        p.encode_connect_request(CONNECT)
        + p.encode_request(1, p.GetDataRequest("/a", True))
        + p.encode_request(2, p.SetDataRequest("/a", b"v", 0))
        + p.encode_request(p.PING_XID, p.PingRequest())
        + p.encode_request(3, p.CloseSessionRequest())
    )
    server.receive_data(stream)
    events, last = drain(server)
    assert last is p.NEED_DATA
    assert events == [
        CONNECT,
        p.Request(1, p.OpCode.GET_DATA, p.GetDataRequest("/a", True)),
        p.Request(2, p.OpCode.SET_DATA, p.SetDataRequest("/a", b"v", 0)),
        p.Request(-2, p.OpCode.PING, p.PingRequest()),
        p.Request(3, p.OpCode.CLOSE_SESSION, p.CloseSessionRequest()),
    ]
    assert server.state is p.ConnectionState.CONNECTED


def test_one_byte_at_a_time_gives_the_same_events():
    stream = (
        p.encode_connect_request(CONNECT)
        + p.encode_request(1, p.CreateRequest("/x", b"data", list(p.OPEN_ACL_UNSAFE), 1))
        + p.encode_request(
            2,
            p.MultiRequest([p.MultiOp(p.OpCode.CHECK, p.CheckVersionRequest("/x", 0))]),
        )
        + p.encode_request(p.AUTH_XID, p.AuthPacket(0, "digest", b"u:p"))
    )
    whole = p.ServerConnection()
    whole.receive_data(stream)
    expected, _ = drain(whole)
    assert len(expected) == 4

    server = p.ServerConnection()
    got = []
    for i in range(len(stream)):
        server.receive_data(stream[i : i + 1])
        events, last = drain(server)
        assert last is p.NEED_DATA
        got.extend(events)
    assert got == expected


def test_connect_request_without_read_only_byte_is_echoed_without_it():
    server = p.ServerConnection()
    old = p.ConnectRequest(0, 0, 30000, 0, b"\x00" * 16, None)
    server.receive_data(p.encode_connect_request(old))
    request = server.next_event()
    assert request.read_only is None
    assert not server.client_sent_read_only
    frame = server.encode_connect_response(20000, 0x42, b"k" * 16, read_only=True)
    assert struct.unpack(">i", frame[:4])[0] == len(frame) - 4 == 36  # no readOnly byte

    modern = connected_server()
    assert modern.client_sent_read_only
    frame = modern.encode_connect_response(20000, 0x42, b"k" * 16, read_only=True)
    assert len(frame) - 4 == 37 and frame[-1] == 1


@pytest.mark.parametrize("word", sorted(p.FOUR_LETTER_WORDS - {"stmk"}))
def test_four_letter_word_first_bytes(word):
    server = p.ServerConnection()
    server.receive_data(word.encode())
    assert server.next_event() == p.FourLetterWord(word)
    assert server.next_event() is p.CONNECTION_CLOSED


def test_four_letter_word_split_across_reads_and_stmk_argument():
    server = p.ServerConnection()
    server.receive_data(b"ru")
    assert server.next_event() is p.NEED_DATA
    server.receive_data(b"ok")
    assert server.next_event() == p.FourLetterWord("ruok")

    server = p.ServerConnection()
    server.receive_data(b"stmk" + struct.pack(">q", 0x1F)[:3])
    assert server.next_event() is p.NEED_DATA
    server.receive_data(struct.pack(">q", 0x1F)[3:])
    assert server.next_event() == p.FourLetterWord("stmk", 0x1F)


def test_four_letter_word_only_at_connection_start():
    server = connected_server()
    server.receive_data(b"ruok")
    # After the handshake "ruok" is a (huge) frame length, refused at once.
    with pytest.raises(p.ProtocolError):
        server.next_event()


def test_four_letter_words_can_be_disabled():
    server = p.ServerConnection(allow_four_letter_words=False)
    server.receive_data(b"ruok")
    with pytest.raises(p.ProtocolError, match="max_packet"):
        server.next_event()


def test_unknown_four_letters_are_a_length_and_refused():
    server = p.ServerConnection()
    server.receive_data(b"abcd")
    with pytest.raises(p.ProtocolError) as info:
        server.next_event()
    assert info.value.fatal
    # The connection stays failed.
    with pytest.raises(p.ProtocolError):
        server.next_event()
    assert server.state is p.ConnectionState.CLOSED


def test_huge_declared_length_is_refused_before_the_body_arrives():
    server = connected_server(max_packet=1024)
    server.receive_data(struct.pack(">i", 1025))
    with pytest.raises(p.ProtocolError, match="1025"):
        server.next_event()


def test_negative_length_is_refused():
    server = connected_server()
    server.receive_data(struct.pack(">i", -5))
    with pytest.raises(p.ProtocolError):
        server.next_event()


def test_frame_at_max_packet_is_accepted():
    record = p.SetDataRequest("/big", b"z" * 1000, -1)
    frame = p.encode_request(1, record)
    server = connected_server(max_packet=len(frame) - 4)
    server.receive_data(frame)
    assert server.next_event().record == record


def test_default_max_packet_follows_jute_maxbuffer():
    assert p.JUTE_MAXBUFFER_DEFAULT == 0xFFFFF
    assert p.ServerConnection().max_packet == 0xFFFFF + p.FRAME_SLACK
    server = connected_server()
    record = p.SetDataRequest("/d", b"\x00" * p.JUTE_MAXBUFFER_DEFAULT, -1)
    server.receive_data(p.encode_request(1, record))
    assert server.next_event().record.data == record.data


def test_unknown_opcode_gives_raw_payload():
    server = connected_server()
    server.receive_data(struct.pack(">iii", 11, 5, 999) + b"raw")
    event = server.next_event()
    assert event == p.Request(5, 999, None, b"raw")
    # deleteContainer is server-internal: clients sending it get Unimplemented too.
    server.receive_data(struct.pack(">iii", 8, 6, int(p.OpCode.DELETE_CONTAINER)))
    assert server.next_event().record is None


def test_malformed_body_is_not_fatal_and_reports_xid():
    server = connected_server()
    # getData whose path claims 100 bytes but carries 2
    server.receive_data(struct.pack(">iiii", 14, 77, 4, 100) + b"/a")
    with pytest.raises(p.ProtocolError) as info:
        server.next_event()
    assert info.value.xid == 77 and info.value.opcode == 4 and not info.value.fatal
    # Framing is intact: the next request still decodes.
    server.receive_data(p.encode_request(78, p.SyncRequest("/")))
    assert server.next_event() == p.Request(78, p.OpCode.SYNC, p.SyncRequest("/"))


def test_multi_mixing_reads_and_writes_is_malformed():
    server = connected_server()
    bad = p.MultiRequest([p.MultiOp(p.OpCode.GET_DATA, p.GetDataRequest("/a"))])
    server.receive_data(p.encode_request(3, bad))
    with pytest.raises(p.ProtocolError, match="not allowed"):
        server.next_event()


def test_short_request_header_is_fatal():
    server = connected_server()
    server.receive_data(struct.pack(">ii", 4, 1))
    with pytest.raises(p.ProtocolError) as info:
        server.next_event()
    assert info.value.fatal


def test_truncated_connect_request_is_fatal():
    server = p.ServerConnection()
    server.receive_data(struct.pack(">i", 10) + b"\x00" * 10)
    with pytest.raises(p.ProtocolError, match="ConnectRequest"):
        server.next_event()


def test_eof_reports_connection_closed():
    server = connected_server()
    server.receive_data(p.encode_request(1, p.SyncRequest("/"))[:5])
    assert server.next_event() is p.NEED_DATA
    server.receive_data(b"")
    assert server.next_event() is p.CONNECTION_CLOSED


def test_buffer_compacts_over_many_frames():
    server = connected_server()
    frame = p.encode_request(1, p.SetDataRequest("/a", b"x" * 1000, -1))
    chunk = frame * 200 + frame[:7]
    server.receive_data(chunk)
    events, last = drain(server)
    assert len(events) == 200 and last is p.NEED_DATA
    server.receive_data(frame[7:])
    assert server.next_event().xid == 1
    assert server._frames.available() == 0


# --------------------------------------------------------------------------- client


def test_client_decodes_replies_by_pending_opcode():
    server = p.ServerConnection
    client = p.ClientConnection()
    for xid, rec, op in [
        (1, p.GetDataRequest("/a"), None),
        (2, p.CreateRequest("/b", b"", list(p.OPEN_ACL_UNSAFE), 0), 15),
        (3, p.DeleteRequest("/c", -1), None),
        (4, p.ExistsRequest("/d"), None),
        (p.PING_XID, p.PingRequest(), None),
        (5, p.AddWatchRequest("/e", 0), None),
    ]:
        client.encode_request(xid, rec, op)
    client.receive_data(
        p.encode_connect_response(p.ConnectResponse(0, 30000, 9, b"k" * 16, False))
        + server.encode_response(1, 10, 0, p.GetDataResponse(b"v", STAT))
        + server.encode_watch_event(3, 3, "/a", zxid=11)
        + server.encode_response(2, 11, 0, p.Create2Response("/b", STAT))
        + server.encode_response(3, 12, int(p.ErrorCode.NOT_EMPTY))
        + server.encode_response(4, 12, int(p.ErrorCode.NO_NODE))
        + server.encode_response(p.PING_XID, 12, 0)
        + server.encode_response(p.PING_XID, 12, 0)
        + server.encode_response(5, 12, 0, p.ErrorResponse(0))
    )
    events, last = drain(client)
    assert last is p.NEED_DATA
    assert events == [
        p.ConnectResponse(0, 30000, 9, b"k" * 16, False),
        p.Response(1, 10, 0, 4, p.GetDataResponse(b"v", STAT)),
        p.WatchNotification(11, p.WatcherEvent(3, 3, "/a")),
        p.Response(2, 11, 0, 15, p.Create2Response("/b", STAT)),
        p.Response(3, 12, -111, 2, None),
        p.Response(4, 12, -101, 3, None),
        p.Response(-2, 12, 0, 11, None),
        p.Response(-2, 12, 0, 11, None),
        p.Response(5, 12, 0, 106, p.ErrorResponse(0)),
    ]
    assert client.pending == 0


def test_client_rejects_reply_for_unknown_xid():
    client = p.ClientConnection()
    client.receive_data(p.encode_connect_response(p.ConnectResponse()))
    assert isinstance(client.next_event(), p.ConnectResponse)
    client.receive_data(p.encode_response(99, 1, 0))
    with pytest.raises(p.ProtocolError, match="xid 99"):
        client.next_event()


def test_client_reads_old_connect_response_without_read_only():
    client = p.ClientConnection()
    client.receive_data(p.encode_connect_response(p.ConnectResponse(0, 0, 0, b"\x00" * 16, None)))
    response = client.next_event()
    assert response.read_only is None and response.time_out == 0


def test_invalid_max_packet():
    with pytest.raises(ValueError):
        p.ServerConnection(max_packet=0)


def test_large_frame_fed_byte_by_byte_is_joined_once():
    server = connected_server()
    frame = p.encode_request(1, p.SetDataRequest("/big", b"q" * 50_000, -1))
    for i in range(len(frame) - 1):
        server.receive_data(frame[i : i + 1])
        assert server.next_event() is p.NEED_DATA
        # Only the 4-byte length prefix is ever made contiguous before the
        # frame is complete: no quadratic re-copying of the growing frame.
        assert len(server._frames._data) <= 4
    server.receive_data(frame[-1:])
    assert server.next_event().record.data == b"q" * 50_000


def test_caller_buffer_reuse_does_not_corrupt_events():
    server = connected_server()
    buf = bytearray(p.encode_request(1, p.GetDataRequest("/abc")))
    server.receive_data(buf[:10])
    buf[:] = b"\xff" * len(buf)  # a reused receive buffer being overwritten
    server.receive_data(bytes(p.encode_request(1, p.GetDataRequest("/abc"))[10:]))
    assert server.next_event().record == p.GetDataRequest("/abc")
