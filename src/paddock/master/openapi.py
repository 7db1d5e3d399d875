"""The master's OpenAPI 3 document, served at ``/openapi.json``.

The master speaks JSON over plain Starlette routes (no FastAPI models), so this document
is written by hand. It describes the non-streaming halves of the Mesos v1 scheduler API
(``POST /api/v1/scheduler``; SUBSCRIBE opens a RecordIO stream and is only mentioned),
the v1 operator API (``POST /api/v1``) and the classic read endpoints. It exists so
clients and fuzzers (schemathesis, see docs/reliability.md "Bad input") can be pointed
at a running master; the shapes follow ``include/mesos/v1/scheduler/scheduler.proto``
and ``master/master.proto``, loosely where paddock accepts more.
"""

from __future__ import annotations

from typing import Any

from paddock.master.config import MESOS_VERSION

SCHEDULER_CALLS = [
    "TEARDOWN",
    "ACCEPT",
    "DECLINE",
    "ACCEPT_INVERSE_OFFERS",
    "DECLINE_INVERSE_OFFERS",
    "REVIVE",
    "KILL",
    "SHUTDOWN",
    "ACKNOWLEDGE",
    "ACKNOWLEDGE_OPERATION_STATUS",
    "RECONCILE",
    "RECONCILE_OPERATIONS",
    "MESSAGE",
    "REQUEST",
    "SUPPRESS",
    "UPDATE_FRAMEWORK",
]

OPERATOR_READ_CALLS = [
    "GET_HEALTH",
    "GET_VERSION",
    "GET_FLAGS",
    "GET_MASTER",
    "GET_METRICS",
    "GET_AGENTS",
    "GET_FRAMEWORKS",
    "GET_TASKS",
    "GET_EXECUTORS",
    "GET_ROLES",
    "GET_STATE",
    "GET_WEIGHTS",
]


def _ref(name: str) -> dict[str, str]:
    return {"$ref": f"#/components/schemas/{name}"}


def _text(description: str) -> dict[str, Any]:
    return {"description": description, "content": {"text/plain": {"schema": {"type": "string"}}}}


def _json(description: str, schema: dict[str, Any] | None = None) -> dict[str, Any]:
    return {
        "description": description,
        "content": {"application/json": {"schema": schema or {"type": "object"}}},
    }


_REDIRECT = {
    "description": "Not the leading master: Location names the leader as //host:port/path",
    "headers": {"Location": {"schema": {"type": "string"}}},
}
_UNAVAILABLE = _text("No leader elected, or the leader is still recovering")

_ID = {
    "type": "object",
    "required": ["value"],
    "properties": {"value": {"type": "string", "minLength": 1}},
}

_SCALAR_RESOURCE = {
    "type": "object",
    "required": ["name", "type"],
    "properties": {
        "name": {"type": "string"},
        "type": {"type": "string", "enum": ["SCALAR", "RANGES", "SET", "TEXT"]},
        "scalar": {"type": "object", "properties": {"value": {"type": "number"}}},
        "role": {"type": "string"},
    },
}

_TASK_INFO = {
    "type": "object",
    "required": ["name", "task_id", "agent_id"],
    "properties": {
        "name": {"type": "string"},
        "task_id": _ref("ID"),
        "agent_id": _ref("ID"),
        "resources": {"type": "array", "items": _ref("Resource")},
        "command": {
            "type": "object",
            "properties": {"value": {"type": "string"}, "shell": {"type": "boolean"}},
        },
    },
}

_FILTERS = {"type": "object", "properties": {"refuse_seconds": {"type": "number"}}}

SCHEDULER_CALL: dict[str, Any] = {
    "type": "object",
    "description": "A scheduler call other than SUBSCRIBE (which opens the event stream and "
    "answers 200 with a RecordIO body and the Mesos-Stream-Id header).",
    "required": ["type", "framework_id"],
    "properties": {
        "type": {"type": "string", "enum": SCHEDULER_CALLS},
        "framework_id": _ref("ID"),
        "accept": {
            "type": "object",
            "properties": {
                "offer_ids": {"type": "array", "items": _ref("ID")},
                "operations": {
                    "type": "array",
                    "items": {
                        "type": "object",
                        "required": ["type"],
                        "properties": {
                            "type": {
                                "type": "string",
                                "enum": ["LAUNCH", "RESERVE", "UNRESERVE", "CREATE", "DESTROY"],
                            },
                            "launch": {
                                "type": "object",
                                "properties": {
                                    "task_infos": {"type": "array", "items": _TASK_INFO}
                                },
                            },
                        },
                    },
                },
                "filters": _FILTERS,
            },
        },
        "decline": {
            "type": "object",
            "properties": {
                "offer_ids": {"type": "array", "items": _ref("ID")},
                "filters": _FILTERS,
            },
        },
        "kill": {
            "type": "object",
            "required": ["task_id"],
            "properties": {"task_id": _ref("ID"), "agent_id": _ref("ID")},
        },
        "acknowledge": {
            "type": "object",
            "required": ["agent_id", "task_id", "uuid"],
            "properties": {
                "agent_id": _ref("ID"),
                "task_id": _ref("ID"),
                "uuid": {"type": "string", "format": "byte"},
            },
        },
        "reconcile": {
            "type": "object",
            "properties": {
                "tasks": {
                    "type": "array",
                    "items": {
                        "type": "object",
                        "required": ["task_id"],
                        "properties": {"task_id": _ref("ID"), "agent_id": _ref("ID")},
                    },
                }
            },
        },
        "revive": {"type": "object", "properties": {"roles": {"type": "array", "items": {}}}},
        "suppress": {"type": "object", "properties": {"roles": {"type": "array", "items": {}}}},
        "message": {
            "type": "object",
            "properties": {
                "agent_id": _ref("ID"),
                "executor_id": _ref("ID"),
                "data": {"type": "string", "format": "byte"},
            },
        },
    },
}

