"""The agent's connection to the leading master (``docs/agent-protocol.md``).

One loop: find the leader, ``POST /paddock/v1/agent`` a ``REGISTER`` and read the
RecordIO event stream until it ends, the leader changes, or no byte arrives for
``max_missed_pings`` ping intervals; then back off (random in ``[0, b]``, ``b`` doubling
from ``registration_backoff`` to ``registration_backoff_max``, reset by a
``REGISTERED``) and register again with the same agent id and the live tasks.
A ``307`` is followed at once (a non-leading master names the leader).

Calls to the master (``UPDATE``, ``PONG``, ``UNREGISTER``) go in batches through a
queue, with the stream id of the current connection; calls made while disconnected are
dropped (status updates are re-sent from their streams on the next ``REGISTERED``).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import random
from typing import Any
from urllib.parse import urlsplit

import httpx

from paddock.agent.daemon import Agent
from paddock.agent.leader import Address, LeaderDetector
from paddock.agent.wire import register_body
from paddock.recordio import RecordIODecoder, RecordIOError

log = logging.getLogger(__name__)

__all__ = ["AGENT_API_PATH", "STREAM_ID_HEADER", "MasterLink"]

AGENT_API_PATH = "/paddock/v1/agent"
STREAM_ID_HEADER = "Paddock-Agent-Stream-Id"
MAX_REDIRECTS_IN_A_ROW = 3
MAX_CONCURRENT_CALLS = 8


class MasterLink:
    def __init__(
        self, agent: Agent, detector: LeaderDetector, rng: random.Random | None = None
    ) -> None:
        self.agent = agent
        self.detector = detector
        self.rng = rng or random.Random()
        self.config = agent.config
        self.stream_id: str | None = None
        self.connected_to: Address | None = None
        self._redirect: Address | None = None
        self._calls: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
        self._retry_wake = asyncio.Event()
        self._tasks: list[asyncio.Task[None]] = []
        self._client: httpx.AsyncClient | None = None
        self._stopping = False
        self.last_error = ""
        agent.send_call = self.send
        agent.wake_retries = self._retry_wake.set

    # ---------------------------------------------------------------- lifecycle
    async def start(self) -> None:
        cred = self.config.credential
        self._client = httpx.AsyncClient(
            # The credential rides in REGISTER (``register.credential``) and, for masters
            # that check every request, as HTTP basic authentication too.
            auth=(cred["principal"], cred["secret"]) if cred else None,
            timeout=httpx.Timeout(connect=5.0, read=None, write=10.0, pool=5.0),
            follow_redirects=False,
        )
        self._tasks = [
            asyncio.create_task(self._connect_loop(), name="master-link"),
            asyncio.create_task(self._sender(), name="master-calls"),
            asyncio.create_task(self._retry_timer(), name="status-retries"),
        ]

    async def stop(self, unregister: bool = False) -> None:
        if unregister and self.stream_id is not None and self.connected_to is not None:
            with contextlib.suppress(httpx.HTTPError):
                await self._post({"type": "UNREGISTER"})
        await self.flush_calls(timeout=2.0)
        self._stopping = True
        for t in self._tasks:
            t.cancel()
        for t in self._tasks:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await t
        if self._client is not None:
            await self._client.aclose()

    async def flush_calls(self, timeout: float) -> None:
        """Wait (bounded) until the queued calls were posted (used at shutdown)."""
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._calls.join(), timeout)

    # ---------------------------------------------------------------- calls
    def send(self, call: dict[str, Any]) -> None:
        if self.stream_id is None:
            return  # not connected: updates are re-sent on the next registration
        self._calls.put_nowait(call)

    async def _post(self, call: dict[str, Any]) -> httpx.Response:
        assert self._client is not None and self.connected_to is not None
        host, port = self.connected_to
        return await self._client.post(
            f"http://{host}:{port}{AGENT_API_PATH}",
            json=call,
            headers={STREAM_ID_HEADER: self.stream_id or ""},
        )

    async def _sender(self) -> None:
        """Posts queued calls in batches: everything queued so far is made durable with one
        round of fsyncs (group commit), then posted concurrently. Per task at most one
        update is outstanding, so concurrency cannot reorder a task's stream."""
        while True:
            batch = [await self._calls.get()]
            while not self._calls.empty():
                batch.append(self._calls.get_nowait())
            try:
                if self.stream_id is None:
                    continue
                if any(call.get("type") == "UPDATE" for call in batch):
                    await self.agent.store.deferred.sync()
                # A few posts at a time: httpx's pool gets slow (quadratic) with hundreds
                # of connections, and a few keep-alive connections carry the load.
                for i in range(0, len(batch), MAX_CONCURRENT_CALLS):
                    chunk = batch[i : i + MAX_CONCURRENT_CALLS]
                    await asyncio.gather(*(self._post_one(call) for call in chunk))
            finally:
                for _ in batch:
                    self._calls.task_done()

    async def _post_one(self, call: dict[str, Any]) -> None:
        if self.stream_id is None:
            return
        try:
            resp = await self._post(call)
        except httpx.HTTPError as exc:
            log.debug("call %s failed: %s", call.get("type"), exc)
            return
        if resp.status_code != 202:
            log.warning(
                "master answered %d to %s: %s",
                resp.status_code,
                call.get("type"),
                resp.text[:200],
            )

    async def _retry_timer(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            self._retry_wake.clear()
            deadline = self.agent.updates.next_deadline()
            timeout = None if deadline is None else max(0.0, deadline - loop.time())
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(timeout):
                    await self._retry_wake.wait()
            self.agent.send_due_updates()

    # ---------------------------------------------------------------- the stream
    async def _connect_loop(self) -> None:
        attempt = 0
        redirects = 0
        while not self._stopping:
            leader = await self.detector.wait_for_leader()
            version = self.detector.version
            target = self._redirect or leader
            self._redirect = None
            outcome = await self._race_leader_change(self._session(target), version)
            if outcome == "registered":
                attempt = 0
            if outcome == "redirect" and redirects < MAX_REDIRECTS_IN_A_ROW:
                redirects += 1
                continue
            redirects = 0
            if outcome == "leader-changed":
                attempt = 0
                continue  # the new leader at once
            attempt += 1
            bound = min(
                self.config.registration_backoff * 2 ** (attempt - 1),
                self.config.registration_backoff_max,
            )
            delay = self.rng.uniform(0, bound)
            if delay > 0:
                log.info("reconnecting to a master in %.2f s", delay)
                await self._race_leader_change(asyncio.sleep(delay), version)

    async def _race_leader_change(self, coro: Any, version: int) -> str:
        work = asyncio.ensure_future(coro)
        change = asyncio.ensure_future(self.detector.wait_change(version))
        try:
            done, _ = await asyncio.wait({work, change}, return_when=asyncio.FIRST_COMPLETED)
            if work in done:
                result = work.result()
                return result if isinstance(result, str) else "done"
            return "leader-changed"
        finally:
            for t in (work, change):
                if not t.done():
                    t.cancel()
                    with contextlib.suppress(asyncio.CancelledError, Exception):
                        await t

    async def _session(self, target: Address) -> str:
        """One registration and its stream. Returns how it ended."""
        assert self._client is not None
        host, port = target
        url = f"http://{host}:{port}{AGENT_API_PATH}"
        body = {"type": "REGISTER", "register": register_body(self.agent)}
        registered = False
        try:
            async with self._client.stream(
                "POST", url, json=body, headers={"Accept": "application/json"}
            ) as resp:
                if resp.status_code in (301, 302, 303, 307, 308):
                    location = resp.headers.get("location", "")
                    parts = urlsplit(location if "//" in location else "//" + location)
                    if parts.hostname and parts.port:
                        self._redirect = (parts.hostname, parts.port)
                        log.info("master %s:%d redirects to %s", host, port, location)
                        return "redirect"
                    self.last_error = f"bad redirect {location!r}"
                    return "error"
                if resp.status_code != 200:
                    text = (await resp.aread()).decode(errors="replace").strip()
                    self.last_error = f"{resp.status_code} {text[:200]}"
                    log.warning(
                        "master %s:%d refused registration: %s", host, port, self.last_error
                    )
                    return "refused"
                self.stream_id = resp.headers.get(STREAM_ID_HEADER, "")
                self.connected_to = target
                self.agent.master = target
                decoder = RecordIODecoder()
                chunks = resp.aiter_bytes()
                while True:
                    limit = self.agent.ping_interval * self.config.max_missed_pings
                    try:
                        # asyncio.timeout, not wait_for: in 3.11 wait_for can swallow a
                        # cancellation that arrives together with a chunk.
                        async with asyncio.timeout(limit):
                            chunk = await chunks.__anext__()
                    except StopAsyncIteration:
                        self.last_error = "the master closed the stream"
                        break
                    except TimeoutError:
                        self.last_error = f"no ping from the master for {limit:.0f} s"
                        break
                    for record in decoder.feed(chunk):
                        try:
                            event = json.loads(record)
                        except ValueError:
                            self.agent.counters["invalid_events"] += 1
                            log.warning("master sent a record that is not JSON")
                            continue
                        if isinstance(event, dict) and event.get("type") == "REGISTERED":
                            registered = True
                        if not self.agent.handle_event(event):
                            self.last_error = "the master sent ERROR"
                            return "error"
        except (httpx.HTTPError, OSError, RecordIOError) as exc:
            self.last_error = f"{type(exc).__name__}: {exc}"
            log.warning("connection to master %s:%d failed: %s", host, port, self.last_error)
        finally:
            if self.stream_id is not None or self.connected_to is not None:
                log.info("disconnected from master %s:%d (%s)", host, port, self.last_error)
            self.stream_id = None
            self.connected_to = None
            self.agent.master = None
            self.agent.on_disconnected()
        return "registered" if registered else "error"
