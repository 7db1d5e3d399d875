"""DiskStorage on real files: round trips, segments, snapshots, damage handling."""

from __future__ import annotations

import errno
import logging
import os
import random
import threading
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from paddock.consensus import wal
from paddock.consensus.storage import DiskStorage, FileOps, StorageFailed
from paddock.consensus.types import Entry, EntryKind, HardState, Ready, Snapshot
from paddock.consensus.wal import CorruptLog

# -- an independent model of the storage semantics -------------------------------------


@dataclass
class Model:
    """What DiskStorage promises, written as plainly as possible (a dict of the
    whole log), to compare recovered state against."""

    hs: HardState = field(default_factory=HardState)
    snap: Snapshot | None = None
    log: dict[int, Entry] = field(default_factory=dict)

    def copy(self) -> Model:
        return Model(self.hs, self.snap, dict(self.log))

    @property
    def snap_index(self) -> int:
        return self.snap.index if self.snap else 0

    @property
    def last(self) -> int:
        return max(self.log, default=self.snap_index)

    def term_at(self, i: int) -> int | None:
        if self.snap and i == self.snap.index:
            return self.snap.term
        e = self.log.get(i)
        return e.term if e else None

    def apply(self, op: tuple) -> None:
        kind = op[0]
        if kind == "save":
            _, hs, entries, snap, _sync = op
            if snap is not None:
                self.apply_record(("snap", snap))
            for e in entries:
                self.apply_record(("entry", e))
            if hs is not None:
                self.apply_record(("hs", hs))
        elif kind == "app_snapshot":
            self.apply_record(("app", op[1]))

    def apply_record(self, rec: tuple) -> None:
        kind, value = rec
        if kind == "hs":
            self.hs = value
        elif kind == "entry":
            for i in [i for i in self.log if i >= value.index]:
                del self.log[i]
            self.log[value.index] = value
        elif kind == "snap":
            keep = self.term_at(value.index) == value.term
            self.log = {i: e for i, e in self.log.items() if i > value.index} if keep else {}
            self.snap = value
        elif kind == "app" and value.index > self.snap_index:
            self.log = {i: e for i, e in self.log.items() if i > value.index}
            self.snap = value

    def view(self) -> tuple[HardState, Snapshot | None, list[Entry]]:
        return self.hs, self.snap, [self.log[i] for i in sorted(self.log)]


def op_records(op: tuple) -> list[tuple]:
    """The logical records an op applies, in order (a crash keeps a prefix)."""
    if op[0] == "save":
        _, hs, entries, snap, _sync = op
        recs: list[tuple] = []
        if snap is not None:
            recs.append(("snap", snap))
        recs.extend(("entry", e) for e in entries)
        if hs is not None:
            recs.append(("hs", hs))
        return recs
    if op[0] == "app_snapshot":
        return [("app", op[1])]
    return []


def random_ops(rng: random.Random, n: int, *, reopen: bool = True) -> list[tuple]:
    """A valid sequence of storage calls (validity tracked with a Model)."""
    m = Model()
    term = 1
    ops: list[tuple] = []
    for _ in range(n):
        r = rng.random()
        if r < 0.55:
            lo, hi = m.snap_index + 1, m.last + 1
            start = rng.randint(lo, hi) if rng.random() < 0.4 else hi
            if rng.random() < 0.25:
                term += 1
            count = rng.choice((0, 1, 1, 2, 3, 5, 12))
            size = rng.choice((0, 3, 40, 200, 1500))
            entries = [
                Entry(term, i, rng.randbytes(rng.randint(0, size)), EntryKind(rng.random() < 0.1))
                for i in range(start, start + count)
            ]
            hs = (
                HardState(term, rng.randint(0, 3), rng.randint(0, 50))
                if rng.random() < 0.6
                else None
            )
            op = ("save", hs, entries, None, rng.random() < 0.85)
        elif r < 0.63:
            t = rng.randint(m.snap_index + 1, m.last + 3)
            if rng.random() < 0.5 and m.term_at(t) is not None:
                sterm = m.term_at(t)
            else:
                term += 1
                sterm = term
            snap = Snapshot(t, sterm, (1, 2, 3), rng.randbytes(rng.randint(0, 100)))
            hs = HardState(term, 0, t)
            op = ("save", hs, [], snap, True)
        elif r < 0.8 and m.last > m.snap_index:
            s = rng.randint(m.snap_index + 1, m.last)
            op = ("app_snapshot", Snapshot(s, m.term_at(s), (1, 2), rng.randbytes(30)))
        elif r < 0.88:
            op = ("sync",)
        elif reopen:
            op = ("reopen",)
        else:
            continue
        m.apply(op)
        ops.append(op)
    return ops


