"""The ``paddock`` command. Each part registers its sub-commands from its own module."""

from __future__ import annotations

import typer

from paddock import __version__
from paddock.cli import agent_cmd, consensus_cmd, keeper_cmd, marathon_cmd, master_cmd, sim_cmd

app = typer.Typer(
    help="paddock: a highly available cluster manager.",
    no_args_is_help=True,
    add_completion=False,
)
app.add_typer(sim_cmd.app, name="sim", help="Deterministic simulation of paddock's cores.")
app.add_typer(consensus_cmd.app, name="consensus", help="Run and inspect consensus nodes.")
app.command("keeper", help="Run a keeper server (ZooKeeper-compatible).")(keeper_cmd.keeper)
app.command("agent", help="Run an agent that runs tasks for the masters.")(agent_cmd.agent)
app.command("master", help="Run a master (Mesos-compatible, HA via ZooKeeper).")(master_cmd.master)
app.command("marathon", help="Run marathon (keeps apps running; HA via ZooKeeper).")(
    marathon_cmd.marathon
)


@app.command()
def version() -> None:
    """Print paddock's version."""
    typer.echo(__version__)


if __name__ == "__main__":  # pragma: no cover
    app()
