"""``/v2/deployments``, ``/v2/tasks``, ``/v2/queue``, ``/v2/events``, ``/v2/info``,
``/v2/leader``, ``/ping`` and ``/metrics``."""

from __future__ import annotations

import asyncio
import json
import math
from typing import Any

from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import JSONResponse, PlainTextResponse, Response, StreamingResponse
from starlette.concurrency import run_in_threadpool

from paddock.marathon.api_apps import render_app, tasks_text, wants_text
from paddock.marathon.api_common import (
    LOCKED,
    NOT_FOUND,
    DeploymentDoc,
    DeploymentResult,
    ErrorResponse,
    InfoDoc,
    LeaderDoc,
    MessageDoc,
    QueueDoc,
    TaskList,
    deployment_result,
    get_service,
    json_object,
    raw_body,
)
from paddock.marathon.api_render import OrjsonResponse, tasks_json
from paddock.marathon.events import EVENT_TYPES
from paddock.marathon.models import InvalidJson, Violation, canonical_path
from paddock.marathon.planner import DeploymentPlan
from paddock.marathon.service import MarathonService, NotFound

router = APIRouter()
ServiceDep = Depends(get_service)
BodyDep = Depends(raw_body)


# --------------------------------------------------------------------------- deployments


@router.get(
    "/v2/deployments", tags=["deployments"], responses={200: {"model": list[DeploymentDoc]}}
)
def list_deployments(service: MarathonService = ServiceDep) -> JSONResponse:
    """Running deployments with their steps and the step in progress."""
    return JSONResponse([d.plan.status_json(d.current_step) for d in service.running_deployments()])


@router.delete(
    "/v2/deployments/{deployment_id}",
    tags=["deployments"],
    responses={
        200: {"model": DeploymentResult},
        202: {"description": "stopped (force)"},
        **NOT_FOUND,
    },
)
def delete_deployment(
    deployment_id: str, force: bool = False, service: MarathonService = ServiceDep
) -> Response:
    """Roll the deployment back (a new deployment), or with ``force=true`` just stop it."""
    plan = service.cancel_deployment(deployment_id, force=force)
    if plan is None:
        return Response(status_code=202)
    return deployment_result(plan)


# --------------------------------------------------------------------------- tasks


STATUS_STATES = {
    "running": {"TASK_RUNNING"},
    "staging": {"TASK_STAGING", "TASK_STARTING"},
    "killing": {"TASK_KILLING"},
    "unreachable": {"TASK_UNREACHABLE"},
    "gone": {"TASK_GONE", "TASK_GONE_BY_OPERATOR"},
    "dropped": {"TASK_DROPPED"},
}


@router.get(
    "/v2/tasks",
    tags=["tasks"],
    responses={200: {"model": TaskList, "content": {"text/plain": {}}}},
)
def list_tasks(
    request: Request,
    status: list[str] = Query([], description="running, staging, killing, unreachable, ..."),
    service: MarathonService = ServiceDep,
) -> Response:
    """Every task of every app (filter with ``status``; text/plain as Marathon renders it)."""
    if wants_text(request):
        apps = sorted(service.root.apps.values(), key=lambda a: a.id)
        return PlainTextResponse(tasks_text(service, apps))
    wanted: set[str] = set()
    for s in status:
        wanted |= STATUS_STATES.get(s.lower(), {f"TASK_{s.upper()}"})
    tasks = [t for t in service.core.tasks() if not wanted or t.state in wanted]
    return OrjsonResponse(b'{"tasks":' + tasks_json(tasks) + b"}")


