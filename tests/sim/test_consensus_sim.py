"""The consensus core survives the simulator, and the simulator catches broken cores.

The sweep below is the CI gate: a fixed list of seeds in both modes (safety,
liveness), with 3 and 5 nodes, internal and external election. Its budget is
about two minutes on a 2-core machine; longer sweeps are
``paddock sim consensus --seeds 1000`` (or the ``slow`` test at the end).
"""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from paddock.sim.consensus_sim import SimConfig, run_simulation

SEEDS = {3: range(1000, 1400), 5: range(2000, 2250)}


def _replay_hint(cfg: SimConfig) -> str:
    return (
        f"paddock sim consensus --replay {cfg.seed} --nodes {cfg.nodes} "
        f"--mode {cfg.mode} --election {cfg.election}"
    )


@pytest.mark.parametrize("election", ["internal", "external"])
@pytest.mark.parametrize("mode", ["safety", "liveness"])
@pytest.mark.parametrize("nodes", [3, 5])
def test_sweep_passes(nodes, mode, election):
    commits = faults = 0
    for seed in SEEDS[nodes]:
        cfg = SimConfig(seed=seed, nodes=nodes, mode=mode, election=election)
        r = run_simulation(cfg)
        assert r.ok, f"{r.failure} -- replay: {_replay_hint(cfg)}"
        commits += r.commits
        faults += r.faults
    # The sweep did real work under real faults.
    assert commits > 20 * len(SEEDS[nodes])
    assert faults > 5 * len(SEEDS[nodes])


def test_runs_exercise_the_interesting_paths():
    """Snapshots are installed, bit rot is caught, tails are torn, clients get
    every kind of answer: otherwise a green sweep would prove little."""
    text = []
    caught = 0
    for election in ("internal", "external"):
        for seed in range(12):
            r = run_simulation(SimConfig(seed=seed, election=election, mode="liveness", trace=True))
            assert r.ok, r.failure
            caught += r.caught_corruptions
            text.append("\n".join(r.trace))
    blob = "\n".join(text)
    assert caught > 0
    for needle in (
        "recv SNAPSHOT",
        "apply snapshot",
        "compact @",
        "damaged tail",
        "CRASH",
        "RESTART",
        "PAUSE",
        "ok read",
        "ok write",
        "ok cas",
        "fail cas",
        "info write",
        "nemesis partition halves",
        "nemesis isolate",
        "nemesis bridge",
        "nemesis one-way",
        "authority misnamed",
        "authority second naming",
        "recv ELECT ",
        "LIVE after",
    ):
        assert needle in blob, needle


# -- determinism ---------------------------------------------------------------------


def test_replay_is_bit_for_bit_identical():
    for election in ("internal", "external"):
        cfg = SimConfig(seed=77, election=election, mode="liveness", trace=True)
        a = run_simulation(cfg)
        b = run_simulation(cfg)
        assert a.trace == b.trace
        assert a.fingerprint == b.fingerprint
        assert len(a.trace) > 1000
        other = run_simulation(SimConfig(seed=78, election=election, trace=True))
        assert other.fingerprint != a.fingerprint


def test_tracing_does_not_change_the_run():
    """``--replay`` (traced) reproduces exactly the run a sweep (untraced) saw."""
    for seed, bug in ((11, ""), (0, "commit_without_quorum")):
        plain = run_simulation(SimConfig(seed=seed, nodes=5, bug=bug))
        traced = run_simulation(SimConfig(seed=seed, nodes=5, bug=bug, trace=True))
        assert (plain.steps, plain.commits, plain.ops, plain.faults, plain.invariant) == (
            traced.steps,
            traced.commits,
            traced.ops,
            traced.faults,
            traced.invariant,
        )


def test_run_does_not_depend_on_hash_seed():
    """No iteration over hash-ordered sets leaks into the run."""
    code = (
        "from paddock.sim.consensus_sim import SimConfig, run_simulation;"
        "print(run_simulation(SimConfig(seed=5, election='external', trace=True)).fingerprint)"
    )
    outs = set()
    for hashseed in ("1", "2", "12345"):
        env = dict(os.environ, PYTHONHASHSEED=hashseed)
        out = subprocess.run(
            [sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True
        )
        outs.add(out.stdout.strip())
    assert len(outs) == 1


# -- the simulator can fail ---------------------------------------------------------------


def _first_failure(bug="", client_bug="", election="internal", nodes=3, seeds=300):
    for seed in range(seeds):
        r = run_simulation(
            SimConfig(seed=seed, bug=bug, client_bug=client_bug, election=election, nodes=nodes)
        )
        if not r.ok:
            return seed, r
    return None, None


@pytest.mark.parametrize("election", ["internal", "external"])
def test_commit_without_quorum_is_caught(election):
    _seed, r = _first_failure(bug="commit_without_quorum", election=election)
    assert r is not None, "commit_without_quorum survived 300 seeds"
    assert r.invariant in ("minority commit", "committed entry changed", "linearizability")
    assert r.steps < 20_000


def test_vote_twice_is_caught():
    # Votes only exist in internal mode (external mode elects with ELECT rounds).
    _seed, r = _first_failure(bug="vote_twice")
    assert r is not None, "vote_twice survived 300 seeds"
    assert r.invariant in ("election safety", "committed entry changed", "linearizability")


def test_stale_reads_are_caught_by_the_history_checker():
    _seed, r = _first_failure(client_bug="stale_reads", election="external")
    assert r is not None, "stale reads survived 300 seeds"
    assert r.invariant == "linearizability"
    assert "NOT linearizable" in r.failure.detail


def test_liveness_failure_is_reported():
    r = run_simulation(SimConfig(seed=1, mode="liveness", liveness_bound=0.001))
    assert not r.ok and r.invariant == "liveness"
    assert "after healing" in r.failure.detail


@pytest.mark.slow
@pytest.mark.parametrize("election", ["internal", "external"])
@pytest.mark.parametrize("mode", ["safety", "liveness"])
@pytest.mark.parametrize("nodes", [3, 5])
def test_long_sweep(nodes, mode, election):
    for seed in range(10_000, 11_000):
        cfg = SimConfig(seed=seed, nodes=nodes, mode=mode, election=election)
        r = run_simulation(cfg)
        assert r.ok, f"{r.failure} -- replay: {_replay_hint(cfg)}"
