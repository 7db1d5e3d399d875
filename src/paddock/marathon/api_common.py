"""Shared pieces of the Marathon HTTP routes: dependencies, responses, documentation models.

Routes are plain ``def`` functions, so FastAPI runs them in its worker threads: the
service underneath talks to ZooKeeper synchronously and must not block the event loop.
Request bodies are read raw (``raw_body``) and parsed by the Marathon models, which
produce Marathon's own 400/422 error bodies rather than FastAPI's.

The pydantic models at the bottom only document responses in ``/openapi.json``; the
routes build their JSON themselves (marathon-python rejects fields Marathon does not
send, so what goes out is controlled field by field).
"""

from __future__ import annotations

from typing import Any

from fastapi import Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel, Field

from paddock.marathon.models import AppDefinition, InvalidJson, Task, Violation, load_json
from paddock.marathon.planner import DeploymentPlan
from paddock.marathon.service import MarathonService

DEPLOYMENT_HEADER = "Marathon-Deployment-Id"


async def raw_body(request: Request) -> bytes:
    return await request.body()


def get_service(request: Request) -> MarathonService:
    service: MarathonService = request.app.state.service
    return service


def json_object(raw: bytes) -> dict[str, Any]:
    obj = load_json(raw)
    if not isinstance(obj, dict):
        raise InvalidJson([Violation(path="/", errors=["error.expected.jsobject"])])
    return obj


def deployment_result(plan: DeploymentPlan, status: int = 200) -> JSONResponse:
    """``{"deploymentId", "version"}`` plus the Marathon-Deployment-Id header."""
    return JSONResponse(
        {"deploymentId": plan.id, "version": plan.version},
        status_code=status,
        headers={DEPLOYMENT_HEADER: plan.id},
    )


def embeds(request: Request) -> set[str]:
    """Every ``embed`` value, also comma-separated ones, normalised to ``apps.*``."""
    out: set[str] = set()
    for value in request.query_params.getlist("embed"):
        for part in value.split(","):
            part = part.strip()
            if part.startswith("app."):
                part = "apps." + part[4:]
            if part:
                out.add(part)
    return out


# --------------------------------------------------------------------------- documentation


class ErrorDetail(BaseModel):
    path: str
    errors: list[str]


class ErrorResponse(BaseModel):
    message: str
    details: list[ErrorDetail] | None = None


class DeploymentRef(BaseModel):
    id: str


class LockedResponse(BaseModel):
    message: str
    deployments: list[DeploymentRef]


class DeploymentResult(BaseModel):
    deploymentId: str
    version: str


class AppInfo(AppDefinition):
    """An app as the API shows it: the definition plus counts, deployments, tasks."""

    tasks_staged: int | None = None
    tasks_running: int | None = None
    tasks_healthy: int | None = None
    tasks_unhealthy: int | None = None
    deployments: list[DeploymentRef] | None = None
    tasks: list[Task] | None = None


class AppResponse(BaseModel):
    app: AppInfo


class AppList(BaseModel):
    apps: list[AppInfo]


class TaskList(BaseModel):
    tasks: list[Task]


class TaskResponse(BaseModel):
    task: Task


class VersionList(BaseModel):
    versions: list[str]


class GroupInfoDoc(BaseModel):
    id: str
    apps: list[AppInfo] = Field(default_factory=list)
    groups: list[GroupInfoDoc] = Field(default_factory=list)
    pods: list[dict[str, Any]] = Field(default_factory=list)
    dependencies: list[str] = Field(default_factory=list)
    version: str | None = None


class DeploymentActionDoc(BaseModel):
    action: str
    app: str


class DeploymentStepDoc(BaseModel):
    actions: list[DeploymentActionDoc]


class DeploymentDoc(BaseModel):
    id: str
    version: str
    affectedApps: list[str]
    affectedPods: list[str]
    steps: list[DeploymentStepDoc]
    currentActions: list[DeploymentActionDoc]
    currentStep: int
    totalSteps: int


class QueueDelay(BaseModel):
    timeLeftSeconds: int
    overdue: bool


class QueueItemDoc(BaseModel):
    app: AppInfo
    count: int
    delay: QueueDelay
    since: str
    processedOffersSummary: dict[str, Any]
    lastUnusedOffers: list[dict[str, Any]] | None = None


class QueueDoc(BaseModel):
    queue: list[QueueItemDoc]


class InfoDoc(BaseModel):
    name: str
    version: str
    buildref: str
    elected: bool
    leader: str | None
    frameworkId: str | None
    marathon_config: dict[str, Any]
    zookeeper_config: dict[str, Any]
    http_config: dict[str, Any]


class LeaderDoc(BaseModel):
    leader: str


class MessageDoc(BaseModel):
    message: str


COMMON_ERRORS: dict[int | str, dict[str, Any]] = {
    400: {"model": ErrorResponse, "description": "Invalid JSON or parameters"},
    422: {"model": ErrorResponse, "description": "Object is not valid"},
}
NOT_FOUND: dict[int | str, dict[str, Any]] = {
    404: {"model": ErrorResponse, "description": "No such object"}
}
LOCKED: dict[int | str, dict[str, Any]] = {
    409: {"model": LockedResponse, "description": "Locked by a deployment (override: force)"}
}


def json_body_doc(schema_ref: str) -> dict[str, Any]:
    """``openapi_extra`` describing a JSON request body the route reads raw."""
    return {
        "requestBody": {
            "required": True,
            "content": {
                "application/json": {"schema": {"$ref": f"#/components/schemas/{schema_ref}"}}
            },
        }
    }
