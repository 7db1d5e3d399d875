"""``paddock agent``: run an agent that offers this host's resources and runs tasks."""

from __future__ import annotations

import asyncio
import signal

import typer

from paddock.config_file import ConfigOption
from paddock.logsetup import setup_logging


def agent(
    master: str = typer.Option(
        "", "--master", help="zk://host:port[,host:port...]/mesos or HOST:PORT of a master."
    ),
    port: int = typer.Option(5051, "--port", help="Port of the agent's HTTP endpoints."),
    work_dir: str = typer.Option("", "--work-dir", help="Sandboxes and checkpoints."),
    hostname: str = typer.Option("", "--hostname", help="Name to advertise (default: the host's)."),
    ip: str = typer.Option("", "--ip", help="Address to bind and advertise (default 127.0.0.1)."),
    resources: str = typer.Option(
        "",
        "--resources",
        help='e.g. "cpus:4;mem:4096;disk:10000;ports:[31000-32000]"; unnamed ones are detected.',
    ),
    attributes: str = typer.Option("", "--attributes", help='e.g. "rack:a;nfs:true".'),
    credential: str = typer.Option(
        "", "--credential", help='File with "principal secret" or JSON {principal, secret}.'
    ),
    recover: str = typer.Option(
        "reconnect", "--recover", help="reconnect or cleanup (what to do with a previous run)."
    ),
    registration_backoff: float = typer.Option(
        1.0, "--registration-backoff-factor", help="First (re)registration backoff, seconds."
    ),
    status_retry_min: float = typer.Option(
        10.0, "--status-update-retry-min", help="First status update retry interval, seconds."
    ),
    status_retry_max: float = typer.Option(
        600.0, "--status-update-retry-max", help="Longest status update retry interval, seconds."
    ),
    kill_grace: float = typer.Option(
        3.0, "--default-kill-grace", help="SIGTERM-to-SIGKILL grace without a KillPolicy, s."
    ),
    gc_delay: float = typer.Option(
        7 * 24 * 3600.0, "--gc-delay", help="Remove finished sandboxes after this many seconds."
    ),
    containerizers: str = typer.Option(
        "mesos",
        "--containerizers",
        help="docker,mesos: kinds of container run (order = preference).",
    ),
    docker_socket: str = typer.Option(
        "unix:///var/run/docker.sock",
        "--docker-socket",
        help="Docker Engine API (Docker, or podman system service), unix:///path or tcp://h:p.",
    ),
    switch_user: bool = typer.Option(
        True,
        "--switch-user/--no-switch-user",
        help="Run tasks as their command.user (needs root); off: as the agent's user.",
    ),
    docker_config: str = typer.Option(
        "",
        "--docker-config",
        help="Docker config.json (path or JSON) whose auths are used for image pulls.",
    ),
    cgroups_root: str = typer.Option("paddock", "--cgroups-root", help="Name of the cgroup tree."),
    no_cgroups: bool = typer.Option(False, "--no-cgroups", help="Do not use cgroups."),
    log_format: str = typer.Option("text", "--log-format", help="text or json."),
    log_level: str = typer.Option("INFO", "--log-level"),
    config_file: ConfigOption = None,  # --config: read (as defaults) before this runs
) -> None:
    """Run an agent: register with the leading master, run tasks, report their status."""
    from paddock.agent.config import (
        AgentConfig,
        ConfigError,
        parse_containerizers,
        parse_docker_socket,
    )
    from paddock.agent.docker_auth import DockerConfigError, load_docker_config

    try:
        if log_format not in ("text", "json"):
            raise ConfigError(f"--log-format: expected text or json, got {log_format!r}")
        if log_level.upper() not in ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"):
            raise ConfigError(f"--log-level: unknown level {log_level!r}")
        if registration_backoff <= 0:
            raise ConfigError("--registration-backoff-factor must be positive")
        if status_retry_min <= 0 or status_retry_max < status_retry_min:
            raise ConfigError(
                "--status-update-retry-min must be positive and at most --status-update-retry-max"
            )
        if gc_delay < 0:
            raise ConfigError("--gc-delay must not be negative")
        if kill_grace < 0:
            raise ConfigError("--default-kill-grace must not be negative")
        try:
            docker_auths = load_docker_config(docker_config) if docker_config else {}
        except DockerConfigError as exc:
            raise ConfigError(str(exc)) from None
        config = AgentConfig.from_flags(
            master=master,
            work_dir=work_dir,
            port=port,
            hostname=hostname,
            ip=ip,
            resources=resources or None,
            attributes=attributes or None,
            credential=credential or None,
            recover=recover,
            registration_backoff=registration_backoff,
            registration_backoff_max=max(60.0, registration_backoff),
            status_retry_min=status_retry_min,
            status_retry_max=status_retry_max,
            default_kill_grace=kill_grace,
            gc_delay=gc_delay,
            cgroups_root=cgroups_root,
            cgroups_enabled=not no_cgroups,
            containerizers=parse_containerizers(containerizers),
            docker_socket=parse_docker_socket(docker_socket),
            switch_user=switch_user,
            docker_auths=docker_auths,
        )
    except ConfigError as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(2) from None

    setup_logging(log_level, log_format, "agent", quiet=("kazoo", "httpx", "httpcore"))

    async def main() -> None:
        from paddock.agent.server import serve

        stop = asyncio.Event()
        unregister = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, stop.set)
        loop.add_signal_handler(signal.SIGUSR1, unregister.set)
        await serve(config, stop, unregister)

    try:
        try:
            import uvloop

            uvloop.run(main())
        except ImportError:  # pragma: no cover
            asyncio.run(main())
    except OSError as exc:
        typer.echo(f"error: cannot start the agent: {exc}", err=True)
        raise typer.Exit(1) from None