@router.post(
    "/v2/tasks/delete",
    tags=["tasks"],
    responses={200: {"model": TaskList}, 400: {"model": ErrorResponse}, **LOCKED},
    openapi_extra={
        "requestBody": {
            "required": True,
            "content": {
                "application/json": {
                    "schema": {
                        "type": "object",
                        "properties": {"ids": {"type": "array", "items": {"type": "string"}}},
                        "required": ["ids"],
                    }
                }
            },
        }
    },
)
def delete_tasks(
    scale: bool = False,
    wipe: bool = False,
    force: bool = False,
    raw: bytes = BodyDep,
    service: MarathonService = ServiceDep,
) -> JSONResponse:
    """Kill tasks by id; ``scale=true`` shrinks their apps in one deployment."""
    body = json_object(raw)
    ids = body.get("ids")
    if not isinstance(ids, list):
        raise InvalidJson([Violation(path="/ids", errors=["error.expected.jsarray"])])
    tasks = service.tasks_by_ids(ids)
    result = service.kill_tasks(tasks, scale=scale, wipe=wipe, force=force)
    if isinstance(result, DeploymentPlan):
        return deployment_result(result)
    return JSONResponse({"tasks": [t.to_json() for t in result]})


# --------------------------------------------------------------------------- queue


@router.get("/v2/queue", tags=["queue"], responses={200: {"model": QueueDoc}})
def queue(
    embed: list[str] = Query([], description="lastUnusedOffers"),
    service: MarathonService = ServiceDep,
) -> JSONResponse:
    """Apps waiting for launches: how many, their backoff delay, and why offers were declined."""
    with_offers = "lastUnusedOffers" in embed
    items: list[dict[str, Any]] = []
    for entry in service.core.queue():
        app = service.root.app(entry.app_id)
        if app is None:
            continue
        item: dict[str, Any] = {
            "app": render_app(service, app, set()),
            "count": entry.count,
            # Marathon reports whole seconds (int64), rounded up while a delay remains.
            "delay": {
                "timeLeftSeconds": math.ceil(max(0.0, entry.delay_seconds_left)),
                "overdue": entry.overdue,
            },
            "since": entry.since,
            "processedOffersSummary": entry.processed_offers_summary,
        }
        if with_offers:
            item["lastUnusedOffers"] = entry.last_unused_offers
        items.append(item)
    return JSONResponse({"queue": items})


@router.delete(
    "/v2/queue/{app_id:path}/delay", tags=["queue"], status_code=204, responses=NOT_FOUND
)
def reset_delay(app_id: str, service: MarathonService = ServiceDep) -> Response:
    """Forget an app's launch backoff so the next launch is not delayed."""
    path = canonical_path(app_id)
    if service.root.app(path) is None or not service.core.reset_delay(path):
        raise NotFound(f"Application {path} not found in tasks queue.")
    return Response(status_code=204)


# --------------------------------------------------------------------------- events


def _encode(light: bool) -> Any:
    def default(obj: Any) -> Any:
        if isinstance(obj, DeploymentPlan):
            return obj.plan_json(light=True) if light else obj.full_json
        raise TypeError(f"cannot encode {type(obj).__name__}")

    return default


@router.get(
    "/v2/events",
    tags=["events"],
    responses={
        200: {"content": {"text/event-stream": {}}, "description": "Server-sent events"},
        405: {"model": ErrorResponse, "description": "Accept is not text/event-stream"},
    },
)
async def events(
    request: Request,
    event_type: list[str] = Query([], description="only these event types"),
    plan_format: str = Query("full", alias="plan-format", description="light: plans without roots"),
) -> Response:
    """Marathon's event stream (server-sent events; ``event: <type>`` / ``data: <json>``)."""
    if "text/event-stream" not in request.headers.get("accept", ""):
        return JSONResponse(
            {"message": "The event stream needs Accept: text/event-stream"}, status_code=405
        )
    unknown = [t for t in event_type if t not in EVENT_TYPES]
    if unknown:
        return JSONResponse(
            {"message": f"Unknown event types: {', '.join(unknown)}"}, status_code=400
        )
    service: MarathonService = request.app.state.service
    bus = service.bus
    keepalive: float = request.app.state.sse_keepalive
    sub = bus.subscribe(frozenset(event_type) if event_type else None)
    client = f"{request.client.host}" if request.client else "unknown"
    default = _encode(plan_format == "light")

    async def stream() -> Any:
        try:
            yield ":ok\n\n"  # flush headers at once, so clients see the stream attached
            bus.publish("event_stream_attached", {"remoteAddress": client})
            while True:
                try:
                    event = await asyncio.wait_for(sub.next(), timeout=keepalive)
                except TimeoutError:
                    if await request.is_disconnected():
                        return
                    yield "\r\n"
                    continue
                if event is None:
                    return
                data = await run_in_threadpool(json.dumps, event, default=default)
                yield f"event: {event['eventType']}\ndata: {data}\n\n"
        finally:
            bus.unsubscribe(sub)
            bus.publish("event_stream_detached", {"remoteAddress": client})

    return StreamingResponse(
        stream(),
        media_type="text/event-stream",
        headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"},
    )


