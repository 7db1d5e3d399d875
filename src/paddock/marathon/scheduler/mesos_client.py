"""An asyncio client of the Mesos v1 scheduler HTTP API.

Finds the leading master through ZooKeeper (the lowest ``<path>/json.info_*`` child,
MasterInfo JSON ``address.ip``/``hostname``/``port``) or takes a fixed ``host:port``;
follows ``307`` to the leader (``Location: //host:port/path``); keeps the SUBSCRIBE
stream (RecordIO) open and hands each event to a callback; treats a stream that stays
silent for 5 heartbeat intervals as dead and subscribes again (to whichever master leads
then). Calls carry the ``Mesos-Stream-Id`` header. Reconnects back off from 0.5 s
doubling to 10 s.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from collections.abc import Awaitable, Callable
from typing import Any

import httpx
import orjson
from kazoo.client import KazooClient
from kazoo.exceptions import NoNodeError

from paddock.recordio import RecordIODecoder

log = logging.getLogger(__name__)

PATH = "/api/v1/scheduler"
CALL_CONCURRENCY = 16
EventHandler = Callable[[dict[str, Any]], Awaitable[None]]


def parse_master_url(master: str) -> tuple[str | None, str | None, str | None]:
    """``zk://hosts/path`` -> (hosts, path, None); ``host:port`` -> (None, None, host:port)."""
    if master.startswith("zk://"):
        rest = master[len("zk://") :]
        hosts, _, path = rest.partition("/")
        return hosts, "/" + path.rstrip("/"), None
    return None, None, master.removeprefix("http://").rstrip("/")


def leader_from_zk(client: KazooClient, path: str) -> str | None:
    """host:port of the master whose json.info_ znode has the lowest sequence (blocking)."""
    try:
        children = client.get_children(path)
    except NoNodeError:
        return None
    infos = sorted((c for c in children if c.startswith("json.info_")), key=lambda c: c[-10:])
    for child in infos:
        try:
            data, _ = client.get(f"{path}/{child}")
        except NoNodeError:
            continue
        try:
            info = json.loads(data.decode())
        except ValueError:
            continue
        address = info.get("address") or {}
        host = address.get("ip") or address.get("hostname") or info.get("hostname")
        port = address.get("port") or info.get("port")
        if host and port:
            return f"{host}:{port}"
        return None
    return None


