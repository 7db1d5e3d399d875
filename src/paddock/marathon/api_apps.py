"""``/v2/apps``: list, create, read, update, restart, scale, delete apps and their tasks."""

from __future__ import annotations

import re
from typing import Any

import orjson
from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import JSONResponse, PlainTextResponse, Response

from paddock.marathon.api_common import (
    COMMON_ERRORS,
    LOCKED,
    NOT_FOUND,
    AppInfo,
    AppList,
    AppResponse,
    DeploymentResult,
    TaskList,
    TaskResponse,
    VersionList,
    deployment_result,
    embeds,
    get_service,
    json_body_doc,
    json_object,
    raw_body,
)
from paddock.marathon.api_render import AppJsonCache, OrjsonResponse, object_with, tasks_json
from paddock.marathon.models import (
    AppDefinition,
    InvalidJson,
    Task,
    Violation,
    canonical_path,
    load_json,
    task_id_prefix,
)
from paddock.marathon.planner import DeploymentPlan
from paddock.marathon.service import MarathonService, NotFound
from paddock.marathon.validation import checked_app

router = APIRouter(tags=["apps"])
APP_JSON = AppJsonCache()
ServiceDep = Depends(get_service)
BodyDep = Depends(raw_body)


# --------------------------------------------------------------------------- rendering


def render_app(
    service: MarathonService,
    app: AppDefinition,
    embed: set[str],
    *,
    single: bool = False,
) -> dict[str, Any]:
    """An app as Marathon shows it: the definition plus what ``embed`` asks for.

    Counts and deployments are always included (as Marathon does); a single-app GET also
    includes tasks and the last task failure.
    """
    out: dict[str, Any] = orjson.loads(APP_JSON.get(app))
    for key, value in _app_extras(service, app, embed, single):
        out[key] = orjson.loads(value)
    return out


def render_app_json(service: MarathonService, app: AppDefinition, embed: set[str]) -> bytes:
    """:func:`render_app`, encoded, from cached fragments (the ``/v2/apps`` listing)."""
    return object_with(APP_JSON.get(app), _app_extras(service, app, embed, False))


def _app_extras(
    service: MarathonService, app: AppDefinition, embed: set[str], single: bool
) -> list[tuple[str, bytes]]:
    counts = service.core.task_counts(app.id)
    extra = [
        ("tasksStaged", b"%d" % counts.staged),
        ("tasksRunning", b"%d" % counts.running),
        ("tasksHealthy", b"%d" % counts.healthy),
        ("tasksUnhealthy", b"%d" % counts.unhealthy),
        ("deployments", orjson.dumps([{"id": d} for d in service.deployments_of(app.id)])),
    ]
    if single or "apps.tasks" in embed:
        extra.append(("tasks", tasks_json(service.core.tasks(app.id))))
    if single or "apps.lastTaskFailure" in embed or "apps.failures" in embed:
        failure = service.store.task_failure(app.id)
        if failure is not None:
            extra.append(("lastTaskFailure", orjson.dumps(failure.to_json())))
    if "apps.readiness" in embed:
        extra.append(("readinessCheckResults", b"[]"))
    return extra


_SELECTOR = re.compile(
    r"^\s*(?P<key>[^\s!=,()]+)\s*(?:(?P<op>==|!=|=)\s*(?P<value>[^,()]*?)"
    r"|\s+(?P<setop>in|notin)\s*\((?P<values>[^)]*)\))?\s*$"
)


def label_matcher(selector: str) -> Any:
    """Marathon's label selector: ``k``, ``k==v``, ``k!=v``, ``k in (a,b)``, ``k notin (a)``,
    comma-separated terms all of which must hold."""
    terms = []
    for raw in re.findall(r"[^,(]+(?:\([^)]*\))?", selector):
        m = _SELECTOR.match(raw)
        if not m:
            raise InvalidJson([Violation(path="/label", errors=[f"Invalid label selector: {raw}"])])
        terms.append(m.groupdict())

    def matches(labels: dict[str, str]) -> bool:
        for t in terms:
            key, have = t["key"], labels.get(t["key"])
            if t["op"] in ("==", "="):
                if have != t["value"].strip():
                    return False
            elif t["op"] == "!=":
                if have == t["value"].strip():
                    return False
            elif t["setop"]:
                values = {v.strip() for v in t["values"].split(",")}
                if (t["setop"] == "in") != (have in values):
                    return False
            elif key not in labels:
                return False
        return True

    return matches


