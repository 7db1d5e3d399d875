"""``paddock up`` / ``paddock down``: one command to a running local cluster.

``up`` lays the cluster out once (``DIR/layout.json``; ``DIR/cluster.json`` holds the
endpoints for clients), starts the supervisor process (``paddock supervise``, see
``supervisor.py``) and watches the cluster form: keepers serving, a leading master,
agents registered, a leading marathon. Then it deploys the example app (unless
``--no-example``), prints the endpoints and either returns (``--detach``: the supervisor
keeps running in the background, its pid in ``DIR/supervisor.pid``) or stays in the
foreground with a live status line until Ctrl-C/SIGTERM, which stops everything.
A second ``up`` on the same directory resumes the same cluster (ports, data).
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import time
from pathlib import Path
from typing import Annotated, Any

import httpx
import typer
from rich.console import Console
from rich.live import Live

from paddock.cli.app_cmd import deploy, load_app_file
from paddock.cli.endpoints import (
    DEFAULT_WORK_DIR,
    CliError,
    Endpoints,
    cli_errors,
    keeper_mode,
    master_state,
)
from paddock.cli.status_cmd import marathon_leader
from paddock.cli.supervisor import (
    PIDS_FILE,
    SUPERVISOR_PID_FILE,
    Layout,
    LayoutError,
    Supervisor,
    paddock_argv,
    pid_alive,
)
from paddock.config_file import ConfigOption

EXAMPLE_APP = Path(__file__).resolve().parents[3] / "examples" / "hello-app.json"

WorkDir = Annotated[
    Path | None,
    typer.Option(
        "--work-dir", help=f"Cluster directory (env PADDOCK_WORK_DIR; default {DEFAULT_WORK_DIR})."
    ),
]


def resolve_work_dir(work_dir: Path | None) -> Path:
    if work_dir is not None:
        return work_dir.resolve()
    return Path(os.environ.get("PADDOCK_WORK_DIR") or DEFAULT_WORK_DIR).resolve()


def running_supervisor(work_dir: Path) -> int | None:
    try:
        pid = int((work_dir / SUPERVISOR_PID_FILE).read_text().strip())
    except (OSError, ValueError):
        return None
    return pid if pid_alive(pid) and _is_paddock(pid) else None


def _is_paddock(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as f:
            return b"paddock" in f.read()
    except OSError:
        return False


# -- how far the cluster has formed ------------------------------------------------------
def formation(endpoints: dict[str, Any], agents: int) -> tuple[bool, str]:
    """(ready, one line saying what is up) from the cluster's own answers."""
    parts = []
    keepers = endpoints.get("keepers", [])
    modes = [keeper_mode(k) for k in keepers]
    # An external ZooKeeper may not answer ``srvr`` with a mode; it is up if it answers.
    external = endpoints.get("external_zk", False)
    serving = sum(1 for m in modes if m is not None and (m != "" or external))
    k_ok = serving > len(keepers) // 2
    parts.append(f"keepers {serving}/{len(keepers)}")
    m_ok = False
    active = running = 0
    try:
        leader, state = master_state([f"http://{m}" for m in endpoints["masters"]])
        m_ok = True
        active = sum(1 for s in state.get("slaves", []) if s.get("active"))
        running = sum(
            1
            for f in state.get("frameworks", [])
            for t in f.get("tasks", [])
            if t.get("state") == "TASK_RUNNING"
        )
        parts.append(f"master {leader.split('//', 1)[1]}")
    except CliError:
        parts.append("master: electing")
    parts.append(f"agents {active}/{agents}")
    mar_ok = False
    for m in endpoints.get("marathons", []):
        if marathon_leader(m) != m:
            continue
        try:
            if httpx.get(f"http://{m}/v2/info", timeout=2).json().get("elected"):
                mar_ok = True
                parts.append(f"marathon {m}")
                break
        except (httpx.HTTPError, ValueError):
            continue
    if not mar_ok:
        parts.append("marathon: electing")
    if m_ok:
        parts.append(f"{running} tasks running")
    ready = k_ok and m_ok and active >= agents and mar_ok
    return ready, " · ".join(parts)


