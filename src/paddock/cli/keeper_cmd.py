"""``paddock keeper``: run a ZooKeeper-compatible keeper server.

Settings come from a ZooKeeper ``zoo.cfg`` (``--zoo-cfg``, or ``--config`` with any
suffix but ``.toml``) and from the options below, which win over zoo.cfg. The options
themselves may also come from ``PADDOCK_KEEPER_<FLAG>`` variables or the ``[keeper]``
table of ``--config paddock.toml`` (see paddock.config_file).
"""

from __future__ import annotations

import asyncio
import logging
import os
import signal
from pathlib import Path

import typer

from paddock.logsetup import setup_logging


def keeper(
    server_id: int = typer.Option(0, "--id", help="This server's id (>= 1)."),
    peers: str = typer.Option(
        "",
        "--peers",
        help="All servers' consensus addresses: 1=HOST:PORT,2=HOST:PORT,3=HOST:PORT "
        "(omit for a standalone server).",
    ),
    client_port: int = typer.Option(-1, "--client-port", help="ZooKeeper client port."),
    client_host: str = typer.Option("", "--client-host", help="Address to listen on."),
    data_dir: Path | None = typer.Option(None, "--data-dir", help="Log and snapshot directory."),
    tick_time: int = typer.Option(0, "--tick-time", help="tickTime in ms (sessions: 2-20 ticks)."),
    metrics_port: int = typer.Option(
        -1,
        "--metrics-port",
        help="Serve Prometheus /metrics on this port (as zoo.cfg metricsProvider.httpPort; "
        "default: zoo.cfg's, else none).",
    ),
    metrics_host: str = typer.Option("", "--metrics-host", help="Address for /metrics."),
    zoo_cfg: Path | None = typer.Option(None, "--zoo-cfg", help="A ZooKeeper zoo.cfg file."),
    config: Path | None = typer.Option(
        None,
        "--config",
        help="A paddock .toml file (its keeper table holds these options; flags and "
        "PADDOCK_KEEPER_* win over it) or, with any other suffix, a zoo.cfg.",
    ),
    log_format: str = typer.Option("text", "--log-format", help="text or json."),
    log_level: str = typer.Option("INFO", "--log-level"),
) -> None:
    """Run a keeper server (ZooKeeper wire protocol, Raft-replicated)."""
    from paddock.keeper.config import (
        ALL_4LW,
        ConfigError,
        KeeperConfig,
        ServerSpec,
        apply_environment,
        load_zoo_cfg,
    )

    if log_format not in ("text", "json"):
        typer.echo("error: --log-format must be text or json", err=True)
        raise typer.Exit(2)
    if zoo_cfg is None and config is not None and config.suffix != ".toml":
        zoo_cfg = config  # the old spelling; a .toml was read before this runs
    try:
        if zoo_cfg is not None:
            cfg = load_zoo_cfg(zoo_cfg)
        else:
            cfg = KeeperConfig(
                four_letter_words=ALL_4LW, client_host="127.0.0.1", metrics_host="127.0.0.1"
            )
        apply_environment(cfg)
        if server_id:
            cfg.my_id = server_id
        if tick_time:
            cfg.tick_ms = tick_time
        if client_port >= 0:
            cfg.client_port = client_port
        if client_host:
            cfg.client_host = client_host
        if data_dir is not None:
            cfg.data_dir = data_dir
        if metrics_port >= 0:
            cfg.metrics_port = metrics_port
        if metrics_host:
            cfg.metrics_host = metrics_host
        if peers:
            from paddock.consensus.server import parse_peers

            try:
                peer_map = parse_peers(peers)
            except ValueError as exc:
                raise ConfigError(f"--peers: {exc}") from None
            cfg.servers = {
                sid: ServerSpec(sid, host, port) for sid, (host, port) in peer_map.items()
            }
        if zoo_cfg is None and not server_id:
            cfg.my_id = 1
        if zoo_cfg is None and data_dir is None:
            raise ConfigError("--data-dir (or --zoo-cfg with dataDir) is required")
        cfg.validate()
    except ConfigError as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(2) from None

    setup_logging(log_level, log_format, f"keeper{cfg.my_id}")

    status = 0

    async def main() -> None:
        nonlocal status
        from paddock.keeper.server import serve

        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, stop.set)
        status = await serve(cfg, stop)

    profile = os.environ.get("PADDOCK_KEEPER_PROFILE")
    profiler = None
    if profile:  # a cProfile dump of the whole run, for performance work
        import cProfile

        profiler = cProfile.Profile()
        profiler.enable()
    try:
        import uvloop

        uvloop.run(main())
    except ImportError:  # pragma: no cover
        asyncio.run(main())
    except OSError as exc:  # a port in use, an unwritable data dir (logged: JSON stays JSON)
        logging.getLogger("paddock.keeper").error("cannot start keeper %d: %s", cfg.my_id, exc)
        status = 1
    finally:
        if profiler is not None and profile:
            profiler.disable()
            profiler.dump_stats(f"{profile}.{cfg.my_id}")
    if status:
        raise typer.Exit(status)
