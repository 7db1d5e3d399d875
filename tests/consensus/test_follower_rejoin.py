"""A follower that crashed (repeatedly, while behind) rejoins in bounded time.

The chaos-run finding these reduce (docs/reliability.md, "Liveness finding"):
keeper 4, ``kill -9``'d three times, ~34,000 entries after its snapshot each
time, stayed read-only while the others followed leader 5. The cause turned
out to be the leader's transport link to 4 dying silently (see
``test_transport_link_death.py``); these scenarios pin down that the consensus
core itself is not a suspect: leader-side progress tracking (probe/replicate,
a full in-flight window, a lost snapshot), the restarted follower's slow
re-apply, and a conflicting tail all recover within a bound once the network
heals. Each scenario is deterministic (scripted faults, seeded randomness).
"""

from __future__ import annotations

import pytest

from paddock.consensus.types import MsgType, Role

from .rejoin_harness import RejoinCluster, is_type

#: Ticks a caught-up state must be reached in after the network heals. An
#: election takes 10-20 ticks; catching up ~3,000 entries at 64 per append
#: and 4 appends in flight takes ~12 round trips, 3 round trips per tick.
BOUND = 120
LOAD = 20  # entries proposed per tick while the follower is away


def _setup(seed: int, **kw) -> tuple[RejoinCluster, int, int]:
    c = RejoinCluster(seed=seed, **kw)
    leader = c.elect()
    follower = next(i for i in c.ids if i != leader.id)
    c.ticks_until(lambda: c.caught_up(follower), BOUND)
    return c, leader.id, follower


@pytest.mark.parametrize("seed", range(1, 9))
def test_follower_crashing_repeatedly_while_behind_rejoins(seed: int) -> None:
    """Three crashes in a row, each with the messages to the follower dropped
    for a while before it, a slow re-apply of a long tail after it (longer than
    an election timeout), and the leader's in-flight window to it full."""
    c, lead, f = _setup(seed, compact_every=2_000)
    rng = c.rng
    term_before = c.node(lead).term
    for _round in range(3):
        # The follower falls behind: nothing reaches it, the load goes on, the
        # leader's window to it fills with appends that will never be answered.
        c.drop = lambda m, f=f: m.dst == f
        for _ in range(rng.randint(6, 15)):
            c.propose(LOAD)
            c.tick()
        pr = c.node(lead).progress[f]
        assert pr.probing or len(pr.inflight) == c.node(lead).cfg.max_inflight_appends
        c.crash(f)
        for _ in range(rng.randint(5, 40)):
            c.propose(LOAD)
            c.tick()
        c.restart(f, reapply_ticks=rng.randint(15, 60))
        # Heartbeats and responses around the restart are lost too.
        c.drop = lambda m, f=f: f in (m.src, m.dst) and rng.random() < 0.5
        for _ in range(rng.randint(0, 20)):
            c.propose(LOAD)
            c.tick()
    c.drop = lambda m: False
    took = c.ticks_until(lambda: c.caught_up(f), BOUND + 60, load=2)
    # It did not disrupt the healthy majority on its way back.
    assert c.leader() is not None and c.leader().id == lead
    assert c.node(lead).term == term_before, "the rejoining follower forced an election"
    assert took <= BOUND + 60


@pytest.mark.parametrize("seed", range(1, 5))
def test_long_reapply_after_restart_does_not_disrupt_and_ends_caught_up(seed: int) -> None:
    """The keeper case: the shell re-applies ~34,000 entries after the
    snapshot in one go at start, so its loop is blocked for many election
    timeouts while the leader keeps writing; messages pile up and arrive in a
    burst. It must not campaign its way into a new term, and must catch up."""
    c, lead, f = _setup(seed, compact_every=0)
    for _ in range(150):  # a long tail after the (empty) snapshot
        c.propose(LOAD)
        c.tick()
    c.crash(f)
    for _ in range(10):
        c.propose(LOAD)
        c.tick()
    term_before = c.node(lead).term
    c.restart(f, reapply_ticks=200)  # 10-20 election timeouts
    assert c.node(f).commit > 2_500  # a long committed tail to re-apply
    c.ticks_until(lambda: c.caught_up(f), 200 + BOUND, load=LOAD)
    assert c.node(lead).term == term_before
    assert c.leader().id == lead


