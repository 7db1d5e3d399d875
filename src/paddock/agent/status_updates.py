"""Reliable task status updates, as Mesos's ``TaskStatusUpdateManager`` does them.

Each task has one stream of updates in the order they happened.  Only the head of a
stream is outstanding: it is sent, then re-sent after ``retry_min`` seconds, doubling up
to ``retry_max``, until the framework's acknowledgement (by uuid) arrives through the
master; then the next update becomes the head and is sent at once.  Every update is
written to the task's append-only log before this class returns it for sending (the
shell makes the log durable before the bytes leave: see ``DeferredSync``), and every
acknowledgement is logged too, so an agent restart resumes each stream where it was.

This class holds no sockets and no clock: callers pass ``now`` (a monotonic time) and
send what the methods return.  ``next_deadline()`` tells the shell when to call ``due``.
"""

from __future__ import annotations

import heapq
from collections import deque
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from paddock.agent.checkpoint import DeferredSync, append_jsonl, read_jsonl

__all__ = ["TERMINAL_STATES", "StatusUpdateManager", "UpdateLog", "UpdateStream"]

TERMINAL_STATES = frozenset(
    {
        "TASK_FINISHED",
        "TASK_FAILED",
        "TASK_KILLED",
        "TASK_LOST",
        "TASK_ERROR",
        "TASK_DROPPED",
        "TASK_GONE",
        "TASK_GONE_BY_OPERATOR",
    }
)

TaskKey = tuple[str, str]  # (framework id, task id)


class UpdateLog(Protocol):
    """Where streams are made durable (a file per task; a no-op in pure tests)."""

    def append(self, key: TaskKey, record: dict[str, Any]) -> None: ...

    def load(self, key: TaskKey) -> list[dict[str, Any]]: ...

    def remove(self, key: TaskKey) -> None: ...


class FileUpdateLog:
    """``task.updates`` JSON-lines files: ``{"update": TaskStatus}`` / ``{"ack": uuid}``."""

    def __init__(self, path_of: Any, remove: Any, deferred: DeferredSync | None = None) -> None:
        self._path_of = path_of  # (fw, task) -> Path
        self._remove = remove
        self._deferred = deferred  # None: fsync every record at once

    def append(self, key: TaskKey, record: dict[str, Any]) -> None:
        append_jsonl(self._path_of(*key), record, self._deferred)

    def load(self, key: TaskKey) -> list[dict[str, Any]]:
        path: Path = self._path_of(*key)
        return [r for r in read_jsonl(path) if isinstance(r, dict)]

    def remove(self, key: TaskKey) -> None:
        self._remove(*key)


@dataclass
class UpdateStream:
    key: TaskKey
    pending: deque[dict[str, Any]] = field(default_factory=deque)
    #: Every update ever added (acknowledged or not), oldest first: the task's history.
    history: list[dict[str, Any]] = field(default_factory=list)
    acked: set[str] = field(default_factory=set)
    #: When the head was last sent (None: not yet sent since it became head / reconnect).
    sent_at: float | None = None
    next_retry: float | None = None
    interval: float = 0.0
    terminated: bool = False  # the terminal update was acknowledged

    @property
    def head(self) -> dict[str, Any] | None:
        return self.pending[0] if self.pending else None


