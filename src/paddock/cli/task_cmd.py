"""``paddock task ...``: list marathon's tasks, read their sandbox logs, kill them.

Logs come from the agent that runs the task: the leading master's state names the
task's agent and framework, and the agent's ``/files/read`` serves the sandbox
under ``/frameworks/<fw>/executors/<task>/runs/latest/<stdout|stderr>``.
"""

from __future__ import annotations

import sys
import time
from typing import Annotated, Any

import httpx
import typer
from rich.table import Table

from paddock.cli.endpoints import (
    CliError,
    Endpoints,
    MarathonOpt,
    MasterOpt,
    OutputOpt,
    WorkDirOpt,
    check,
    check_output,
    cli_errors,
    console,
    master_state,
    print_json,
)

app = typer.Typer(help="Tasks: list, logs, kill.", no_args_is_help=True)

CHUNK = 64 * 1024


def _health(t: dict[str, Any]) -> str:
    results = t.get("healthCheckResults") or []
    if not results:
        return "-"
    return "healthy" if all(r.get("alive") for r in results) else "unhealthy"


@app.command("list")
@cli_errors
def list_cmd(
    app_id: Annotated[str | None, typer.Option("--app", help="Only this app's tasks.")] = None,
    marathon: MarathonOpt = None,
    work_dir: WorkDirOpt = None,
    output: OutputOpt = "table",
) -> None:
    """Marathon's tasks with host, ports, state and health."""
    check_output(output)
    base = Endpoints(marathon=marathon, work_dir=work_dir).marathon_url()
    if app_id:
        url = f"{base}/v2/apps/{app_id.strip('/')}/tasks"
    else:
        url = f"{base}/v2/tasks"
    tasks = check(httpx.get(url, timeout=5))["tasks"]
    if output == "json":
        print_json(tasks)
        return
    t = Table("task", "app", "host", "ports", "state", "health", box=None)
    for task in tasks:
        t.add_row(
            task["id"], task.get("appId", ""), task.get("host", ""),
            ",".join(str(p) for p in task.get("ports") or []), task.get("state", ""), _health(task),
        )  # fmt: skip
    console().print(t)


def find_task(state: dict[str, Any], task_id: str) -> tuple[dict[str, Any], dict[str, Any]]:
    """(task, agent) from the master's state; running tasks win over completed ones."""
    agents = {s["id"]: s for s in state.get("slaves", [])}
    found: list[dict[str, Any]] = []
    for fw in state.get("frameworks", []) + state.get("completed_frameworks", []):
        for key in ("tasks", "completed_tasks"):
            found += [t for t in fw.get(key, []) if t.get("id") == task_id]
    if not found:
        raise CliError(f"no task {task_id} known to the leading master")
    task = found[0]
    agent = agents.get(task.get("slave_id", ""))
    if agent is None:
        raise CliError(f"task {task_id} ran on agent {task.get('slave_id')}, which is gone")
    return task, agent


@app.command("logs")
@cli_errors
def logs_cmd(
    task_id: Annotated[str, typer.Argument(metavar="TASK")],
    follow: Annotated[bool, typer.Option("--follow", "-f", help="Keep printing.")] = False,
    stderr: Annotated[bool, typer.Option("--stderr", help="stderr instead of stdout.")] = False,
    master: MasterOpt = None,
    work_dir: WorkDirOpt = None,
) -> None:
    """A task's sandbox stdout (or --stderr), read from its agent."""
    masters = Endpoints(master=master, work_dir=work_dir).master_urls()
    _, state = master_state(masters)
    task, agent = find_task(state, task_id)
    pid = str(agent.get("pid", ""))
    hostport = pid.split("@", 1)[1] if "@" in pid else f"{agent['hostname']}:{agent['port']}"
    name = "stderr" if stderr else "stdout"
    path = f"/frameworks/{task['framework_id']}/executors/{task_id}/runs/latest/{name}"
    url = f"http://{hostport}/files/read"
    offset = 0
    out = sys.stdout.buffer
    while True:
        r = httpx.get(url, params={"path": path, "offset": offset, "length": CHUNK}, timeout=10)
        if r.status_code == 404 and follow:
            time.sleep(0.5)
            continue
        body = check(r)
        data = str(body.get("data", ""))
        if data:
            out.write(data.encode("utf-8", errors="replace"))
            out.flush()
            offset += len(data.encode("utf-8", errors="replace"))
            continue
        if not follow:
            return
        time.sleep(0.5)


@app.command("kill")
@cli_errors
def kill_cmd(
    task_ids: Annotated[list[str], typer.Argument(metavar="TASK...")],
    scale: Annotated[bool, typer.Option("--scale", help="Also lower the app's instances.")] = False,
    marathon: MarathonOpt = None,
    work_dir: WorkDirOpt = None,
) -> None:
    """Kill tasks (marathon replaces them unless --scale)."""
    base = Endpoints(marathon=marathon, work_dir=work_dir).marathon_url()
    r = httpx.post(
        base + "/v2/tasks/delete",
        params={"scale": str(scale).lower()},
        json={"ids": task_ids},
        timeout=10,
    )
    check(r)
    typer.echo(f"killing {', '.join(task_ids)}")
