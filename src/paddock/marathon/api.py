"""The Marathon v2 REST API as a FastAPI application.

``create_api(service, settings)`` builds the app: routes from ``api_apps``,
``api_groups`` and ``api_misc``, Marathon's error bodies (400 "Invalid JSON", 422
"Object is not valid", 404/409 with ``message``), and the leader hook: on a marathon
that does not lead, every request except ``/ping``, ``/metrics`` and ``/v2/leader`` is
proxied to the leader that ``core.leader()`` names (``X-Marathon-Leader`` on the answer),
so clients may talk to any instance — the event stream is streamed through unbuffered
(Marathon issue #1926). The leader latch itself belongs to the scheduling half; it only
has to keep ``core.leader()`` current (and cheap: it is asked on every request).

``/openapi.json`` documents every route with Marathon's request and response shapes.
"""

from __future__ import annotations

import datetime as dt
import logging
import random
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any

import httpx
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response, StreamingResponse
from kazoo.client import KazooClient
from kazoo.exceptions import ConnectionLoss, SessionExpiredError

from paddock.marathon import api_apps, api_groups, api_misc
from paddock.marathon.models import InvalidJson, InvalidObject, json_path
from paddock.marathon.scheduler_iface import InstantCore
from paddock.marathon.service import MarathonApiError, MarathonService, iso_ms
from paddock.marathon.store import MarathonStore
from paddock.web.mount import mount_ui

log = logging.getLogger(__name__)

# "/ui": a standby serves the web UI itself (its cluster overview works without a leader);
# the UI's own /v2 calls are proxied like any other.
PROXY_EXEMPT = ("/ping", "/metrics", "/v2/leader", "/openapi.json", "/docs", "/redoc", "/ui")
VIA_HEADER = "X-Marathon-Via"
LEADER_HEADER = "X-Marathon-Leader"
HOP_HEADERS = {"host", "content-length", "transfer-encoding", "connection", "keep-alive"}


@dataclass
class ApiSettings:
    """What ``/v2/info`` reports (Marathon's flag names)."""

    version: str = "1.11.0"
    hostname: str = "127.0.0.1"
    http_port: int = 8080
    https_port: int = 8443
    master: str = ""
    zk: str = "zk://127.0.0.1:2181/marathon"
    framework_name: str = "marathon"
    failover_timeout: int = 604800
    zk_session_timeout_ms: int = 10000
    zk_max_versions: int = 50
    mesos_role: str = "*"
    features: list[str] = field(default_factory=list)

    def marathon_config(self) -> dict[str, Any]:
        return {
            "checkpoint": True,
            "executor": "//cmd",
            "failover_timeout": self.failover_timeout,
            "framework_name": self.framework_name,
            "ha": True,
            "hostname": self.hostname,
            "leader_proxy_connection_timeout_ms": 5000,
            "leader_proxy_read_timeout_ms": 10000,
            "local_port_min": 10000,
            "local_port_max": 20000,
            "master": self.master,
            "mesos_role": self.mesos_role,
            "mesos_user": "root",
            "reconciliation_initial_delay": 15000,
            "reconciliation_interval": 600000,
            "task_launch_timeout": 300000,
            "features": self.features,
        }

    def zookeeper_config(self) -> dict[str, Any]:
        hosts, _, path = self.zk.removeprefix("zk://").partition("/")
        return {
            "zk": self.zk,
            "zk_hosts": hosts,
            "zk_path": "/" + path,
            "zk_session_timeout": self.zk_session_timeout_ms,
            "zk_timeout": 10000,
            "zk_max_versions": self.zk_max_versions,
            "zk_compression": True,
        }


def create_api(
    service: MarathonService,
    settings: ApiSettings | None = None,
    *,
    sse_keepalive: float = 15.0,
    proxy_timeout: float = 10.0,
) -> FastAPI:
    """The FastAPI app serving Marathon's REST API over ``service``."""

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        async with httpx.AsyncClient(timeout=httpx.Timeout(proxy_timeout, read=None)) as client:
            app.state.proxy_client = client
            try:
                yield
            finally:
                service.bus.close()

    app = FastAPI(
        title="paddock marathon",
        version=(settings or ApiSettings()).version,
        description="Marathon's v2 REST API (apps, groups, deployments, tasks, queue, "
        "events, info, leader) over paddock's coordination service.",
        lifespan=lifespan,
    )
    app.state.service = service
    app.state.settings = settings or ApiSettings()
    app.state.sse_keepalive = sse_keepalive
    app.include_router(api_apps.router)
    app.include_router(api_groups.router)
    app.include_router(api_misc.router)
    _install_error_handlers(app)
    mount_ui(app)

    @app.middleware("http")
    async def leader_proxy(
        request: Request, call_next: Callable[[Request], Awaitable[Response]]
    ) -> Response:
        path = request.url.path
        if path.startswith(PROXY_EXEMPT):
            return await call_next(request)
        leader = service.core.leader()
        if leader.elected:
            return await call_next(request)
        if leader.leader is None:
            return JSONResponse({"message": "Could not determine the current leader"}, 503)
        if request.headers.get(VIA_HEADER):
            return JSONResponse(
                {"message": f"Proxy loop: {leader.leader} is not the leader either"}, 502
            )
        return await _proxy(request, leader.leader, app.state.settings)

    return app