def run_op(st: DiskStorage, op: tuple, path: Path, **open_kw) -> DiskStorage:
    if op[0] == "save":
        _, hs, entries, snap, sync = op
        st.save(hs, entries, snap, sync=sync)
    elif op[0] == "app_snapshot":
        st.save_snapshot(op[1])
    elif op[0] == "sync":
        st.sync()
    elif op[0] == "reopen":
        st.close()
        st = DiskStorage.open(path, **open_kw)
    return st


def recovered(path: Path, **open_kw) -> tuple[HardState, Snapshot | None, list[Entry]]:
    with DiskStorage.open(path, **open_kw) as st:
        return st.initial_state()


def seg_files(path: Path) -> list[str]:
    return sorted(n for n in os.listdir(path) if n.endswith(".wal"))


def snap_files(path: Path) -> list[str]:
    return sorted(n for n in os.listdir(path) if n.startswith("snap-"))


def E(term: int, index: int, size: int = 10) -> Entry:
    return Entry(term, index, f"{term}:{index}:".encode().ljust(size, b"."))


# -- basics ------------------------------------------------------------------------


def test_fresh_directory_then_reopen(tmp_path: Path) -> None:
    d = tmp_path / "raft"
    with DiskStorage.open(d) as st:
        assert st.initial_state() == (HardState(), None, [])
        st.save(HardState(1, 1, 0), [E(1, 1), E(1, 2), E(1, 3)], None)
        st.save(HardState(2, 0, 1), [E(2, 2)], None)  # follower truncates from 2
    assert recovered(d) == (HardState(2, 0, 1), None, [E(1, 1), E(2, 2)])
    assert (d / "LOCK").exists() and len(seg_files(d)) == 1


class CountingOps(FileOps):
    def __init__(self) -> None:
        self.calls: list[str] = []

    def write(self, fd: int, data: bytes) -> None:
        self.calls.append("write")
        super().write(fd, data)

    def fsync(self, fd: int) -> None:
        self.calls.append("fsync")
        super().fsync(fd)

    def fsync_dir(self, path: str) -> None:
        self.calls.append("fsync_dir")
        super().fsync_dir(path)


def test_one_write_and_one_fsync_per_save(tmp_path: Path) -> None:
    ops = CountingOps()
    with DiskStorage.open(tmp_path, ops=ops) as st:
        st.save(None, [E(1, 1)], None)  # creates the first segment
        ops.calls.clear()
        st.save(HardState(1, 1, 1), [E(1, i) for i in range(2, 500)], None)
        assert ops.calls == ["write", "fsync"]
        ops.calls.clear()
        st.save(HardState(1, 1, 2), [], None, sync=False)
        assert ops.calls == ["write"]
        st.sync()
        assert ops.calls == ["write", "fsync"]


def test_save_ready_order_and_sync(tmp_path: Path) -> None:
    ops = CountingOps()
    with DiskStorage.open(tmp_path, ops=ops) as st:
        st.save(HardState(1, 0, 0), [E(1, 1), E(1, 2), E(1, 3)], None)
        ops.calls.clear()
        st.save_ready(Ready())  # nothing to persist: no I/O at all
        assert ops.calls == []
        snap = Snapshot(5, 2, (1, 2, 3), b"leader-state")
        st.save_ready(Ready(hard_state=HardState(2, 0, 5), entries=[E(2, 6)], snapshot=snap))
        assert ops.calls == ["write", "fsync"]
    assert recovered(tmp_path) == (HardState(2, 0, 5), snap, [E(2, 6)])


