"""A small stand-in for the master side of docs/agent-protocol.md, served by uvicorn on
loopback inside the test's event loop. It records every call and lets the test push
events onto the open stream, close it, or answer REGISTER with a redirect or an error."""

from __future__ import annotations

import asyncio
import contextlib
import json
import socket
import uuid
from typing import Any

import uvicorn
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, Response, StreamingResponse

from paddock.recordio import encode_json

STREAM_HEADER = "Paddock-Agent-Stream-Id"


class FakeMaster:
    def __init__(self, *, agent_id: str = "agent-1", ping_interval: float = 15.0) -> None:
        self.agent_id = agent_id
        self.ping_interval = ping_interval
        self.registrations: list[dict[str, Any]] = []
        self.calls: list[dict[str, Any]] = []
        self.stream_id: str | None = None
        self.redirect_to: str | None = None
        self.refuse_status: int | None = None
        self.auto_ack = False
        self._queue: asyncio.Queue[dict[str, Any] | None] | None = None
        self._changed = asyncio.Condition()
        self.app = self._make_app()
        self.server: uvicorn.Server | None = None
        self._task: asyncio.Task[Any] | None = None
        self.port = 0

    # ---------------------------------------------------------------- app
    def _make_app(self) -> FastAPI:
        app = FastAPI()

        @app.post("/paddock/v1/agent")
        async def agent_api(request: Request) -> Response:
            call = json.loads(await request.body())
            if call.get("type") == "REGISTER":
                return await self._register(call)
            if request.headers.get(STREAM_HEADER) != self.stream_id or self.stream_id is None:
                return JSONResponse({"error": "stale stream"}, status_code=403)
            await self._record(call)
            if self.auto_ack and call.get("type") == "UPDATE":
                st = call["update"]["status"]
                if st.get("uuid"):
                    self.send(
                        {
                            "type": "ACKNOWLEDGE",
                            "acknowledge": {
                                "framework_id": call["update"]["framework_id"],
                                "task_id": st["task_id"],
                                "uuid": st["uuid"],
                            },
                        }
                    )
            return Response(status_code=202)

        return app

    async def _record(self, call: dict[str, Any]) -> None:
        async with self._changed:
            self.calls.append(call)
            self._changed.notify_all()

    async def _register(self, call: dict[str, Any]) -> Response:
        if self.redirect_to is not None:
            target, self.redirect_to = self.redirect_to, None
            return Response(status_code=307, headers={"Location": f"//{target}/paddock/v1/agent"})
        if self.refuse_status is not None:
            return JSONResponse({"error": "refused"}, status_code=self.refuse_status)
        async with self._changed:
            self.registrations.append(call["register"])
            self._changed.notify_all()
        if self._queue is not None:
            self._queue.put_nowait(None)  # end the previous stream
        queue: asyncio.Queue[dict[str, Any] | None] = asyncio.Queue()
        self._queue = queue
        self.stream_id = str(uuid.uuid4())
        queue.put_nowait(
            {
                "type": "REGISTERED",
                "registered": {
                    "agent_id": {"value": self.agent_id},
                    "master_info": {"id": "fake", "address": {"ip": "127.0.0.1", "port": 1}},
                    "ping_interval_seconds": self.ping_interval,
                },
            }
        )

        async def body():
            while True:
                event = await queue.get()
                if event is None:
                    return
                yield encode_json(event)

        return StreamingResponse(
            body(), media_type="application/json", headers={STREAM_HEADER: self.stream_id}
        )

    # ---------------------------------------------------------------- control
    def send(self, event: dict[str, Any]) -> None:
        assert self._queue is not None, "no agent stream"
        self._queue.put_nowait(event)

    def close_stream(self) -> None:
        if self._queue is not None:
            self._queue.put_nowait(None)
            self._queue = None
            self.stream_id = None

    async def wait_for(self, predicate, timeout: float = 10.0) -> Any:
        """Wait until predicate(self) returns something truthy; return it."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while True:
            result = predicate(self)
            if result:
                return result
            if loop.time() > deadline:
                raise TimeoutError(f"condition not met within {timeout} s")
            # Calls wake us at once; agent-side conditions are re-checked every 20 ms.
            async with self._changed:
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._changed.wait(), 0.02)

    async def wait_registrations(self, n: int, timeout: float = 10.0) -> dict[str, Any]:
        await self.wait_for(lambda m: len(m.registrations) >= n, timeout)
        return self.registrations[n - 1]

    def updates(self, task_id: str | None = None) -> list[dict[str, Any]]:
        out = [c["update"]["status"] for c in self.calls if c.get("type") == "UPDATE"]
        if task_id is not None:
            out = [s for s in out if s["task_id"]["value"] == task_id]
        return out

    async def wait_update(self, task_id: str, state: str, timeout: float = 10.0) -> dict[str, Any]:
        def find(m: FakeMaster) -> dict[str, Any] | None:
            for s in m.updates(task_id):
                if s["state"] == state:
                    return s
            return None

        return await self.wait_for(find, timeout)

    def ack(self, framework_id: str, status: dict[str, Any]) -> None:
        self.send(
            {
                "type": "ACKNOWLEDGE",
                "acknowledge": {
                    "framework_id": {"value": framework_id},
                    "task_id": status["task_id"],
                    "uuid": status["uuid"],
                },
            }
        )

    # ---------------------------------------------------------------- lifecycle
    async def start(self) -> FakeMaster:
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP)
        sock.bind(("127.0.0.1", 0))
        sock.listen(64)
        self.port = sock.getsockname()[1]
        self._sock = sock
        config = uvicorn.Config(self.app, log_level="warning", lifespan="off")
        self.server = uvicorn.Server(config)
        self.server.capture_signals = contextlib.nullcontext  # type: ignore[method-assign]
        self._task = asyncio.create_task(self.server.serve(sockets=[sock]))
        while not self.server.started:
            await asyncio.sleep(0.01)
        return self

    async def stop(self) -> None:
        self.close_stream()
        if self.server is not None:
            self.server.should_exit = True
            self.server.force_exit = True
        if self._task is not None:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self._task, 5)
        self._sock.close()

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.port}"
