"""``paddock chaos run``: the chaos lab (needs root: network namespaces).

Starts keeper (``--workload keeper``) or the whole cluster (``--workload cluster``:
keepers, masters, marathons, agents) on ``--hosts`` network-namespace hosts, runs the
workload while the nemesis injects faults for ``--time`` seconds, heals, reads
everything back (or waits for the apps to converge), checks the history and writes a
report (text + HTML) to ``--out``.
Exit status 0: no anomalies; 1: anomalies found; 2: the lab could not run.
"""

from __future__ import annotations

import random
from pathlib import Path

import typer

app = typer.Typer(no_args_is_help=True)


@app.command("run")
def run(
    hosts: int = typer.Option(5, "--hosts", help="Number of hosts (network namespaces), 1-9."),
    time_s: float = typer.Option(120.0, "--time", help="Seconds of workload under faults."),
    nemesis: str = typer.Option(
        "partition,kill,pause,slow", "--nemesis", help="Faults to inject (comma-separated)."
    ),
    workload: str = typer.Option(
        "keeper",
        "--workload",
        help="keeper (clients of the coordination service) or cluster (Marathon apps on "
        "masters, agents and marathons).",
    ),
    seed: int = typer.Option(-1, "--seed", help="Seed of the fault schedule (-1: random)."),
    out: Path = typer.Option(Path("chaos-out"), "--out", help="Directory for histories/report."),
    recovery_timeout: float = typer.Option(
        -1.0,
        "--recovery-timeout",
        help="Seconds the cluster may take to recover (default: 60 keeper, 90 cluster).",
    ),
) -> None:
    """Run the cluster on separate hosts under faults and check nothing was lost."""
    from paddock.chaos.hosts import unavailable_reason
    from paddock.chaos.runner import RunConfig
    from paddock.chaos.runner import run as run_lab

    reason = unavailable_reason()
    if reason is not None:
        typer.echo(f"error: {reason}", err=True)
        raise typer.Exit(2)
    kinds = tuple(k.strip() for k in nemesis.split(",") if k.strip())
    if recovery_timeout < 0:
        recovery_timeout = 90.0 if workload == "cluster" else 60.0
    if seed < 0:
        seed = random.SystemRandom().randrange(1_000_000)
    cfg = RunConfig(
        hosts=hosts,
        time=time_s,
        nemesis=kinds,
        workload=workload,
        seed=seed,
        out=out,
        recovery_timeout=recovery_timeout,
    )
    try:
        result = run_lab(cfg)
    except (ValueError, RuntimeError) as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(2) from None
    except KeyboardInterrupt:
        typer.echo("interrupted: every process and namespace of the run was removed", err=True)
        raise typer.Exit(130) from None
    typer.echo(f"report: {out / 'report.html'}")
    raise typer.Exit(0 if result.ok else 1)