# --------------------------------------------------------------------------- collection


@router.get("/v2/apps", responses={200: {"model": AppList}, **COMMON_ERRORS})
def list_apps(
    request: Request,
    cmd: str | None = Query(None, description="only apps whose cmd contains this"),
    id: str | None = Query(None, description="only apps whose id contains this"),
    label: str | None = Query(None, description="label selector, e.g. owner==web"),
    embed: list[str] = Query(
        [], description="apps.tasks, apps.counts, apps.deployments, apps.lastTaskFailure, ..."
    ),
    service: MarathonService = ServiceDep,
) -> Response:
    """All apps (counts and deployments included), optionally filtered."""
    wanted = embeds(request)
    match = label_matcher(label) if label else None
    apps = []
    every = service.root.apps
    for app_id in sorted(every):
        app = every[app_id]
        if cmd and (app.cmd is None or cmd not in app.cmd):
            continue
        if id and id.lower() not in app.id:
            continue
        if match and not match(app.labels):
            continue
        apps.append(render_app_json(service, app, wanted))
    APP_JSON.prune(len(every))
    return OrjsonResponse(b'{"apps":[' + b",".join(apps) + b"]}")


@router.post(
    "/v2/apps",
    status_code=201,
    responses={201: {"model": AppInfo}, **COMMON_ERRORS, **LOCKED},
    openapi_extra=json_body_doc("AppDefinition"),
)
def create_app(
    request: Request,
    force: bool = False,
    raw: bytes = BodyDep,
    service: MarathonService = ServiceDep,
) -> JSONResponse:
    """Create an app and start its deployment (201 with the app, 409 if it exists)."""
    app = checked_app(raw)
    plan = service.create_app(
        app, force=force, announce=lambda p: api_post_event(service, request, p, app.id)
    )
    created = plan.target.app(app.id) or app
    body = render_app(service, created, set())
    return JSONResponse(
        body,
        status_code=201,
        headers={"Location": f"/v2/apps{app.id}", "Marathon-Deployment-Id": plan.id},
    )


def _bulk(raw: bytes, service: MarathonService, force: bool) -> JSONResponse:
    items = load_json(raw)
    if not isinstance(items, list) or not all(isinstance(i, dict) for i in items):
        raise InvalidJson([Violation(path="/", errors=["error.expected.jsarray"])])
    return deployment_result(service.update_apps(items, force=force))


@router.put(
    "/v2/apps",
    responses={200: {"model": DeploymentResult}, **COMMON_ERRORS, **LOCKED},
    openapi_extra={
        "requestBody": {
            "required": True,
            "content": {
                "application/json": {
                    "schema": {
                        "type": "array",
                        "items": {"$ref": "#/components/schemas/AppDefinition"},
                    }
                }
            },
        }
    },
)
def put_apps(
    force: bool = False, raw: bytes = BodyDep, service: MarathonService = ServiceDep
) -> JSONResponse:
    """Create or update many apps in one deployment (fields left out keep their values)."""
    return _bulk(raw, service, force)


@router.patch(
    "/v2/apps",
    responses={200: {"model": DeploymentResult}, **COMMON_ERRORS, **LOCKED},
)
def patch_apps(
    force: bool = False, raw: bytes = BodyDep, service: MarathonService = ServiceDep
) -> JSONResponse:
    """Partially update many apps in one deployment."""
    return _bulk(raw, service, force)


# --------------------------------------------------------------------------- tasks of an app


def _app_or_404(service: MarathonService, app_id: str) -> AppDefinition:
    return service.app(canonical_path(app_id))


