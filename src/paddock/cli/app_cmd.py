"""``paddock app ...``: deploy, list, show, scale, restart and remove marathon apps.

A change waits for its deployment by default and shows a live progress bar of
healthy (or running, without health checks) instances against the target; while it
waits, the reason comes from ``/v2/queue`` (``processedOffersSummary``: which offer
checks declined how many offers), as Marathon's UI shows it.
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Annotated, Any

import httpx
import typer
import yaml
from rich.console import Console
from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from paddock.cli.endpoints import (
    CliError,
    Endpoints,
    MarathonOpt,
    OutputOpt,
    WorkDirOpt,
    check,
    check_output,
    cli_errors,
    console,
    print_json,
)

app = typer.Typer(
    help="Marathon apps: deploy, list, show, scale, restart, rm.", no_args_is_help=True
)

WaitOpt = Annotated[bool, typer.Option("--wait/--no-wait", help="Wait for the deployment.")]
TimeoutOpt = Annotated[float, typer.Option("--timeout", help="Seconds to wait for it.")]


def app_path(app_id: str) -> str:
    return "/" + app_id.strip("/")


def load_app_file(path: Path) -> dict[str, Any]:
    """An app definition from JSON or YAML."""
    try:
        text = path.read_text()
    except OSError as exc:
        raise CliError(f"cannot read {path}: {exc.strerror or exc}") from None
    try:
        data = json.loads(text) if path.suffix == ".json" else yaml.safe_load(text)
    except (ValueError, yaml.YAMLError) as exc:
        raise CliError(f"{path} is not valid {'JSON' if path.suffix == '.json' else 'YAML'}: "
                       f"{str(exc).splitlines()[0]}") from None  # fmt: skip
    if (
        not isinstance(data, dict)
        or not isinstance(data.get("id"), str)
        or not data["id"].strip("/")
    ):
        raise CliError(f'{path}: an app definition is an object with an "id"')
    assert isinstance(data, dict)
    return data


def _last_failure_text(base: str, app_id: str, limit: int = 160) -> str:
    """`` after TASK_FAILED: <message>`` for an app in backoff (an image that cannot be
    pulled, a command that exits), or "" when marathon has no failure for it."""
    try:
        r = httpx.get(f"{base}/v2/apps{app_id}?embed=apps.lastTaskFailure", timeout=3)
        failure = r.json().get("app", {}).get("lastTaskFailure") if r.status_code == 200 else None
    except (httpx.HTTPError, ValueError, AttributeError):
        return ""
    if not isinstance(failure, dict):
        return ""
    message = " ".join(str(failure.get("message") or "").split())
    if len(message) > limit:
        message = message[: limit - 3] + "..."
    return f" after {failure.get('state', 'a failure')}" + (f": {message}" if message else "")


def _waiting_reason(base: str, app_id: str) -> str:
    try:
        queue = httpx.get(base + "/v2/queue", timeout=3).json().get("queue", [])
    except (httpx.HTTPError, ValueError):
        return ""
    for item in queue:
        if (item.get("app") or {}).get("id") != app_id:
            continue
        summary = item.get("processedOffersSummary") or {}
        rows = summary.get("rejectSummaryLastOffers") or summary.get("rejectSummaryLaunchAttempt")
        declined = [f"{r['reason']} ({r['declined']})" for r in rows or [] if r.get("declined")]
        waiting = f"{item.get('count', 0)} waiting"
        if item.get("delay", {}).get("overdue") is False:
            waiting += f", backoff {item['delay'].get('timeLeftSeconds', 0)}s"
            failure = _last_failure_text(base, app_id)
            if failure:  # the failures are why it waits now, not the offers
                return waiting + failure
        if declined:
            return f"{waiting}: offers declined for " + ", ".join(declined)
        if summary.get("processedOffersCount", 0) == 0:
            return f"{waiting}: no offers yet"
        return waiting
    return ""


def wait_deployment(
    base: str, app_id: str, deployment_id: str | None, timeout: float, console: Console
) -> dict[str, Any]:
    """Show progress until the deployment is done; the app afterwards."""
    end = time.monotonic() + timeout
    progress = Progress(
        TextColumn("[bold]{task.fields[app]}"),
        BarColumn(),
        TextColumn("{task.completed:.0f}/{task.total:.0f} {task.fields[what]}"),
        TimeElapsedColumn(),
        TextColumn("{task.fields[why]}"),
        console=console,
        transient=False,
    )
    app_doc: dict[str, Any] = {}
    with progress:
        bar = progress.add_task("deploy", total=1, app=app_id, what="", why="")
        while True:
            r = httpx.get(f"{base}/v2/apps{app_id}", timeout=5)
            if r.status_code == 404 and deployment_id is not None:
                app_doc = {}
                target, done, what = 0, 0, "instances"
            else:
                app_doc = check(r)["app"]
                target = int(app_doc.get("instances", 0))
                health = bool(app_doc.get("healthChecks"))
                done = int(app_doc.get("tasksHealthy" if health else "tasksRunning", 0))
                what = "healthy" if health else "running"
            deployments = check(httpx.get(base + "/v2/deployments", timeout=5))
            pending = [
                d
                for d in deployments
                if (deployment_id and d.get("id") == deployment_id)
                or (not deployment_id and app_id in (d.get("affectedApps") or []))
            ]
            why = "" if not pending else _waiting_reason(base, app_id)
            progress.update(
                bar, total=max(target, 1), completed=min(done, max(target, 1)), what=what, why=why
            )
            if not pending:
                progress.update(bar, why="[green]done")
                return app_doc
            if time.monotonic() > end:
                raise CliError(
                    f"deployment of {app_id} not finished after {timeout:g}s"
                    + (f" ({why})" if why else "")
                )
            time.sleep(0.5)


def deploy(base: str, spec: dict[str, Any], wait: bool, timeout: float, console: Console) -> str:
    """Create or update an app; returns its deployment id."""
    app_id = app_path(spec["id"])
    spec = {**spec, "id": app_id}
    exists = httpx.get(f"{base}/v2/apps{app_id}", timeout=5).status_code == 200
    if exists:
        r = httpx.put(f"{base}/v2/apps{app_id}", json=spec, timeout=10)
    else:
        r = httpx.post(base + "/v2/apps", json=spec, timeout=10)
    body = check(r)
    dep = r.headers.get("marathon-deployment-id") or (body or {}).get("deploymentId")
    if not dep and isinstance(body, dict) and body.get("deployments"):
        dep = body["deployments"][0].get("id")
    console.print(f"{'updated' if exists else 'created'} {app_id} (deployment {dep})")
    if wait:
        wait_deployment(base, app_id, dep, timeout, console)
    return str(dep)


def _marathon(marathon: str | None, work_dir: Path | None) -> str:
    return Endpoints(marathon=marathon, work_dir=work_dir).marathon_url()


@app.command("deploy")
@cli_errors
def deploy_cmd(
    file: Annotated[Path, typer.Argument(help="App definition (JSON or YAML).")],
    wait: WaitOpt = True,
    timeout: TimeoutOpt = 300.0,
    marathon: MarathonOpt = None,
    work_dir: WorkDirOpt = None,
) -> None:
    """Create or update an app and follow its deployment."""
    spec = load_app_file(file)
    deploy(_marathon(marathon, work_dir), spec, wait, timeout, console())


@app.command("list")
@cli_errors
def list_cmd(
    marathon: MarathonOpt = None, work_dir: WorkDirOpt = None, output: OutputOpt = "table"
) -> None:
    """Every app with its instance counts."""
    check_output(output)
    apps = check(httpx.get(_marathon(marathon, work_dir) + "/v2/apps", timeout=5))["apps"]
    if output == "json":
        print_json(apps)
        return
    t = Table("id", "instances", "running", "healthy", "staged", "cpus", "mem", "cmd", box=None)
    for a in apps:
        t.add_row(
            a["id"], str(a.get("instances")), str(a.get("tasksRunning", 0)),
            str(a.get("tasksHealthy", 0)), str(a.get("tasksStaged", 0)),
            f"{a.get('cpus', 0):g}", f"{a.get('mem', 0):g}", str(a.get("cmd") or "")[:50],
        )  # fmt: skip
    console().print(t)


@app.command("show")
@cli_errors
def show_cmd(
    app_id: Annotated[str, typer.Argument(metavar="ID")],
    marathon: MarathonOpt = None,
    work_dir: WorkDirOpt = None,
    output: OutputOpt = "json",
) -> None:
    """One app's definition and status (JSON)."""
    check_output(output)
    base = _marathon(marathon, work_dir)
    doc = check(httpx.get(f"{base}/v2/apps{app_path(app_id)}", timeout=5))["app"]
    print_json(doc)


