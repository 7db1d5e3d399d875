"""Session logic: ids, passwords, timeout negotiation, liveness and expiry.

Sans-IO: callers pass the time (milliseconds of a monotonic clock) and the
random source; nothing here reads a clock or touches a socket.

Why this shape. Sessions are *replicated* (CreateSession/CloseSession go
through the log), so any server can resume a session whose client reconnects
to it. Liveness is *local* soft state: every server tracks when it last heard
from each session; only the leader acts on it (it proposes CloseSession for an
expired session). Followers tell the leader about activity of the sessions
connected to them with a periodic replicated "touch" entry, and a new leader
gives every session a fresh full timeout (as ZooKeeper's new leader does), so
a leader change never expires a live session.
"""

from __future__ import annotations

import hashlib
import random
import struct
from dataclasses import dataclass

PASSWORD_LEN = 16
_SID = struct.Struct(">q")


def negotiate_timeout(requested: int, min_timeout: int, max_timeout: int) -> int:
    """ZooKeeper's rule: the client's wish clamped to [min, max] (2..20 x tickTime)."""
    return max(min_timeout, min(max_timeout, requested))


def initial_session_id(server_id: int, now_ms: int) -> int:
    """ZooKeeper's ``SessionTrackerImpl.initializeNextSession``: the wall clock in
    the middle bits, the server id in the top byte, so ids from different servers
    and restarts do not collide. Returned as a signed 64-bit value."""
    value = ((now_ms << 24) & 0xFFFFFFFFFFFFFFFF) >> 8
    value |= (server_id & 0xFF) << 56
    value &= 0xFFFFFFFFFFFFFFFF
    return value - (1 << 64) if value >= 1 << 63 else value


def session_password(session_id: int, secret: bytes) -> bytes:
    """16-byte password derived from the id and this ensemble's secret.

    The password is replicated with the session (in the CreateSession
    transaction), so any server can check it on reconnect; deriving it also
    means no randomness is needed on the apply path.
    """
    return hashlib.sha256(secret + _SID.pack(session_id)).digest()[:PASSWORD_LEN]


def new_secret(rng: random.Random) -> bytes:
    return bytes(rng.getrandbits(8) for _ in range(16))


@dataclass(slots=True)
class SessionInfo:
    """What every replica knows of a session (from the log)."""

    session_id: int
    timeout_ms: int
    password: bytes


class SessionIdAllocator:
    """Hands out fresh session ids for one server."""

    def __init__(self, server_id: int, now_ms: int) -> None:
        self._next = initial_session_id(server_id, now_ms)

    def next_id(self) -> int:
        sid = self._next
        self._next += 1
        return sid


class SessionTracker:
    """Replicated session table + this server's view of each session's liveness.

    ``add``/``remove`` follow the log (called when CreateSession/CloseSession
    entries are applied). ``touch`` records activity. ``expired`` (leader only)
    lists sessions silent for longer than their timeout that have not been
    proposed for closing yet.
    """

    def __init__(self) -> None:
        self.sessions: dict[int, SessionInfo] = {}
        self._deadline: dict[int, int] = {}
        self._closing: set[int] = set()
        #: Sessions active on this server since the last ``take_touched``.
        self._touched: set[int] = set()

    def __contains__(self, session_id: int) -> bool:
        return session_id in self.sessions

    def __len__(self) -> int:
        return len(self.sessions)

    def get(self, session_id: int) -> SessionInfo | None:
        return self.sessions.get(session_id)

    def add(self, info: SessionInfo, now_ms: int) -> None:
        self.sessions[info.session_id] = info
        self._deadline[info.session_id] = now_ms + info.timeout_ms

    def remove(self, session_id: int) -> None:
        self.sessions.pop(session_id, None)
        self._deadline.pop(session_id, None)
        self._closing.discard(session_id)
        self._touched.discard(session_id)

    def touch(self, session_id: int, now_ms: int, *, local: bool = True) -> bool:
        """Record activity; False if the session is unknown or being closed."""
        info = self.sessions.get(session_id)
        if info is None or session_id in self._closing:
            return False
        deadline = now_ms + info.timeout_ms
        if deadline > self._deadline.get(session_id, 0):
            self._deadline[session_id] = deadline
        if local:
            self._touched.add(session_id)
        return True

    def take_touched(self) -> list[int]:
        """Sessions active here since the last call (to tell the leader)."""
        out = sorted(self._touched)
        self._touched.clear()
        return out

    def refresh_all(self, now_ms: int) -> None:
        """Give every session a full timeout from now (on becoming leader)."""
        for sid, info in self.sessions.items():
            self._deadline[sid] = now_ms + info.timeout_ms
        self._closing.clear()

    def expired(self, now_ms: int) -> list[int]:
        """Sessions past their deadline, each returned once until refreshed."""
        out = [
            sid
            for sid, deadline in self._deadline.items()
            if deadline < now_ms and sid not in self._closing
        ]
        self._closing.update(out)
        return sorted(out)

    def is_closing(self, session_id: int) -> bool:
        return session_id in self._closing

    def mark_closing(self, session_id: int) -> None:
        if session_id in self.sessions:
            self._closing.add(session_id)

    # -- snapshot support ---------------------------------------------------------
    def encode(self) -> bytes:
        parts = [struct.pack(">I", len(self.sessions))]
        for sid in sorted(self.sessions):
            info = self.sessions[sid]
            parts.append(struct.pack(">qiB", sid, info.timeout_ms, len(info.password)))
            parts.append(info.password)
        return b"".join(parts)

    def restore(self, data: bytes, now_ms: int) -> int:
        """Replace the table from ``encode`` output; returns the bytes consumed."""
        self.sessions.clear()
        self._deadline.clear()
        self._closing.clear()
        self._touched.clear()
        (n,) = struct.unpack_from(">I", data, 0)
        pos = 4
        for _ in range(n):
            sid, timeout, plen = struct.unpack_from(">qiB", data, pos)
            pos += 13
            password = bytes(data[pos : pos + plen])
            pos += plen
            self.add(SessionInfo(sid, timeout, password), now_ms)
        return pos