def tasks_text(service: MarathonService, apps: list[AppDefinition]) -> str:
    """Marathon's text/plain task list: ``app_id<TAB>servicePort<TAB>host:port<TAB>...``."""
    lines = []
    for app in apps:
        tasks = [t for t in service.core.tasks(app.id) if t.state == "TASK_RUNNING"]
        service_ports = (
            [m.service_port for m in app.container.port_mappings]
            if app.container and app.container.port_mappings
            else [p.port for p in app.port_definitions or []]
        )
        clean = task_id_prefix(app.id)
        if not service_ports:
            lines.append(f"{clean}\t \t" + "".join(f"{t.host}\t" for t in tasks))
            continue
        for i, port in enumerate(service_ports):
            hosts = "".join(f"{t.host}:{t.ports[i]}\t" for t in tasks if i < len(t.ports))
            lines.append(f"{clean}\t{port}\t{hosts}")
    return "".join(line + "\n" for line in lines)


def wants_text(request: Request) -> bool:
    accept = request.headers.get("accept", "")
    return "text/plain" in accept and "application/json" not in accept


@router.get(
    "/v2/apps/{app_id:path}/tasks",
    responses={
        200: {"model": TaskList, "content": {"text/plain": {}}},
        **NOT_FOUND,
    },
)
def app_tasks(app_id: str, request: Request, service: MarathonService = ServiceDep) -> Response:
    """Tasks of one app (JSON, or Marathon's tab-separated text with Accept: text/plain)."""
    app = _app_or_404(service, app_id)
    if wants_text(request):
        return PlainTextResponse(tasks_text(service, [app]))
    return OrjsonResponse(b'{"tasks":' + tasks_json(service.core.tasks(app.id)) + b"}")


def _kill_response(result: Any, single: Task | None = None) -> JSONResponse:
    if isinstance(result, list):
        if single is not None:
            return JSONResponse({"task": single.to_json()})
        return JSONResponse({"tasks": [t.to_json() for t in result]})
    return deployment_result(result)


@router.delete(
    "/v2/apps/{app_id:path}/tasks/{task_id}",
    responses={200: {"model": TaskResponse}, **NOT_FOUND, **LOCKED},
)
def kill_app_task(
    app_id: str,
    task_id: str,
    scale: bool = False,
    wipe: bool = False,
    force: bool = False,
    service: MarathonService = ServiceDep,
) -> JSONResponse:
    """Kill one task (``scale=true``: and shrink the app by one, as a deployment)."""
    app = _app_or_404(service, app_id)
    task = next((t for t in service.core.tasks(app.id) if t.id == task_id), None)
    if task is None:
        raise NotFound(f"Task '{task_id}' does not exist")
    result = service.kill_tasks([task], scale=scale, wipe=wipe, force=force)
    return _kill_response(result, single=task)


@router.delete(
    "/v2/apps/{app_id:path}/tasks",
    responses={200: {"model": TaskList}, **NOT_FOUND, **LOCKED},
)
def kill_app_tasks(
    app_id: str,
    host: str | None = None,
    scale: bool = False,
    wipe: bool = False,
    force: bool = False,
    service: MarathonService = ServiceDep,
) -> JSONResponse:
    """Kill the app's tasks (all, or those on ``host``); ``scale=true`` shrinks the app."""
    app = _app_or_404(service, app_id)
    tasks = [t for t in service.core.tasks(app.id) if host is None or host in ("*", t.host)]
    return _kill_response(service.kill_tasks(tasks, scale=scale, wipe=wipe, force=force))


# --------------------------------------------------------------------------- one app


@router.post(
    "/v2/apps/{app_id:path}/restart",
    responses={200: {"model": DeploymentResult}, **NOT_FOUND, **LOCKED},
)
def restart_app(
    app_id: str, force: bool = False, service: MarathonService = ServiceDep
) -> JSONResponse:
    """Replace every task with a new one of the same definition (a rolling restart)."""
    return deployment_result(service.restart_app(app_id, force=force))


