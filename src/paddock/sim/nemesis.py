"""Fault injection for the consensus simulation, and the external leader authority.

Why: safety bugs hide in rare interleavings. The nemesis keeps the cluster in
trouble (partitions that form, heal and re-form; crashes at arbitrary moments,
including in the middle of a disk write; disruptive elections), while the
authority plays the outside coordinator of external-election mode, sometimes
badly (a lagging view, naming partitioned or crashed nodes, two namings in a
row), because safety must not depend on the authority being right.
"""

from __future__ import annotations

import random
from typing import TYPE_CHECKING

from paddock.consensus.types import Role

if TYPE_CHECKING:
    from paddock.sim.cluster import Cluster


class Nemesis:
    def __init__(self, cluster: Cluster, rng: random.Random) -> None:
        self.cluster = cluster
        self.rng = rng
        self.active = False
        self.faults = 0
        self.min_gap = 0.02
        self.max_gap = 0.25

    def start(self) -> None:
        self.active = True
        self.cluster.loop.call_later(self._gap(), self._act)

    def stop(self) -> None:
        self.active = False

    def _gap(self) -> float:
        return self.min_gap + self.rng.random() * (self.max_gap - self.min_gap)

    def _act(self) -> None:
        if not self.active:
            return
        cl = self.cluster
        rng = self.rng
        ids = list(cl.node_ids)
        r = rng.random()
        if r < 0.14:
            shuffled = ids[:]
            rng.shuffle(shuffled)
            cut = rng.randint(1, len(ids) - 1)
            a, b = sorted(shuffled[:cut]), sorted(shuffled[cut:])
            cl.net.split([a, b])
            self._fault(f"partition halves {a} | {b}")
        elif r < 0.26:
            victim = cl.current_leader() or rng.choice(ids)
            rest = [i for i in ids if i != victim]
            cl.net.split([[victim], rest])
            self._fault(f"isolate {'leader ' if cl.current_leader() == victim else ''}{victim}")
        elif r < 0.34:
            shuffled = ids[:]
            rng.shuffle(shuffled)
            bridge, others = shuffled[0], shuffled[1:]
            cut = max(1, len(others) // 2)
            a, b = sorted(others[:cut]), sorted(others[cut:])
            cl.net.split([a, b])
            self._fault(f"bridge {bridge} between {a} | {b}")
        elif r < 0.42:
            shuffled = ids[:]
            rng.shuffle(shuffled)
            cut = rng.randint(1, len(ids) - 1)
            src, dst = sorted(shuffled[:cut]), sorted(shuffled[cut:])
            cl.net.heal()
            cl.net.block_one_way(src, dst)
            self._fault(f"one-way {src} -/-> {dst}")
        elif r < 0.60:
            cl.net.heal()
            cl.trace_event(0, "nemesis heal network")
        elif r < 0.80:
            alive = [i for i in ids if cl.hosts[i].node is not None]
            if alive:
                leader = cl.current_leader()
                victim = leader if leader and rng.random() < 0.4 else rng.choice(alive)
                x = rng.random()
                if x < 0.35:
                    cl.hosts[victim].crash_armed = True  # at its next disk write
                elif x < 0.55:
                    cl.hosts[victim].bounce_armed = True  # just after its next write
                else:
                    self._crash(victim)
        elif r < 0.85:
            victim = rng.choice(ids)
            pause = 0.02 + rng.random() * 0.3
            self._fault(f"pause {victim} for {pause * 1000:.0f}ms")
            cl.pause(victim, pause)
        elif r < 0.92:
            alive = [i for i in ids if cl.hosts[i].node is not None]
            if alive:
                victim = rng.choice(alive)
                if cl.hosts[victim].writing:
                    self.crash_during_write(victim)
                else:
                    cl.hosts[victim].crash_armed = True
        else:
            alive = [i for i in ids if cl.hosts[i].node is not None]
            if alive and not cl.external:
                n = rng.choice(alive)
                self._fault(f"force campaign on {n}")
                cl.campaign(n)
        cl.loop.call_later(self._gap(), self._act)

    def _fault(self, what: str) -> None:
        self.faults += 1
        self.cluster.trace_event(0, f"nemesis {what}")

    def _crash(self, victim: int) -> None:
        cl = self.cluster
        if cl.hosts[victim].node is None:
            return
        self._fault(f"crash {victim}")
        cl.crash(victim)
        r = self.rng.random()
        if r < 0.25:
            down = 0.0005 + self.rng.random() * 0.005
        else:
            down = 0.01 + self.rng.random() * (0.6 if r < 0.45 else 0.15)
        cl.loop.call_later(down, cl.restart, victim)

    def bounce(self, victim: int) -> None:
        """Crash ``victim`` now (its last write is durable, its messages sent)
        and restart it a moment later."""
        cl = self.cluster
        cl.hosts[victim].bounce_armed = False
        if not self.active or cl.hosts[victim].node is None:
            cl.pump(cl.hosts[victim])
            return
        self._fault(f"bounce {victim}")
        cl.crash(victim)
        cl.loop.call_later(0.0005 + self.rng.random() * 0.003, cl.restart, victim)

    def crash_during_write(self, victim: int) -> None:
        """Crash ``victim`` before its current write's fsync completes."""
        cl = self.cluster
        left = cl.hosts[victim].write_done_at - cl.loop.now
        cl.loop.call_later(self.rng.random() * left * 0.9, self._crash_if_writing, victim)

    def _crash_if_writing(self, victim: int) -> None:
        if self.active and self.cluster.hosts[victim].writing:
            self._crash(victim)


class Authority:
    """The outside coordinator that names the leader in external-election mode.

    It watches the cluster through a view refreshed only every ``lag`` seconds
    (like a session timeout), names a new node when the named one looks dead or
    has not become leader within ``grace``; while ``faulty`` it also names
    random nodes and names two nodes in quick succession.
    """

    def __init__(self, cluster: Cluster, rng: random.Random) -> None:
        self.cluster = cluster
        self.rng = rng
        self.named = 0
        self.named_at = -1.0
        self.lag = 0.05 + rng.random() * 0.15
        self.grace = 0.15
        self.period = 0.02 + rng.random() * 0.04
        self.view: dict[int, bool] = {}
        self.view_at = -1.0
        self.faulty = False
        self.misnamings = 0

    def start(self) -> None:
        self.cluster.loop.call_later(self.rng.random() * self.period, self._poll)

    def _refresh(self) -> None:
        cl = self.cluster
        now = cl.loop.now
        if now - self.view_at < self.lag:
            return
        self.view_at = now
        self.view = {
            i: cl.hosts[i].node is not None
            and cl.net.connected_to_majority(i, lambda j: cl.hosts[j].node is not None)
            for i in cl.node_ids
        }

    def _poll(self) -> None:
        cl = self.cluster
        rng = self.rng
        self._refresh()
        now = cl.loop.now
        if self.faulty and rng.random() < 0.08:
            self.misnamings += 1
            a = rng.choice(cl.node_ids)
            self._name(a, "misnamed (lagging authority)")
            if rng.random() < 0.5:
                b = rng.choice(cl.node_ids)
                cl.loop.call_later(rng.random() * 0.005, self._name, b, "second naming in a row")
        else:
            named = self.named
            host = cl.hosts.get(named)
            healthy = bool(named) and self.view.get(named, False)
            leading = host is not None and host.node is not None and host.node.role == Role.LEADER
            if not healthy or (not leading and now - self.named_at > self.grace):
                good = [i for i in cl.node_ids if self.view.get(i, False)]
                if len(good) > 1 and named in good and not leading:
                    good.remove(named)
                pick = rng.choice(good) if good else rng.choice(cl.node_ids)
                self._name(pick, "names leader")
        cl.loop.call_later(self.period, self._poll)

    def _name(self, node: int, why: str) -> None:
        self.named = node
        self.named_at = self.cluster.loop.now
        self.cluster.trace_event(0, f"authority {why}: {node}")
        self.cluster.campaign(node)