class MesosSchedulerClient:
    """One framework's connection to the leading master."""

    def __init__(
        self,
        master: str,
        framework_info: dict[str, Any],
        on_event: EventHandler,
        *,
        on_disconnect: Callable[[], Awaitable[None]] | None = None,
        on_removed: Callable[[], Awaitable[None]] | None = None,
        zk_timeout: float = 10.0,
    ) -> None:
        self.master = master
        self.framework_info = dict(framework_info)
        self.on_event = on_event
        self.on_disconnect = on_disconnect
        self.on_removed = on_removed
        self.zk_hosts, self.zk_path, self.fixed = parse_master_url(master)
        self.zk_timeout = zk_timeout
        self._zk: KazooClient | None = None
        self.http = httpx.AsyncClient(
            timeout=httpx.Timeout(10.0, read=None),
            limits=httpx.Limits(max_connections=CALL_CONCURRENCY + 4),
        )
        # At most CALL_CONCURRENCY calls in flight: httpcore assigns queued requests to
        # connections in O(queued x connections) per step, so hundreds of KILLs or
        # ACKNOWLEDGEs handed to it at once (a rolling restart) cost more CPU in the
        # pool than the calls themselves (three quarters of marathon's CPU, profiled).
        self._call_slots = asyncio.Semaphore(CALL_CONCURRENCY)
        self.base: str | None = None
        self.stream_id: str | None = None
        self.framework_id: str | None = framework_info.get("id", {}).get("value")
        self.heartbeat_interval = 15.0
        self.connected = asyncio.Event()
        self._runner: asyncio.Task[None] | None = None
        self._stopping = False

    # -- leader detection ------------------------------------------------------------

    async def detect(self) -> str | None:
        if self.fixed is not None:
            return self.fixed
        return await asyncio.to_thread(self._detect_zk)

    def _detect_zk(self) -> str | None:
        if self._zk is None:
            self._zk = KazooClient(hosts=self.zk_hosts or "", timeout=self.zk_timeout)
            self._zk.start(timeout=self.zk_timeout)
        return leader_from_zk(self._zk, self.zk_path or "/mesos")

    # -- the subscription ------------------------------------------------------------

    def start(self) -> None:
        self._runner = asyncio.get_running_loop().create_task(self._run())

    async def stop(self) -> None:
        self._stopping = True
        if self._runner is not None:
            self._runner.cancel()
            with contextlib.suppress(BaseException):
                await self._runner
        await self.http.aclose()
        if self._zk is not None:
            zk = self._zk
            self._zk = None
            await asyncio.to_thread(_stop_kazoo, zk)

    async def _run(self) -> None:
        backoff = 0.5
        while not self._stopping:
            try:
                leader = await self.detect()
                if leader is None:
                    log.info("no leading master yet")
                else:
                    subscribed = await self._subscribe(f"http://{leader}")
                    if subscribed:
                        backoff = 0.5
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                log.warning("scheduler connection failed: %s", exc)
            if self.connected.is_set():
                self.connected.clear()
            self.stream_id = None
            if self.on_disconnect is not None:
                with contextlib.suppress(Exception):
                    await self.on_disconnect()
            if self._stopping:
                return
            await asyncio.sleep(backoff)
            backoff = min(backoff * 2, 10.0)

    def _subscribe_body(self) -> dict[str, Any]:
        info = dict(self.framework_info)
        body: dict[str, Any] = {"type": "SUBSCRIBE", "subscribe": {"framework_info": info}}
        if self.framework_id:
            info["id"] = {"value": self.framework_id}
            body["framework_id"] = {"value": self.framework_id}
        return body

    async def _subscribe(self, base: str) -> bool:
        """Subscribe at ``base`` (following redirects) and read events until the stream ends.
        True when a SUBSCRIBED event arrived."""
        for _hop in range(4):
            async with self.http.stream("POST", base + PATH, json=self._subscribe_body()) as resp:
                if resp.status_code == 307:
                    location = resp.headers.get("location", "")
                    base = "http://" + location.lstrip("/").split("/", 1)[0]
                    continue
                if resp.status_code != 200:
                    text = (await resp.aread())[:300]
                    log.warning("SUBSCRIBE at %s: HTTP %s %r", base, resp.status_code, text)
                    if resp.status_code == 403 and b"has been removed" in text:
                        # The master tore this framework down (failover timeout passed):
                        # its tasks are gone. Register anew; reconciliation cleans up.
                        log.error("framework %s was removed by the master", self.framework_id)
                        self.framework_id = None
                        self.framework_info.pop("id", None)
                        if self.on_removed is not None:
                            await self.on_removed()
                    return False
                self.base = base
                self.stream_id = resp.headers.get("mesos-stream-id")
                return await self._read(resp)
        return False

    async def _read(self, resp: httpx.Response) -> bool:
        decoder = RecordIODecoder()
        subscribed = False
        chunks = resp.aiter_raw()
        while True:
            try:
                chunk = await asyncio.wait_for(
                    chunks.__anext__(), timeout=self.heartbeat_interval * 5 + 1
                )
            except StopAsyncIteration:
                log.info("the master closed the event stream")
                return subscribed
            except TimeoutError:
                log.warning(
                    "no heartbeat for %.0fs: subscribing again", self.heartbeat_interval * 5
                )
                return subscribed
            for record in decoder.feed(chunk):
                event = orjson.loads(record)
                if event.get("type") == "SUBSCRIBED":
                    sub = event.get("subscribed") or {}
                    self.framework_id = sub.get("framework_id", {}).get("value")
                    self.heartbeat_interval = float(sub.get("heartbeat_interval_seconds", 15.0))
                    subscribed = True
                    self.connected.set()
                elif event.get("type") == "ERROR":
                    log.error("master: %s", (event.get("error") or {}).get("message"))
                try:
                    await self.on_event(event)
                except Exception:
                    log.exception("scheduler event handler failed on %s", event.get("type"))

    # -- calls -----------------------------------------------------------------------

    async def call(self, call_type: str, body: dict[str, Any] | None = None) -> int:
        """Send one call; returns the HTTP status (0 when not connected / unreachable)."""
        if self.base is None or self.stream_id is None or self.framework_id is None:
            return 0
        msg: dict[str, Any] = {"type": call_type, "framework_id": {"value": self.framework_id}}
        if body is not None:
            msg[call_type.lower()] = body
        try:
            async with self._call_slots:
                resp = await self.http.post(
                    self.base + PATH,
                    content=orjson.dumps(msg),
                    headers={
                        "Mesos-Stream-Id": self.stream_id,
                        "Content-Type": "application/json",
                    },
                )
        except httpx.HTTPError as exc:
            log.warning("%s failed: %s %s", call_type, type(exc).__name__, exc)
            return 0
        if resp.status_code != 202:
            log.warning("%s: HTTP %s %s", call_type, resp.status_code, resp.text[:200])
        return resp.status_code

    async def disconnect(self) -> None:
        """Drop the stream (e.g. when this marathon stops leading); does not reconnect."""
        await self.stop()


def _stop_kazoo(client: KazooClient) -> None:
    with contextlib.suppress(Exception):
        client.stop()
        client.close()
