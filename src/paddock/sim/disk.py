"""Simulated disk: one node's write-ahead log as a byte image with an fsync line.

Why: the real failure modes of storage are byte-level. The image holds exactly
what the WAL codec (``paddock.consensus.wal``) would write to a file. Bytes
after ``synced_len`` were written but not fsynced: a crash may lose them, keep a
prefix of them (a torn write), or keep them damaged. Recovery decodes the image
with the codec, which must cut a damaged tail off and must refuse (``CorruptLog``)
when bytes that were synced have been damaged ("bit rot"): silently dropping
durable state could let a node forget a vote or an acknowledged entry.

The image is kept as a list of pieces, one encoded record each, so faults can be
aimed: tail damage hits only the last surviving record (earlier unsynced records
are intact, as a sequential writer leaves them), and bit rot hits only a synced
record that has another record after it (damage in the very last record is
indistinguishable from a torn write by any format).
"""

from __future__ import annotations

import random
from dataclasses import dataclass

from paddock.consensus import wal
from paddock.consensus.types import Entry, HardState, Snapshot


@dataclass(frozen=True, slots=True)
class CrashReport:
    lost_bytes: int
    kept_unsynced: int
    damaged_tail: bool


@dataclass(frozen=True, slots=True)
class BitRot:
    offset: int
    mask: int


class SimDisk:
    __slots__ = ("pieces", "synced_pieces", "writes")

    def __init__(self) -> None:
        #: Encoded records in file order; the first ``synced_pieces`` are durable.
        self.pieces: list[bytes] = []
        self.synced_pieces = 0
        self.writes = 0

    # -- writing -------------------------------------------------------------

    def append(
        self,
        *,
        snapshot: Snapshot | None = None,
        entries: list[Entry] | None = None,
        hard_state: HardState | None = None,
        snapshot_mode: wal.SnapshotMode = wal.SnapshotMode.DROP_ALL,
    ) -> int:
        """Buffer one Ready's records (not yet durable). Returns bytes written.

        A Ready's snapshot replaces the node's whole log (``DROP_ALL``, as the
        node's in-memory log does); a compaction keeps the suffix."""
        n = 0
        self.writes += 1
        if snapshot is not None:
            rec = wal.encode_snapshot(snapshot, snapshot_mode)
            self.pieces.append(rec)
            n += len(rec)
        if entries:
            for e in entries:
                rec = wal.encode_entries([e])
                self.pieces.append(rec)
                n += len(rec)
        if hard_state is not None:
            rec = wal.encode_hard_state(hard_state)
            self.pieces.append(rec)
            n += len(rec)
        return n

    def sync(self) -> None:
        self.synced_pieces = len(self.pieces)

    def rewrite(
        self, snapshot: Snapshot | None, hard_state: HardState | None, entries: list[Entry]
    ) -> None:
        """Replace the whole file with a compacted image, atomically and durably
        (write a new file, fsync, rename). Only valid with nothing unsynced."""
        assert self.synced_pieces == len(self.pieces)
        self.pieces = []
        self.append(
            snapshot=snapshot,
            entries=entries,
            hard_state=hard_state,
            snapshot_mode=wal.SnapshotMode.KEEP_SUFFIX,
        )
        self.sync()

    @property
    def size(self) -> int:
        return sum(len(p) for p in self.pieces)

    def image(self) -> bytes:
        return b"".join(self.pieces)

    # -- faults ----------------------------------------------------------------

    def crash(self, rng: random.Random) -> CrashReport:
        """Power loss: unsynced records may vanish, survive, or survive torn/damaged."""
        unsynced = self.pieces[self.synced_pieces :]
        del self.pieces[self.synced_pieces :]
        if not unsynced:
            return CrashReport(0, 0, False)
        total = sum(len(p) for p in unsynced)
        mode = rng.random()
        keep_bytes = 0
        damaged = False
        if mode < 0.2:
            kept: list[bytes] = []
        elif mode < 0.35:
            kept = list(unsynced)
        else:
            # a torn write: a prefix survives, cut at an arbitrary byte
            cut = rng.randrange(total + 1)
            kept = []
            for p in unsynced:
                if cut <= 0:
                    break
                kept.append(p[:cut])
                cut -= len(p)
        if kept and rng.random() < 0.5:
            last = bytearray(kept[-1])
            if last and rng.random() < 0.6:
                for _ in range(rng.randint(1, 3)):
                    last[rng.randrange(len(last))] ^= 1 << rng.randrange(8)
            else:
                last += bytes(rng.getrandbits(8) for _ in range(rng.randint(1, 24)))
            kept[-1] = bytes(last)
            damaged = True
        for p in kept:
            keep_bytes += len(p)
            self.pieces.append(p)
        # Whatever survived is what the file now holds; nothing is pending.
        self.synced_pieces = len(self.pieces)
        return CrashReport(total - keep_bytes, keep_bytes, damaged)

    def rot_synced_bit(self, rng: random.Random) -> BitRot | None:
        """Flip one bit inside a durable record that has a record after it."""
        candidates = self.synced_pieces - 1
        if candidates <= 0:
            return None
        i = rng.randrange(candidates)
        piece = bytearray(self.pieces[i])
        if not piece:
            return None
        pos = rng.randrange(len(piece))
        mask = 1 << rng.randrange(8)
        piece[pos] ^= mask
        self.pieces[i] = bytes(piece)
        offset = sum(len(p) for p in self.pieces[:i]) + pos
        return BitRot(offset, mask)

    def undo_rot(self, rot: BitRot) -> None:
        """Restore from backup: put the flipped bit back."""
        offset = rot.offset
        for i, p in enumerate(self.pieces):
            if offset < len(p):
                b = bytearray(p)
                b[offset] ^= rot.mask
                self.pieces[i] = bytes(b)
                return
            offset -= len(p)
        raise ValueError("bit rot offset beyond the image")

    # -- recovery ----------------------------------------------------------------

    def recover(self) -> wal.Recovered:
        """Decode the image, cut off a torn tail, rebuild the state. Raises
        ``wal.CorruptLog`` on damage before the tail."""
        result = wal.decode_stream(self.image())
        valid = result.valid_length
        if valid < self.size:
            self._truncate(valid)
        return wal.replay(result.records)

    def _truncate(self, length: int) -> None:
        kept: list[bytes] = []
        for p in self.pieces:
            if length <= 0:
                break
            kept.append(p[:length])
            length -= len(p)
        self.pieces = kept
        self.synced_pieces = len(kept)
