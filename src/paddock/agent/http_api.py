"""The agent's HTTP endpoints (FastAPI): state, health, version, metrics, sandbox files."""

from __future__ import annotations

import re
from typing import Any

from fastapi import FastAPI, Query
from fastapi.responses import FileResponse, JSONResponse, PlainTextResponse, Response

from paddock import __version__
from paddock.agent.daemon import Agent
from paddock.agent.files import Attached, FileAccessError, SandboxFiles
from paddock.agent.views import MESOS_COMPAT_VERSION, metrics_snapshot, state_json

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

    return app
