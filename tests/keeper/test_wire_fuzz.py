"""Fuzzing the codec: arbitrary or mutated input may only ever raise
ProtocolError, must terminate, and must not allocate from forged lengths."""

import struct
import tracemalloc

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from paddock.keeper import protocol as p
from paddock.keeper.jute import JuteReader

FUZZ = settings(
    max_examples=300,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
CONNECT_FRAME = p.encode_connect_request(p.ConnectRequest(0, 0, 30000, 0, b"\x00" * 16, False))

paths = st.text(min_size=0, max_size=20)
small_bytes = st.binary(max_size=64)
ints = st.integers(-(2**31), 2**31 - 1)
longs = st.integers(-(2**63), 2**63 - 1)
acls = st.lists(
    st.builds(p.ACL, st.integers(0, 31), st.builds(p.Id, st.text(max_size=8), st.text(max_size=8))),
    max_size=3,
)
stats = st.builds(p.Stat, *([longs] * 4 + [ints] * 3 + [longs] + [ints] * 2 + [longs]))

write_ops = st.one_of(
    st.builds(
        lambda r: p.MultiOp(1, r), st.builds(p.CreateRequest, paths, small_bytes, acls, ints)
    ),
    st.builds(lambda r: p.MultiOp(2, r), st.builds(p.DeleteRequest, paths, ints)),
    st.builds(lambda r: p.MultiOp(5, r), st.builds(p.SetDataRequest, paths, small_bytes, ints)),
    st.builds(lambda r: p.MultiOp(13, r), st.builds(p.CheckVersionRequest, paths, ints)),
)
requests = st.one_of(
    st.builds(p.GetDataRequest, paths, st.booleans()),
    st.builds(p.SetDataRequest, paths, small_bytes, ints),
    st.builds(p.ExistsRequest, paths, st.booleans()),
    st.builds(p.CreateRequest, paths, small_bytes, acls, ints),
    st.builds(p.CreateTTLRequest, paths, small_bytes, acls, ints, longs),
    st.builds(p.DeleteRequest, paths, ints),
    st.builds(p.SetACLRequest, paths, acls, ints),
    st.builds(p.GetChildren2Request, paths, st.booleans()),
    st.builds(p.SetWatches2, longs, *([st.lists(paths, max_size=3)] * 5)),
    st.builds(p.AuthPacket, ints, paths, small_bytes),
    st.builds(p.MultiRequest, st.lists(write_ops, max_size=4)),
    st.builds(p.ReconfigRequest, st.none() | paths, st.none() | paths, st.none() | paths, longs),
    st.just(p.PingRequest()),
)


def run_server(stream: bytes, chunks: list[int], errors: list | None = None) -> list:
    """Feed ``stream`` in the given chunk sizes, draining events; only
    ProtocolError may escape, and the loop is bounded by the input size."""
    server = p.ServerConnection(max_packet=4096)
    events = []
    errors = [] if errors is None else errors
    pos = 0
    sizes = chunks or [len(stream)]
    i = 0
    while pos < len(stream):
        n = max(1, sizes[i % len(sizes)])
        i += 1
        server.receive_data(stream[pos : pos + n])
        pos += n
        for _ in range(len(stream) + 2):
            try:
                ev = server.next_event()
            except p.ProtocolError as e:
                assert isinstance(e.reason, str) and e.reason
                errors.append(e)
                if e.fatal:
                    return events
                continue
            if ev is p.NEED_DATA or ev is p.CONNECTION_CLOSED:
                break
            events.append(ev)
        else:
            raise AssertionError("next_event did not settle")
    return events


@FUZZ
@given(st.binary(max_size=2000), st.lists(st.integers(1, 64), max_size=8))
def test_random_bytes_from_connection_start(data, chunks):
    run_server(data, chunks)


@FUZZ
@given(st.binary(max_size=2000), st.lists(st.integers(1, 64), max_size=8))
def test_random_bytes_after_handshake(data, chunks):
    run_server(CONNECT_FRAME + data, chunks)


@FUZZ
@given(
    st.lists(
        st.tuples(st.sampled_from([*sorted(p.REQUEST_DECODERS), 999]), st.binary(max_size=300)),
        min_size=1,
        max_size=6,
    ),
    st.lists(st.integers(1, 64), max_size=8),
)
def test_random_bodies_for_every_opcode(frames, chunks):
    """Correct framing and header, garbage body: exercises every body decoder."""
    stream = CONNECT_FRAME + b"".join(
        struct.pack(">iii", 8 + len(body), xid, opcode) + body
        for xid, (opcode, body) in enumerate(frames)
    )
    errors: list = []
    events = run_server(stream, chunks, errors)
    # Every frame either decoded or raised a non-fatal error naming its xid:
    # none were merged, split or lost.
    assert not any(e.fatal for e in errors)
    assert len(events) - 1 + len(errors) == len(frames)
    seen = sorted([ev.xid for ev in events[1:]] + [e.xid for e in errors])
    assert seen == list(range(len(frames)))


def mutate(frame: bytes, data: st.DataObject) -> bytes:
    buf = bytearray(frame)
    for _ in range(data.draw(st.integers(1, 4))):
        kind = data.draw(st.sampled_from(["flip", "set", "truncate", "insert", "int"]))
        if not buf:
            break
        at = data.draw(st.integers(0, len(buf) - 1))
        if kind == "flip":
            buf[at] ^= 1 << data.draw(st.integers(0, 7))
        elif kind == "set":
            buf[at] = data.draw(st.integers(0, 255))
        elif kind == "truncate":
            del buf[at:]
        elif kind == "insert":
            buf[at:at] = data.draw(st.binary(min_size=1, max_size=8))
        else:
            value = data.draw(st.sampled_from([-2, -1, 0, 1, 0x7FFFFFFF, -(2**31), 4096, 4097]))
            buf[at : at + 4] = struct.pack(">i", value)
    return bytes(buf)


@FUZZ
@given(st.lists(requests, min_size=1, max_size=4), st.data())
def test_mutated_valid_frames(records, data):
    frames = [p.encode_request(i + 1, r) for i, r in enumerate(records)]
    clean = run_server(CONNECT_FRAME + b"".join(frames), [])
    assert [ev.record for ev in clean[1:]] == records
    which = data.draw(st.integers(0, len(frames) - 1))
    frames[which] = mutate(frames[which], data)
    chunks = data.draw(st.lists(st.integers(1, 64), max_size=4))
    run_server(CONNECT_FRAME + b"".join(frames), chunks)


@FUZZ
@given(requests)
def test_generated_requests_round_trip(record):
    server = p.ServerConnection()
    server.receive_data(CONNECT_FRAME + p.encode_request(5, record))
    server.next_event()
    assert server.next_event() == p.Request(5, record.OPCODE, record)


@FUZZ
@given(
    st.sampled_from(sorted(op for op, dec in p.RESPONSE_DECODERS.items() if dec)),
    st.binary(max_size=400),
)
def test_random_reply_bodies_for_the_client(opcode, body):
    client = p.ClientConnection(max_packet=4096)
    client.receive_data(p.encode_connect_response(p.ConnectResponse()))
    client.next_event()
    client.encode_request(1, p.SyncRequest("/"), opcode)
    client.receive_data(struct.pack(">iiqi", 16 + len(body), 1, 7, 0) + body)
    try:
        event = client.next_event()
    except p.ProtocolError:
        return
    assert event.opcode == opcode and event.record is not None


@FUZZ
@given(st.binary(max_size=500), st.lists(st.integers(1, 32), max_size=4))
def test_random_bytes_to_client(data, chunks):
    client = p.ClientConnection(max_packet=4096)
    for xid, op in enumerate([4, 5, 14, 22, 12, 6, 107], start=1):
        client.encode_request(xid, p.SyncRequest("/"), op)
    pos = 0
    for n in chunks or [len(data)]:
        client.receive_data(data[pos : pos + n])
        pos += n
        for _ in range(len(data) + 2):
            try:
                ev = client.next_event()
            except p.ProtocolError:
                return
            if ev is p.NEED_DATA:
                break


@FUZZ
@given(st.integers(4097, 2**31 - 1))
def test_declared_length_over_max_is_refused_immediately(length):
    server = p.ServerConnection(max_packet=4096)
    server.receive_data(CONNECT_FRAME + struct.pack(">i", length))
    server.next_event()
    try:
        server.next_event()
    except p.ProtocolError as e:
        assert e.fatal
    else:
        raise AssertionError("oversized frame accepted")


def peak_allocation(fn) -> int:
    tracemalloc.start()
    try:
        fn()
        return tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()


def test_forged_lengths_inside_a_frame_allocate_nothing_big():
    huge = 0x7FFFFFFF
    bodies = [
        # getData with a 2 GiB path
        struct.pack(">ii", 4, huge) + b"/a\x00",
        # setData with a 2 GiB data buffer
        struct.pack(">iii", 1, 47, huge) + b"x",
        # setWatches with a 2-billion-element vector
        struct.pack(">iiqi", 101, 101, 0, huge) + b"\x00" * 8,
        # setACL with a 2-billion-element ACL vector
        struct.pack(">iiii", 7, 1, 47, huge),
        # multi with endless headers claiming huge creates
        struct.pack(">ii", 14, 14) + struct.pack(">i?ii", 1, False, -1, huge),
    ]

    def decode_all():
        for body in bodies:
            opcode = struct.unpack(">i", body[:4])[0]
            try:
                p.REQUEST_DECODERS[opcode](JuteReader(body, 4))
            except p.ProtocolError:
                pass
            else:
                raise AssertionError(f"forged body for opcode {opcode} accepted")

    assert peak_allocation(decode_all) < 64 * 1024


def test_declared_max_size_frame_is_not_preallocated():
    server = p.ServerConnection()  # ~1 MiB limit
    server.receive_data(CONNECT_FRAME)
    server.next_event()

    def feed_header_only():
        server.receive_data(struct.pack(">iii", p.DEFAULT_MAX_PACKET, 1, 5) + b"\x00" * 16)
        assert server.next_event() is p.NEED_DATA

    assert peak_allocation(feed_header_only) < 64 * 1024
