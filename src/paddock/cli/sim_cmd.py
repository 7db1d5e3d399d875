"""``paddock sim ...``: deterministic simulation runs (filled in by the simulator)."""

from __future__ import annotations

import typer

app = typer.Typer(no_args_is_help=True)


@app.command("consensus")
def consensus() -> None:
    """Run seeded simulations of the consensus core."""
    typer.echo("not yet implemented", err=True)
    raise typer.Exit(2)
