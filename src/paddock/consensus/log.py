"""The in-memory Raft log of one node: a snapshot point plus the entries after it.

The node keeps every entry since its last snapshot in memory (compaction bounds
this), so it can serve lagging followers without reading the disk. Which of those
entries are durable is tracked by two numbers:

* ``unstable_from``: the first index not yet handed to the shell in a ``Ready``;
* ``persisted``: the last index the shell has confirmed durable (``advance``).

The log never does I/O; the node moves entries to the shell through ``Ready``.
"""

from __future__ import annotations

from paddock.consensus.types import Entry, Snapshot


class RaftLog:
    __slots__ = ("entries", "persisted", "snapshot", "unstable_from")

    def __init__(self, snapshot: Snapshot | None, entries: list[Entry]) -> None:
        self.snapshot = snapshot or Snapshot()
        first = self.snapshot.index + 1
        kept = [e for e in entries if e.index >= first]
        for offset, e in enumerate(kept):
            if e.index != first + offset:
                raise ValueError(f"log entries are not contiguous at index {e.index}")
        self.entries: list[Entry] = kept
        self.persisted = self.last_index
        self.unstable_from = self.last_index + 1

    # -- queries ------------------------------------------------------------------

    @property
    def first_index(self) -> int:
        return self.snapshot.index + 1

    @property
    def last_index(self) -> int:
        return self.snapshot.index + len(self.entries)

    @property
    def last_term(self) -> int:
        return self.entries[-1].term if self.entries else self.snapshot.term

    def term(self, index: int) -> int | None:
        """Term of the entry at ``index``; None when compacted away or beyond the end."""
        off = index - self.snapshot.index
        if off == 0:
            return self.snapshot.term
        if 0 < off <= len(self.entries):
            return self.entries[off - 1].term
        return None

    def match_term(self, index: int, term: int) -> bool:
        return self.term(index) == term

    def slice(self, lo: int, hi: int) -> list[Entry]:
        """Entries with lo <= index < hi (both within [first_index, last_index + 1])."""
        base = self.snapshot.index + 1
        return self.entries[lo - base : hi - base]

    def is_up_to_date(self, last_index: int, last_term: int) -> bool:
        """Raft §5.4.1: is a log ending at (last_index, last_term) at least as up to
        date as ours?"""
        mine = self.last_term
        return last_term > mine or (last_term == mine and last_index >= self.last_index)

    def find_conflict_by_term(self, index: int, term: int) -> int:
        """The largest index <= ``index`` whose term is <= ``term`` (fast log
        backtracking, as etcd-io/raft does)."""
        index = min(index, self.last_index)
        while index > self.snapshot.index:
            t = self.term(index)
            if t is not None and t <= term:
                break
            index -= 1
        return index

    # -- mutations ----------------------------------------------------------------

    def append(self, entries: list[Entry]) -> None:
        """Append entries that continue the log (leader path)."""
        self.entries.extend(entries)

    def truncate_and_append(self, entries: list[Entry]) -> None:
        """Follower path: entries[0] may overwrite a conflicting suffix."""
        first = entries[0].index
        if first <= self.snapshot.index:
            raise ValueError("cannot overwrite compacted entries")
        if first <= self.last_index:
            del self.entries[first - self.snapshot.index - 1 :]
            self.unstable_from = min(self.unstable_from, first)
            self.persisted = min(self.persisted, first - 1)
        self.entries.extend(entries)

    def restore(self, snapshot: Snapshot) -> None:
        """Replace the whole log by a snapshot (a leader sent us one)."""
        self.snapshot = snapshot
        self.entries = []
        self.unstable_from = snapshot.index + 1
        self.persisted = snapshot.index

    def compact(self, snapshot: Snapshot) -> None:
        """Drop entries covered by an application snapshot."""
        if snapshot.index <= self.snapshot.index:
            return
        drop = snapshot.index - self.snapshot.index
        del self.entries[:drop]
        self.snapshot = snapshot

    def take_unstable(self) -> list[Entry]:
        if self.unstable_from > self.last_index:
            return []
        out = self.slice(max(self.unstable_from, self.first_index), self.last_index + 1)
        self.unstable_from = self.last_index + 1
        return out

    def stable_to(self, index: int, term: int) -> None:
        """The shell made entries up to (index, term) durable. Ignored if the log was
        overwritten meanwhile (the entry at ``index`` no longer has ``term``)."""
        if self.term(index) == term and index > self.persisted:
            self.persisted = min(index, self.unstable_from - 1)
