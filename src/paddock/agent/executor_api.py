"""``POST /api/v1/executor``: the Mesos v1 executor HTTP API (JSON only).

Status codes as Mesos's ``Http::executor`` (``src/slave/http.cpp``) answers them:
``SUBSCRIBE`` -> ``200`` with a chunked RecordIO stream of events (``SUBSCRIBED``,
``LAUNCH``, ``KILL``, ``ACKNOWLEDGED``, ``SHUTDOWN``, ``HEARTBEAT``); ``UPDATE``,
``MESSAGE``, ``HEARTBEAT`` -> ``202``.  ``400`` for a body that is not a valid call
(not JSON, missing ids, bad status) and for an unknown framework or executor; ``403``
for a call other than SUBSCRIBE before the executor subscribed; ``415`` for a
Content-Type other than JSON (protobuf is not spoken); ``406`` for a SUBSCRIBE whose
Accept excludes JSON.  Error bodies are one line of text.  The behaviour behind the
calls is :mod:`paddock.agent.custom_executor`.
"""

from __future__ import annotations

import json
import logging
from typing import TYPE_CHECKING, Any

from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response, StreamingResponse

from paddock.agent.executor_run import LAUNCHING, REGISTERING

if TYPE_CHECKING:
    from paddock.agent.daemon import Agent

log = logging.getLogger(__name__)

__all__ = ["executor_call"]

CALL_TYPES = ("SUBSCRIBE", "UPDATE", "MESSAGE", "HEARTBEAT")


def _bad(message: str, status: int = 400) -> Response:
    return PlainTextResponse(message, status_code=status)


def _accepts_json(accept: str | None) -> bool:
    if not accept:
        return True
    for part in accept.split(","):
        media = part.split(";")[0].strip().lower()
        if media in ("application/json", "application/*", "*/*"):
            return True
    return False


def _id(call: dict[str, Any], name: str) -> str | None:
    value = call.get(name)
    if isinstance(value, dict) and isinstance(value.get("value"), str) and value["value"]:
        return str(value["value"])
    return None


async def executor_call(agent: Agent, request: Request) -> Response:
    """Answer one executor call (never raises for bad input)."""
    ctype = request.headers.get("content-type")
    if not ctype:
        return _bad("Expecting 'Content-Type' to be present")
    media = ctype.split(";")[0].strip().lower()
    if media != "application/json":
        return _bad(
            f"Expecting 'Content-Type' of application/json (no protobuf), got {media!r}",
            415,
        )
    try:
        call = json.loads(await request.body())
    except (ValueError, UnicodeDecodeError) as exc:
        return _bad(f"Failed to parse body into JSON: {exc}")
    if not isinstance(call, dict):
        return _bad("Failed to validate Executor::Call: expecting a JSON object")
    kind = call.get("type")
    if not isinstance(kind, str) or kind not in CALL_TYPES:
        return _bad(
            f"Failed to validate Executor::Call: 'type' must be one of {', '.join(CALL_TYPES)}"
        )
    fw_id, ex_id = _id(call, "framework_id"), _id(call, "executor_id")
    if fw_id is None:
        return _bad("Failed to validate Executor::Call: expecting 'framework_id' to be present")
    if ex_id is None:
        return _bad("Failed to validate Executor::Call: expecting 'executor_id' to be present")
    if kind == "SUBSCRIBE" and not _accepts_json(request.headers.get("accept")):
        return _bad("Expecting 'Accept' to allow 'application/json'", 406)
    if kind == "HEARTBEAT":
        return Response(status_code=202)
    manager = agent.executors
    run = manager.lookup(fw_id, ex_id)
    if run is None:
        if not any(k[0] == fw_id for k in manager.runs) and fw_id not in agent.frameworks:
            return _bad("Framework cannot be found")
        return _bad("Executor cannot be found")
    if run.state in (LAUNCHING, REGISTERING) and kind != "SUBSCRIBE":
        return _bad("Executor is not subscribed", 403)

    if kind == "SUBSCRIBE":
        body = call.get("subscribe") or {}
        if not isinstance(body, dict):
            return _bad("Failed to validate Executor::Call: 'subscribe' must be an object")
        tasks = body.get("unacknowledged_tasks") or []
        updates = body.get("unacknowledged_updates") or []
        if not isinstance(tasks, list) or not isinstance(updates, list):
            return _bad("Failed to validate Executor::Call: unacknowledged lists must be lists")
        stream = manager.subscribe(run, tasks, updates)
        return StreamingResponse(
            stream.body(),
            media_type="application/json",
            headers={"Cache-Control": "no-cache"},
        )
    if kind == "UPDATE":
        update = call.get("update")
        status = update.get("status") if isinstance(update, dict) else None
        if not isinstance(status, dict):
            return _bad(
                "Failed to validate Executor::Call: expecting 'update.status' to be present"
            )
        error = manager.update(run, status)
        if error is not None:
            return _bad(f"Failed to validate Executor::Call: {error}")
        return Response(status_code=202)
    # MESSAGE
    message = call.get("message")
    data = message.get("data") if isinstance(message, dict) else None
    if not isinstance(data, str):
        return _bad("Failed to validate Executor::Call: expecting 'message.data' to be present")
    manager.message(run, data)
    return Response(status_code=202)
