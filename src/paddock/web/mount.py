"""Serve the web UI from any paddock HTTP app: ``mount_ui(app)``.

The UI is four static files (``static/index.html``, ``app.js``, ``waiting.js``,
``style.css``: plain ES modules, no build step, nothing fetched from the internet) plus a
few JSON endpoints under ``<prefix>/api/`` for what a browser cannot do itself:

* ``GET <prefix>/api/config``: who serves the UI and where the Marathon API is;
* ``GET <prefix>/api/cluster``: coordination servers (``srvr``), masters and their
  leader, agents and frameworks (see ``paddock.web.cluster``);
* ``GET <prefix>/api/tasklog?task=ID&file=stdout|stderr&bytes=N``: a sandbox log tail;
* ``<prefix>/api/marathon/<path>``: on a master, a streaming proxy to the Marathon that
  is registered as a framework (its ``webui_url``), so the same UI works there too.

On a marathon the configuration comes from ``app.state.settings`` (``ApiSettings``:
``master`` and ``zk``), and the Marathon API is the app itself (a standby proxies the
whole UI, API calls and the event stream to the leader). On a master pass ``master=`` (its
``zk://`` URL).
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import (
    FileResponse,
    JSONResponse,
    RedirectResponse,
    Response,
    StreamingResponse,
)

from paddock.web.cluster import (
    HTTP_TIMEOUT,
    Sources,
    TaskLogError,
    cluster_overview,
    master_state,
    masters_status,
)

STATIC_DIR = Path(__file__).parent / "static"
STATIC_FILES = {
    "index.html": "text/html; charset=utf-8",
    "app.js": "text/javascript; charset=utf-8",
    "waiting.js": "text/javascript; charset=utf-8",
    "style.css": "text/css; charset=utf-8",
}
HOP_HEADERS = {"host", "content-length", "transfer-encoding", "connection", "keep-alive"}
MARATHON_CACHE_SECONDS = 10.0


def mount_ui(
    app: Starlette,
    *,
    prefix: str = "/ui",
    master: str | None = None,
    zk: str | None = None,
    marathon: str | None = None,
) -> Starlette:
    """Add the UI's routes to ``app`` (a FastAPI or Starlette app) and return ``app``."""
    prefix = "/" + prefix.strip("/")
    # Explicit sources mean a process other than marathon (a master): the browser then
    # reaches Marathon through this app's proxy. Without them, ``app`` is marathon itself.
    served_by = "master" if master is not None or marathon is not None else "marathon"
    found_marathon: dict[str, Any] = {"url": marathon or "", "at": 0.0}

    def sources() -> Sources:
        settings = getattr(app.state, "settings", None)
        if served_by == "marathon" and settings is not None:
            return Sources(
                master=str(getattr(settings, "master", "")),
                zk=str(getattr(settings, "zk", "")),
                served_by="marathon",
            )
        return Sources(
            master=master or "", zk=zk or "", marathon=marathon or "", served_by=served_by
        )

    def marathon_api() -> str:
        return f"{prefix}/api/marathon" if sources().served_by == "master" else ""

    async def redirect(request: Request) -> Response:
        return RedirectResponse(prefix + "/", status_code=307)

    async def index(request: Request) -> Response:
        return _static("index.html")

    async def static(request: Request) -> Response:
        name = request.path_params["name"]
        if name not in STATIC_FILES:
            return JSONResponse({"message": f"no such UI file: {name}"}, status_code=404)
        return _static(name)

    async def config(request: Request) -> Response:
        src = sources()
        return JSONResponse(
            {"served_by": src.served_by, "marathon_api": marathon_api(), "prefix": prefix}
        )

    async def cluster(request: Request) -> Response:
        async with httpx.AsyncClient(timeout=HTTP_TIMEOUT) as client:
            overview = await cluster_overview(sources(), client)
        overview["marathon_api"] = marathon_api()
        return JSONResponse(overview, headers={"Cache-Control": "no-store"})

    async def tasklog(request: Request) -> Response:
        from paddock.web.cluster import task_log

        q = request.query_params
        try:
            tail = int(q.get("bytes", "8192"))
        except ValueError:
            return JSONResponse({"message": "bytes must be an integer"}, status_code=400)
        async with httpx.AsyncClient(timeout=HTTP_TIMEOUT) as client:
            try:
                out = await task_log(
                    sources(), client, q.get("task", ""), q.get("file", "stdout"), tail
                )
            except TaskLogError as exc:
                return JSONResponse({"message": exc.message}, status_code=exc.status)
        return JSONResponse(out, headers={"Cache-Control": "no-store"})

    async def locate_marathon() -> str:
        src = sources()
        if src.marathon:
            return src.marathon.rstrip("/")
        if (
            found_marathon["url"]
            and time.monotonic() - found_marathon["at"] < MARATHON_CACHE_SECONDS
        ):
            return str(found_marathon["url"])
        async with httpx.AsyncClient(timeout=HTTP_TIMEOUT) as client:
            masters = await masters_status(src, client)
            if not masters["leader"]:
                return ""
            try:
                state = await master_state(masters["leader"], client)
            except (httpx.HTTPError, ValueError):
                return ""
        urls = [
            str(f.get("webui_url"))
            for f in state.get("frameworks", [])
            if isinstance(f, dict) and f.get("name") == "marathon" and f.get("webui_url")
        ]
        found_marathon.update(url=urls[0].rstrip("/") if urls else "", at=time.monotonic())
        return str(found_marathon["url"])

    async def marathon_proxy(request: Request) -> Response:
        target = await locate_marathon()
        if not target:
            return JSONResponse(
                {"message": "No marathon is registered with the leading master"}, status_code=503
            )
        path = "/" + request.path_params["path"]
        headers = {k: v for k, v in request.headers.items() if k.lower() not in HOP_HEADERS}
        client = httpx.AsyncClient(timeout=httpx.Timeout(HTTP_TIMEOUT * 3, read=None))
        upstream = client.build_request(
            request.method,
            target + path,
            params=list(request.query_params.multi_items()),
            headers=headers,
            content=await request.body(),
        )
        try:
            answer = await client.send(upstream, stream=True)
        except httpx.HTTPError as exc:
            await client.aclose()
            return JSONResponse({"message": f"marathon {target} unreachable: {exc}"}, 502)
        out_headers = {k: v for k, v in answer.headers.items() if k.lower() not in HOP_HEADERS}
        out_headers.pop("content-encoding", None)

        async def body() -> AsyncIterator[bytes]:
            try:
                async for chunk in answer.aiter_raw():
                    yield chunk
            finally:
                await answer.aclose()
                await client.aclose()

        return StreamingResponse(body(), status_code=answer.status_code, headers=out_headers)

    any_method = ["GET", "POST", "PUT", "PATCH", "DELETE"]
    app.add_route(prefix, redirect, methods=["GET"], include_in_schema=False)
    app.add_route(prefix + "/", index, methods=["GET"], include_in_schema=False)
    app.add_route(prefix + "/api/config", config, methods=["GET"], include_in_schema=False)
    app.add_route(prefix + "/api/cluster", cluster, methods=["GET"], include_in_schema=False)
    app.add_route(prefix + "/api/tasklog", tasklog, methods=["GET"], include_in_schema=False)
    app.add_route(
        prefix + "/api/marathon/{path:path}",
        marathon_proxy,
        methods=any_method,
        include_in_schema=False,
    )
    app.add_route(prefix + "/{name}", static, methods=["GET"], include_in_schema=False)
    return app


def _static(name: str) -> Response:
    return FileResponse(
        STATIC_DIR / name,
        media_type=STATIC_FILES[name],
        headers={"Cache-Control": "no-cache"},
    )
