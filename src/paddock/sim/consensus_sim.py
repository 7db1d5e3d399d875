"""Deterministic simulation of a Raft cluster: one seed, one loop, every fault.

Why: the consensus core is only trustworthy if its invariants survive every
interleaving of messages, crashes and disk failures we can throw at it, and if
any failure can be replayed exactly. The whole cluster (nodes, network, disks,
clients, faults, the external authority) runs in one ``EventLoop`` in virtual
time; every random choice comes from a stream derived from the seed.

How a node is driven (the shell's contract from ``Ready``'s docstring): ticks
every ``tick`` seconds, ``step`` on delivery; a Ready's snapshot/entries/hard
state are appended to the simulated disk and its messages are sent, committed
entries applied and ``advance`` called only when that write's fsync completes
(virtual time later). A node writes one Ready at a time.

Invariants (checked after every event, or at the moment they can break):

* election safety: at most one leader per term;
* leader completeness: a new leader holds every entry committed in an earlier term;
* committed entries are never lost, changed or reordered: every applied entry
  must match a global committed log, applied indexes are contiguous;
* a node's commit index never decreases, and after a restart it is at least
  the commit index it had persisted;
* state machines are identical at the same applied index;
* an entry becomes visible (applied anywhere) only if a majority holds it
  durably (tracked from what each simulated disk has synced);
* the disk codec catches bit rot in synced records (``CorruptLog``);
* client histories are linearizable (checked at the end);
* liveness mode: after faults stop, a leader is elected, all nodes converge and
  a fresh write commits within a bound.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field

from paddock.sim.cluster import DEFAULT_DURATION, Cluster, SimConfig
from paddock.sim.invariants import Violation
from paddock.sim.linearizability import check_history


@dataclass(slots=True)
class RunResult:
    config: SimConfig
    ok: bool
    steps: int
    commits: int
    faults: int
    virtual_time: float
    failure: Violation | None = None
    trace: list[str] = field(default_factory=list)
    fingerprint: str = ""
    ops: int = 0
    caught_corruptions: int = 0
    restarts: int = 0
    leaders: int = 0
    #: Liveness mode: virtual seconds from healing until live.
    live_after: float = 0.0

    @property
    def invariant(self) -> str:
        return self.failure.invariant if self.failure else ""


def run_simulation(cfg: SimConfig) -> RunResult:
    """One seeded run. Never raises for an invariant failure: see ``RunResult``."""
    cl = Cluster(cfg)
    failure: Violation | None = None
    loop = cl.loop
    live_after = 0.0
    try:
        cl.boot()
        cl.clients.start()
        cl.nemesis.start()
        if cl.authority is not None:
            cl.authority.faulty = True
            cl.authority.start()
        elif cfg.election == "external":
            raise ValueError("external election needs the authority")
        loop.run_until(cfg.duration, cl.check_step)
        if cfg.mode == "liveness":
            cl.heal_everything()
            heal_at = loop.now
            cl.clients.ok_writes_after = heal_at
            deadline = heal_at + cfg.liveness_bound
            while True:
                loop.run_until(min(loop.now + 0.01, deadline), cl.check_step)
                if cl.clients.fresh_write_ok and not cl.clients.stopped:
                    # A fresh write committed; let the traffic drain, then all
                    # nodes must reach the same commit and applied index.
                    cl.clients.stopped = True
                    cl.trace_event(0, "fresh write committed; clients stop")
                if cl.clients.stopped and cl.converged():
                    live_after = loop.now - heal_at
                    cl.trace_event(0, f"LIVE after {live_after:.3f}s")
                    break
                if loop.now >= deadline:
                    detail = (
                        f"not live {cfg.liveness_bound}s after healing: leader "
                        f"{cl.current_leader() or 'none'}, fresh write "
                        f"{'committed' if cl.clients.fresh_write_ok else 'not committed'}, "
                        "nodes "
                        + ", ".join(
                            f"{i}:t{n.term}/c{n.commit}/a{n.applied}/l{n.last_index}/{n.role.name}"
                            for i in cl.node_ids
                            if (n := cl.hosts[i].node) is not None
                        )
                    )
                    raise Violation("liveness", detail)
        cl.clients.stopped = True
        cl.nemesis.stop()
        res = check_history(cl.clients.history)
        if not res.ok:
            raise Violation("linearizability", res.describe())
    except Violation as v:
        failure = v
        cl.trace_event(0, f"FAILED {v}")
    faults = cl.nemesis.faults + cl.disk_faults
    if cl.authority is not None:
        faults += cl.authority.misnamings
    fp = hashlib.sha256()
    fp.update(
        repr(
            (
                loop.steps,
                len(cl.inv.committed),
                sorted(cl.inv.leaders.items()),
                len(cl.clients.history),
            )
        ).encode()
    )
    if cl.trace is not None:
        for line in cl.trace:
            fp.update(line.encode())
            fp.update(b"\n")
    return RunResult(
        config=cfg,
        ok=failure is None,
        steps=loop.steps,
        commits=len(cl.inv.committed),
        faults=faults,
        virtual_time=loop.now,
        failure=failure,
        trace=cl.trace or [],
        fingerprint=fp.hexdigest()[:16],
        ops=cl.clients.completed,
        caught_corruptions=cl.caught_corruptions,
        restarts=sum(h.restarts for h in cl.hosts.values()),
        leaders=len(cl.inv.leaders),
        live_after=live_after,
    )


__all__ = ["DEFAULT_DURATION", "Cluster", "RunResult", "SimConfig", "Violation", "run_simulation"]