def _start_supervisor(work_dir: Path, restart: bool, detach: bool) -> subprocess.Popen[bytes]:
    argv = [*paddock_argv(), "supervise", "--work-dir", str(work_dir)]
    if not restart:
        argv.append("--no-restart")
    if not detach:
        argv += ["--parent-pid", str(os.getpid())]
    logs = work_dir / "logs"
    logs.mkdir(parents=True, exist_ok=True)
    with open(logs / "supervisor.out", "ab") as out:
        return subprocess.Popen(
            argv,
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=subprocess.STDOUT,
            # Detached: its own session, so closing the terminal does not stop it. In the
            # foreground it shares our process group and gets the terminal's Ctrl-C too.
            start_new_session=detach,
        )


def _stop(proc: subprocess.Popen[bytes], timeout: float = 90.0) -> None:
    if proc.poll() is None:
        with contextlib.suppress(ProcessLookupError):
            proc.send_signal(signal.SIGTERM)
    try:
        proc.wait(timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait(5)


def _print_endpoints(console: Console, endpoints: dict[str, Any], leader: str) -> None:
    console.print("[bold green]cluster is up[/]")
    console.print(f"  zk         {endpoints['zk']}")
    console.print(f"  keepers    {', '.join(endpoints['keepers'])}")
    console.print(f"  masters    {', '.join(endpoints['masters'])}  (leader {leader})")
    console.print(f"  agents     {', '.join(endpoints['agents'])}")
    console.print(f"  marathons  {', '.join(endpoints['marathons'])}")
    console.print(f"  ui         {endpoints['ui']}")
    console.print(f"  work dir   {endpoints['work_dir']}  (cluster.json, logs/)")


def up(
    work_dir: WorkDir = None,
    keepers: Annotated[int, typer.Option("--keepers", help="Embedded keepers (Raft).")] = 3,
    masters: Annotated[int, typer.Option("--masters", help="Masters (odd).")] = 3,
    agents: Annotated[int, typer.Option("--agents")] = 3,
    marathons: Annotated[int, typer.Option("--marathons")] = 2,
    zk: Annotated[
        str | None, typer.Option("--zk", help="Use this ZooKeeper/keeper ensemble: zk://h:p,...")
    ] = None,
    detach: Annotated[bool, typer.Option("--detach", help="Return once healthy.")] = False,
    example: Annotated[
        bool, typer.Option("--example/--no-example", help="Deploy examples/hello-app.json.")
    ] = True,
    restart: Annotated[
        bool, typer.Option("--restart/--no-restart", help="Restart daemons that exit.")
    ] = True,
    timeout: Annotated[
        float, typer.Option("--timeout", help="Seconds to wait for health.")
    ] = 180.0,
    config: ConfigOption = None,  # its [up] table was read (as defaults) before this runs
) -> None:
    """Start a whole local cluster (or resume the one in --work-dir)."""
    _up(work_dir, keepers, masters, agents, marathons, zk, detach, example, restart, timeout,
        config)  # fmt: skip


@cli_errors
def _up(
    work_dir_opt: Path | None,
    keepers: int,
    masters: int,
    agents: int,
    marathons: int,
    zk: str | None,
    detach: bool,
    example: bool,
    restart: bool,
    timeout: float,
    config: Path | None = None,
) -> None:
    console = Console()
    config_path = None if config is None else _checked_daemon_config(config)
    work_dir = resolve_work_dir(work_dir_opt)
    pid = running_supervisor(work_dir)
    if pid is not None:
        raise CliError(f"a cluster is already running in {work_dir} (supervisor pid {pid}); "
                       f"stop it with `paddock down --work-dir {work_dir}`")  # fmt: skip
    try:
        layout = Layout.load(work_dir)
        if layout is None:
            layout = Layout.new(work_dir, keepers, masters, agents, marathons, zk)
            console.print(f"new cluster in {work_dir}")
        else:
            console.print(f"resuming the cluster in {work_dir} (its recorded ports and data)")
        if config_path is not None:
            layout.config_file = str(config_path)
        elif layout.config_file is not None:
            console.print(f"the daemons read {layout.config_file} (given to an earlier up)")
        layout.save()
    except LayoutError as exc:
        raise CliError(str(exc)) from None
    endpoints = layout.endpoints()
    sup = _start_supervisor(work_dir, restart, detach)
    stopping = False

    def on_term(signum: int, frame: Any) -> None:
        nonlocal stopping
        stopping = True
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, on_term)
    try:
        end = time.monotonic() + timeout
        with console.status("starting the cluster...") as spinner:
            while True:
                if sup.poll() is not None:
                    raise CliError(f"the supervisor exited ({sup.returncode}); "
                                   f"see {work_dir / 'logs'}")  # fmt: skip
                ready, line = formation(endpoints, len(layout.agents))
                spinner.update(line)
                if ready:
                    break
                if time.monotonic() > end:
                    raise CliError(f"the cluster did not form within {timeout:g}s ({line}); "
                                   f"see {work_dir / 'logs'}")  # fmt: skip
                time.sleep(0.5)
        leader, _ = master_state([f"http://{m}" for m in endpoints["masters"]])
        _print_endpoints(console, endpoints, leader.split("//", 1)[1])
        if example:
            _deploy_example(console, endpoints, timeout)
        if detach:
            console.print(f"supervisor pid {sup.pid}; stop with "
                          f"`paddock down --work-dir {work_dir}`")  # fmt: skip
            return
        console.print("Ctrl-C stops the cluster.")
        _foreground(console, sup, endpoints, len(layout.agents))
    except KeyboardInterrupt:
        console.print("stopping the cluster...")
        _stop(sup)
        console.print("stopped")
        if stopping:
            raise typer.Exit(0) from None
    except BaseException:
        _stop(sup)
        raise


