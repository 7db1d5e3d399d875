"""Session core: negotiation, ids, passwords, liveness and expiry (pure)."""

from __future__ import annotations

import random

from paddock.keeper.session import (
    SessionIdAllocator,
    SessionInfo,
    SessionTracker,
    initial_session_id,
    negotiate_timeout,
    new_secret,
    session_password,
)


def test_negotiate_timeout_clamps_to_tick_range():
    tick = 2000
    assert negotiate_timeout(1, 2 * tick, 20 * tick) == 4000
    assert negotiate_timeout(10_000, 2 * tick, 20 * tick) == 10_000
    assert negotiate_timeout(10**9, 2 * tick, 20 * tick) == 40_000


def test_session_ids_carry_the_server_id_and_are_unique():
    a = SessionIdAllocator(1, 1_700_000_000_000)
    b = SessionIdAllocator(2, 1_700_000_000_000)
    ids = [a.next_id() for _ in range(3)] + [b.next_id() for _ in range(3)]
    assert len(set(ids)) == 6
    assert (ids[0] >> 56) & 0xFF == 1 and (ids[3] >> 56) & 0xFF == 2
    assert initial_session_id(200, 5) < 0  # top bit set: still a signed 64-bit value
    assert -(2**63) <= initial_session_id(255, 2**41) < 2**63


def test_passwords_are_stable_and_distinct():
    secret = new_secret(random.Random(1))
    assert len(session_password(5, secret)) == 16
    assert session_password(5, secret) == session_password(5, secret)
    assert session_password(5, secret) != session_password(6, secret)


def test_tracker_expiry_touch_and_refresh():
    t = SessionTracker()
    t.add(SessionInfo(1, 1000, b"p"), now_ms=0)
    t.add(SessionInfo(2, 5000, b"q"), now_ms=0)
    assert t.expired(500) == []
    assert t.touch(1, 800)
    assert t.expired(1500) == []  # touched at 800: deadline 1800
    assert t.expired(1900) == [1]
    assert t.expired(2000) == []  # reported once
    assert t.is_closing(1) and not t.touch(1, 2000)
    t.refresh_all(10_000)  # a new leader gives everyone a full timeout again
    assert t.expired(10_500) == []
    assert t.expired(11_001) == [1]
    t.remove(1)
    assert 1 not in t and len(t) == 1


def test_touched_sessions_are_reported_once():
    t = SessionTracker()
    t.add(SessionInfo(1, 1000, b"p"), 0)
    t.add(SessionInfo(2, 1000, b"p"), 0)
    t.touch(2, 10)
    t.touch(1, 10)
    t.touch(3, 10)  # unknown: ignored
    t.touch(1, 20, local=False)
    assert t.take_touched() == [1, 2]
    assert t.take_touched() == []


def test_encode_restore_round_trip():
    t = SessionTracker()
    t.add(SessionInfo(-5, 4000, b"x" * 16), 0)
    t.add(SessionInfo(7, 6000, b"y" * 16), 0)
    u = SessionTracker()
    data = t.encode()
    assert u.restore(data, 100) == len(data)
    assert u.get(-5) == SessionInfo(-5, 4000, b"x" * 16)
    assert u.get(7).timeout_ms == 6000
