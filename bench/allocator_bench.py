"""Allocator benchmark shaped like Mesos's HierarchicalAllocator_BENCHMARK_Test.DeclineOffers.

10,000 agents of ``cpus:24;mem:4096;disk:4096;ports:[31000-32000]``, each already running
``cpus:16;mem:2014;disk:1024`` plus 16 port fragments for framework ``i % 1000`` (as the C++
test sets up with ``fragment(createRange(31000, 32000), 16)``); 1,000 frameworks in role ``*``
decline every offer with a refusal filter of 365 days (the C++ test's INT_MAX, clamped as
Mesos clamps it), so each round every agent goes to a framework that has not refused it yet.
Each round: decline the previous round's offers (not timed, as in the C++ test), advance the
clock by the allocation interval, time one ``allocate(now)`` over all agents.

Mesos reports 1.06 s per round for 10,000 agents and 1,000 frameworks (apache/mesos commit
86653356d, --enable-optimize).

    .venv/bin/python bench/allocator_bench.py [--agents 10000] [--frameworks 1000] [--rounds 10]
"""

from __future__ import annotations

import argparse
import gc
import random
import resource
import statistics
import time

from paddock.master.allocator import HierarchicalAllocator
from paddock.master.resources import Resources

REFUSE_SECONDS = 2**31 - 1  # INT_MAX, as the C++ benchmark passes


def fragment(begin: int, end: int, count: int) -> list[tuple[int, int]]:
    """Mesos tests' ``fragment``: single ports at begin, begin+2, ...; the last one runs to end."""
    ranges = [(begin + 2 * i, begin + 2 * i) for i in range(count)]
    ranges[-1] = (ranges[-1][0], end)
    return ranges


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--agents", type=int, default=10_000)
    parser.add_argument("--frameworks", type=int, default=1_000)
    parser.add_argument("--rounds", type=int, default=10)
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args()

    alloc = HierarchicalAllocator(rng=random.Random(args.seed))
    t0 = time.perf_counter()
    framework_ids = [f"framework-{i:04d}" for i in range(args.frameworks)]
    for fid in framework_ids:
        alloc.add_framework(fid)
    print(f"Added {args.frameworks} frameworks in {time.perf_counter() - t0:.3f}s")

    agent_total = Resources.parse("cpus:24;mem:4096;disk:4096;ports:[31000-32000]")
    used = Resources.parse("cpus:16;mem:2014;disk:1024") + Resources.ranges(
        "ports", fragment(31000, 32000, 16)
    )
    t0 = time.perf_counter()
    for i in range(args.agents):
        alloc.add_agent(
            f"agent-{i:05d}", agent_total, used={framework_ids[i % args.frameworks]: used}
        )
    print(f"Added {args.agents} agents in {time.perf_counter() - t0:.3f}s")
    print(f"Each agent offers {agent_total - used}")

    offers: list = []
    declined = 0
    now = 0.0
    timings: list[float] = []
    cpu_timings: list[float] = []
    gc.collect()
    for rnd in range(args.rounds):
        t0 = time.perf_counter()
        for o in offers:
            alloc.recover_resources(
                o.framework_id, o.agent_id, o.resources, refuse_seconds=REFUSE_SECONDS, now=now
            )
        decline_s = time.perf_counter() - t0
        declined += len(offers)
        now += alloc.allocation_interval
        gc_before = sum(s["collections"] for s in gc.get_stats())
        full_before = gc.get_stats()[2]["collections"]
        c0, t0 = time.process_time(), time.perf_counter()
        offers = alloc.allocate(now)
        took, cpu = time.perf_counter() - t0, time.process_time() - c0
        gcs = sum(s["collections"] for s in gc.get_stats()) - gc_before
        full = gc.get_stats()[2]["collections"] - full_before
        timings.append(took)
        cpu_timings.append(cpu)
        print(
            f"round {rnd} allocate() took {took:.3f}s (cpu {cpu:.3f}s, {gcs} gc runs, "
            f"{full} full) to make "
            f"{len(offers)} offers after filtering {declined} offers "
            f"(declines took {decline_s:.3f}s)"
        )
    if len(timings) > 1:
        steady, steady_cpu = timings[1:], cpu_timings[1:]
        print(
            f"first round {timings[0]:.3f}s (cpu {cpu_timings[0]:.3f}s); steady-state rounds "
            f"1-{len(timings) - 1}: median {statistics.median(steady):.3f}s "
            f"(cpu {statistics.median(steady_cpu):.3f}s), max {max(steady):.3f}s "
            f"(cpu {max(steady_cpu):.3f}s)"
        )
    peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"peak resident memory {peak_mb:.0f} MB")


if __name__ == "__main__":
    main()