@pytest.mark.parametrize("lost", ["first-snapshot", "all-heartbeat-responses-for-a-while"])
def test_follower_behind_the_leaders_snapshot_rejoins(lost: str) -> None:
    """The leader compacted past the follower's log: it must send a snapshot.
    Lose the first snapshot, or the heartbeat responses that unpause the
    leader's progress for a while; it still ends caught up."""
    c, lead, f = _setup(7, compact_every=300)
    c.crash(f)
    for _ in range(60):  # 1,200 entries: several compactions past the follower
        c.propose(LOAD)
        c.tick()
    assert c.node(lead).log.snapshot.index > c.disk[f][0].commit
    lost_snapshots: list[int] = []
    if lost == "first-snapshot":

        def drop(m) -> bool:
            if m.type == MsgType.SNAPSHOT and m.dst == f and not lost_snapshots:
                lost_snapshots.append(m.snapshot.index)
                return True
            return False

    else:
        until = c.now + 40

        def drop(m) -> bool:
            return m.type == MsgType.HEARTBEAT_RESP and m.src == f and c.now < until

    c.drop = drop
    c.restart(f, reapply_ticks=5)
    c.ticks_until(lambda: c.caught_up(f), BOUND + 40, load=2)
    if lost == "first-snapshot":
        assert lost_snapshots, "the scenario never sent a snapshot"
    assert c.disk[f][2] is not None  # it installed a snapshot


def test_follower_with_conflicting_uncommitted_tail_rejoins() -> None:
    """The old leader, cut off, appended entries nobody else has; it crashes and
    comes back behind a newer leader: its tail must be replaced."""
    c = RejoinCluster(seed=3)
    old = c.elect()
    old_id = old.id
    c.ticks_until(lambda: all(c.caught_up(i) for i in c.ids if i != old_id), BOUND)
    # Isolate the leader, let it append 500 entries only it holds.
    c.drop = lambda m: old_id in (m.src, m.dst)
    old.propose_many([b"lost%d" % k for k in range(500)])
    c.tick(3)
    c.crash(old_id)
    new = c.elect()
    assert new.id != old_id
    for _ in range(30):
        c.propose(LOAD)
        c.tick()
    _hs, ents, _snap = c.disk[old_id]
    assert any(e.data.startswith(b"lost") for e in ents)  # the conflicting tail is on disk
    c.drop = lambda m: False
    c.restart(old_id, reapply_ticks=15)
    c.ticks_until(lambda: c.caught_up(old_id), BOUND, load=2)
    assert not any(e.data.startswith(b"lost") for e in c.node(old_id).log.entries)


def test_appends_lost_but_heartbeats_delivered_then_heal() -> None:
    """Only heartbeats reach the follower for a long time (its appends are shed,
    as the transport sheds a slow peer's queue): the leader's window fills with
    appends that will never be answered. Heartbeats keep it a follower; once
    appends get through again it catches up without a new election."""
    c, lead, f = _setup(5, compact_every=0, max_inflight_appends=2)
    c.drop = lambda m: m.dst == f and m.type == MsgType.APPEND
    for _ in range(100):
        c.propose(LOAD)
        c.tick()
        assert c.node(f).role == Role.FOLLOWER and c.node(f).leader == lead
    term = c.node(lead).term
    c.drop = lambda m: False
    c.ticks_until(lambda: c.caught_up(f), BOUND, load=2)
    assert c.node(lead).term == term


def test_a_follower_that_never_hears_the_leader_cannot_rejoin() -> None:
    """Why the transport must never lose a link for good: with the leader's
    APPENDs and HEARTBEATs to a follower dropped (what the dead link did), the
    follower never learns the leader, and the healthy majority, in its lease,
    ignores its pre-votes: it stays without a leader (read-only) for ever.
    This documents the core's contract with the transport."""
    c, lead, f = _setup(2)
    c.crash(f)
    c.tick(5)
    c.drop = lambda m: (
        m.src == lead and m.dst == f and is_type(MsgType.APPEND, MsgType.HEARTBEAT)(m)
    )
    c.restart(f, reapply_ticks=10)
    for _ in range(300):
        c.propose(2)
        c.tick()
    assert c.node(f).leader == 0
    assert c.leader().id == lead  # the majority was never disturbed
    c.drop = lambda m: False
    c.ticks_until(lambda: c.caught_up(f), BOUND, load=2)
