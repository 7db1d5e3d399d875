"""The nemesis: a seeded schedule of faults, and the loop that applies it.

Why seeded: a run that found a bug must be describable (and rerunnable) by its
seed. The schedule — which fault, when, for how long, which hosts when the
choice does not depend on the cluster — is drawn up front from
``random.Random(seed)``. Choices that do depend on the cluster ("isolate the
leader") are resolved when the fault starts, from the leader seen then.

Faults alternate with quiet periods so the cluster can recover in between:

* ``partition``: random halves, an isolated leader, a bridge (two halves that
  each hear one middle host), or a one-way cut (a host stops hearing the
  others, or they stop hearing it) — iptables inside the hosts' namespaces;
* ``kill``: ``kill -9`` of one keeper, the leader, a minority, or all of them
  (only what was fsync'd survives), restarted when the fault ends;
* ``pause``: ``SIGSTOP`` of a keeper process (often the leader), ``SIGCONT``
  when the fault ends;
* ``slow``: ``tc netem`` delay, jitter and loss on some hosts' links.

Every loop here is bounded by the run's deadline.
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

from paddock.chaos.hosts import Lab

KINDS = ("partition", "kill", "pause", "slow")


class Cluster(Protocol):
    """What the nemesis needs from the system under test."""

    def kill(self, host: int) -> None: ...

    def restart(self, host: int) -> None: ...

    def pause(self, host: int) -> None: ...

    def resume(self, host: int) -> None: ...

    def leader(self) -> int | None: ...


@dataclass(frozen=True)
class PlannedFault:
    start: float  # seconds since the run began
    end: float
    kind: str
    variant: str
    #: A random number per fault for the choices made when it starts.
    salt: int


def plan(
    seed: int, duration: float, kinds: tuple[str, ...], hosts: int, quiet: float = 1.0
) -> list[PlannedFault]:
    """The run's faults: quiet (2-4 s), fault (2-7 s), quiet, ... until ``duration``
    minus a final quiet second."""
    for k in kinds:
        if k not in KINDS:
            raise ValueError(f"unknown nemesis {k!r} (known: {', '.join(KINDS)})")
    rng = random.Random(seed)
    faults: list[PlannedFault] = []
    t = 2.0 + rng.uniform(0, 2)
    while kinds and len(faults) < 100_000:
        length = rng.uniform(2.0, 7.0)
        if t + length > duration - quiet:
            break
        kind = rng.choice(kinds)
        variants = {
            "partition": ["halves", "isolate-leader", "bridge", "one-way"]
            if hosts >= 3
            else ["halves", "one-way"],
            "kill": ["one", "leader", "minority", "all"],
            "pause": ["one", "leader"],
            "slow": ["one", "all"],
        }[kind]
        faults.append(PlannedFault(t, t + length, kind, rng.choice(variants), rng.getrandbits(32)))
        t += length + rng.uniform(2.0, 4.0)
    return faults


@dataclass
class FaultRecord:
    """A fault as it happened (for the history and the report)."""

    kind: str
    variant: str
    start: float
    end: float | None = None
    detail: str = ""
    hosts: list[int] = field(default_factory=list)

    def to_json(self) -> dict[str, Any]:
        return {
            "kind": self.kind,
            "variant": self.variant,
            "start": self.start,
            "end": self.end,
            "detail": self.detail,
            "hosts": self.hosts,
        }


class Nemesis:
    """Applies a plan to a lab and a cluster, recording what it did."""

    def __init__(
        self,
        lab: Lab,
        cluster: Cluster,
        faults: list[PlannedFault],
        clock: Callable[[], float],
        log: Callable[[str], None] = lambda _m: None,
    ) -> None:
        self.lab = lab
        self.cluster = cluster
        self.faults = faults
        self.clock = clock  # seconds since the run began
        self.log = log
        self.records: list[FaultRecord] = []
        self._undo: Callable[[], None] | None = None
        self._current: FaultRecord | None = None

    def _majority_cut(self, rng: random.Random) -> tuple[list[int], list[int]]:
        hosts = list(range(1, self.lab.hosts + 1))
        rng.shuffle(hosts)
        half = len(hosts) // 2
        return hosts[:half], hosts[half:]

    def _target(self, rng: random.Random, leader_first: bool) -> int:
        leader = self.cluster.leader() if leader_first else None
        return leader if leader is not None else rng.randint(1, self.lab.hosts)

    def start(self, f: PlannedFault) -> None:
        rng = random.Random(f.salt)
        lab, n = self.lab, self.lab.hosts
        rec = FaultRecord(f.kind, f.variant, self.clock())
        undo: Callable[[], None]
        if f.kind == "partition":
            if f.variant == "halves":
                a, b = self._majority_cut(rng)
                lab.partition([a, b])
                rec.detail, rec.hosts = f"{sorted(a)} | {sorted(b)}", sorted(a)
            elif f.variant == "isolate-leader":
                x = self._target(rng, True)
                lab.partition([[x], [h for h in range(1, n + 1) if h != x]])
                rec.detail, rec.hosts = f"[{x}] | rest", [x]
            elif f.variant == "bridge":
                hosts = list(range(1, n + 1))
                rng.shuffle(hosts)
                mid, rest = hosts[0], hosts[1:]
                a, b = rest[: len(rest) // 2], rest[len(rest) // 2 :]
                links: dict[int, Sequence[int]] = {h: [*a, mid] for h in a}
                links.update({h: [*b, mid] for h in b})
                links[mid] = rest
                lab.connect_only(links)
                rec.detail, rec.hosts = f"{sorted(a)} - {mid} - {sorted(b)}", [mid]
            else:  # one-way
                x = self._target(rng, rng.random() < 0.5)
                others = [h for h in range(1, n + 1) if h != x]
                if rng.random() < 0.5:
                    lab.drop_from(x, others)
                    rec.detail = f"{x} hears nobody"
                else:
                    for o in others:
                        lab.drop_from(o, [x])
                    rec.detail = f"nobody hears {x}"
                rec.hosts = [x]
            undo = lab.heal
        elif f.kind == "kill":
            if f.variant == "all":  # the whole cluster crashes: only fsync'd state survives
                victims = list(range(1, n + 1))
            elif f.variant == "minority":
                hosts = list(range(1, n + 1))
                rng.shuffle(hosts)
                victims = hosts[: max(1, (n - 1) // 2)]
            else:
                victims = [self._target(rng, f.variant == "leader")]
            for h in victims:
                self.cluster.kill(h)
            rec.detail, rec.hosts = f"kill -9 {sorted(victims)}", sorted(victims)

            def undo() -> None:
                for h in victims:
                    self.cluster.restart(h)

        elif f.kind == "pause":
            x = self._target(rng, f.variant == "leader")
            self.cluster.pause(x)
            rec.detail, rec.hosts = f"SIGSTOP {x}", [x]

            def undo() -> None:
                self.cluster.resume(x)

        else:  # slow
            victims = list(range(1, n + 1)) if f.variant == "all" else [rng.randint(1, n)]
            delay, jitter, loss = rng.randint(20, 200), rng.randint(0, 50), rng.uniform(0, 20)
            applied = [lab.slow(h, delay, jitter, loss) for h in victims]
            rec.detail = f"{applied[0]} on {victims}"
            rec.hosts = victims
            undo = lab.heal
        self.records.append(rec)
        self._current, self._undo = rec, undo
        self.log(f"[{rec.start:7.2f}s] nemesis {f.kind}/{f.variant}: {rec.detail}")

    def stop(self) -> None:
        """End the current fault (if any)."""
        undo, rec = self._undo, self._current
        self._undo = self._current = None
        if undo is not None and rec is not None:
            undo()
            rec.end = self.clock()
            self.log(f"[{rec.end:7.2f}s] nemesis healed {rec.kind}/{rec.variant}")

    def run(self, until: float, tick: Callable[[], None] = lambda: None) -> None:
        """Apply the plan until ``until`` seconds (run clock); heal at the end."""
        try:
            for f in self.faults:
                while self.clock() < min(f.start, until):
                    tick()
                    time.sleep(0.1)
                if self.clock() >= until:
                    break
                self.start(f)
                while self.clock() < min(f.end, until):
                    tick()
                    time.sleep(0.1)
                self.stop()
            while self.clock() < until:
                tick()
                time.sleep(0.1)
        finally:
            self.stop()
