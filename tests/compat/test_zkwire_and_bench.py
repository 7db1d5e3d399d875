"""The benchmark's tiny wire codec, and a short run of the benchmark itself."""

from __future__ import annotations

import importlib
import struct
import sys
from pathlib import Path

import pytest

from paddock.testing import zkwire as wire

BENCH_DIR = Path(__file__).resolve().parents[2] / "bench"


def test_frame_reader_splits_and_joins_packets():
    packets = [wire.get_data_request(1, "/a"), wire.set_data_request(2, "/b", b"x" * 300)]
    stream = b"".join(packets)
    reader = wire.FrameReader()
    out = []
    for i in range(0, len(stream), 7):  # arbitrary chunking
        out += reader.feed(stream[i : i + 7])
    assert [wire.frame(p) for p in out] == packets


def test_frame_reader_rejects_forged_length():
    with pytest.raises(ValueError, match="bad packet length"):
        wire.FrameReader(max_packet=1024).feed(struct.pack(">i", 1 << 30))


def test_request_layout_matches_jute():
    (n,) = struct.unpack_from(">i", wire.set_data_request(7, "/p", b"v", version=3), 0)
    body = wire.set_data_request(7, "/p", b"v", version=3)[4:]
    assert n == len(body)
    # xid, type, path (len + bytes), data (len + bytes), version
    assert struct.unpack(">ii i2s i1s i", body) == (7, wire.OP_SET_DATA, 2, b"/p", 1, b"v", 3)


def test_session_probe_and_reply_parsing(standalone):
    host, port = standalone.hosts.split(",")[0].split(":")
    assert wire.probe_session(host, int(port))
    assert wire.four_letter_word(host, int(port), "ruok") == "imok"


@pytest.fixture(scope="module")
def bench():
    sys.path.insert(0, str(BENCH_DIR))  # spawned generator processes inherit sys.path
    try:
        yield importlib.import_module("keeper_vs_zookeeper")
    finally:
        sys.path.remove(str(BENCH_DIR))


def test_bench_load_generator_short_run(bench, standalone):
    address = ("127.0.0.1", standalone.members[0].client_port)
    paths = [f"/bench/k{i}" for i in range(10)]
    value = b"v" * 1024
    bench.populate(address, paths, value)
    ops, p50, p99, errors = bench.run_load(
        [address],
        bench.WORKLOADS["mixed70r30w"],
        connections=4,
        depth=4,
        processes=1,
        paths=paths,
        value=value,
        warmup=0.2,
        duration=1.0,
    )
    assert errors == 0
    assert ops > 100
    assert 0 < p50 <= p99


def test_bench_failover_measurement(bench, kind, ensemble_factory):
    ensemble = ensemble_factory(kind, 3, tick_ms=200)
    (elapsed,) = bench.measure_failover(ensemble, trials=1, budget_s=30)
    assert 0 < elapsed < 30
    assert sorted(ensemble.modes().values()) == ["follower", "follower", "leader"]
