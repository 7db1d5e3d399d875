"""Durable Raft storage on real files: segmented write-ahead log plus snapshots.

Directory layout::

    LOCK                                   flock()ed while open (one process only)
    <seq:020d>-<first:020d>.wal            log segments, replayed in ``seq`` order;
                                           ``first`` = last index + 1 at creation
                                           (informational: a follower may later
                                           overwrite lower indexes in it)
    snap-<index:020d>.snap                 app snapshots (one ``wal`` SNAPSHOT record)
    *.tmp                                  half-written snapshot, deleted on open
    snap-<index:020d>.snap.corrupt         a snapshot that failed its checksum,
                                           set aside on open (never deleted)

Why this shape: a save is ``os.write`` of the encoded records into the active
segment followed by one ``fsync`` (group commit: the server batches a whole
Ready into one call). Snapshots the application makes are written beside the
log (tmp file, fsync, rename, fsync dir) and then whole old segments are
deleted; nothing is ever rewritten in place. Snapshots received from a leader
arrive in a Ready and are written inline as a SNAPSHOT record, so that save is
still one write and one fsync.

Crash safety rules this module keeps:

* A segment other than the last is fsynced before the next one is created and
  must decode completely; only the last segment may end in a torn write, which
  is cut off (and the truncation fsynced) on open. Anything else is
  ``CorruptLog`` naming the file and offset.
* Segments are only deleted as a prefix, one ``fsync(dir)`` per deletion, so a
  crash mid-compaction leaves a prefix-trimmed, still contiguous sequence.
* A segment is deleted only when every entry and every inline snapshot in it is
  at or below the *oldest retained* snapshot file (``keep_snapshots`` files are
  kept, default 2), so a newest snapshot file that turns out unreadable can fall
  back to the previous one. If the segment holds the latest HardState record,
  that state is first rewritten to the active segment and fsynced.
* After any I/O error during a write the object refuses further use
  (``StorageFailed``): after a failed write or fsync the file's content is
  unknown (see "fsyncgate"); reopening recovers from what is on disk.

Threading: ``save``/``save_snapshot``/``entries_from``/``close`` take an internal
lock, so calls from several threads (e.g. ``asyncio.to_thread``) are serialized,
never interleaved. Throughput comes from batching, not from concurrent calls.
"""

from __future__ import annotations

import bisect
import errno
import fcntl
import logging
import os
import threading
from pathlib import Path

from paddock.consensus import wal
from paddock.consensus.storage_files import (
    FileOps,
    Scan,
    Segment,
    scan_directory,
    segment_name,
    snapshot_name,
)
from paddock.consensus.types import Entry, HardState, Ready, Snapshot
from paddock.consensus.wal import CorruptLog, SnapshotMode

__all__ = ["CorruptLog", "DiskStorage", "FileOps", "StorageFailed"]

log = logging.getLogger(__name__)

DEFAULT_SEGMENT_BYTES = 64 * 1024 * 1024


class StorageFailed(RuntimeError):
    """An earlier write or fsync failed; the on-disk state is unknown until reopened."""