# --------------------------------------------------------------------------- info, leader


@router.get("/v2/info", tags=["info"], responses={200: {"model": InfoDoc}})
def info(request: Request, service: MarathonService = ServiceDep) -> JSONResponse:
    """Name, version, leadership and configuration of this marathon."""
    settings = request.app.state.settings
    leader = service.core.leader()
    return JSONResponse(
        {
            "name": "marathon",
            "version": settings.version,
            "buildref": "paddock",
            "elected": leader.elected,
            "leader": leader.leader,
            "frameworkId": service.core.framework_id(),
            "marathon_config": settings.marathon_config(),
            "zookeeper_config": settings.zookeeper_config(),
            "http_config": {"http_port": settings.http_port, "https_port": settings.https_port},
        }
    )


@router.get("/v2/leader", tags=["leader"], responses={200: {"model": LeaderDoc}, **NOT_FOUND})
def get_leader(service: MarathonService = ServiceDep) -> JSONResponse:
    """The leading marathon's ``host:port``."""
    leader = service.core.leader()
    if leader.leader is None:
        return JSONResponse({"message": "There is no leader"}, status_code=404)
    return JSONResponse({"leader": leader.leader})


@router.delete("/v2/leader", tags=["leader"], responses={200: {"model": MessageDoc}, **NOT_FOUND})
def abdicate(service: MarathonService = ServiceDep) -> JSONResponse:
    """Make the leader step down (a new election follows)."""
    if not service.core.abdicate():
        return JSONResponse({"message": "There is no leader"}, status_code=404)
    return JSONResponse({"message": "Leadership abdicated"})


@router.get("/ping", tags=["system"], response_class=PlainTextResponse)
def ping() -> PlainTextResponse:
    return PlainTextResponse("pong")


def _gauges(service: MarathonService) -> dict[str, int]:
    root = service.root
    return {
        "marathon.apps.active.gauge": len(root.apps),
        "marathon.groups.active.gauge": len(root.groups),
        "marathon.deployments.active.gauge": len(service.running_deployments()),
        "marathon.http.event-streams.active.gauge": service.bus.subscriber_count,
        "marathon.instances.launch-queue.size.gauge": sum(e.count for e in service.core.queue()),
    }


@router.get("/metrics", tags=["system"])
def metrics(service: MarathonService = ServiceDep) -> JSONResponse:
    """Metrics in Marathon's JSON form (gauges and counters)."""
    return JSONResponse(
        {
            "version": "4.0.0",
            "gauges": {k: {"value": v} for k, v in _gauges(service).items()},
            "counters": {"marathon.events.published.counter": {"count": service.bus.published}},
            "histograms": {},
            "meters": {},
            "timers": {},
        }
    )


@router.get("/metrics/prometheus", tags=["system"], response_class=PlainTextResponse)
def metrics_prometheus(service: MarathonService = ServiceDep) -> PlainTextResponse:
    """The same figures in the Prometheus text format."""
    lines = []
    for key, value in _gauges(service).items():
        name = key.replace(".", "_").replace("-", "_")
        lines += [f"# TYPE {name} gauge", f"{name} {value}"]
    lines += [
        "# TYPE marathon_events_published_counter counter",
        f"marathon_events_published_counter {service.bus.published}",
    ]
    return PlainTextResponse("\n".join(lines) + "\n", media_type="text/plain; version=0.0.4")
