"""On-disk side of ``DiskStorage``: file-system calls, file names, and the
read-only recovery scan.

Split from ``storage.py`` so that the scan (which decides what a directory
holds, without changing it) can be read on its own: ``storage.py`` then acts on
the scan's verdict (cuts a torn tail, sets damaged snapshots aside) and owns
all writing.
"""

from __future__ import annotations

import itertools
import os
import re
from dataclasses import dataclass, field

from paddock.consensus import wal
from paddock.consensus.types import Entry, HardState, Snapshot
from paddock.consensus.wal import CorruptLog

__all__ = ["FileOps", "Scan", "Segment", "scan_directory", "segment_name", "snapshot_name"]

SEGMENT_RE = re.compile(r"^(\d{20})-(\d{20})\.wal$")
SNAPSHOT_RE = re.compile(r"^snap-(\d{20})\.snap$")


class FileOps:
    """The file-system calls ``DiskStorage`` makes, in one replaceable object.

    Production uses this class as is; crash tests substitute a subclass that
    fails at a chosen call and models what a power cut would leave on disk.
    """

    def makedirs(self, path: str) -> None:
        os.makedirs(path, exist_ok=True)

    def listdir(self, path: str) -> list[str]:
        return sorted(os.listdir(path))

    def read_file(self, path: str) -> bytes:
        with open(path, "rb") as f:
            return f.read()

    def open_append(self, path: str, *, create: bool) -> int:
        flags = os.O_WRONLY | os.O_APPEND | os.O_CLOEXEC
        if create:
            flags |= os.O_CREAT | os.O_EXCL
        return os.open(path, flags, 0o644)

    def open_new(self, path: str) -> int:
        return os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC, 0o644)

    def write(self, fd: int, data: bytes) -> None:
        view = memoryview(data)
        while view:
            n = os.write(fd, view)
            view = view[n:]

    def fsync(self, fd: int) -> None:
        os.fsync(fd)

    def fsync_dir(self, path: str) -> None:
        fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)

    def truncate(self, fd: int, length: int) -> None:
        os.ftruncate(fd, length)

    def rename(self, src: str, dst: str) -> None:
        os.rename(src, dst)

    def unlink(self, path: str) -> None:
        os.unlink(path)

    def close(self, fd: int) -> None:
        os.close(fd)


@dataclass(slots=True)
class Segment:
    seq: int
    name: str
    size: int = 0
    #: Highest entry index / inline snapshot index written into this segment.
    max_entry: int = 0
    max_snap: int = 0


@dataclass(slots=True)
class Scan:
    """What is on disk, decoded, before anything is changed."""

    recovered: wal.Recovered
    segments: list[Segment]
    snapshot_files: list[int]  # valid snapshot file indexes, ascending
    bad_snapshot_files: list[str]
    stale_tmp: list[str]
    torn_tail: tuple[str, int, int, str] | None  # name, valid length, file size, reason
    hs_seq: int | None  # segment holding the latest HardState record
    warnings: list[str] = field(default_factory=list)


def segment_name(seq: int, first: int) -> str:
    return f"{seq:020d}-{first:020d}.wal"


def snapshot_name(index: int) -> str:
    return f"snap-{index:020d}.snap"


def _read_snapshot_file(ops: FileOps, path: str, index: int) -> Snapshot:
    """Decode a snapshot file; raise ``CorruptLog`` unless it is exactly one
    intact SNAPSHOT record for ``index``."""
    data = ops.read_file(path)
    try:
        result = wal.decode_stream(data)
    except CorruptLog as exc:
        raise exc.with_path(path) from None
    if result.torn:
        raise CorruptLog(result.valid_length, f"snapshot file damaged: {result.tail_reason}", path)
    recs = result.records
    if len(recs) != 1 or not isinstance(recs[0], wal.SnapshotRecord):
        raise CorruptLog(0, f"expected one snapshot record, found {len(recs)} records", path)
    snap = recs[0].snapshot
    if snap.index != index:
        raise CorruptLog(0, f"file name says index {index}, content says {snap.index}", path)
    return snap


def scan_directory(ops: FileOps, root: str) -> Scan:
    names = ops.listdir(root)
    stale_tmp = [n for n in names if n.endswith(".tmp")]

    # Snapshot files, newest first; undecodable ones are set aside.
    snap_names = sorted(
        ((int(m.group(1)), n) for n in names if (m := SNAPSHOT_RE.match(n))), reverse=True
    )
    valid_snaps: list[Snapshot] = []
    bad: list[str] = []
    problems: list[str] = []
    for index, name in snap_names:
        try:
            valid_snaps.append(_read_snapshot_file(ops, os.path.join(root, name), index))
        except CorruptLog as exc:
            bad.append(name)
            problems.append(str(exc))

    # Segments in sequence order; the sequence must have no holes.
    segs = sorted((int(m.group(1)), n) for n in names if (m := SEGMENT_RE.match(n)))
    for (a, name_a), (b, name_b) in itertools.pairwise(segs):
        if b != a + 1:
            raise CorruptLog(
                -1,
                f"log segment sequence jumps from {a} ({name_a}) to {b} ({name_b}): "
                f"segment file(s) missing",
                root,
            )
    records: list[wal.Record] = []
    segments: list[Segment] = []
    torn_tail = None
    hs_seq = None
    for i, (seq, name) in enumerate(segs):
        path = os.path.join(root, name)
        data = ops.read_file(path)
        try:
            result = wal.decode_stream(data)
        except CorruptLog as exc:
            raise exc.with_path(path) from None
        if result.torn:
            if i != len(segs) - 1:
                raise CorruptLog(
                    result.valid_length,
                    f"damaged record ({result.tail_reason}) in a segment that is not the "
                    f"last one; earlier segments are fsynced before the next is created",
                    path,
                )
            torn_tail = (name, result.valid_length, len(data), result.tail_reason)
        seg = Segment(seq, name, result.valid_length)
        for rec in result.records:
            if isinstance(rec, Entry):
                if rec.index > seg.max_entry:
                    seg.max_entry = rec.index
            elif isinstance(rec, HardState):
                hs_seq = seq
            elif rec.snapshot.index > seg.max_snap:
                seg.max_snap = rec.snapshot.index
        segments.append(seg)
        records.extend(result.records)

    # Replay on the newest snapshot that the remaining segments connect to.
    candidates: list[Snapshot | None] = [*valid_snaps]
    if not snap_names:
        candidates.append(None)
    elif len(valid_snaps) < len(snap_names):
        # A damaged snapshot might still be unnecessary if the log reaches back to 1.
        candidates.append(None)
    recovered = None
    for cand in candidates:
        try:
            recovered = wal.replay(records, wal.LogState(snapshot=cand))
        except CorruptLog as exc:
            what = f"snapshot {cand.index}" if cand is not None else "an empty log"
            problems.append(f"replaying the segments on {what}: {exc.reason}")
            continue
        break
    if recovered is None:
        raise CorruptLog(-1, "no usable snapshot + log combination: " + "; ".join(problems), root)
    return Scan(
        recovered=recovered,
        segments=segments,
        snapshot_files=sorted(s.index for s in valid_snaps),
        bad_snapshot_files=bad,
        stale_tmp=stale_tmp,
        torn_tail=torn_tail,
        hs_seq=hs_seq,
        warnings=problems,
    )
