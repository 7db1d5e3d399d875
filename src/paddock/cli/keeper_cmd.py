"""``paddock keeper``: a ZooKeeper-compatible server (filled in by keeper)."""

from __future__ import annotations

import typer


def keeper() -> None:
    """Run a keeper server."""
    typer.echo("not yet implemented", err=True)
    raise typer.Exit(2)