def test_installed_snapshot_keeps_matching_suffix(tmp_path: Path) -> None:
    with DiskStorage.open(tmp_path) as st:
        st.save(None, [E(1, i) for i in range(1, 8)], None)
        st.save(None, [], Snapshot(4, 1, (1,), b"s"))
        assert st.snapshot_index == 4 and st.last_index == 7
    assert recovered(tmp_path)[1:] == (Snapshot(4, 1, (1,), b"s"), [E(1, i) for i in range(5, 8)])


def test_invalid_input_is_refused_without_writing(tmp_path: Path) -> None:
    with DiskStorage.open(tmp_path) as st:
        st.save(HardState(1, 0, 0), [E(1, 1), E(1, 2)], None)
        size = os.path.getsize(tmp_path / seg_files(tmp_path)[0])
        with pytest.raises(ValueError, match="must start after the snapshot"):
            st.save(None, [E(1, 4)], None)  # gap
        with pytest.raises(ValueError, match="not consecutive"):
            st.save(None, [E(1, 3), E(1, 5)], None)
        with pytest.raises(ValueError, match="beyond the last stored index"):
            st.save_snapshot(Snapshot(3, 1))
        with pytest.raises(ValueError, match="the log has 1"):
            st.save_snapshot(Snapshot(2, 7))
        st.save_snapshot(Snapshot(2, 1))
        with pytest.raises(ValueError, match="must start after the snapshot"):
            st.save(None, [E(1, 2)], None)
        with pytest.raises(ValueError, match="not newer"):
            st.save(None, [], Snapshot(1, 1))
        st.save_snapshot(Snapshot(1, 1))  # older than the current one: ignored
        assert os.path.getsize(tmp_path / seg_files(tmp_path)[0]) == size
        st.save(None, [E(1, 3)], None)  # still usable after refusals
    assert recovered(tmp_path) == (HardState(1, 0, 0), Snapshot(2, 1), [E(1, 3)])


def test_second_open_of_same_directory_is_refused(tmp_path: Path) -> None:
    with DiskStorage.open(tmp_path), pytest.raises(BlockingIOError, match="already open"):
        DiskStorage.open(tmp_path)
    DiskStorage.open(tmp_path).close()  # released on close


def test_entries_from_reads_back_from_disk(tmp_path: Path) -> None:
    with DiskStorage.open(tmp_path, segment_bytes=200) as st:
        st.save(None, [E(1, i) for i in range(1, 30)], None)
        for i in range(30, 60):
            st.save(None, [E(2, i)], None)
        assert st.entries_from(25) == [E(1, i) for i in range(25, 30)] + [
            E(2, i) for i in range(30, 60)
        ]
        assert st.entries_from(100) == []
        assert len(seg_files(tmp_path)) > 5


# -- segments and snapshots --------------------------------------------------------------


def test_segments_rotate_and_compaction_deletes_covered_prefix(tmp_path: Path) -> None:
    with DiskStorage.open(tmp_path, segment_bytes=300, keep_snapshots=2) as st:
        for i in range(1, 101):
            st.save(HardState(1, 1, i - 1), [E(1, i, 30)], None)
        segs = seg_files(tmp_path)
        assert len(segs) > 10
        assert segs[0].startswith("00000000000000000001-00000000000000000001")
        st.save_snapshot(Snapshot(40, 1, (1,), b"at40"))
        after40 = seg_files(tmp_path)
        assert after40[-1] == segs[-1] and after40[0] > segs[0]
        assert int(after40[0].split("-")[1][:-4]) <= 41  # entry 41 is still there
        st.save_snapshot(Snapshot(80, 1, (1,), b"at80"))
        # segments are only deleted up to the OLDER retained snapshot (40), so
        # that an unreadable newest snapshot can fall back to it
        assert seg_files(tmp_path) == after40
        st.save_snapshot(Snapshot(90, 1, (1,), b"at90"))
        assert seg_files(tmp_path)[0] > after40[0]
        assert snap_files(tmp_path) == [
            "snap-00000000000000000080.snap",
            "snap-00000000000000000090.snap",
        ]
    hs, snap, entries = recovered(tmp_path)
    assert snap == Snapshot(90, 1, (1,), b"at90")
    assert entries == [E(1, i, 30) for i in range(91, 101)]
    assert hs == HardState(1, 1, 99)