async def _proxy(request: Request, leader: str, settings: ApiSettings) -> Response:
    client: httpx.AsyncClient | None = getattr(request.app.state, "proxy_client", None)
    if client is None:  # lifespan did not run (e.g. an in-process ASGI transport)
        client = httpx.AsyncClient(timeout=httpx.Timeout(10.0, read=None))
        request.app.state.proxy_client = client
    # The path as the client sent it (still percent-encoded): the decoded one may hold
    # characters no URL can carry (httpx.InvalidURL, once a 500 found by fuzzing).
    raw_path = request.scope.get("raw_path") or request.url.path.encode()
    url = f"http://{leader}{raw_path.split(b'?', 1)[0].decode('latin-1')}"
    headers = {k: v for k, v in request.headers.items() if k.lower() not in HOP_HEADERS}
    headers[VIA_HEADER] = f"1.1 {settings.hostname}:{settings.http_port}"
    try:
        upstream = client.build_request(
            request.method,
            url,
            params=list(request.query_params.multi_items()),
            headers=headers,
            content=await request.body(),
        )
    except httpx.InvalidURL as exc:
        return JSONResponse({"message": f"Cannot forward this request: {exc}"}, 400)
    try:
        answer = await client.send(upstream, stream=True)
    except httpx.HTTPError as exc:
        return JSONResponse({"message": f"Leader {leader} unreachable: {exc}"}, 502)
    out_headers = {k: v for k, v in answer.headers.items() if k.lower() not in HOP_HEADERS}
    out_headers.pop("content-encoding", None)
    out_headers[LEADER_HEADER] = leader

    async def body() -> AsyncIterator[bytes]:
        try:
            async for chunk in answer.aiter_raw():
                yield chunk
        finally:
            await answer.aclose()

    return StreamingResponse(body(), status_code=answer.status_code, headers=out_headers)


def _install_error_handlers(app: FastAPI) -> None:
    @app.exception_handler(InvalidJson)
    async def invalid_json(_request: Request, exc: InvalidJson) -> JSONResponse:
        return JSONResponse(exc.body(), status_code=400)

    @app.exception_handler(InvalidObject)
    async def invalid_object(_request: Request, exc: InvalidObject) -> JSONResponse:
        return JSONResponse(exc.body(), status_code=422)

    @app.exception_handler(MarathonApiError)
    async def api_error(_request: Request, exc: MarathonApiError) -> JSONResponse:
        return JSONResponse(exc.body(), status_code=exc.status)

    @app.exception_handler(RequestValidationError)
    async def bad_parameters(_request: Request, exc: RequestValidationError) -> JSONResponse:
        details = [
            {
                "path": json_path([p for p in e["loc"] if p not in ("query", "path")]),
                "errors": [e["msg"]],
            }
            for e in exc.errors()
        ]
        return JSONResponse({"message": "Invalid parameters", "details": details}, status_code=400)

    @app.exception_handler(ConnectionLoss)
    @app.exception_handler(SessionExpiredError)
    async def store_unavailable(_request: Request, exc: Exception) -> JSONResponse:
        return JSONResponse(
            {"message": f"The coordination service is unavailable: {type(exc).__name__}"},
            status_code=503,
        )

    @app.exception_handler(Exception)
    async def internal(_request: Request, exc: Exception) -> JSONResponse:
        log.exception("marathon API error")
        return JSONResponse({"message": f"{type(exc).__name__}: {exc}"}, status_code=500)


def instant_service(
    client: KazooClient,
    base: str = "/marathon",
    *,
    auto_complete: bool = True,
    advertised: str = "127.0.0.1:8080",
    rng: random.Random | None = None,
    max_versions: int = 50,
    clock: Callable[[], dt.datetime] | None = None,
) -> tuple[MarathonService, InstantCore]:
    """A started service over the store at ``base`` with the Mesos-less InstantCore."""
    now = clock or (lambda: dt.datetime.now(dt.UTC))
    rng = rng or random.Random()
    store = MarathonStore(client, base, max_versions=max_versions)
    core = InstantCore(
        store,
        clock=lambda: iso_ms(now()),
        rng=random.Random(rng.getrandbits(64)),
        advertised=advertised,
        auto_complete=auto_complete,
    )
    service = MarathonService(store, core, clock=now, rng=rng)
    service.start()
    return service, core
