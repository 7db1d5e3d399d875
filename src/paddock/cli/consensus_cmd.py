"""``paddock consensus ...``: a live consensus node and demo (filled in by the server shell)."""

from __future__ import annotations

import typer

app = typer.Typer(no_args_is_help=True)


@app.command("serve")
def serve() -> None:
    """Run one consensus node."""
    typer.echo("not yet implemented", err=True)
    raise typer.Exit(2)