def _checked_daemon_config(path: Path) -> Path:
    """``up --config FILE``: the daemons it starts read their own tables of the same
    file, so check those tables now, before anything starts (a mistake would otherwise
    show only as a daemon the supervisor restarts over and over)."""
    import typer.main

    from paddock.cli.main import app
    from paddock.config_file import ConfigFileError, check_file_for

    path = path.resolve()
    if path.suffix != ".toml":
        raise CliError(f"--config {path}: `paddock up` takes a .toml file (keeper would read "
                       "any other file as a zoo.cfg)")  # fmt: skip
    group = typer.main.get_command(app)
    commands = getattr(group, "commands", {})
    for name in ("keeper", "master", "agent", "marathon"):
        try:
            check_file_for(path, commands[name])
        except ConfigFileError as exc:  # as the daemon itself would: one line, status 2
            typer.echo(f"error: {exc}", err=True)
            raise typer.Exit(2) from None
    return path


def _deploy_example(console: Console, endpoints: dict[str, Any], timeout: float) -> None:
    if not EXAMPLE_APP.exists():
        console.print(f"[yellow]no example app at {EXAMPLE_APP}; skipped[/]")
        return
    spec = load_app_file(EXAMPLE_APP)
    base = Endpoints(marathon=endpoints["marathons"][0]).marathon_url()
    if httpx.get(f"{base}/v2/apps/{spec['id'].strip('/')}", timeout=5).status_code == 200:
        console.print(f"example app {spec['id']} is already deployed")
        return
    deploy(base, spec, True, timeout, console)
    tasks = httpx.get(f"{base}/v2/apps/{spec['id'].strip('/')}/tasks", timeout=5).json()["tasks"]
    for t in tasks:
        console.print(f"  http://{t['host']}:{t['ports'][0]}/  ({t['id']})")