OPERATOR_CALL: dict[str, Any] = {
    "type": "object",
    "description": "A v1 operator call. SUBSCRIBE (an event stream) is not described here.",
    "required": ["type"],
    "properties": {
        "type": {
            "type": "string",
            "enum": [*OPERATOR_READ_CALLS, "UPDATE_WEIGHTS", "MARK_AGENT_GONE", "TEARDOWN"],
        },
        "update_weights": {
            "type": "object",
            "properties": {
                "weight_infos": {
                    "type": "array",
                    "items": {
                        "type": "object",
                        "required": ["role", "weight"],
                        "properties": {
                            "role": {"type": "string"},
                            "weight": {"type": "number"},
                        },
                    },
                }
            },
        },
        "mark_agent_gone": {"type": "object", "properties": {"agent_id": _ref("ID")}},
        "teardown": {"type": "object", "properties": {"framework_id": _ref("ID")}},
    },
}

_CALL_ERRORS = {
    "400": _text("Malformed call (not JSON, not an object, missing or bad fields)"),
    "405": _text("Only POST is accepted"),
    "406": _text("The Accept header excludes application/json"),
    "415": _text("Content-Type is not application/json"),
    "503": _UNAVAILABLE,
}

_LEADER_READ = {"307": _REDIRECT, "503": _UNAVAILABLE}


def _get(summary: str, ok: dict[str, Any], extra: dict[str, Any] | None = None) -> dict[str, Any]:
    return {"get": {"summary": summary, "responses": {"200": ok, **(extra or {})}}}


def _post_call(summary: str, schema: str, ok: dict[str, Any], **extra: Any) -> dict[str, Any]:
    ok_status = "202" if schema == "SchedulerCall" else "200"
    responses = {ok_status: ok, **_CALL_ERRORS, "307": _REDIRECT, **extra}
    return {
        "post": {
            "summary": summary,
            "requestBody": {
                "required": True,
                "content": {"application/json": {"schema": _ref(schema)}},
            },
            "responses": responses,
        }
    }


def openapi_document() -> dict[str, Any]:
    """The document (a fresh dict each call; callers may modify it)."""
    scheduler = _post_call(
        "Mesos v1 scheduler call (non-streaming)",
        "SchedulerCall",
        {"description": "Accepted"},
        **{
            "401": _text("Missing or wrong HTTP basic credentials (with --credentials)"),
            "403": _text("Framework not subscribed, removed, or of another principal"),
        },
    )
    scheduler["post"]["parameters"] = [
        {
            "name": "Mesos-Stream-Id",
            "in": "header",
            "required": False,
            "schema": {"type": "string"},
            "description": "The stream id SUBSCRIBED answered with (required by the master "
            "for every non-SUBSCRIBE call of a subscribed framework)",
        }
    ]
    operator = _post_call("Mesos v1 operator call", "OperatorCall", _json("The call's answer"))
    return {
        "openapi": "3.0.3",
        "info": {
            "title": "paddock master",
            "version": MESOS_VERSION,
            "description": "The Mesos v1 scheduler and operator APIs and the classic read "
            "endpoints of a paddock master. State endpoints of a standby master answer 307 "
            "to the leader.",
        },
        "paths": {
            "/api/v1/scheduler": scheduler,
            "/api/v1": operator,
            "/master/state": _get(
                "Full cluster state (Mesos state.json)", _json("State"), _LEADER_READ
            ),
            "/master/state-summary": _get(
                "Agents and frameworks in brief", _json("Summary"), _LEADER_READ
            ),
            "/master/health": {
                "get": {"summary": "Liveness", "responses": {"200": {"description": "Alive"}}}
            },
            "/master/redirect": {
                "get": {
                    "summary": "Where the leading master is",
                    "responses": {"307": _REDIRECT, "503": _UNAVAILABLE},
                }
            },
            "/version": _get("Build version", _json("Version")),
            "/metrics/snapshot": _get(
                "Metrics (Mesos names)",
                _json("Metrics", {"type": "object", "additionalProperties": {"type": "number"}}),
            ),
        },
        "components": {
            "schemas": {
                "ID": _ID,
                "Resource": _SCALAR_RESOURCE,
                "SchedulerCall": SCHEDULER_CALL,
                "OperatorCall": OPERATOR_CALL,
            }
        },
    }


__all__ = ["openapi_document"]