def test_hard_state_survives_deletion_of_its_segment(tmp_path: Path) -> None:
    with DiskStorage.open(tmp_path, segment_bytes=200, keep_snapshots=1) as st:
        st.save(HardState(7, 3, 2), [E(7, 1, 50), E(7, 2, 50)], None)
        for i in range(3, 30):
            st.save(None, [E(7, i, 50)], None)  # no hard state after the first save
        st.save_snapshot(Snapshot(28, 7))
        assert not any(s.startswith("00000000000000000001-") for s in seg_files(tmp_path))
    assert recovered(tmp_path) == (HardState(7, 3, 2), Snapshot(28, 7), [E(7, 29, 50)])


def test_corrupt_newest_snapshot_falls_back_to_older(tmp_path: Path, caplog) -> None:
    with DiskStorage.open(tmp_path, segment_bytes=150, keep_snapshots=2) as st:
        for i in range(1, 41):
            st.save(HardState(1, 0, i), [E(1, i)], None)
        st.save_snapshot(Snapshot(10, 1, (), b"ten"))
        st.save_snapshot(Snapshot(30, 1, (), b"thirty"))
    newest = tmp_path / "snap-00000000000000000030.snap"
    data = bytearray(newest.read_bytes())
    data[20] ^= 0x40
    newest.write_bytes(bytes(data))
    with caplog.at_level(logging.WARNING):
        hs, snap, entries = recovered(tmp_path)
    assert snap == Snapshot(10, 1, (), b"ten")
    assert entries == [E(1, i) for i in range(11, 41)]
    assert hs == HardState(1, 0, 40)
    assert (tmp_path / "snap-00000000000000000030.snap.corrupt").exists()
    assert "snap-00000000000000000030.snap" in caplog.text


def test_only_snapshot_corrupt_after_compaction_is_refused(tmp_path: Path) -> None:
    with DiskStorage.open(tmp_path, segment_bytes=150, keep_snapshots=1) as st:
        for i in range(1, 41):
            st.save(None, [E(1, i)], None)
        st.save_snapshot(Snapshot(30, 1, (), b"thirty"))
    snapfile = tmp_path / "snap-00000000000000000030.snap"
    snapfile.write_bytes(snapfile.read_bytes()[:-1])
    with pytest.raises(CorruptLog, match="no usable snapshot") as info:
        DiskStorage.open(tmp_path)
    assert "snap-00000000000000000030.snap" in str(info.value)
    assert snapfile.exists()  # a refused open changes nothing


def test_corrupt_snapshot_not_needed_when_log_reaches_back_to_start(tmp_path: Path) -> None:
    with DiskStorage.open(tmp_path) as st:
        st.save(None, [E(1, i) for i in range(1, 6)], None)
        st.save_snapshot(Snapshot(3, 1))
    (tmp_path / "snap-00000000000000000003.snap").write_bytes(b"garbage")
    assert recovered(tmp_path) == (HardState(), None, [E(1, i) for i in range(1, 6)])


def test_stale_tmp_snapshot_is_removed(tmp_path: Path) -> None:
    with DiskStorage.open(tmp_path) as st:
        st.save(None, [E(1, 1)], None)
    (tmp_path / "snap-00000000000000000001.snap.tmp").write_bytes(b"half")
    assert recovered(tmp_path) == (HardState(), None, [E(1, 1)])
    assert not list(tmp_path.glob("*.tmp"))