class DiskStorage:
    """Raft's persistent state in a directory. Create with ``DiskStorage.open``."""

    def __init__(
        self,
        root: str,
        ops: FileOps,
        scan: Scan,
        *,
        segment_bytes: int,
        keep_snapshots: int,
        lock_fd: int,
    ) -> None:
        self._root = root
        self._ops = ops
        self._segment_bytes = segment_bytes
        self._keep_snapshots = keep_snapshots
        self._lock_fd = lock_fd
        self._mutex = threading.Lock()
        self._failed: str | None = None
        self._closed = False

        rec = scan.recovered
        self._initial: wal.Recovered | None = rec
        self._hard_state = rec.hard_state
        self._hs_seq = scan.hs_seq
        self._snap_index = rec.snapshot.index if rec.snapshot else 0
        self._snap_term = rec.snapshot.term if rec.snapshot else 0
        self._last_index = self._snap_index + len(rec.entries)
        # The log's shape without its data: term runs (start index, term).
        self._run_starts: list[int] = []
        self._run_terms: list[int] = []
        self._extend_runs(rec.entries)
        self._snapshot_files = list(scan.snapshot_files)
        self._segments = scan.segments
        self._fd: int | None = None
        self._unsynced = False
        if self._segments:
            last = self._segments[-1]
            self._fd = ops.open_append(os.path.join(root, last.name), create=False)

    # -- opening -------------------------------------------------------------

    @classmethod
    def open(
        cls,
        path: str | Path,
        *,
        segment_bytes: int = DEFAULT_SEGMENT_BYTES,
        keep_snapshots: int = 2,
        ops: FileOps | None = None,
    ) -> DiskStorage:
        """Create ``path`` or recover the state in it.

        Raises ``CorruptLog`` for damage a crash cannot explain (the directory
        is left untouched then) and ``BlockingIOError`` if another process has
        it open.
        """
        if segment_bytes < 1:
            raise ValueError("segment_bytes must be positive")
        if keep_snapshots < 1:
            raise ValueError("keep_snapshots must be at least 1")
        ops = ops if ops is not None else FileOps()
        root = os.fspath(path)
        ops.makedirs(root)
        lock_fd = os.open(os.path.join(root, "LOCK"), os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
        try:
            try:
                fcntl.flock(lock_fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except OSError as exc:
                if exc.errno in (errno.EAGAIN, errno.EACCES):
                    raise BlockingIOError(
                        exc.errno, f"{root} is already open (by another DiskStorage or process)"
                    ) from None
                raise
            found = scan_directory(ops, root)
            cls._repair(ops, root, found)
            return cls(
                root,
                ops,
                found,
                segment_bytes=segment_bytes,
                keep_snapshots=keep_snapshots,
                lock_fd=lock_fd,
            )
        except BaseException:
            os.close(lock_fd)
            raise

    @staticmethod
    def _repair(ops: FileOps, root: str, scan: Scan) -> None:
        """Apply what recovery decided: cut the torn tail, clear leftovers."""
        for w in scan.warnings:
            log.warning("%s", w)
        dir_changed = False
        for name in scan.stale_tmp:
            ops.unlink(os.path.join(root, name))
            dir_changed = True
        for name in scan.bad_snapshot_files:
            log.warning("setting aside unreadable snapshot %s", name)
            ops.rename(os.path.join(root, name), os.path.join(root, name + ".corrupt"))
            dir_changed = True
        if dir_changed:
            ops.fsync_dir(root)
        if scan.torn_tail is not None:
            name, valid, size, reason = scan.torn_tail
            log.warning(
                "%s: cutting torn tail at offset %d (%d bytes dropped: %s)",
                os.path.join(root, name),
                valid,
                size - valid,
                reason,
            )
            fd = ops.open_append(os.path.join(root, name), create=False)
            try:
                ops.truncate(fd, valid)
                ops.fsync(fd)
            finally:
                ops.close(fd)

    # -- reading ---------------------------------------------------------------

    def initial_state(self) -> tuple[HardState, Snapshot | None, list[Entry]]:
        """State to construct the Raft node with: (hard state, snapshot, entries
        after the snapshot). The first call hands over what recovery read."""
        with self._mutex:
            rec = self._initial
            self._initial = None
            if rec is None:
                self._check_usable()
                rec = scan_directory(self._ops, self._root).recovered
            return rec.hard_state, rec.snapshot, rec.entries

    def entries_from(self, index: int) -> list[Entry]:
        """Entries with ``index`` or above, read back from disk (for tooling and
        tests; the Raft node serves followers from memory)."""
        with self._mutex:
            self._check_usable()
            rec = scan_directory(self._ops, self._root).recovered
            return [e for e in rec.entries if e.index >= index]

    @property
    def path(self) -> str:
        return self._root

    @property
    def last_index(self) -> int:
        return self._last_index

    @property
    def snapshot_index(self) -> int:
        return self._snap_index

    @property
    def hard_state(self) -> HardState:
        return self._hard_state

    def segment_names(self) -> list[str]:
        return [s.name for s in self._segments]

    # -- writing -----------------------------------------------------------------

    def save_ready(self, ready: Ready) -> None:
        """Persist a Ready's snapshot, entries and hard state (one fsync iff
        ``ready.must_sync``)."""
        if ready.snapshot is None and not ready.entries and ready.hard_state is None:
            return
        self.save(ready.hard_state, ready.entries, ready.snapshot, sync=ready.must_sync)

    def save(
        self,
        hard_state: HardState | None,
        entries: list[Entry],
        snapshot: Snapshot | None,
        *,
        sync: bool = True,
    ) -> None:
        """Append ``snapshot`` (one received from a leader), then ``entries``
        (replacing stored entries from ``entries[0].index`` on), then
        ``hard_state``: one write, plus one fsync when ``sync``. Durable when it
        returns with ``sync=True``.

        Raises ``ValueError`` (nothing written) for entries that would leave a
        gap, are not consecutive, or fall at/below the snapshot, and for a
        snapshot older than the current one.
        """
        with self._mutex:
            self._check_usable()
            parts: list[bytes] = []
            snap_index = self._snap_index
            last = self._last_index
            mode = SnapshotMode.AUTO
            if snapshot is not None:
                if snapshot.index <= snap_index:
                    raise ValueError(
                        f"snapshot at {snapshot.index} is not newer than the stored one "
                        f"at {snap_index}"
                    )
                keep = self._term_at(snapshot.index) == snapshot.term
                mode = SnapshotMode.KEEP_SUFFIX if keep else SnapshotMode.DROP_ALL
                parts.append(wal.encode_snapshot(snapshot, mode))
                snap_index = snapshot.index
                last = last if keep else snap_index
            if entries:
                first = entries[0].index
                if not snap_index < first <= last + 1:
                    raise ValueError(
                        f"entries start at {first}; they must start after the snapshot "
                        f"({snap_index}) and at most at last index + 1 ({last + 1})"
                    )
                if entries[-1].index != first + len(entries) - 1:
                    raise ValueError(
                        f"entries are not consecutive ({len(entries)} entries span "
                        f"{first}..{entries[-1].index})"
                    )
                parts.append(wal.encode_entries(entries))
            if hard_state is not None:
                parts.append(wal.encode_hard_state(hard_state))
            if not parts:
                if sync and self._unsynced:
                    self._sync_active()
                return
            data = b"".join(parts) if len(parts) > 1 else parts[0]
            self._append(data, sync)

            seg = self._segments[-1]
            if snapshot is not None:
                if mode == SnapshotMode.KEEP_SUFFIX:
                    self._drop_runs_through(snapshot.index)
                else:
                    self._run_starts.clear()
                    self._run_terms.clear()
                    self._last_index = snapshot.index
                self._snap_index, self._snap_term = snapshot.index, snapshot.term
                seg.max_snap = max(seg.max_snap, snapshot.index)
            if entries:
                self._truncate_runs(entries[0].index)
                self._extend_runs(entries)
                seg.max_entry = max(seg.max_entry, entries[-1].index)
            if hard_state is not None:
                self._hard_state = hard_state
                self._hs_seq = seg.seq
            self._initial = None

    def sync(self) -> None:
        """Make every earlier ``save(..., sync=False)`` durable."""
        with self._mutex:
            self._check_usable()
            if self._unsynced:
                self._sync_active()

    def save_snapshot(self, snap: Snapshot) -> None:
        """Durably store an application snapshot covering entries up to
        ``snap.index``, then delete log segments it makes unnecessary.

        ``snap.index`` must be in the log with ``snap.term`` (the application
        snapshots applied, hence stored, entries). A snapshot older than the
        current one, or one already stored as a file, is ignored; one at the
        index of a snapshot received from a leader is stored as a file (so the
        segment holding the received one can eventually be deleted).
        """
        with self._mutex:
            self._check_usable()
            if snap.index < self._snap_index or snap.index in self._snapshot_files:
                return
            if snap.index == 0:
                return
            term = self._term_at(snap.index)
            if term is None:
                raise ValueError(
                    f"snapshot index {snap.index} is beyond the last stored index "
                    f"{self._last_index}"
                )
            if term != snap.term:
                raise ValueError(
                    f"snapshot says entry {snap.index} has term {snap.term}, the log has {term}"
                )
            if self._unsynced:
                # The snapshot must not become durable before the entries it
                # covers: otherwise a crash could pair it with an older suffix.
                self._sync_active()
            ops, root = self._ops, self._root
            name = snapshot_name(snap.index)
            tmp = os.path.join(root, name + ".tmp")
            try:
                fd = ops.open_new(tmp)
                try:
                    ops.write(fd, wal.encode_snapshot(snap, SnapshotMode.KEEP_SUFFIX))
                    ops.fsync(fd)
                finally:
                    ops.close(fd)
                ops.rename(tmp, os.path.join(root, name))
                ops.fsync_dir(root)
            except BaseException as exc:
                self._fail(f"writing snapshot {name}: {exc!r}")
                raise
            self._drop_runs_through(snap.index)
            self._snap_index, self._snap_term = snap.index, snap.term
            self._snapshot_files.append(snap.index)
            self._initial = None
            self._compact()

    def _compact(self) -> None:
        ops, root = self._ops, self._root
        try:
            while len(self._snapshot_files) > self._keep_snapshots:
                old = self._snapshot_files.pop(0)
                ops.unlink(os.path.join(root, snapshot_name(old)))
                ops.fsync_dir(root)
            floor = self._snapshot_files[0]
            doomed = 0
            for seg in self._segments[:-1]:  # never the active segment
                if seg.max_entry > floor or seg.max_snap > floor:
                    break
                doomed += 1
            if not doomed:
                return
            doomed_seqs = {s.seq for s in self._segments[:doomed]}
            if self._hs_seq in doomed_seqs:
                # The latest HardState must outlive the segment it was written to.
                self._append(wal.encode_hard_state(self._hard_state), True)
                self._hs_seq = self._segments[-1].seq
            while doomed:
                seg = self._segments[0]
                ops.unlink(os.path.join(root, seg.name))
                ops.fsync_dir(root)  # deletions stay a prefix whatever the crash
                del self._segments[0]
                doomed -= 1
        except BaseException as exc:
            self._fail(f"compacting: {exc!r}")
            raise

    def close(self) -> None:
        """Sync anything unsynced and release the directory. Idempotent; after a
        failure it only releases resources."""
        with self._mutex:
            if self._closed:
                return
            self._closed = True
            try:
                if self._fd is not None:
                    try:
                        if self._unsynced and self._failed is None:
                            self._ops.fsync(self._fd)
                    finally:
                        fd, self._fd = self._fd, None
                        self._ops.close(fd)
            finally:
                os.close(self._lock_fd)

    def __enter__(self) -> DiskStorage:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- internals -----------------------------------------------------------------

    def _check_usable(self) -> None:
        if self._closed:
            raise StorageFailed("storage is closed")
        if self._failed is not None:
            raise StorageFailed(f"an earlier write failed ({self._failed}); reopen to recover")

    def _fail(self, why: str) -> None:
        self._failed = why

    def _sync_active(self) -> None:
        assert self._fd is not None
        try:
            self._ops.fsync(self._fd)
        except BaseException as exc:
            self._fail(f"fsync: {exc!r}")
            raise
        self._unsynced = False

    def _append(self, data: bytes, sync: bool) -> None:
        """Write ``data`` to the active segment (rotating first if it would grow
        past ``segment_bytes``), then fsync if ``sync``."""
        ops = self._ops
        try:
            if self._fd is None or (
                self._segments[-1].size > 0
                and self._segments[-1].size + len(data) > self._segment_bytes
            ):
                self._rotate()
            assert self._fd is not None
            ops.write(self._fd, data)
            self._segments[-1].size += len(data)
            if sync:
                ops.fsync(self._fd)
                self._unsynced = False
            else:
                self._unsynced = True
        except BaseException as exc:
            self._fail(f"appending {len(data)} bytes: {exc!r}")
            raise

    def _rotate(self) -> None:
        ops = self._ops
        if self._fd is not None:
            if self._unsynced:
                ops.fsync(self._fd)
                self._unsynced = False
            fd, self._fd = self._fd, None
            ops.close(fd)
        seq = self._segments[-1].seq + 1 if self._segments else 1
        name = segment_name(seq, self._last_index + 1)
        self._fd = ops.open_append(os.path.join(self._root, name), create=True)
        self._segments.append(Segment(seq, name))
        ops.fsync_dir(self._root)

    def _term_at(self, index: int) -> int | None:
        if index == self._snap_index:
            return self._snap_term
        if index < self._snap_index or index > self._last_index:
            return None
        k = bisect.bisect_right(self._run_starts, index) - 1
        return self._run_terms[k]

    def _truncate_runs(self, first: int) -> None:
        """Forget entries from ``first`` on."""
        k = bisect.bisect_left(self._run_starts, first)
        del self._run_starts[k:]
        del self._run_terms[k:]
        self._last_index = min(self._last_index, first - 1)

    def _extend_runs(self, entries: list[Entry]) -> None:
        starts, terms = self._run_starts, self._run_terms
        last_term = terms[-1] if terms else None
        for e in entries:
            if e.term != last_term:
                starts.append(e.index)
                terms.append(e.term)
                last_term = e.term
        if entries:
            self._last_index = entries[-1].index

    def _drop_runs_through(self, index: int) -> None:
        """Forget entries at or below ``index`` (they are in a snapshot now)."""
        starts, terms = self._run_starts, self._run_terms
        k = bisect.bisect_right(starts, index)
        if k > 0 and self._last_index > index and (k == len(starts) or starts[k] > index + 1):
            self._run_starts = [index + 1, *starts[k:]]
            self._run_terms = [terms[k - 1], *terms[k:]]
        else:
            self._run_starts = starts[k:]
            self._run_terms = terms[k:]
        self._last_index = max(self._last_index, index)
