"""``paddock sim ...``: deterministic simulation runs.

``paddock sim consensus`` runs seeded simulations of the consensus core (see
``paddock.sim.consensus_sim``): one short line per seed, a totals line, and on
the first failure the seed, the broken invariant and the command that replays
it exactly.
"""

from __future__ import annotations

import shlex
import time
from enum import StrEnum

import typer

from paddock.sim.consensus_sim import DEFAULT_DURATION, RunResult, SimConfig, run_simulation

app = typer.Typer(no_args_is_help=True)


class Mode(StrEnum):
    safety = "safety"
    liveness = "liveness"


class Election(StrEnum):
    internal = "internal"
    external = "external"
    both = "both"


def _replay_command(cfg: SimConfig) -> str:
    parts = [
        "paddock",
        "sim",
        "consensus",
        "--replay",
        str(cfg.seed),
        "--nodes",
        str(cfg.nodes),
        "--mode",
        cfg.mode,
        "--election",
        cfg.election,
    ]
    if cfg.bug:
        parts += ["--bug", cfg.bug]
    if cfg.duration != DEFAULT_DURATION:
        parts += ["--duration", str(cfg.duration)]
    return shlex.join(parts)


def _short(r: RunResult) -> str:
    status = "ok" if r.ok else f"FAIL({r.invariant})"
    return f"{r.config.election[:3]}:{status} {r.steps}st {r.commits}c {r.faults}f"


def _report_failure(r: RunResult) -> None:
    assert r.failure is not None
    typer.echo(
        f"FAILED seed {r.config.seed} ({r.config.election} election, {r.config.nodes} nodes, "
        f"{r.config.mode}): invariant '{r.failure.invariant}' violated: {r.failure.detail}",
        err=True,
    )
    typer.echo(f"replay: {_replay_command(r.config)}", err=True)


@app.command("consensus")
def consensus(
    seeds: int = typer.Option(100, "--seeds", min=1, help="How many seeds to run."),
    seed_start: int = typer.Option(0, "--seed-start", help="First seed."),
    nodes: int = typer.Option(3, "--nodes", help="Cluster size (3 or 5)."),
    mode: Mode = typer.Option(Mode.safety, "--mode", help="safety or liveness."),
    election: Election = typer.Option(
        Election.both, "--election", help="internal, external or both."
    ),
    replay: int | None = typer.Option(
        None, "--replay", help="Run this one seed and print its event trace."
    ),
    bug: str = typer.Option("", "--bug", help="Test-only Raft bug switch to enable."),
    duration: float = typer.Option(
        DEFAULT_DURATION, "--duration", help="Virtual seconds of faults per run."
    ),
) -> None:
    """Run seeded simulations of the consensus core and check its invariants."""
    if nodes not in (3, 5):
        raise typer.BadParameter("--nodes must be 3 or 5")
    elections = ["internal", "external"] if election == Election.both else [election.value]

    def config(seed: int, el: str, trace: bool = False) -> SimConfig:
        return SimConfig(
            seed=seed,
            nodes=nodes,
            mode=mode.value,
            election=el,
            bug=bug,
            duration=duration,
            trace=trace,
        )

    try:
        config(0, elections[0])  # validate early
        from paddock.consensus.raft import Config

        Config(id=1, peers=(1,), bug=bug)
    except ValueError as e:
        raise typer.BadParameter(str(e)) from None

    if replay is not None:
        failed = False
        for el in elections:
            r = run_simulation(config(replay, el, trace=True))
            for line in r.trace:
                typer.echo(line)
            typer.echo(
                f"seed {replay} {_short(r)} ops={r.ops} restarts={r.restarts} "
                f"caught-corruptions={r.caught_corruptions} trace-hash={r.fingerprint}"
            )
            if not r.ok:
                _report_failure(r)
                failed = True
        raise typer.Exit(1 if failed else 0)

    started = time.perf_counter()
    runs = steps = commits = faults = 0
    for seed in range(seed_start, seed_start + seeds):
        results = []
        for el in elections:
            r = run_simulation(config(seed, el))
            results.append(r)
            runs += 1
            steps += r.steps
            commits += r.commits
            faults += r.faults
            if not r.ok:
                break
        typer.echo(f"seed {seed} " + " ".join(_short(r) for r in results))
        bad = next((r for r in results if not r.ok), None)
        if bad is not None:
            _report_failure(bad)
            raise typer.Exit(1)
    elapsed = time.perf_counter() - started
    typer.echo(
        f"all {runs} runs passed ({seeds} seeds, {nodes} nodes, {mode.value}, "
        f"{'+'.join(elections)} election): {steps} steps, {commits} commits, "
        f"{faults} faults in {elapsed:.1f}s"
    )
