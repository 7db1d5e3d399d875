"""The master's HTTP endpoints (Starlette): scheduler, agent and operator APIs.

Leadership gates every API call: a master that ZooKeeper does not name leader
answers 307 to the leader (``Location: //host:port/path``, what Mesos and pymesos
expect) or 503 "No leader elected"; the named leader answers 503 until it has
committed its election record to the registry (and whenever it loses its quorum).

Scheduler and agent calls go through ``gate_call``, which spends up to
``RECOVERY_HOLD`` seconds to avoid a needless refusal right after a failover: a
master that is not (yet) the leader in its own view first re-reads ZooKeeper (the
caller may have seen the old leader's znode vanish a moment before this master
did: a 307 to the dead master would cost it a retry backoff), and a newly named
leader holds the call until it has taken over the registry rather than answering
503 at once.
"""

from __future__ import annotations

import base64
import binascii
import hmac
import json
import logging
from typing import TYPE_CHECKING, Any

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, Response, StreamingResponse
from starlette.routing import Route

from paddock.master.base import CallError, Unavailable
from paddock.master.openapi import openapi_document
from paddock.master.operator_api import operator_call
from paddock.master.streams import EventStream
from paddock.master.views import get_state
from paddock.web.mount import mount_ui

if TYPE_CHECKING:
    from paddock.master.daemon import MasterDaemon

log = logging.getLogger(__name__)


def _text(status: int, message: str, headers: dict[str, str] | None = None) -> Response:
    return PlainTextResponse(message, status_code=status, headers=headers)


def leader_location(daemon: MasterDaemon, request: Request) -> Response:
    return redirect_to(daemon.leader_info(), request)


def redirect_to(info: dict[str, Any] | None, request: Request) -> Response:
    """307 to the same path on the master ``info`` describes (503 if none)."""
    if info is None:
        return _text(503, "No leader elected")
    addr = info.get("address", {})
    host = addr.get("hostname") or addr.get("ip")
    path = request.url.path
    if request.url.query:
        path += "?" + request.url.query
    return Response(status_code=307, headers={"Location": f"//{host}:{addr.get('port')}{path}"})


#: Longest a call waits for a newly named leader to take over the registry (normally
#: tens of milliseconds) before it gets 503.
RECOVERY_HOLD = 2.0


async def gate_call(daemon: MasterDaemon, request: Request) -> Response | None:
    """``gate``, after waiting out a failover that is under way (see the module doc)."""
    named = daemon.is_zk_leader()
    if not named and daemon.leader_info() is not None:
        fresh = await daemon.fresh_leader()
        if fresh is not None:
            info, is_me = fresh
            if not is_me:
                return redirect_to(info, request)
            named = True  # our own watch will say so in a moment
    if named and not daemon.master.acting:
        await daemon.master.wait_acting(RECOVERY_HOLD)
    return gate(daemon, request)


def gate(daemon: MasterDaemon, request: Request) -> Response | None:
    """None when this master may serve the call; else the redirect or 503."""
    if not daemon.is_zk_leader():
        return leader_location(daemon, request)
    if not daemon.master.acting:
        return _text(503, "Master is recovering (registry not yet written by this leader)")
    return None


def authenticate(daemon: MasterDaemon, request: Request) -> str | None:
    """HTTP basic authentication against ``--credentials``; the principal, or None when
    authentication is off. Raises CallError(401)."""
    creds = daemon.config.credentials
    if creds is None:
        return None
    header = request.headers.get("authorization", "")
    if not header.lower().startswith("basic "):
        raise CallError(401, "Authentication required: send HTTP basic credentials")
    try:
        decoded = base64.b64decode(header[6:].strip(), validate=True).decode()
        principal, _, secret = decoded.partition(":")
    except (binascii.Error, UnicodeDecodeError):
        raise CallError(401, "Malformed basic authorization header") from None
    if not _secret_matches(creds.get(principal), secret):
        raise CallError(401, f"Authentication failed for principal {principal!r}")
    return principal


def _secret_matches(expected: str | None, given: str) -> bool:
    return expected is not None and hmac.compare_digest(expected.encode(), given.encode())


