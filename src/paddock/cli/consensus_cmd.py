"""``paddock consensus ...``: run a live consensus node, or the 3-node demo."""

from __future__ import annotations

import asyncio
import logging
import signal
from pathlib import Path

import typer

app = typer.Typer(no_args_is_help=True)


def run_event_loop(main: object) -> None:
    """Run a coroutine on uvloop when available (faster sockets), else asyncio."""
    try:
        import uvloop
    except ImportError:  # pragma: no cover - uvloop is a dependency on Linux
        asyncio.run(main)  # type: ignore[arg-type]
        return
    uvloop.run(main)  # type: ignore[arg-type]


@app.command("serve")
def serve(
    node_id: int = typer.Option(..., "--id", help="This node's id (>= 1)."),
    peers: str = typer.Option(
        ..., "--peers", help="All nodes, this one included: 1=127.0.0.1:7001,2=...,3=..."
    ),
    data_dir: Path = typer.Option(..., "--data-dir", help="Directory for the log and snapshots."),
    client_port: int = typer.Option(0, "--client-port", help="Port of the line-based KV API."),
    client_host: str = typer.Option("127.0.0.1", "--client-host"),
    tick_ms: float = typer.Option(
        50.0, "--tick-ms", help="Raft tick; election timeout is 10-20 ticks."
    ),
    snapshot_every: int = typer.Option(
        50_000, "--snapshot-every", help="Entries between snapshots."
    ),
    cluster_id: str = typer.Option("paddock", "--cluster-id"),
    external_election: bool = typer.Option(False, "--external-election"),
    overlap_persist: bool = typer.Option(
        True,
        "--overlap-persist/--no-overlap-persist",
        help="Leader sends appends and applies committed entries while its fsync runs.",
    ),
    log_level: str = typer.Option("INFO", "--log-level"),
) -> None:
    """Run one consensus node with a tiny replicated key-value store.

    Client API (one request per line): PUT <key> <value> | GET <key> | STATUS.
    """
    from paddock.consensus.kv import serve_kv_node
    from paddock.consensus.server import parse_peers

    logging.basicConfig(
        level=log_level.upper(), format=f"%(asctime)s node{node_id} %(levelname)s %(message)s"
    )
    try:
        peer_map = parse_peers(peers)
    except ValueError as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(2) from exc
    if node_id not in peer_map:
        typer.echo(f"error: --id {node_id} is not in --peers", err=True)
        raise typer.Exit(2)

    async def main() -> None:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, stop.set)
        await serve_kv_node(
            node_id,
            peer_map,
            str(data_dir),
            client_host,
            client_port,
            stop=stop,
            tick_interval=tick_ms / 1000.0,
            snapshot_every=snapshot_every,
            cluster_id=cluster_id,
            external_election=external_election,
            overlap_persist=overlap_persist,
        )

    try:
        run_event_loop(main())
    except (RuntimeError, OSError, ValueError) as exc:
        # Storage that cannot be opened (corrupt, locked by another process) or
        # failed while running: say so plainly and let a supervisor decide.
        typer.echo(f"node {node_id}: {type(exc).__name__}: {exc}", err=True)
        raise typer.Exit(1) from exc


@app.command("demo")
def demo(
    work_dir: Path | None = typer.Option(
        None, "--work-dir", help="Where node data and logs go (default: a temporary directory)."
    ),
) -> None:
    """Start 3 nodes as processes, write, kill the leader, fail over, restart, catch up."""
    from paddock.consensus.demo import run_demo

    code = asyncio.run(run_demo(work_dir))
    raise typer.Exit(code)
