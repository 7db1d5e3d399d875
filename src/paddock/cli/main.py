"""The ``paddock`` command. Each part registers its sub-commands from its own module."""

from __future__ import annotations

import typer

from paddock import __version__
from paddock.cli import (
    agent_cmd,
    app_cmd,
    chaos_cmd,
    consensus_cmd,
    keeper_cmd,
    marathon_cmd,
    master_cmd,
    sim_cmd,
    status_cmd,
    task_cmd,
    up_cmd,
    zk_cmd,
)
from paddock.config_file import daemon_command

app = typer.Typer(
    help="paddock: a highly available cluster manager.",
    no_args_is_help=True,
    add_completion=False,
)
app.add_typer(sim_cmd.app, name="sim", help="Deterministic simulation of paddock's cores.")
app.add_typer(chaos_cmd.app, name="chaos", help="The chaos lab: hosts, faults, checked histories.")
app.add_typer(consensus_cmd.app, name="consensus", help="Run and inspect consensus nodes.")
# The daemons and `up` also take their options from PADDOCK_<CMD>_<FLAG> variables and
# the [<cmd>] table of --config FILE.toml (paddock.config_file).
app.command(
    "keeper",
    cls=daemon_command("keeper", toml_suffix_only=True),
    help="Run a keeper server (ZooKeeper-compatible).",
)(keeper_cmd.keeper)
app.command(
    "agent", cls=daemon_command("agent"), help="Run an agent that runs tasks for the masters."
)(agent_cmd.agent)
app.command(
    "master",
    cls=daemon_command("master"),
    help="Run a master (Mesos-compatible, HA via ZooKeeper).",
)(master_cmd.master)
app.command(
    "marathon",
    cls=daemon_command("marathon"),
    help="Run marathon (keeps apps running; HA via ZooKeeper).",
)(marathon_cmd.marathon)

app.command(
    "up",
    cls=daemon_command("up"),
    help="Start a whole local cluster (keepers, masters, agents, marathons).",
)(up_cmd.up)
app.command("down", help="Stop the cluster started by `paddock up --detach`.")(up_cmd.down)
app.command("supervise", hidden=True)(up_cmd.supervise)
app.command("status", help="Keeper and master quorum, leaders, agents, frameworks.")(
    status_cmd.status
)
app.add_typer(app_cmd.app, name="app", help="Marathon apps: deploy, list, show, scale, rm.")
app.add_typer(task_cmd.app, name="task", help="Tasks: list, logs, kill.")
app.command("agents", help="Agents with free/used resources and attributes.")(status_cmd.agent_list)
app.add_typer(zk_cmd.app, name="zk", help="Znodes: ls, get, set, rm (keeper or ZooKeeper).")


@app.command()
def version() -> None:
    """Print paddock's version."""
    typer.echo(__version__)


if __name__ == "__main__":  # pragma: no cover
    app()