async def _json_body(request: Request) -> dict[str, Any]:
    ctype = request.headers.get("content-type", "application/json").split(";")[0].strip().lower()
    if ctype not in ("application/json", ""):
        raise CallError(415, f"Unsupported Content-Type {ctype!r}: only application/json")
    accept = request.headers.get("accept", "*/*").lower()
    if not any(a in accept for a in ("application/json", "*/*", "application/*")):
        raise CallError(406, f"Cannot produce {accept!r}: only application/json")
    raw = await request.body()
    try:
        call = json.loads(raw)
    except ValueError as exc:
        raise CallError(400, f"Failed to parse body into JSON: {exc}") from None
    if not isinstance(call, dict):
        raise CallError(400, "Expecting a JSON object")
    return call


def _error(exc: Exception) -> Response:
    if isinstance(exc, CallError):
        headers = {"WWW-Authenticate": 'Basic realm="paddock"'} if exc.status == 401 else None
        return _text(exc.status, exc.message, headers)
    if isinstance(exc, Unavailable):
        return _text(503, str(exc))
    raise exc


def _stream_response(stream: EventStream, header: str) -> StreamingResponse:
    return StreamingResponse(
        stream.body(),
        status_code=200,
        media_type="application/json",
        headers={header: stream.id, "Cache-Control": "no-cache"},
    )


def build_app(daemon: MasterDaemon) -> Starlette:
    master = daemon.master

    async def scheduler(request: Request) -> Response:
        if request.method != "POST":
            return _text(405, "Expecting 'POST'", {"Allow": "POST"})
        blocked = await gate_call(daemon, request)
        if blocked is not None:
            return blocked
        try:
            principal = authenticate(daemon, request)
            call = await _json_body(request)
            stream_id = request.headers.get("mesos-stream-id")
            if call.get("type") == "SUBSCRIBE":
                if stream_id:
                    raise CallError(
                        400, "Subscribe calls should not include the 'Mesos-Stream-Id' header"
                    )
                fw, _ = master.subscribe(call, principal)
                stream = EventStream("framework", fw.id)
                master.attach_stream(fw, stream)
                return _stream_response(stream, "Mesos-Stream-Id")
            fw = master.framework_for_call(call, stream_id)
            if principal is not None and fw.info.get("principal") not in (None, principal):
                raise CallError(403, "Call's principal is not the framework's principal")
            master.scheduler_call(fw, call)
            return Response(status_code=202)
        except (CallError, Unavailable) as exc:
            return _error(exc)

    async def agent_api(request: Request) -> Response:
        if request.method != "POST":
            return _text(405, "Expecting 'POST'", {"Allow": "POST"})
        blocked = await gate_call(daemon, request)
        if blocked is not None:
            return blocked
        try:
            call = await _json_body(request)
            if call.get("type") == "REGISTER":
                _check_agent_credential(daemon, request, call)
                stream = EventStream("agent", "")
                await master.register_agent(call, stream)
                return _stream_response(stream, "Paddock-Agent-Stream-Id")
            agent = master.agent_for_call(request.headers.get("paddock-agent-stream-id"))
            master.agent_call(agent, call)
            return Response(status_code=202)
        except (CallError, Unavailable) as exc:
            return _error(exc)

    async def operator(request: Request) -> Response:
        if request.method != "POST":
            return _text(405, "Expecting 'POST'", {"Allow": "POST"})
        try:
            call = await _json_body(request)
            if call.get("type") == "SUBSCRIBE":
                blocked = gate(daemon, request)
                if blocked is not None:
                    return blocked
                return _operator_stream(daemon)
            local = call.get("type") in ("GET_HEALTH", "GET_VERSION", "GET_FLAGS")
            if not local:
                blocked = gate(daemon, request)
                if blocked is not None:
                    return blocked
            return JSONResponse(await operator_call(daemon, call))
        except (CallError, Unavailable) as exc:
            return _error(exc)

    # As in Mesos, the state endpoints of a non-leading master redirect to the leader
    # (its /metrics/snapshot, /version and /master/health answer locally).
    async def state(request: Request) -> Response:
        if not daemon.is_zk_leader():
            return leader_location(daemon, request)
        return JSONResponse(master.state_json(daemon.leader_info()))

    async def state_summary(request: Request) -> Response:
        if not daemon.is_zk_leader():
            return leader_location(daemon, request)
        return JSONResponse(master.state_json(daemon.leader_info(), summary=True))

    async def frameworks(request: Request) -> Response:
        if not daemon.is_zk_leader():
            return leader_location(daemon, request)
        st = master.state_json(daemon.leader_info())
        return JSONResponse(
            {"frameworks": st["frameworks"], "completed_frameworks": st["completed_frameworks"]}
        )

    async def slaves(request: Request) -> Response:
        if not daemon.is_zk_leader():
            return leader_location(daemon, request)
        st = master.state_json(daemon.leader_info())
        return JSONResponse({"slaves": st["slaves"], "recovered_slaves": st["recovered_slaves"]})

    async def tasks(request: Request) -> Response:
        if not daemon.is_zk_leader():
            return leader_location(daemon, request)
        out = [t.to_classic() for t in master.all_tasks()]
        return JSONResponse({"tasks": out})

    async def health(request: Request) -> Response:
        return Response(status_code=200)

    async def redirect(request: Request) -> Response:
        info = daemon.leader_info()
        if info is None:
            return _text(503, "No leader elected")
        addr = info.get("address", {})
        host = addr.get("hostname") or addr.get("ip")
        return Response(status_code=307, headers={"Location": f"//{host}:{addr.get('port')}"})

    async def version(request: Request) -> Response:
        return JSONResponse(master.version_json())

    async def metrics_snapshot(request: Request) -> Response:
        return JSONResponse(master.metrics_snapshot(daemon.is_zk_leader() and master.acting))

    async def metrics(request: Request) -> Response:
        from paddock.master.operator_api import prometheus_text

        body, ctype = prometheus_text(
            master.metrics_snapshot(daemon.is_zk_leader() and master.acting)
        )
        return Response(body, media_type=ctype)

    async def registry(request: Request) -> Response:
        return JSONResponse(daemon.registry_state.to_json())

    async def openapi(request: Request) -> Response:
        return JSONResponse(openapi_document())

    any_method = ["GET", "POST", "PUT", "DELETE", "PATCH"]
    routes = [
        Route("/api/v1/scheduler", scheduler, methods=any_method),
        Route("/master/api/v1/scheduler", scheduler, methods=any_method),
        Route("/paddock/v1/agent", agent_api, methods=any_method),
        Route("/api/v1", operator, methods=any_method),
        Route("/api/v1/operator", operator, methods=any_method),
        Route("/master/api/v1", operator, methods=any_method),
        Route("/master/state", state),
        Route("/master/state.json", state),
        Route("/state", state),
        Route("/state.json", state),
        Route("/master/state-summary", state_summary),
        Route("/master/frameworks", frameworks),
        Route("/master/slaves", slaves),
        Route("/master/tasks", tasks),
        Route("/master/health", health),
        Route("/health", health),
        Route("/master/redirect", redirect),
        Route("/redirect", redirect),
        Route("/version", version),
        Route("/metrics/snapshot", metrics_snapshot),
        Route("/metrics", metrics),
        Route("/registry", registry),
        Route("/registrar(1)/registry", registry),
        Route("/openapi.json", openapi),
    ]
    return mount_ui(Starlette(routes=routes), master=master.flags_json()["zk"])


