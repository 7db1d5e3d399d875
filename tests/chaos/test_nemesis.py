"""Every fault the nemesis starts is undone when it stops (no lab needed)."""

from __future__ import annotations

import itertools

from paddock.chaos.nemesis import Nemesis, PlannedFault


class FakeLab:
    def __init__(self, hosts):
        self.hosts = hosts
        self.cut: dict[int, set[int]] = {}
        self.slowed: set[int] = set()

    def drop_from(self, host, sources):
        self.cut.setdefault(host, set()).update(s for s in sources if s != host)

    def partition(self, groups):
        member = {h: i for i, g in enumerate(groups) for h in g}
        for h in range(1, self.hosts + 1):
            self.drop_from(h, [o for o in range(1, self.hosts + 1) if member.get(o) != member[h]])

    def connect_only(self, links):
        for h in range(1, self.hosts + 1):
            self.drop_from(h, [o for o in range(1, self.hosts + 1) if o not in links[h]])

    def slow(self, host, delay, jitter, loss):
        self.slowed.add(host)
        return f"slow {delay}"

    def heal(self):
        self.cut.clear()
        self.slowed.clear()


class FakeCluster:
    def __init__(self, hosts):
        self.down: set[int] = set()
        self.paused: set[int] = set()
        self.hosts = hosts

    def kill(self, h):
        self.down.add(h)

    def restart(self, h):
        self.down.discard(h)

    def pause(self, h):
        self.paused.add(h)

    def resume(self, h):
        self.paused.discard(h)

    def leader(self):
        return 2


VARIANTS = {
    "partition": ["halves", "isolate-leader", "bridge", "one-way"],
    "kill": ["one", "leader", "minority", "all"],
    "pause": ["one", "leader"],
    "slow": ["one", "all"],
}


def test_each_fault_does_something_and_is_undone():
    for hosts, salt in itertools.product((3, 5), range(6)):
        for kind, variants in VARIANTS.items():
            for variant in variants:
                lab, cluster = FakeLab(hosts), FakeCluster(hosts)
                n = Nemesis(lab, cluster, [], clock=lambda: 1.0)
                n.start(PlannedFault(0, 1, kind, variant, salt))
                rec = n.records[-1]
                assert rec.detail and rec.hosts
                did = any(lab.cut.values()) or lab.slowed or cluster.down or cluster.paused
                assert did, (kind, variant)
                if kind == "kill":
                    want = hosts if variant == "all" else max(1, (hosts - 1) // 2)
                    assert 1 <= len(cluster.down) <= want
                if variant == "isolate-leader":
                    assert lab.cut[2] == {h for h in range(1, hosts + 1) if h != 2}
                if variant == "bridge":
                    mid = rec.hosts[0]
                    assert not lab.cut.get(mid)  # the bridge hears everyone
                    assert sum(1 for h in range(1, hosts + 1) if lab.cut.get(h)) == hosts - 1
                n.stop()
                assert not any(lab.cut.values()) and not lab.slowed
                assert not cluster.down and not cluster.paused
                assert rec.end == 1.0
