"""``paddock marathon``: run one Marathon-compatible framework instance (HA via ZooKeeper)."""

from __future__ import annotations

import asyncio

import typer

from paddock.config_file import ConfigOption
from paddock.logsetup import setup_logging


def _fail(message: str) -> typer.Exit:
    typer.echo(f"error: {message}", err=True)
    return typer.Exit(2)


def marathon(
    master: str = typer.Option(
        ..., "--master", help="zk://host:port[,...]/mesos or host:port of a master."
    ),
    zk: str = typer.Option(
        "zk://127.0.0.1:2181/marathon", "--zk", help="zk://host:port[,...]/path for all state."
    ),
    port: int = typer.Option(8080, "--port", help="HTTP port of the v2 API."),
    hostname: str = typer.Option("127.0.0.1", "--hostname", help="Advertised host name."),
    bind: str = typer.Option("0.0.0.0", "--bind", help="Address to listen on."),
    framework_name: str = typer.Option("marathon", "--framework-name"),
    failover_timeout: float = typer.Option(
        604800.0, "--failover-timeout", help="Seconds the master keeps tasks while we are away."
    ),
    mesos_role: str = typer.Option("*", "--mesos-role", help="Role to receive offers for."),
    mesos_user: str = typer.Option("root", "--mesos-user"),
    zk_session_timeout: float = typer.Option(10.0, "--zk-session-timeout", help="Seconds."),
    reconciliation_initial_delay: float = typer.Option(
        15.0, "--reconciliation-initial-delay", help="Seconds after subscribing."
    ),
    reconciliation_interval: float = typer.Option(600.0, "--reconciliation-interval"),
    kill_retry_timeout: float = typer.Option(
        10.0, "--kill-retry-timeout", help="Seconds before an unconfirmed KILL is sent again."
    ),
    task_launch_timeout: float = typer.Option(300.0, "--task-launch-timeout"),
    max_running_deployments: int = typer.Option(100, "--max-running-deployments"),
    http_credentials: str = typer.Option(
        "",
        "--http-credentials",
        envvar="MARATHON_HTTP_CREDENTIALS",
        show_envvar=False,
        help="user:password required (HTTP basic) on every request, as Marathon's "
        "--http_credentials; also read from MARATHON_HTTP_CREDENTIALS. Empty: open.",
    ),
    http_realm: str = typer.Option("Mesosphere", "--http-realm", help="Basic auth realm."),
    log_format: str = typer.Option("text", "--log-format", help="text or json."),
    log_level: str = typer.Option("INFO", "--log-level"),
    config: ConfigOption = None,  # read (as defaults for the options) before this runs
) -> None:
    """Run marathon: the v2 REST API, deployments and health checks, scheduling apps on a
    Mesos-compatible master; all state in ZooKeeper/keeper; one instance leads."""
    from paddock.marathon.scheduler.daemon import MarathonConfig, MarathonDaemon

    if log_format not in ("text", "json"):
        raise _fail("--log-format must be text or json")
    if log_level.upper() not in ("DEBUG", "INFO", "WARNING", "ERROR"):
        raise _fail("--log-level must be DEBUG, INFO, WARNING or ERROR")
    if not 1 <= port <= 65535:
        raise _fail("--port must be a TCP port (1-65535)")
    if failover_timeout <= 0 or zk_session_timeout <= 0:
        raise _fail("--failover-timeout and --zk-session-timeout must be positive")
    if not master.startswith("zk://") and ":" not in master:
        raise _fail("--master must be zk://hosts/path or host:port")
    cfg = MarathonConfig(
        master=master,
        zk=zk,
        port=port,
        hostname=hostname,
        bind=bind,
        framework_name=framework_name,
        failover_timeout=failover_timeout,
        role=mesos_role,
        user=mesos_user,
        zk_session_timeout=zk_session_timeout,
        reconciliation_initial_delay=reconciliation_initial_delay,
        reconciliation_interval=reconciliation_interval,
        kill_retry_timeout=kill_retry_timeout,
        task_launch_timeout=task_launch_timeout,
        max_running_deployments=max_running_deployments,
    )
    try:
        cfg.zk_parts()
    except ValueError as exc:
        raise _fail(str(exc)) from None
    if http_credentials:
        from paddock.marathon.api_auth import parse_http_credentials

        try:
            parse_http_credentials(http_credentials)
        except ValueError as exc:
            raise _fail(str(exc)) from None
    setup_logging(log_level, log_format, f"marathon:{port}", quiet=("kazoo", "httpx"))
    try:
        import uvloop

        uvloop.install()
    except ImportError:  # pragma: no cover
        pass
    daemon = MarathonDaemon(cfg)
    if http_credentials:
        from paddock.marathon.api_auth import protect

        protect(daemon.api, http_credentials, http_realm)
    code = asyncio.run(daemon.run())
    raise typer.Exit(code)