def _foreground(
    console: Console, sup: subprocess.Popen[bytes], endpoints: dict[str, Any], agents: int
) -> None:
    with Live(console=console, refresh_per_second=1, transient=True) as live:
        while sup.poll() is None:
            _, line = formation(endpoints, agents)
            live.update(f"[dim]{time.strftime('%H:%M:%S')}[/] {line}")
            for _ in range(20):
                if sup.poll() is not None:
                    break
                time.sleep(0.1)
    raise CliError(f"the supervisor exited ({sup.returncode}); see {endpoints['work_dir']}/logs")


@cli_errors
def down(work_dir: WorkDir = None) -> None:
    """Stop the cluster that `paddock up --detach` started (its state stays for the next up)."""
    directory = resolve_work_dir(work_dir)
    pid = running_supervisor(directory)
    leftovers = _recorded_pids(directory)
    if pid is None and not leftovers:
        raise CliError(f"no cluster is running in {directory}")
    if pid is not None:
        os.kill(pid, signal.SIGTERM)
        end = time.monotonic() + 90
        while pid_alive(pid) and time.monotonic() < end:
            time.sleep(0.1)
        if pid_alive(pid):
            os.kill(pid, signal.SIGKILL)
    for p in _recorded_pids(directory):  # after a killed supervisor: what it left behind
        with contextlib.suppress(ProcessLookupError):
            os.killpg(p, signal.SIGKILL)
    for p in _strays(directory):
        with contextlib.suppress(ProcessLookupError):
            os.kill(p, signal.SIGKILL)
    for name in (PIDS_FILE, SUPERVISOR_PID_FILE):
        with contextlib.suppress(OSError):
            (directory / name).unlink()
    typer.echo(f"stopped the cluster in {directory}")


def _strays(directory: Path) -> list[int]:
    """Processes of this cluster still alive after its supervisor is gone: daemons
    (their command line names the directory) and tasks (they run in a sandbox under an
    agent's directory). Never ourselves or our ancestors (a shell may sit in there)."""
    keep = {os.getpid()}
    pid = os.getpid()
    while pid > 1:
        try:
            with open(f"/proc/{pid}/stat") as f:
                pid = int(f.read().rsplit(")", 1)[-1].split()[1])
        except (OSError, ValueError):
            break
        keep.add(pid)
    needle = str(directory)
    sandboxes = tuple(str(d) + "/" for d in directory.glob("agent*") if d.is_dir())
    out = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit() or int(entry) in keep:
            continue
        try:
            with open(f"/proc/{entry}/cmdline", "rb") as f:
                cmdline = f.read().decode(errors="replace")
            cwd = os.readlink(f"/proc/{entry}/cwd")
        except OSError:
            continue
        daemon = needle in cmdline and "paddock.cli.main" in cmdline
        if daemon or (sandboxes and cwd.startswith(sandboxes)):
            out.append(int(entry))
    return [p for p in out if pid_alive(p)]


def _recorded_pids(directory: Path) -> list[int]:
    try:
        pids = json.loads((directory / PIDS_FILE).read_text())
    except (OSError, ValueError):
        return []
    return [int(p) for p in pids.values() if pid_alive(int(p)) and _is_paddock(int(p))]


def supervise(
    work_dir: Annotated[Path, typer.Option("--work-dir")],
    restart: Annotated[bool, typer.Option("--restart/--no-restart")] = True,
    parent_pid: Annotated[int | None, typer.Option("--parent-pid")] = None,
) -> None:
    """Run and supervise a laid-out cluster's daemons (started by `paddock up`)."""
    layout = Layout.load(work_dir)
    if layout is None:
        typer.echo(f"error: no layout.json in {work_dir}", err=True)
        raise typer.Exit(1)
    raise typer.Exit(Supervisor(layout, restart=restart, parent_pid=parent_pid).run())