@router.get(
    "/v2/apps/{app_id:path}/versions/{version}",
    responses={200: {"model": AppDefinition}, **NOT_FOUND},
)
def app_version(app_id: str, version: str, service: MarathonService = ServiceDep) -> JSONResponse:
    """One stored version of an app definition."""
    path = canonical_path(app_id)
    app = service.store.app_version(path, version)
    if app is None:
        raise NotFound(f"App '{path}' does not exist in version {version}")
    return JSONResponse(app.to_json())


@router.get(
    "/v2/apps/{app_id:path}/versions",
    responses={200: {"model": VersionList}, **NOT_FOUND},
)
def app_versions(app_id: str, service: MarathonService = ServiceDep) -> JSONResponse:
    """Stored versions of an app, newest first."""
    path = canonical_path(app_id)
    versions = service.store.app_versions(path)
    if not versions and service.root.app(path) is None:
        raise NotFound(f"App '{path}' does not exist")
    return JSONResponse({"versions": versions})


@router.get("/v2/apps/{app_id:path}", responses={200: {"model": AppResponse}, **NOT_FOUND})
def get_app(
    app_id: str,
    request: Request,
    embed: list[str] = Query([], description="apps.tasks, apps.lastTaskFailure, apps.readiness"),
    service: MarathonService = ServiceDep,
) -> JSONResponse:
    """One app with its tasks, counts, deployments and last task failure."""
    app = _app_or_404(service, app_id)
    return JSONResponse({"app": render_app(service, app, embeds(request), single=True)})


def _update(
    request: Request,
    app_id: str,
    raw: bytes,
    service: MarathonService,
    force: bool,
    partial: bool = True,
) -> JSONResponse:
    body = json_object(raw)
    path = canonical_path(app_id)
    plan, created = service.update_app(
        app_id,
        body,
        force=force,
        partial=partial,
        announce=lambda p: api_post_event(service, request, p, path),
    )
    return deployment_result(plan, status=201 if created else 200)


def api_post_event(
    service: MarathonService, request: Request, plan: DeploymentPlan, app_id: str
) -> None:
    """Marathon's api_post_event: who changed which app definition through which URI."""
    app = plan.target.app(app_id)
    if app is None:
        return
    service.publish(
        "api_post_event",
        {
            "clientIp": request.client.host if request.client else "",
            "uri": request.url.path,
            "appDefinition": app.to_json(),
        },
    )


@router.put(
    "/v2/apps/{app_id:path}",
    responses={200: {"model": DeploymentResult}, **COMMON_ERRORS, **LOCKED},
    openapi_extra=json_body_doc("AppDefinition"),
)
def put_app(
    request: Request,
    app_id: str,
    force: bool = False,
    partialUpdate: bool = True,
    raw: bytes = BodyDep,
    service: MarathonService = ServiceDep,
) -> JSONResponse:
    """Update (or create) an app; ``{"version": v}`` rolls back to a stored version.

    With ``partialUpdate=false`` the body is the whole new definition (what it leaves out
    takes Marathon's defaults); otherwise fields left out keep their values.
    """
    return _update(request, app_id, raw, service, force, partial=partialUpdate)


@router.patch(
    "/v2/apps/{app_id:path}",
    responses={200: {"model": DeploymentResult}, **COMMON_ERRORS, **LOCKED},
    openapi_extra=json_body_doc("AppDefinition"),
)
def patch_app(
    request: Request,
    app_id: str,
    force: bool = False,
    raw: bytes = BodyDep,
    service: MarathonService = ServiceDep,
) -> JSONResponse:
    """Change only the fields the body names."""
    return _update(request, app_id, raw, service, force)


@router.delete(
    "/v2/apps/{app_id:path}",
    responses={200: {"model": DeploymentResult}, **NOT_FOUND, **LOCKED},
)
def delete_app(
    app_id: str, force: bool = False, service: MarathonService = ServiceDep
) -> JSONResponse:
    """Stop every task of the app and remove it."""
    return deployment_result(service.delete_app(app_id, force=force))