def _operator_stream(daemon: MasterDaemon) -> Response:
    """Operator SUBSCRIBE: the full state first, then events as they happen."""
    master = daemon.master
    stream = EventStream("operator", "operator")
    master.operator_streams.add(stream)
    stream.on_closed = master.operator_streams.discard
    stream.send(
        {
            "type": "SUBSCRIBED",
            "subscribed": {
                "get_state": get_state(master),
                "heartbeat_interval_seconds": daemon.config.heartbeat_interval,
            },
        }
    )
    return _stream_response(stream, "Mesos-Stream-Id")


def _check_agent_credential(daemon: MasterDaemon, request: Request, call: dict[str, Any]) -> None:
    creds = daemon.config.credentials
    if creds is None:
        return
    reg = call.get("register") if isinstance(call.get("register"), dict) else {}
    cred = reg.get("credential") if isinstance(reg, dict) else None
    if not isinstance(cred, dict):
        if request.headers.get("authorization"):
            authenticate(daemon, request)
            return
        raise CallError(401, "Agent authentication required: send register.credential")
    principal = cred.get("principal")
    if not isinstance(principal, str) or not _secret_matches(
        creds.get(principal), str(cred.get("secret", ""))
    ):
        raise CallError(401, f"Agent authentication failed for principal {principal!r}")