class StatusUpdateManager:
    def __init__(
        self, log: UpdateLog | None = None, retry_min: float = 10.0, retry_max: float = 600.0
    ) -> None:
        if retry_min <= 0 or retry_max < retry_min:
            raise ValueError("status update retry: need 0 < retry_min <= retry_max")
        self._log = log
        self.retry_min = retry_min
        self.retry_max = retry_max
        self.streams: dict[TaskKey, UpdateStream] = {}
        #: (retry time, sequence, task) per armed head; entries whose stream moved on are
        #: skipped when they surface (so due/next_deadline cost O(log n), not O(tasks)).
        self._timers: list[tuple[float, int, TaskKey]] = []
        self._seq = 0
        self.sending_enabled = False
        self.counters = {"valid_acks": 0, "invalid_acks": 0, "sent": 0, "retried": 0}

    # -- recovery ---------------------------------------------------------------------
    def recover(self, key: TaskKey) -> UpdateStream:
        """Rebuild a stream from its log (after an agent restart)."""
        stream = self.streams.setdefault(key, UpdateStream(key))
        if self._log is None:
            return stream
        for rec in self._log.load(key):
            if "update" in rec and isinstance(rec["update"], dict):
                status = rec["update"]
                uuid = status.get("uuid")
                if uuid in stream.acked or any(p.get("uuid") == uuid for p in stream.pending):
                    continue
                stream.pending.append(status)
                stream.history.append(status)
            elif "ack" in rec:
                uuid = rec["ack"]
                stream.acked.add(uuid)
                if stream.pending and stream.pending[0].get("uuid") == uuid:
                    done = stream.pending.popleft()
                    if done.get("state") in TERMINAL_STATES:
                        stream.terminated = True
        return stream

    # -- the stream -------------------------------------------------------------------
    def update(self, key: TaskKey, status: dict[str, Any], now: float) -> list[dict[str, Any]]:
        """Checkpoint a new update; return what to send now (it, if it became the head)."""
        if not status.get("uuid"):
            raise ValueError("a reliable status update needs a uuid")
        stream = self.streams.setdefault(key, UpdateStream(key))
        if stream.terminated:
            raise ValueError(f"task {key[1]} already has an acknowledged terminal update")
        if self._log is not None:
            self._log.append(key, {"update": status})
        stream.pending.append(status)
        stream.history.append(status)
        if len(stream.pending) == 1:
            return self._send_head(stream, now, first=True)
        return []

    def acknowledge(self, key: TaskKey, uuid: str, now: float) -> tuple[bool, list[dict[str, Any]]]:
        """Apply a framework's acknowledgement. Returns (valid, updates to send now).

        Only the head's uuid is valid (Mesos ignores others: a late duplicate for an
        update already acknowledged, or a bogus uuid)."""
        stream = self.streams.get(key)
        if stream is None or stream.head is None or stream.head.get("uuid") != uuid:
            self.counters["invalid_acks"] += 1
            return False, []
        if self._log is not None:
            self._log.append(key, {"ack": uuid})
        done = stream.pending.popleft()
        stream.acked.add(uuid)
        self.counters["valid_acks"] += 1
        stream.sent_at = stream.next_retry = None
        if done.get("state") in TERMINAL_STATES:
            stream.terminated = True
        if stream.pending:
            return True, self._send_head(stream, now, first=True)
        return True, []

    def is_finished(self, key: TaskKey) -> bool:
        """The terminal update was acknowledged and nothing remains: the stream may go."""
        stream = self.streams.get(key)
        return stream is not None and stream.terminated and not stream.pending

    def remove(self, key: TaskKey) -> None:
        self.streams.pop(key, None)
        if self._log is not None:
            self._log.remove(key)

    # -- sending ----------------------------------------------------------------------
    def _send_head(self, stream: UpdateStream, now: float, first: bool) -> list[dict[str, Any]]:
        if not self.sending_enabled or stream.head is None:
            stream.sent_at = stream.next_retry = None
            return []
        if first:
            stream.interval = self.retry_min
        else:
            stream.interval = min(stream.interval * 2, self.retry_max)
            self.counters["retried"] += 1
        stream.sent_at = now
        stream.next_retry = now + stream.interval
        self._seq += 1
        heapq.heappush(self._timers, (stream.next_retry, self._seq, stream.key))
        self.counters["sent"] += 1
        return [stream.head]

    def _armed(self, when: float, key: TaskKey) -> UpdateStream | None:
        stream = self.streams.get(key)
        if stream is None or stream.next_retry != when:
            return None
        return stream

    def connected(self, now: float) -> list[tuple[TaskKey, dict[str, Any]]]:
        """The master connection is (re)established: send every head now."""
        self.sending_enabled = True
        out: list[tuple[TaskKey, dict[str, Any]]] = []
        for key, stream in self.streams.items():
            out += [(key, s) for s in self._send_head(stream, now, first=True)]
        return out

    def disconnected(self) -> None:
        """No master: stop the retry timers (heads are re-sent on reconnection)."""
        self.sending_enabled = False
        self._timers.clear()
        for stream in self.streams.values():
            stream.sent_at = stream.next_retry = None

    def due(self, now: float) -> list[tuple[TaskKey, dict[str, Any]]]:
        """Heads whose retry time has come (each re-armed with a doubled interval)."""
        out: list[tuple[TaskKey, dict[str, Any]]] = []
        if not self.sending_enabled:
            return out
        while self._timers and self._timers[0][0] <= now:
            when, _, key = heapq.heappop(self._timers)
            stream = self._armed(when, key)
            if stream is not None:
                out += [(key, s) for s in self._send_head(stream, now, first=False)]
        return out

    def next_deadline(self) -> float | None:
        while self._timers:
            when, _, key = self._timers[0]
            if self._armed(when, key) is not None:
                return when
            heapq.heappop(self._timers)
        return None

    def unacknowledged(self) -> list[dict[str, Any]]:
        """Every update not yet acknowledged, stream by stream in order."""
        return [u for s in self.streams.values() for u in s.pending]

    def pending_count(self) -> int:
        return sum(len(s.pending) for s in self.streams.values())
