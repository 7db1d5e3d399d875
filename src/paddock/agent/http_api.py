"""The agent's HTTP endpoints (FastAPI): state, health, version, metrics, sandbox files,
and the read calls of the v1 operator API (``POST /api/v1``)."""

from __future__ import annotations

import json
import re
from typing import Any

from fastapi import FastAPI, Query, Request
from fastapi.responses import FileResponse, JSONResponse, PlainTextResponse, Response

from paddock import __version__
from paddock.agent.daemon import Agent
from paddock.agent.executor_api import executor_call
from paddock.agent.files import Attached, FileAccessError, SandboxFiles
from paddock.agent.views import MESOS_COMPAT_VERSION, metrics_snapshot, state_json
from paddock.agent.wire import agent_info, task_json

__all__ = ["make_app"]


def _sandboxes(agent: Agent) -> SandboxFiles:
    tasks = [*agent.completed, *agent.tasks.values()]
    return SandboxFiles(Attached(t.framework_id, t.task_id, t.run_id, t.sandbox) for t in tasks)


def _error(exc: FileAccessError) -> JSONResponse:
    return JSONResponse({"error": exc.message}, status_code=exc.status)


def prometheus_text(snapshot: dict[str, float]) -> str:
    lines = []
    for key in sorted(snapshot):
        name = "paddock_agent_" + re.sub(r"[^a-zA-Z0-9_]", "_", key.removeprefix("slave/"))
        lines.append(f"# TYPE {name} gauge")
        lines.append(f"{name} {snapshot[key]!r}")
    return "\n".join(lines) + "\n"


def make_app(agent: Agent) -> FastAPI:
    app = FastAPI(title="paddock agent", docs_url=None, redoc_url=None, openapi_url=None)

    @app.get("/state")
    @app.get("/state.json")
    @app.get("/slave(1)/state")
    async def state() -> dict[str, Any]:
        return state_json(agent)

    @app.get("/health")
    async def health() -> Response:
        return Response(status_code=200)

    @app.get("/version")
    async def version() -> dict[str, str]:
        return {
            "version": MESOS_COMPAT_VERSION,
            "paddock_version": __version__,
            "build_user": "paddock",
        }

    @app.get("/metrics/snapshot")
    async def snapshot() -> dict[str, float]:
        return metrics_snapshot(agent)

    @app.get("/metrics")
    async def metrics() -> PlainTextResponse:
        return PlainTextResponse(
            prometheus_text(metrics_snapshot(agent)),
            media_type="text/plain; version=0.0.4",
        )

    @app.get("/files/read", response_model=None)
    @app.get("/files/read.json", response_model=None)
    async def files_read(
        path: str = Query(""), offset: int = Query(-1), length: int | None = Query(None)
    ) -> dict[str, Any] | JSONResponse:
        try:
            return _sandboxes(agent).read(path, offset, length)
        except FileAccessError as exc:
            return _error(exc)

    @app.get("/files/browse", response_model=None)
    @app.get("/files/browse.json", response_model=None)
    async def files_browse(path: str = Query("")) -> list[dict[str, Any]] | JSONResponse:
        try:
            return _sandboxes(agent).browse(path)
        except FileAccessError as exc:
            return _error(exc)

    @app.get("/files/download", response_model=None)
    @app.get("/files/download.json", response_model=None)
    async def files_download(path: str = Query("")) -> Response:
        try:
            target = _sandboxes(agent).download(path)
        except FileAccessError as exc:
            return _error(exc)
        return FileResponse(target, filename=target.name)

    @app.post("/api/v1/executor", response_model=None)
    @app.post("/slave(1)/api/v1/executor", response_model=None)
    async def executor_api(request: Request) -> Response:
        return await executor_call(agent, request)

    @app.post("/api/v1", response_model=None)
    @app.post("/api/v1/operator", response_model=None)
    @app.post("/slave(1)/api/v1", response_model=None)
    async def operator_api(request: Request) -> Response | dict[str, Any]:
        try:
            call = json.loads(await request.body())
        except ValueError:
            return PlainTextResponse("Failed to parse the request body as JSON", 400)
        kind = call.get("type") if isinstance(call, dict) else None
        if not isinstance(kind, str):
            return PlainTextResponse("Expecting 'type' to be present", 400)
        body = operator_answer(agent, kind)
        if body is None:
            return PlainTextResponse(f"Unsupported agent operator call {kind!r}", 400)
        return {"type": kind, kind.lower(): body}

    return app


def operator_answer(agent: Agent, kind: str) -> dict[str, Any] | None:
    """The v1 operator API's read calls (``include/mesos/v1/agent/agent.proto``)."""
    if kind == "GET_HEALTH":
        return {"healthy": True}
    if kind == "GET_VERSION":
        return {"version_info": {"version": MESOS_COMPAT_VERSION, "build_user": "paddock"}}
    if kind == "GET_FLAGS":
        flags = agent.config.flags_json()
        return {"flags": [{"name": k, "value": v} for k, v in sorted(flags.items())]}
    if kind == "GET_METRICS":
        snap = metrics_snapshot(agent)
        return {"metrics": [{"name": k, "value": v} for k, v in sorted(snap.items())]}
    if kind == "GET_AGENT":
        return {"agent_info": agent_info(agent)}
    if kind == "GET_TASKS":
        return _tasks(agent)
    if kind == "GET_FRAMEWORKS":
        return {
            "frameworks": [{"framework_info": info} for info in agent.frameworks.values()],
        }
    if kind == "GET_EXECUTORS":
        custom = [{"executor_info": run.info} for run in agent.executors.runs.values()]
        return {
            "executors": [
                {
                    "executor_info": {
                        "executor_id": {"value": t.task_id},
                        "framework_id": {"value": t.framework_id},
                        "type": "DEFAULT",
                    }
                }
                for t in agent.tasks.values()
                if t.executor_id == t.task_id
            ]
            + custom
        }
    if kind == "GET_STATE":
        return {
            "get_tasks": _tasks(agent),
            "get_executors": operator_answer(agent, "GET_EXECUTORS"),
            "get_frameworks": operator_answer(agent, "GET_FRAMEWORKS"),
        }
    return None


def _tasks(agent: Agent) -> dict[str, Any]:
    live = [task_json(agent, t) for t in agent.tasks.values() if not t.terminal]
    terminal = [task_json(agent, t) for t in agent.tasks.values() if t.terminal]
    return {
        "launched_tasks": live,
        "terminated_tasks": terminal,
        "completed_tasks": [task_json(agent, t) for t in agent.completed],
    }
