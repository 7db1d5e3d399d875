"""``paddock master``: run one Mesos-compatible master (HA through ZooKeeper/keeper)."""

from __future__ import annotations

import asyncio
import logging
import signal
import socket
from pathlib import Path

import typer

from paddock.config_file import ConfigOption
from paddock.logsetup import setup_logging


def _fail(message: str) -> typer.Exit:
    typer.echo(f"error: {message}", err=True)
    return typer.Exit(2)


def master(
    zk: str = typer.Option(..., "--zk", help="zk://host:port[,host:port...]/path for election."),
    quorum: int = typer.Option(..., "--quorum", help="Registry quorum (> masters / 2)."),
    work_dir: Path = typer.Option(..., "--work-dir", help="Registry log and replica id."),
    port: int = typer.Option(5050, "--port", help="HTTP port."),
    ip: str = typer.Option("127.0.0.1", "--ip", help="Address to listen on and advertise."),
    hostname: str = typer.Option("", "--hostname", help="Advertised hostname (default: --ip)."),
    registry_port: int = typer.Option(
        0,
        "--registry-port",
        help="Port for registry replication between masters (default: --port + 10000).",
    ),
    credentials: Path | None = typer.Option(
        None,
        "--credentials",
        help='JSON {"credentials":[{"principal","secret"}]}: '
        "frameworks and agents must authenticate.",
    ),
    agent_ping_timeout: str = typer.Option("15s", "--agent-ping-timeout"),
    max_agent_ping_timeouts: int = typer.Option(5, "--max-agent-ping-timeouts"),
    agent_reregister_timeout: str = typer.Option("10mins", "--agent-reregister-timeout"),
    zk_session_timeout: str = typer.Option("10s", "--zk-session-timeout"),
    allocation_interval: str = typer.Option("1s", "--allocation-interval"),
    offer_timeout: str = typer.Option("", "--offer-timeout", help="Rescind offers after this."),
    heartbeat_interval: str = typer.Option(
        "15s", "--heartbeat-interval", help="Scheduler HEARTBEAT interval."
    ),
    log_format: str = typer.Option("text", "--log-format", help="text or json."),
    log_level: str = typer.Option("INFO", "--log-level"),
    config: ConfigOption = None,  # read (as defaults for the options) before this runs
) -> None:
    """Run a master: leader election through ZooKeeper, a registry replicated among the
    masters, fair resource offers to frameworks (Mesos v1 scheduler HTTP API)."""
    from paddock.master.config import MasterConfig, load_credentials, parse_duration
    from paddock.master.election import parse_zk_url

    if log_format not in ("text", "json"):
        raise _fail("--log-format must be text or json")
    if log_level.upper() not in ("DEBUG", "INFO", "WARNING", "ERROR"):
        raise _fail("--log-level must be DEBUG, INFO, WARNING or ERROR")
    try:
        zk_url = parse_zk_url(zk)
        durations = {
            name: parse_duration(value)
            for name, value in (
                ("--agent-ping-timeout", agent_ping_timeout),
                ("--agent-reregister-timeout", agent_reregister_timeout),
                ("--zk-session-timeout", zk_session_timeout),
                ("--allocation-interval", allocation_interval),
                ("--heartbeat-interval", heartbeat_interval),
            )
        }
        offer_t = parse_duration(offer_timeout) if offer_timeout else None
    except ValueError as exc:
        raise _fail(str(exc)) from None
    for name, value in durations.items():
        if value <= 0:
            raise _fail(f"{name} must be positive")
    if quorum < 1:
        raise _fail("--quorum must be >= 1")
    if max_agent_ping_timeouts < 1:
        raise _fail("--max-agent-ping-timeouts must be >= 1")
    for name, p in (("--port", port), ("--registry-port", registry_port)):
        if not 0 <= p <= 65535 or (name == "--port" and p == 0):
            raise _fail(f"{name} must be a TCP port (1-65535)")
    try:
        socket.inet_aton(ip)
    except OSError:
        raise _fail(f"--ip must be an IPv4 address, got {ip!r}") from None
    creds = None
    if credentials is not None:
        try:
            creds = load_credentials(credentials)
        except (OSError, ValueError) as exc:
            raise _fail(f"--credentials: {exc}") from None
    cfg = MasterConfig(
        zk=zk_url,
        quorum=quorum,
        work_dir=work_dir,
        port=port,
        ip=ip,
        hostname=hostname or ip,
        registry_port=registry_port,
        credentials=creds,
        agent_ping_timeout=durations["--agent-ping-timeout"],
        max_agent_ping_timeouts=max_agent_ping_timeouts,
        agent_reregister_timeout=durations["--agent-reregister-timeout"],
        zk_session_timeout=durations["--zk-session-timeout"],
        allocation_interval=durations["--allocation-interval"],
        offer_timeout=offer_t,
        heartbeat_interval=durations["--heartbeat-interval"],
    )
    if cfg.consensus_port > 65535:
        raise _fail("--registry-port must be given when --port + 10000 is not a valid port")
    setup_logging(log_level, log_format, f"master:{port}", quiet=("kazoo",))
    try:
        import uvloop

        uvloop.install()
    except ImportError:  # pragma: no cover
        pass
    code = asyncio.run(_run(cfg))
    raise typer.Exit(code)


async def _run(cfg: object) -> int:
    from paddock.master.config import MasterConfig
    from paddock.master.daemon import MasterDaemon

    assert isinstance(cfg, MasterConfig)
    daemon = MasterDaemon(cfg)
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, daemon.request_stop)
    try:
        return await daemon.run()
    except OSError as exc:
        logging.getLogger("paddock.master").error("cannot start: %s", exc)
        return 1