@app.command("scale")
@cli_errors
def scale_cmd(
    app_id: Annotated[str, typer.Argument(metavar="ID")],
    instances: Annotated[int, typer.Argument(metavar="N", min=0)],
    force: Annotated[bool, typer.Option("--force", help="Override a running deployment.")] = False,
    wait: WaitOpt = True,
    timeout: TimeoutOpt = 300.0,
    marathon: MarathonOpt = None,
    work_dir: WorkDirOpt = None,
) -> None:
    """Change the number of instances."""
    base = _marathon(marathon, work_dir)
    path = app_path(app_id)
    r = httpx.put(
        f"{base}/v2/apps{path}", params={"force": str(force).lower()},
        json={"instances": instances}, timeout=10,
    )  # fmt: skip
    dep = check(r).get("deploymentId")
    out = console()
    out.print(f"scaling {path} to {instances} (deployment {dep})")
    if wait:
        wait_deployment(base, path, dep, timeout, out)


@app.command("restart")
@cli_errors
def restart_cmd(
    app_id: Annotated[str, typer.Argument(metavar="ID")],
    force: Annotated[bool, typer.Option("--force")] = False,
    wait: WaitOpt = True,
    timeout: TimeoutOpt = 300.0,
    marathon: MarathonOpt = None,
    work_dir: WorkDirOpt = None,
) -> None:
    """Replace every instance (a rolling restart)."""
    base = _marathon(marathon, work_dir)
    path = app_path(app_id)
    r = httpx.post(
        f"{base}/v2/apps{path}/restart", params={"force": str(force).lower()}, timeout=10
    )
    dep = check(r).get("deploymentId")
    out = console()
    out.print(f"restarting {path} (deployment {dep})")
    if wait:
        wait_deployment(base, path, dep, timeout, out)


@app.command("rm")
@cli_errors
def rm_cmd(
    app_id: Annotated[str, typer.Argument(metavar="ID")],
    force: Annotated[bool, typer.Option("--force")] = False,
    marathon: MarathonOpt = None,
    work_dir: WorkDirOpt = None,
) -> None:
    """Remove an app and stop its instances."""
    base = _marathon(marathon, work_dir)
    path = app_path(app_id)
    r = httpx.delete(f"{base}/v2/apps{path}", params={"force": str(force).lower()}, timeout=10)
    dep = check(r).get("deploymentId")
    typer.echo(f"removing {path} (deployment {dep})")