# -- damage ------------------------------------------------------------------------


def fill(tmp_path: Path, n: int = 20, **kw) -> None:
    with DiskStorage.open(tmp_path, **kw) as st:
        for i in range(1, n + 1):
            st.save(HardState(1, 1, i), [E(1, i, 40)], None)


def test_bit_flip_in_middle_of_segment_is_corruption(tmp_path: Path) -> None:
    fill(tmp_path)
    seg = tmp_path / seg_files(tmp_path)[0]
    data = bytearray(seg.read_bytes())
    data[len(data) // 2] ^= 0x10
    seg.write_bytes(bytes(data))
    with pytest.raises(CorruptLog) as info:
        DiskStorage.open(tmp_path)
    msg = str(info.value)
    assert str(seg) in msg and "offset" in msg and "valid record follows" in msg
    assert info.value.path == str(seg) and 0 <= info.value.offset <= len(data) // 2
    assert seg.read_bytes() == bytes(data)  # nothing truncated


def test_bit_flip_in_last_record_is_a_torn_tail(tmp_path: Path, caplog) -> None:
    """Documented limitation: damage to the final record looks exactly like a
    torn final write, so that record is cut off (and a warning logged)."""
    fill(tmp_path)
    seg = tmp_path / seg_files(tmp_path)[0]
    data = bytearray(seg.read_bytes())
    last_hs = len(wal.encode_hard_state(HardState()))
    data[-3] ^= 0x01  # inside the final HardState record
    seg.write_bytes(bytes(data))
    with caplog.at_level(logging.WARNING):
        hs, _, entries = recovered(tmp_path)
    assert hs == HardState(1, 1, 19) and entries[-1] == E(1, 20, 40)
    assert os.path.getsize(seg) == len(data) - last_hs
    assert "torn tail" in caplog.text
    assert recovered(tmp_path)[0] == HardState(1, 1, 19)  # stable on the next open


def test_torn_and_zero_filled_tails_are_cut(tmp_path: Path) -> None:
    fill(tmp_path)
    seg = tmp_path / seg_files(tmp_path)[0]
    good = seg.read_bytes()
    with DiskStorage.open(tmp_path) as st:
        st.save(HardState(1, 1, 99), [E(1, 21, 40)], None)
    full = seg.read_bytes()
    for tail in (full[len(good) : len(good) + 30], bytes(4096)):
        seg.write_bytes(good + tail)
        assert recovered(tmp_path)[0] == HardState(1, 1, 20)
        assert seg.read_bytes() == good


def test_damage_in_earlier_segment_is_corruption_even_at_its_end(tmp_path: Path) -> None:
    fill(tmp_path, 30, segment_bytes=300)
    first = tmp_path / seg_files(tmp_path)[0]
    first.write_bytes(first.read_bytes()[:-5])
    with pytest.raises(CorruptLog, match="not the last one"):
        DiskStorage.open(tmp_path)


def test_missing_segment_is_corruption(tmp_path: Path) -> None:
    fill(tmp_path, 30, segment_bytes=300)
    segs = seg_files(tmp_path)
    os.unlink(tmp_path / segs[2])
    with pytest.raises(CorruptLog, match="missing"):
        DiskStorage.open(tmp_path)


class FullDiskOps(FileOps):
    def __init__(self) -> None:
        self.full = False

    def write(self, fd: int, data: bytes) -> None:
        if self.full:
            os.write(fd, data[: len(data) // 2])  # a partial write, then the error
            raise OSError(errno.ENOSPC, "No space left on device")
        super().write(fd, data)


def test_failed_write_poisons_until_reopen(tmp_path: Path) -> None:
    ops = FullDiskOps()
    st = DiskStorage.open(tmp_path, ops=ops)
    st.save(HardState(1, 0, 0), [E(1, 1), E(1, 2)], None)
    ops.full = True
    with pytest.raises(OSError, match="No space"):
        st.save(HardState(1, 0, 2), [E(1, 3, 500)], None)
    ops.full = False
    with pytest.raises(StorageFailed, match="reopen"):
        st.save(None, [E(1, 3)], None)
    st.close()
    assert recovered(tmp_path) == (HardState(1, 0, 0), None, [E(1, 1), E(1, 2)])


def test_saves_from_threads_are_serialized(tmp_path: Path) -> None:
    with DiskStorage.open(tmp_path, segment_bytes=4096) as st:

        def hammer(k: int) -> None:
            for j in range(200):
                st.save(HardState(k, k, j), [], None, sync=j % 50 == 0)

        threads = [threading.Thread(target=hammer, args=(k,)) for k in range(1, 5)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        hs = st.hard_state
    assert recovered(tmp_path)[0] == hs
    total = b"".join((tmp_path / s).read_bytes() for s in seg_files(tmp_path))
    assert len(wal.decode_stream(total).records) == 800


# -- round trips against the model ---------------------------------------------------------


@settings(
    max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    seed=st.integers(0, 2**32 - 1),
    segment_bytes=st.sampled_from([256, 1024, 8192, 1 << 20]),
    keep=st.sampled_from([1, 2, 3]),
)
def test_random_histories_round_trip(tmp_path_factory, seed, segment_bytes, keep) -> None:
    rng = random.Random(seed)
    path = tmp_path_factory.mktemp("rt")
    kw = {"segment_bytes": segment_bytes, "keep_snapshots": keep}
    ops = random_ops(rng, 60)
    model = Model()
    st_ = DiskStorage.open(path, **kw)
    try:
        for op in ops:
            st_ = run_op(st_, op, path, **kw)
            model.apply(op)
            if op[0] == "reopen":
                assert st_.initial_state() == model.view()
            assert st_.last_index == model.last
        lo = model.snap_index + 1
        assert st_.entries_from(lo) == model.view()[2]
    finally:
        st_.close()
    assert recovered(path, **kw) == model.view()
    assert len(snap_files(path)) <= keep


def test_app_snapshot_at_received_snapshot_index_lets_its_segment_go(tmp_path: Path) -> None:
    kw = {"segment_bytes": 200, "keep_snapshots": 1}
    with DiskStorage.open(tmp_path, **kw) as st:
        st.save(HardState(2, 0, 10), [], Snapshot(10, 2, (1,), b"from-leader" * 10))
        for i in range(11, 30):
            st.save(HardState(2, 0, i), [E(2, i, 40)], None)
        first = seg_files(tmp_path)[0]
        st.save_snapshot(Snapshot(10, 2, (1,), b"app"))  # same index: stored as a file
        assert snap_files(tmp_path) == ["snap-00000000000000000010.snap"]
        assert seg_files(tmp_path)[0] != first
        st.save_snapshot(Snapshot(10, 2, (1,), b"again"))  # already a file: ignored
    hs, snap, entries = recovered(tmp_path, **kw)
    assert snap == Snapshot(10, 2, (1,), b"app")
    assert entries == [E(2, i, 40) for i in range(11, 30)] and hs == HardState(2, 0, 29)


def test_missing_snapshot_files(tmp_path: Path) -> None:
    with DiskStorage.open(tmp_path, segment_bytes=150, keep_snapshots=2) as st:
        for i in range(1, 41):
            st.save(None, [E(1, i)], None)
        st.save_snapshot(Snapshot(10, 1, (), b"ten"))
        st.save_snapshot(Snapshot(30, 1, (), b"thirty"))
    os.unlink(tmp_path / "snap-00000000000000000030.snap")  # newest gone: use the older
    assert recovered(tmp_path)[1:] == (
        Snapshot(10, 1, (), b"ten"),
        [E(1, i) for i in range(11, 41)],
    )
    os.unlink(tmp_path / "snap-00000000000000000010.snap")  # none left, log compacted: refuse
    with pytest.raises(CorruptLog, match="gap"):
        DiskStorage.open(tmp_path)
